"""Validator throughput: vectorized `is_valid_column` / `check_column` vs python-stdnum, same run.

Baseline: `stdnum.cn.uscc.is_valid` called in a Python loop (the usual choice
today; it checks only the charset, length and the position-18 check), on a
sample (default 10^5 codes) and scaled per code; ours on every code. Two data
sets of 10^7 codes: mostly valid (10 % damaged) and mostly invalid (90 %).
Each measurement runs in its own process so peak memory (ru_maxrss) is its
own; each time is the best of three (the machine is shared).

    python benchmarks/bench_validators.py [--sizes 10000000] [--stdnum-sample 100000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).parent / "out"
ALPHABET = np.frombuffer(b"0123456789ABCDEFGHJKLMNPQRTUWXY", dtype=np.uint8)
ROOT = Path(__file__).resolve().parents[1]


def make_codes(n: int, path: Path, seed: int = 1, damaged_share: float = 0.10) -> None:
    """n codes, one per line: valid over all department/category pairs, `damaged_share` with one character changed."""
    sys.path.insert(0, str(ROOT))
    from validators.tables import CHECK_WEIGHTS, DEPARTMENTS, ORG_WEIGHTS

    rng = np.random.default_rng(seed)
    pairs = np.array([[ord(d), ord(c)] for d, (_, cats) in DEPARTMENTS.items() for c in cats], dtype=np.uint8)
    regions = np.array([list(r.encode()) for r in ("230402", "230403", "230421", "230400", "110105", "100000",
                                                   "440101", "230401")], dtype=np.uint8)
    codes = np.empty((n, 18), dtype=np.uint8)
    codes[:, :2] = pairs[rng.integers(0, len(pairs), n)]
    codes[:, 2:8] = regions[rng.integers(0, len(regions), n)]
    codes[:, 8:16] = ALPHABET[rng.integers(0, 31, (n, 8))]
    org_value = np.zeros(256, dtype=np.int64)
    org_value[48:58] = np.arange(10)
    org_value[65:91] = np.arange(10, 36)
    remainder = 11 - (org_value[codes[:, 8:16]] * np.array(ORG_WEIGHTS)).sum(axis=1) % 11
    codes[:, 16] = np.frombuffer(b"0123456789X0", dtype=np.uint8)[remainder]
    value = np.full(256, 0, dtype=np.int64)
    value[ALPHABET] = np.arange(31)
    total = (value[codes[:, :17]] * np.array(CHECK_WEIGHTS)).sum(axis=1)
    codes[:, 17] = ALPHABET[(-total) % 31]
    damaged = rng.random(n) < damaged_share
    idx = np.flatnonzero(damaged)
    pos = rng.integers(0, 18, len(idx))
    codes[idx, pos] = ALPHABET[rng.integers(0, 31, len(idx))]
    lines = np.full((n, 19), ord("\n"), dtype=np.uint8)
    lines[:, :18] = codes
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(lines.tobytes())


MEASURE = r"""
import json, resource, sys, time
import polars as pl
path, what, sample, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
codes = pl.read_csv(path, has_header=False, new_columns=["c"], schema_overrides={"c": pl.String}, glob=False)["c"]
if what == "stdnum":
    from stdnum.cn.uscc import is_valid
    codes = codes.head(sample).to_list()
    run = lambda: sum(1 for c in codes if is_valid(c))
else:  # loads the region table and the compiled kernel once, as a night does before its first code
    from validators.column import check_column, is_valid_column
    is_valid_column(codes[:1000])
    if what == "is_valid_column":
        run = lambda: int(is_valid_column(codes).sum())
    else:
        run = lambda: int(check_column(codes)["valid"].sum())
best = float("inf")
for _ in range(repeat):  # the best of a few: the machine is shared, noise only ever adds time
    start = time.perf_counter()
    valid = run()
    best = min(best, time.perf_counter() - start)
print(json.dumps({"seconds": best, "codes": len(codes), "valid": valid, "ns_per_code": best / len(codes) * 1e9,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

#: Goal (c) of issue 16: the column path at least this many times python-stdnum per code.
GOAL = 300


def measure(path: Path, what: str, sample: int, repeat: int) -> dict:
    out = subprocess.run([sys.executable, "-c", MEASURE, str(path), what, str(sample), str(repeat)],
                         capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory_pass_ns(path: Path) -> float:
    """ns per code of one pass over the column's bytes (a sum): the memory-bound floor of any check."""
    import polars as pl
    import pyarrow as pa

    array = pl.read_csv(path, has_header=False, new_columns=["c"], schema_overrides={"c": pl.String}, glob=False)["c"].to_arrow()
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    array = array.cast(pa.large_string())
    data = np.frombuffer(array.buffers()[2], dtype=np.uint64)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        data.sum()
        best = min(best, time.perf_counter() - start)
    return best / len(array) * 1e9


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000_000])
    parser.add_argument("--stdnum-sample", type=int, default=100_000,
                        help="codes stdnum checks (its cost per code is scaled to the size: it is linear)")
    args = parser.parse_args()
    results = []
    print("python-stdnum 2.2 `is_valid` in a loop on the first --stdnum-sample codes, scaled per code; ours on all.")
    print(f"{'codes':>12} {'data':<15} {'method':<16} {'seconds':>8} {'ns/code':>8} {'codes/s':>13} {'peak MB':>8} "
          f"{'× stdnum':>9}")
    for n in args.sizes:
        for label, share in (("mostly valid", 0.10), ("mostly invalid", 0.90)):
            path = OUT / f"codes_{n}_{int(share * 100)}.txt"
            if not path.exists():
                make_codes(n, path, damaged_share=share)
            rows = {"stdnum": measure(path, "stdnum", args.stdnum_sample, 3),
                    "is_valid_column": measure(path, "is_valid_column", 0, 3),
                    "check_column": measure(path, "check_column", 0, 3)}
            base = rows["stdnum"]["ns_per_code"]
            for what, r in rows.items():
                speedup = base / r["ns_per_code"]
                seconds = r["ns_per_code"] * n / 1e9
                scaled = " (scaled)" if what == "stdnum" else ""
                print(f"{n:>12,} {label:<15} {what:<16} {seconds:>8.2f} {r['ns_per_code']:>8.1f} "
                      f"{1e9 / r['ns_per_code']:>13,.0f} {r['peak_mb']:>8.0f} {speedup:>8.1f}×{scaled}")
                results.append({"codes": n, "data": label, "method": what, **r, "speedup_vs_stdnum": speedup})
            floor = memory_pass_ns(path)
            print(f"{'':>12} {label:<15} one pass over the bytes (memory floor): {floor:.1f} ns/code; "
                  f"is_valid_column {rows['is_valid_column']['ns_per_code'] / floor:.1f}× that")
            ratio = base / rows["is_valid_column"]["ns_per_code"]
            print(f"{'':>12} goal (c) {label}: is_valid_column {ratio:.0f}× stdnum (goal ≥ {GOAL}×): "
                  f"{'met' if ratio >= GOAL else 'NOT met'}")
            results.append({"codes": n, "data": label, "method": "memory pass", "ns_per_code": floor})

    summary_path = OUT / f"codes_{args.sizes[0]}_10.txt"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "flows.cli", "check", "--summary", "--input", str(summary_path)],
                   cwd=ROOT, capture_output=True)
    wall = time.perf_counter() - start
    print(f"uscc check --summary on {args.sizes[0]:,} lines: {wall:.2f} s wall (process start included)")
    results.append({"codes": args.sizes[0], "method": "uscc check --summary (wall)", "seconds": wall})
    (OUT / "validators.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
