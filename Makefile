# USCC Steward — the two commands of the quick start are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
DATA ?= data
DATE ?=
ARGS ?=
RUN_ARGS := --data-dir $(DATA) $(if $(DATE),--date $(DATE)) $(ARGS)
PY := $(VENV)/bin/python
USCC := $(VENV)/bin/uscc

.PHONY: install run run-local test test-fast browser-deps calc-deps sample bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test,bench]"
	touch $@

install: $(VENV)/.installed  ## create .venv with the pinned versions of constraints.txt

run: install  ## nightly job on DATA (a copy of sample_data/ the first time) through Prefect; DATE=YYYY-MM-DD reruns a night; ARGS=… more options of `uscc run` (e.g. ARGS=--new-ledger)
	@test -d $(DATA)/extracts || { mkdir -p $(DATA)/returns && cp -r sample_data/extracts $(DATA)/; \
	  echo "已将 sample_data/ 复制到 $(DATA)/"; }
	$(USCC) run $(RUN_ARGS)

run-local: install  ## the same job without Prefect (debugging)
	@test -d $(DATA)/extracts || { mkdir -p $(DATA)/returns && cp -r sample_data/extracts $(DATA)/; }
	$(USCC) run $(RUN_ARGS) --no-prefect

test: install  ## every test, the browser test included (chromium from apt when missing)
	$(PY) -m pytest

test-fast: install  ## everything but the Prefect and browser tests
	$(PY) -m pytest -m "not prefect and not browser"

browser-deps:  ## Debian chromium + CJK fonts for the browser test
	command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium fonts-noto-cjk; }

calc-deps:  ## LibreOffice Calc (a real spreadsheet) for the form round-trip tests
	/usr/bin/python3 -c "import uno" 2>/dev/null || { apt-get update -qq && \
	  apt-get install -y -qq --no-install-recommends libreoffice-calc python3-uno; }

sample: install  ## regenerate sample_data/ (committed output)
	rm -rf sample_data/extracts sample_data/truth
	$(USCC) synth --out sample_data --records 3000 --seed 2026

BENCH_DATA ?= /work/bench-data

bench: install  ## benchmarks (numbers go into README); the night's data: uscc synth --out $(BENCH_DATA)/1e6 … (bench_night.py says how)
	$(PY) benchmarks/bench_night.py --second-night --data $(BENCH_DATA)/1e5 $(BENCH_DATA)/1e6 $(if $(wildcard $(BENCH_DATA)/1e7/extracts),$(BENCH_DATA)/1e7)
	$(PY) benchmarks/bench_validators.py
	$(PY) benchmarks/bench_ingest.py
	$(PY) benchmarks/bench_detect.py
	$(PY) benchmarks/bench_flow.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
