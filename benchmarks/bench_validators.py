"""Validator throughput: vectorized `is_valid_column` / `check_column` vs python-stdnum, same run.

Baseline: `stdnum.cn.uscc.is_valid` called in a Python loop (the usual choice
today; it checks only the charset, length and the position-18 check). Each
measurement runs in its own process so peak memory (ru_maxrss) is its own.

    python benchmarks/bench_validators.py [--sizes 1000000 10000000]
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


def make_codes(n: int, path: Path, seed: int = 1) -> None:
    """n codes, one per line: 90 % valid (all department/category pairs), 10 % damaged."""
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
    damaged = rng.random(n) < 0.10
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
path, what = sys.argv[1], sys.argv[2]
codes = pl.read_csv(path, has_header=False, new_columns=["c"], schema_overrides={"c": pl.String})["c"]
if what != "stdnum":  # load the region table once, as a nightly run does before its first code
    from validators.column import is_valid_column
    is_valid_column(codes[:1000])
start = time.perf_counter()
if what == "is_valid_column":
    from validators.column import is_valid_column
    valid = int(is_valid_column(codes).sum())
elif what == "check_column":
    from validators.column import check_column
    valid = int(check_column(codes)["valid"].sum())
else:
    from stdnum.cn.uscc import is_valid
    valid = sum(1 for c in codes.to_list() if is_valid(c))
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "valid": valid,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(path: Path, what: str) -> dict:
    out = subprocess.run([sys.executable, "-c", MEASURE, str(path), what], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    args = parser.parse_args()
    results = []
    print(f"{'codes':>12} {'method':<22} {'seconds':>9} {'codes/s':>14} {'peak MB':>9} {'× stdnum':>9}")
    for n in args.sizes:
        path = OUT / f"codes_{n}.txt"
        if not path.exists():
            make_codes(n, path)
        rows = {what: measure(path, what) for what in ("stdnum", "is_valid_column", "check_column")}
        for what, r in rows.items():
            speedup = rows["stdnum"]["seconds"] / r["seconds"]
            print(f"{n:>12,} {what:<22} {r['seconds']:>9.2f} {n / r['seconds']:>14,.0f} {r['peak_mb']:>9.0f} "
                  f"{speedup:>8.1f}×")
            results.append({"codes": n, "method": what, **r, "speedup_vs_stdnum": speedup})
        # stdnum accepts what we reject (no category table, no GB 11714): say how many
        print(f"{'':>12} valid per stdnum (it rejects valid A/N/Y codes) {rows['stdnum']['valid']:,} vs ours {rows['is_valid_column']['valid']:,}")

    summary_path = OUT / f"codes_{args.sizes[0]}.txt"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "flows.cli", "check", "--summary", "--input", str(summary_path)],
                   cwd=ROOT, capture_output=True)
    wall = time.perf_counter() - start
    print(f"uscc check --summary on {args.sizes[0]:,} lines: {wall:.2f} s wall (process start included)")
    results.append({"codes": args.sizes[0], "method": "uscc check --summary (wall)", "seconds": wall})
    (OUT / "validators.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
