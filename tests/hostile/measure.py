"""Time and peak memory of ingesting each hostile file, each in its own process.

    python tests/hostile/measure.py [--code DIR] [--cap-mb 8192] [NAME …]

Prints a markdown table: file → outcome (the source's status and reason, shortened) →
seconds → peak MB (the ingesting process or its largest child). `--code DIR` runs another
checkout's `checks.ingest` (e.g. the code before a change) on the same files; every run is
capped at `--cap-mb` of address space and 120 s, so an old reader that would take the
machine down is stopped and shown as such.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from make_hostile import CASES  # noqa: E402

INGEST = r"""
import json, resource, sys, time
from pathlib import Path
from checks.ingest import ingest_source
from checks.settings import load_settings
settings = load_settings()
start = time.perf_counter()
records, quarantine, report = ingest_source(settings.source("editorial"), Path(sys.argv[1]))
seconds = time.perf_counter() - start
peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
report = report.to_dict() if hasattr(report, "to_dict") else dict(report)
print(json.dumps({"seconds": seconds, "peak_mb": peak / 1024, "records": records.height,
                  "quarantine": quarantine["reason"].unique().to_list()[:3], "report": report}, ensure_ascii=False))
"""


def measure(case_file: str, make, code: Path = HERE.parents[1], cap_mb: int = 8192) -> dict:
    """Ingest one hostile file as the editorial source's only extract, in a capped child."""
    with tempfile.TemporaryDirectory(prefix="uscc-hostile-") as tmp:
        folder = Path(tmp) / "extracts" / "editorial"
        folder.mkdir(parents=True)
        make(folder / case_file)

        def cap() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (cap_mb << 20, cap_mb << 20))

        env = {**os.environ, "PYTHONPATH": str(code)}
        out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
        start = time.perf_counter()
        with open(out, "w") as o, open(err, "w") as e:
            child = subprocess.Popen([sys.executable, "-c", INGEST, tmp], cwd=code, env=env, stdout=o, stderr=e,
                                     preexec_fn=cap)
        timer = threading.Timer(120, child.kill)
        timer.start()
        _, status, usage = os.wait4(child.pid, 0)  # this child's own peak (its children included)
        timer.cancel()
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        peak = usage.ru_maxrss / 1024
        if wall >= 120:
            return {"outcome": "stopped after 120 s", "seconds": wall, "peak_mb": peak}
        if child.returncode:
            last = (err.read_text().strip().splitlines() or ["?"])[-1][:160]
            return {"outcome": f"process died (exit {child.returncode}): {last}", "seconds": wall, "peak_mb": peak}
        done_stdout = out.read_text()
        result = json.loads(done_stdout.strip().splitlines()[-1])
        report = result["report"]
        if report["status"] == "rejected":
            outcome = f"rejected: {report['reason'][:120]}"
        elif result["quarantine"]:
            outcome = f"ok, {result['records']} rows; quarantined: {result['quarantine'][0][:80]}"
        else:
            outcome = f"ok, {result['records']} rows"
        return {"outcome": outcome, "seconds": result["seconds"], "peak_mb": peak, "report": report,
                "records": result["records"], "quarantine": result["quarantine"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--code", type=Path, default=HERE.parents[1])
    parser.add_argument("--cap-mb", type=int, default=8192)
    parser.add_argument("names", nargs="*")
    args = parser.parse_args()
    print("| file | outcome | s | peak MB |\n|---|---|---:|---:|")
    for case in CASES:
        if args.names and case.file not in args.names:
            continue
        if case.outcome in ("refused", "ignored"):
            continue  # directory entries: decided by lstat, nothing is read
        r = measure(case.file, case.make, args.code.resolve(), args.cap_mb)
        peak = f"{r['peak_mb']:,.0f}" if r["peak_mb"] else "—"
        print(f"| `{case.file}` | {r['outcome'].replace('|', '/')} | {r['seconds']:.1f} | {peak} |", flush=True)


if __name__ == "__main__":
    main()
