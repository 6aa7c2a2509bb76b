"""The whole night against the naive checker, in one run (issue 16 goals a, b, d).

Baseline: `benchmarks/naive_checker.py` — pure Python, the GB 32100 record-level
rules and exact-duplicate grouping only (no fuzzy names, no ledger, no reports).
Measured: `uscc run --no-prefect` on a fresh data directory whose extracts are
hard links to the benchmark data (fresh state, no returns).

For each data directory, in this order and in the same run: the naive checker,
then the night. Each runs as a child of a small wrapper process, so its peak
memory is `getrusage(RUSAGE_CHILDREN)` there (the largest single process of
the tree, the XLSX parser child included); /proc is polled too for the whole
tree's resident total. The stage table comes from the night's
`summary.json` (`stage_seconds`); rendering finishes after summary.json is
written, so 生成报告 is timed from the console lines (the ledger line to the
overview line) and start-up is what remains of the wall time.

`--before DIR` also runs the night of another checkout (say, main before a change) in the same
run, with this checkout's interpreter and that checkout first on `PYTHONPATH`. `--second-night` also times
the next night on the same data directory (the same extracts again): what every night after the first
costs, with the ledger updating every finding and the register carrying the first night's entity ids.

    python benchmarks/bench_night.py [--data /work/bench-data/1e5 /work/bench-data/1e6] [--before DIR] [--second-night]

With a 10^7 directory among `--data` (`benchmarks/tile_extracts.py` makes one from the 10^6 data) it also
prints goal (b); `make bench` adds /work/bench-data/1e7 when it exists.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).parent / "out"
DATA = Path(os.environ.get("USCC_BENCH_DATA", "/work/bench-data"))
NIGHT, NEXT_NIGHT = "2026-11-30", "2026-12-01"
#: How the stage table names each run of a size.
SHOWN = {"before": "before", "night": "now", "second": "now, 2nd"}
#: Goal (a): the night at 10^6 records takes at most this share of the naive checker's time.
GOAL_RATIO = 0.5
#: Goal (b): the night at 10^7 records, in seconds and in MB of its largest process.
GOAL_10M_SECONDS, GOAL_10M_MB = 150, 6144

WRAP = r"""
import json, resource, subprocess, sys, time
start = time.perf_counter()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
lines = []
for line in child.stdout:
    lines.append([time.perf_counter() - start, line.rstrip("\n")])
