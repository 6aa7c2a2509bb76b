"""The night's output stages on `uscc synth` data: the ledger update, the golden register, the reports.

Each code tree named with `--code` (e.g. main's in a `git worktree` and this one) runs one whole night
(`flows.stages.run_all`, no Prefect) in its own process on its own fresh copy of the data, one after the
other in the same run, so the figures compare under the same load. Inside the night the three stages are
timed by wrapping their functions:

- ledger: `flows.stages.update_ledger` (the nightly update of the SQLite ledger, statuses out)
- register: `flows.stages.register_of` (the golden register; called by the render stage)
- render: `flows.stages.write_run` (HTML lists, CSV and XLSX forms, findings.csv, register.csv, …)

Peak MB is sampled every 50 ms while the stage runs: the night's process itself, and the largest of its
child processes (the form writers).

    python benchmarks/bench_output.py --data /work/bench-data-out/1e6 --code old=../main-wt --code new=.
    python benchmarks/bench_output.py --data DIR --code new=. --profile /tmp/prof   # cProfile per stage
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

OUT = Path(__file__).parent / "out"

NIGHT = r"""
import cProfile, json, os, sys, threading, time
from pathlib import Path

data, date, profile = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
import flows.stages as stages


def rss(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def descendants(pid):
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                for c in f.read().split():
                    out.append(int(c))
                    out.extend(descendants(int(c)))
    except OSError:
        pass
    return out


class Peak:
    def __init__(self):
        self.own = self.child = 0.0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        me = os.getpid()
        while not self.stop.wait(0.05):
            self.own = max(self.own, rss(me))
            for c in descendants(me):
                self.child = max(self.child, rss(c))

    def done(self):
        self.stop.set()
        self.thread.join()


stats = {}


def timed(name, fn):
    def wrapper(*args, **kwargs):
        peak = Peak()
        prof = cProfile.Profile() if profile != "-" else None
        started = time.perf_counter()
        try:
            if prof:
                prof.enable()
            return fn(*args, **kwargs)
        finally:
            if prof:
                prof.disable()
                prof.dump_stats(f"{profile}/{name}.prof")
            seconds = time.perf_counter() - started
            peak.done()
            stats[name] = {"seconds": round(seconds, 2), "peak_mb": round(peak.own), "child_peak_mb": round(peak.child)}
    return wrapper


stages.update_ledger = timed("ledger", stages.update_ledger)
# the render in this process, where its stages are timed (from `render_apart_records` it would run in a child)
stages.render = getattr(stages, "render_here", stages.render)
stages.register_of = timed("register", stages.register_of)
stages.write_run = timed("render", stages.write_run)
started = time.perf_counter()
result = stages.run_all(data, run_date=date)
stats["night"] = {"seconds": round(time.perf_counter() - started, 2)}
print(json.dumps(stats))
"""


def run_tree(name: str, code: Path, data: Path, date: str, profile: Path | None, keep: Path | None) -> dict:
    """One night with the code in `code`, on a fresh copy of `data`."""
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"bench-output-{name}-", dir=keep or None))
    copy = work / "data"
    shutil.copytree(data, copy)
    env = {**os.environ, "PYTHONPATH": str(code)}
    if profile:
        (profile / name).mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-c", NIGHT, str(copy), date, str(profile / name) if profile else "-"],
                          cwd=code, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{name}: night failed\n{done.stderr[-3000:]}")
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    if keep is None:
        shutil.rmtree(work)
    else:
        stats["folder"] = str(copy)
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a `uscc synth` data dir (copied per run)")
    parser.add_argument("--code", action="append", required=True, help="NAME=PATH of a code tree")
    parser.add_argument("--date", default="2026-11-30")
    parser.add_argument("--profile", type=Path, help="write cProfile stats per stage into this folder")
    parser.add_argument("--keep", type=Path, help="keep each night's data dir (its reports) under this folder")
    args = parser.parse_args()
    results = {}
    for spec in args.code:
        name, _, path = spec.partition("=")
        results[name] = run_tree(name, Path(path).resolve(), args.data, args.date, args.profile, args.keep)
        print(name, json.dumps(results[name]), flush=True)
    print(f"{'tree':<8} {'stage':<9} {'seconds':>8} {'peak MB':>8} {'child MB':>9}")
    for name, stats in results.items():
        for stage in ("ledger", "register", "render", "night"):
            s = stats[stage]
            print(f"{name:<8} {stage:<9} {s['seconds']:>8.2f} {s.get('peak_mb', ''):>8} {s.get('child_peak_mb', ''):>9}")
    OUT.mkdir(exist_ok=True)
    (OUT / "output.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
