"""Detection quality and speed on `uscc synth` data, against its ground truth.

For each size: recall and precision per kind, suggestion accuracy where the
truth has a derivable suggestion, near-miss pairs wrongly linked, seconds per
stage and peak memory (each size in its own process). Baseline for the
blocking: the number of pairs all-pairs matching would score, n(n-1)/2, and at
10^4 records the time rapidfuzz takes to score them all (cdist).

    python benchmarks/bench_detect.py [--sizes 10000 100000 1000000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).parent / "out"

MEASURE = r"""
import json, resource, sys, time
from pathlib import Path
import polars as pl
from checks.detect import detect
from checks.ingest import ingest_all
from checks.settings import load_settings

data = Path(sys.argv[1])
settings = load_settings()
start = time.perf_counter()
records = ingest_all(settings, data).records
ingest = time.perf_counter() - start
stats = {}
start = time.perf_counter()
found = detect(records, settings, stats)
seconds = time.perf_counter() - start
truth = pl.read_csv(data / "truth" / "findings.csv", infer_schema=False, glob=False)
keys = ["source", "record_id", "kind"]
got = found.select(keys + ["suggested_code", "confidence", "related"])
hit = truth.join(got, on=keys)
kinds = {}
for kind in sorted(set(truth["kind"]) | set(got["kind"])):
    t = truth.filter(pl.col("kind") == kind).height
    g = got.filter(pl.col("kind") == kind).height
    h = hit.filter(pl.col("kind") == kind).height
    kinds[kind] = {"truth": t, "found": g, "recall": h / t if t else None, "precision": h / g if g else None}
derivable = hit.filter(pl.col("derivable") == "1")
accuracy = (derivable["suggested_code"] == derivable["expected_code"]).fill_null(False).mean()
# high suggestions where the truth knows the right code: a wrong one misleads a clerk most
high = got.filter(pl.col("confidence") == "high").join(truth, on=keys).filter(pl.col("expected_code") != "")
high_wrong = high.filter(pl.col("suggested_code") != pl.col("expected_code")).height
# a link says "same entity"; duplicate_code lists the other holders of a code as different entities
related = {(r["source"] + ":" + r["record_id"], x) for r in got.filter(pl.col("kind") != "duplicate_code").iter_rows(named=True)
           for x in (r["related"] or "").split(";") if x}
near = pl.read_csv(data / "truth" / "near_miss.csv", infer_schema=False, glob=False)
linked = sum(1 for r in near.iter_rows(named=True)
             if (r["source_a"] + ":" + r["record_a"], r["source_b"] + ":" + r["record_b"]) in related
             or (r["source_b"] + ":" + r["record_b"], r["source_a"] + ":" + r["record_a"]) in related)
print(json.dumps({"records": records.height, "ingest_seconds": ingest, "detect_seconds": seconds,
                  "stages": stats["seconds"], "pairs": stats["pairs"], "same_links": stats["same_links"],
                  "findings": found.height, "kinds": kinds, "suggestion_accuracy": accuracy,
                  "derivable": derivable.height, "near_miss": near.height, "near_miss_linked": linked,
                  "high": high.height, "high_wrong": high_wrong,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

ALL_PAIRS = r"""
import json, sys, time
from pathlib import Path
from rapidfuzz import fuzz, process
from checks.rules import prepare
from checks.ingest import ingest_all
from checks.settings import load_settings
settings = load_settings()
frame = prepare(ingest_all(settings, Path(sys.argv[1])).records, settings)
names = frame["name_core"].to_list()
start = time.perf_counter()
process.cdist(names, names, scorer=fuzz.ratio, score_cutoff=85, workers=1, dtype="uint8")
print(json.dumps({"records": len(names), "seconds": time.perf_counter() - start}))
"""


def synth(n: int, xlsx_max: int = 0) -> Path:
    path = OUT / (f"synth_{n}" if not xlsx_max else f"synth_{n}_xlsx")
    if not (path / "truth" / "findings.csv").exists():
        subprocess.run([sys.executable, "-m", "flows.cli", "synth", "--out", str(path), "--records", str(n),
                        "--seed", "11", "--xlsx-max", str(xlsx_max)], cwd=ROOT, check=True, capture_output=True)
    return path


def run(script: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--xlsx-max", type=int, default=0,
                        help="market extract as XLSX up to this many records (default: CSV, the faster ingest)")
    args = parser.parse_args()
    results = []
    for n in args.sizes:
        start = time.perf_counter()
        data = synth(n, args.xlsx_max)
        made = time.perf_counter() - start
        r = run(MEASURE, str(data))
        r["synth_seconds"] = made
        results.append(r)
        worst_recall = min(k["recall"] for k in r["kinds"].values() if k["recall"] is not None)
        worst_precision = min(k["precision"] for k in r["kinds"].values() if k["precision"] is not None)
        all_pairs = r["records"] * (r["records"] - 1) // 2
        print(f"\n== {r['records']:,} records (synth {made:.1f} s)")
        print(f"ingest {r['ingest_seconds']:.2f} s, detect {r['detect_seconds']:.2f} s, peak {r['peak_mb']:.0f} MB, "
              f"findings {r['findings']:,}")
        print("stages: " + ", ".join(f"{k} {v:.2f} s" for k, v in r["stages"].items()))
        print(f"candidate pairs {r['pairs']:,} vs all pairs {all_pairs:,} ({all_pairs / max(r['pairs'], 1):,.0f}× fewer);"
              f" same-entity links {r['same_links']:,}")
        print(f"worst recall {worst_recall:.4f}, worst precision {worst_precision:.4f}, suggestion accuracy "
              f"{r['suggestion_accuracy']:.4f} on {r['derivable']:,}, high suggestions with a planted code {r['high']:,} "
              f"({r['high_wrong']} wrong), near-miss linked {r['near_miss_linked']} / {r['near_miss']}")
        for kind, k in r["kinds"].items():
            print(f"   {kind:<20} truth {k['truth']:>7,} found {k['found']:>7,} recall "
                  f"{k['recall'] if k['recall'] is None else round(k['recall'], 4)} precision "
                  f"{k['precision'] if k['precision'] is None else round(k['precision'], 4)}")
    if 10_000 in args.sizes and not args.xlsx_max:
        base = run(ALL_PAIRS, str(synth(10_000)))
        small = next(r for r in results if r["records"] <= 11_000)
        print(f"\nbaseline all-pairs name scoring at {base['records']:,} records: {base['seconds']:.2f} s "
              f"(blocking scored {small['pairs']:,} pairs; whole detection {small['detect_seconds']:.2f} s)")
        results.append({"baseline_all_pairs": base})
    OUT.mkdir(exist_ok=True)
    (OUT / ("detect.json" if not args.xlsx_max else "detect_xlsx.json")).write_text(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