err = child.stderr.read()
code = child.wait()
print(json.dumps({"seconds": time.perf_counter() - start, "returncode": code, "lines": lines,
                  "stderr": err[-4000:],
                  "child_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}, ensure_ascii=False))
"""


def tree_rss(pid: int) -> tuple[float, float]:
    """Resident MB of a process tree: total, and its largest single process."""
    try:
        root = psutil.Process(pid)
        procs = [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0.0, 0.0
    sizes = []
    for p in procs:
        try:
            sizes.append(p.memory_info().rss / (1 << 20))
        except psutil.Error:
            pass
    return sum(sizes), max(sizes, default=0.0)


def measured(command: list[str], code: Path | None = None) -> dict:
    """Wall seconds, timestamped console lines and peak memory of one command (`code`: checkout to import)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if code is not None:
        env["PYTHONPATH"] = str(code)
    wrapper = subprocess.Popen([sys.executable, "-c", WRAP, *command], cwd=code or ROOT, stdout=subprocess.PIPE,
                               text=True, env=env)
    peak = {"tree_mb": 0.0}
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            total, _ = tree_rss(wrapper.pid)
            peak["tree_mb"] = max(peak["tree_mb"], total)
            done.wait(0.05)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    out, _ = wrapper.communicate()
    done.set()
    watcher.join()
    result = json.loads(out.strip().splitlines()[-1])
    result["tree_peak_mb"] = peak["tree_mb"]
    return result


def fresh_copy(source: Path) -> Path:
    """A data directory with tonight's extracts (hard links, else copies) and nothing else."""
    target = DATA / "runs" / source.name
    shutil.rmtree(target, ignore_errors=True)
    for folder in sorted((source / "extracts").iterdir()):
        (target / "extracts" / folder.name).mkdir(parents=True)
        for f in folder.iterdir():
            try:
                os.link(f, target / "extracts" / folder.name / f.name)
            except OSError:
                shutil.copy2(f, target / "extracts" / folder.name / f.name)
    (target / "returns").mkdir()
    return target


def stage_table(run: dict, folder: Path, night: str = NIGHT) -> dict[str, float]:
    summary = json.loads((folder / "reports" / night / "summary.json").read_text("utf-8"))
    stages = dict(summary["stage_seconds"])
    stamps = run["lines"]
    ledger_at = next((t for t, line in stamps if line.startswith("台账：")), None)
    overview_at = next((t for t, line in stamps if line.startswith("总览：")), None)
    if ledger_at is not None and overview_at is not None:
        stages["生成报告"] = overview_at - ledger_at
    stages["启动与收尾"] = run["seconds"] - sum(stages.values())
    stages["records"] = sum(s["rows_checked"] for s in summary["sources"].values())
    return stages


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, nargs="+", default=[DATA / "1e5", DATA / "1e6"])
    parser.add_argument("--before", type=Path, help="another checkout whose night is measured too (same run)")
    parser.add_argument("--second-night", action="store_true",
                        help="also time the next night on the same data directory (the ledger and the register "
                             "then hold the first night's findings and entities: every night after the first)")
    parser.add_argument("--skip-naive-above", type=int, default=2_000_000,
                        help="records above which the naive checker is not run (it would take many minutes)")
    args = parser.parse_args()
    results = []
    for source in args.data:
        if not (source / "extracts").is_dir():
            raise SystemExit(f"{source}/extracts missing: make it with `uscc synth --out {source} --records N --seed 7`")
        row: dict = {"data": str(source)}
        size_hint = sum(f.stat().st_size for f in (source / "extracts").rglob("*") if f.is_file())
        if size_hint < args.skip_naive_above * 160:  # ~150 bytes a record
            naive = measured([sys.executable, str(ROOT / "benchmarks" / "naive_checker.py"), str(source)])
            if naive["returncode"]:
                raise SystemExit(naive["stderr"])
            row["naive"] = {"seconds": naive["seconds"], "peak_mb": naive["child_peak_mb"],
                            **json.loads(naive["lines"][-1][1])}
        for label, code in (("before", args.before), ("night", None)):
            if label == "before" and code is None:
                continue
            folder = fresh_copy(source)
            night = measured([str(Path(sys.executable).with_name("uscc")), "run", "--no-prefect", "--data-dir",
                              str(folder), "--date", NIGHT], code)
            if night["returncode"] not in (0, 1):
                raise SystemExit(night["stderr"])
            row[label] = {"seconds": night["seconds"], "peak_mb": night["child_peak_mb"],
                          "tree_peak_mb": night["tree_peak_mb"], "stages": stage_table(night, folder)}
            if label == "night" and args.second_night:
                again = measured([str(Path(sys.executable).with_name("uscc")), "run", "--no-prefect", "--data-dir",
                                  str(folder), "--date", NEXT_NIGHT])
                if again["returncode"] not in (0, 1):
                    raise SystemExit(again["stderr"])
                row["second"] = {"seconds": again["seconds"], "peak_mb": again["child_peak_mb"],
                                 "tree_peak_mb": again["tree_peak_mb"],
                                 "stages": stage_table(again, folder, NEXT_NIGHT)}
            shutil.rmtree(folder, ignore_errors=True)
        results.append(row)

    print(f"{'records':>11} {'naive s':>8} {'naive MB':>9} {'night s':>8} {'night MB':>9} {'tree MB':>8} "
          f"{'night/naive':>12} {'µs/record':>10}")
    for r in results:
        n, night = r["night"]["stages"]["records"], r["night"]
        naive = r.get("naive")
        ratio = f"{night['seconds'] / naive['seconds']:.2f}×" if naive else "—"
        print(f"{n:>11,} {naive['seconds'] if naive else float('nan'):>8.1f} "
              f"{naive['peak_mb'] if naive else float('nan'):>9.0f} {night['seconds']:>8.1f} {night['peak_mb']:>9.0f} "
              f"{night['tree_peak_mb']:>8.0f} {ratio:>12} {night['seconds'] / n * 1e6:>10.1f}")
    labels = [k for k in results[0]["night"]["stages"] if k != "records"]
    print("\nstage seconds per night (µs per record in brackets)")
    print(f"{'records':>11} {'code':<7} " + " ".join(f"{k:>16}" for k in labels))
    for r in results:
        for label in ("before", "night", "second"):
            if label not in r:
                continue
            st = r[label]["stages"]
            print(f"{st['records']:>11,} {SHOWN[label]:<7} " + " ".join(
                f"{st.get(k, 0):>8.1f} ({st.get(k, 0) / st['records'] * 1e6:>5.1f})" for k in labels))
    for r in results:
        if "before" in r:
            print(f"\n{r['night']['stages']['records']:,} records: night now / before = "
                  f"{r['night']['seconds'] / r['before']['seconds']:.2f}× ({r['before']['seconds']:.1f} → "
                  f"{r['night']['seconds']:.1f} s; peak {r['before']['peak_mb']:,.0f} → {r['night']['peak_mb']:,.0f} MB)")
    for r in results:
        if "second" in r:
            print(f"\n{r['night']['stages']['records']:,} records: the second night {r['second']['seconds']:.1f} s "
                  f"(the first {r['night']['seconds']:.1f} s), peak {r['second']['peak_mb']:,.0f} MB")
    for r in results:
        if "naive" in r and r["night"]["stages"]["records"] >= 900_000:
            ratio = r["night"]["seconds"] / r["naive"]["seconds"]
            verdict = "met" if ratio <= GOAL_RATIO and r["night"]["peak_mb"] <= 2560 else "NOT met"
            print(f"\ngoal (a) at {r['night']['stages']['records']:,} records: night / naive = {ratio:.2f}× "
                  f"(goal ≤ {GOAL_RATIO}×), peak {r['night']['peak_mb']:,.0f} MB (goal ≤ 2,560): {verdict}")
    for r in results:
        if r["night"]["stages"]["records"] >= 9_000_000:
            night = r["night"]
            peak = max(r[label]["peak_mb"] for label in ("night", "second") if label in r)
            said = {True: "met", False: "NOT met"}
            print(f"\ngoal (b) at {night['stages']['records']:,} records: night {night['seconds']:.0f} s "
                  f"(goal ≤ {GOAL_10M_SECONDS} s: {said[night['seconds'] <= GOAL_10M_SECONDS]}), largest process "
                  f"{peak:,.0f} MB{' over both nights' if 'second' in r else ''} (goal ≤ {GOAL_10M_MB:,}: "
                  f"{said[peak <= GOAL_10M_MB]}): {said[night['seconds'] <= GOAL_10M_SECONDS and peak <= GOAL_10M_MB]}")
    if len(results) > 1:  # goal (d): each stage's µs per record, smallest size to biggest
        small, big = results[0]["night"]["stages"], results[-1]["night"]["stages"]
        print(f"\ngrowth from {small['records']:,} to {big['records']:,} records, µs per record (linear: 1.00×):")
        for k in labels:
            if small.get(k) and big.get(k):
                per = [st.get(k, 0) / st["records"] * 1e6 for st in (small, big)]
                print(f"  {k:<10} {per[0]:7.1f} → {per[1]:7.1f}  ({per[1] / per[0]:.2f}×)")
    OUT.mkdir(exist_ok=True)
    (OUT / "night.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
