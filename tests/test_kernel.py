"""The compiled kernel (`validators.kernel`) and the numpy path of `validators.column` are one truth."""

import os
import subprocess
import sys

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ROOT
from tests.test_vectorized_agrees import ANY_INPUT, mutated_codes, valid_codes
from validators import column
from validators.column import BIT, classify

pytestmark = pytest.mark.skipif(column.KERNEL is None, reason="numba is not installed: only the numpy path exists")


def _both(values, numeric=None, text=None, allowlist=None) -> tuple[pl.DataFrame, pl.DataFrame]:
    series = pl.Series(values, dtype=pl.String)
    numeric = pl.Series(numeric) if numeric is not None else None
    text = pl.Series(text) if text is not None else None
    compiled = classify(series, numeric, allowlist, text)
    saved, column._KERNEL = column._KERNEL, None
    try:
        plain = classify(series, numeric, allowlist, text)
    finally:
        column._KERNEL = saved
    return compiled, plain


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(ANY_INPUT, st.booleans(), st.booleans()), min_size=1, max_size=40))
def test_compiled_and_numpy_paths_agree_on_any_cells(cells):
    values, numeric, text = (list(x) for x in zip(*cells))
    compiled, plain = _both(values, numeric, text, {"91350100M0001TGQXM": "试点"})
    assert compiled.equals(plain)


@settings(max_examples=150)
@given(st.lists(st.one_of(valid_codes(), mutated_codes().filter(lambda c: len(c) == 18)), min_size=1, max_size=60))
def test_compiled_and_numpy_paths_agree_when_every_cell_is_18_bytes(values):
    compiled, plain = _both(values)
    assert compiled.equals(plain)


def test_compiled_and_numpy_paths_agree_on_random_bytes_of_every_shape():
    """Personal ID numbers, zeroed numbers, foreign bytes, leading zeros: 20,000 cells drawn over the bytes that matter."""
    rng = np.random.default_rng(16)
    pool = np.frombuffer(b"0123456789ABCDEFGHJKLMNPQRTUWXYIOSVZ X", dtype=np.uint8)
    digits = np.frombuffer(b"0123456789", dtype=np.uint8)
    rows = np.where(rng.random((20_000, 1)) < 0.5, pool[rng.integers(0, len(pool), (20_000, 18))],
                    digits[rng.integers(0, 10, (20_000, 18))])
    rows[::7, 15:18] = ord("0")
    rows[::11, 0:6] = np.frombuffer(b"230402", dtype=np.uint8)
    rows[::11, 6:10] = np.frombuffer(b"1990", dtype=np.uint8)
    values = [bytes(r).decode() for r in rows]
    compiled, plain = _both(values, text=list(rng.random(len(values)) < 0.3))
    assert compiled.equals(plain)
    assert {"personal_id", "excel_mangled"} <= {k for k in column.BIT_ORDER
                                                if ((compiled["flags"] & BIT[k]) != 0).any()}


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
def test_a_null_slot_holding_a_code_is_missing_on_either_path(compiled, monkeypatch):
    """A null Arrow slot's bytes are undefined (here: a valid code); neither path may read them as one."""
    if not compiled:
        monkeypatch.setattr(column, "_KERNEL", None)
    code = b"91110000600037341L"
    offsets = np.array([0, 18, 36, 54], dtype=np.int64)
    validity = pa.py_buffer(np.packbits([1, 0, 1], bitorder="little").tobytes())
    array = pa.Array.from_buffers(pa.large_string(), 3, [validity, pa.py_buffer(offsets.tobytes()),
                                                          pa.py_buffer(code * 3)], null_count=1)
    result = classify(pl.from_arrow(array))
    assert result["flags"].to_list() == [0, BIT["missing"], 0]


def test_without_numba_the_numpy_path_gives_the_answers():
    script = ("import sys; sys.modules['numba'] = None\n"
              "import polars as pl\n"
              "from validators import column\n"
              "assert column.KERNEL is None and column._KERNEL is None\n"
              "print(column.check_column(pl.Series(['91110000600037341L', '91110000600037341O', None]))"
              "['valid'].to_list())")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[True, False, False]"


def _run(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **env})


THREADS = """
import threading
import polars as pl
from validators.column import is_valid_column
codes = pl.Series(["91230402MA1XYZ0001"] * 200_000)
errors = []
def work():
    try:
        for _ in range(5):
            is_valid_column(codes)
    except Exception as exc:
        errors.append(exc)
threads = [threading.Thread(target=work) for _ in range(3)]
[t.start() for t in threads]; [t.join() for t in threads]
print("ok", errors)
"""


def test_three_sources_read_at_once_do_not_kill_the_process_without_openmp():
    """The nightly flow reads its sources in parallel threads; where numba has neither OpenMP nor TBB it falls
    back to a threading layer that aborts the whole process (SIGABRT) when two threads enter the kernel."""
    done = _run(THREADS, NUMBA_THREADING_LAYER="workqueue")
    assert done.returncode == 0 and "ok []" in done.stdout, done.stderr[-2000:]


NO_CACHE = """
import numba
real = numba.njit
def njit(*args, cache=False, **kwargs):
    if cache:  # what numba says when neither the package folder nor the user's cache folder is writable
        raise RuntimeError("cannot cache function '_number': no locator available")
    return real(*args, **kwargs)
numba.njit = njit
import polars as pl
from validators import kernel
from validators.column import is_valid_column
print(kernel.KERNEL is not None, is_valid_column(pl.Series(["91110000600037341L", "x"])).to_list())
"""


def test_a_read_only_install_runs_the_kernel_without_its_disk_cache():
    done = _run(NO_CACHE)
    assert done.returncode == 0 and "True [True, False]" in done.stdout, done.stderr[-2000:]
