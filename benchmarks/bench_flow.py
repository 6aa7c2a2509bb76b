"""The whole nightly job on `uscc synth` data: two nights, the second with a returned form.

Variants, each in its own process with a fresh ledger (Prefect's ephemeral
server is started by a warm-up flow before the clock starts, so its ~15 s
start-up is excluded):

- `stages` (the baseline): `flows.stages.run_all`, no Prefect, detection in one process
- `prefect`: the `nightly` flow, detection in one task
- `prefect+dask`: the `nightly` flow, detection partitioned by region and shuffled into
  8 key buckets on a local Dask cluster of 2 worker processes

Night 1 finds everything; between the nights the market bureau returns its
CSV form with 5,000 answered rows (fixes and waivers); night 2 judges them and
moves the ledger. Peak memory is the process's own and, separately, its largest
child (Dask workers, the Prefect server).

    python benchmarks/bench_flow.py [--sizes 1000000] [--variants stages prefect prefect+dask]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).parent / "out"

NIGHTS = r"""
import csv, io, json, os, resource, sys, time
from pathlib import Path
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
import polars as pl

data, variant = Path(sys.argv[1]), sys.argv[2]
if variant == "stages":
    from flows.stages import run_all
    run = lambda date: run_all(data, run_date=date)
else:
    from prefect import flow
    from flows.nightly import nightly

    @flow
    def warm_up():
        return 1

    warm_up()  # starts the ephemeral server outside the clock
    buckets = 8 if variant == "prefect+dask" else 0
    run = lambda date: nightly(data_dir=str(data), run_date=date, buckets=buckets, dask_workers=2)


def answer_form(report: Path, dest: Path, n: int) -> int:
    rows = list(csv.reader(io.StringIO((report / "market.csv").read_text("utf-8-sig"))))
    header, body = rows[0], rows[1:]
    findings = pl.read_csv(report / "findings.csv", infer_schema=False, glob=False).filter(pl.col("source") == "market")
    suggested = dict(findings.filter(pl.col("confidence").is_not_null()).select("finding_id", "suggested_code").rows())
    at = {h: header.index(h) for h in ("问题编号", "处理结果", "更正后代码", "处理说明")}
    answered = 0
    for row in body:
        fid = row[at["问题编号"]].strip()
        if answered >= n:
            break
        if fid in suggested:
            row[at["处理结果"]], row[at["更正后代码"]] = "已更正", suggested[fid]
        else:
            row[at["处理结果"]], row[at["处理说明"]] = "确认无误", "已核对证照"
        answered += 1
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(out.getvalue().encode("gb18030"))
    return answered


timings = {}
start = time.perf_counter()
first = run("2026-11-01")
timings["night1"] = time.perf_counter() - start
summary1 = json.loads((data / "reports" / "2026-11-01" / "summary.json").read_text("utf-8"))
answered = answer_form(data / "reports" / "2026-11-01", data / "returns" / "market" / "反馈.csv", 5000)
start = time.perf_counter()
second = run("2026-11-02")
timings["night2"] = time.perf_counter() - start
summary2 = json.loads((data / "reports" / "2026-11-02" / "summary.json").read_text("utf-8"))
print(json.dumps({
    "variant": variant, "records": sum(s["rows_checked"] for s in summary1["sources"].values()),
    "findings": sum(summary1["findings_by_kind"].values()), "open1": first["open_findings"],
    "open2": second["open_findings"], "answered": answered, "returns": second["returns"], "seconds": timings,
    "stages1": summary1["stage_seconds"], "stages2": summary2["stage_seconds"],
    "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "child_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
}, ensure_ascii=False))
"""


def dataset(n: int) -> Path:
    """Synthetic extracts (CSV above 200,000 market records, as `uscc synth` writes them)."""
    for made in (OUT / f"flow_{n}", OUT / f"synth_{n}"):  # bench_detect's data is the same seed
        if (made / "extracts").exists():
            return made
    path = OUT / f"flow_{n}"
    if not (path / "extracts").exists():
        subprocess.run([sys.executable, "-m", "flows.cli", "synth", "--out", str(path), "--records", str(n),
                        "--seed", "11"], cwd=ROOT, check=True, capture_output=True)
    return path


def fresh(source: Path, variant: str) -> Path:
    """A data directory sharing the extracts (hard links, else copies: ingest never follows a symlink),
    with empty returns, reports and state."""
    target = OUT / f"run_{source.name}_{variant.replace('+', '_')}"
    shutil.rmtree(target, ignore_errors=True)
    (target / "extracts").mkdir(parents=True)
    for folder in (source / "extracts").iterdir():
        (target / "extracts" / folder.name).mkdir()
        for f in folder.iterdir():
            try:
                os.link(f, target / "extracts" / folder.name / f.name)
            except OSError:
                shutil.copy2(f, target / "extracts" / folder.name / f.name)
    return target


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--variants", nargs="+", default=["stages", "prefect", "prefect+dask"])
    args = parser.parse_args()
    results = []
    for n in args.sizes:
        source = dataset(n)
        base = None
        for variant in args.variants:
            out = subprocess.run([sys.executable, "-c", NIGHTS, str(fresh(source, variant)), variant], cwd=ROOT,
                                 capture_output=True, text=True)
            if out.returncode:
                raise SystemExit(out.stderr[-4000:])
            r = json.loads(out.stdout.strip().splitlines()[-1])
            results.append(r)
            base = base or r
            ratio = r["seconds"]["night1"] / base["seconds"]["night1"]
            print(f"{r['records']:>10,} records  {variant:<13} night 1 {r['seconds']['night1']:6.1f} s "
                  f"({ratio:.2f}× {args.variants[0]})  night 2 {r['seconds']['night2']:6.1f} s  "
                  f"peak {r['peak_mb']:,.0f} MB (largest child {r['child_peak_mb']:,.0f} MB)  "
                  f"open {r['open1']:,} → {r['open2']:,}  returns {r['returns']}")
            print("            night 1 stages: " + ", ".join(f"{k} {v:.1f}" for k, v in r["stages1"].items()))
            print("            night 2 stages: " + ", ".join(f"{k} {v:.1f}" for k, v in r["stages2"].items()))
    OUT.mkdir(exist_ok=True)
    name = "_".join(str(n) for n in args.sizes)
    (OUT / f"flow_{name}.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
