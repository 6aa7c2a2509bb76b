"""Ingest speed: `uscc synth` extracts of 1M records into the canonical frame.

CSV (GB18030 + UTF-8 BOM files) and XLSX (the market extract as one sheet)
are measured separately, each in its own process for its peak memory.
Baseline, same run: pandas `read_csv(dtype=str)` / `read_excel(dtype=str)`
of the same files, which only reads (no encoding detection, header matching,
quarantine or accounting).

    python benchmarks/bench_ingest.py [--records 1000000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).parent / "out"

OURS = r"""
import json, resource, sys, time
from pathlib import Path
from checks.ingest import ingest_all
from checks.settings import load_settings
start = time.perf_counter()
result = ingest_all(load_settings(), Path(sys.argv[1]))
print(json.dumps({"seconds": time.perf_counter() - start, "rows": result.records.height,
                  "quarantined": result.quarantine.height,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

PANDAS = r"""
import json, resource, sys, time
from pathlib import Path
import pandas as pd
start = time.perf_counter()
rows = 0
for path in sorted(Path(sys.argv[1], "extracts").glob("*/*")):
    if path.suffix == ".csv":
        for encoding in ("utf-8-sig", "gb18030"):
            try:
                rows += len(pd.read_csv(path, dtype=str, encoding=encoding, keep_default_na=False))
                break
            except UnicodeDecodeError:
                continue
    else:
        rows += len(pd.read_excel(path, dtype=str, engine="openpyxl"))
print(json.dumps({"seconds": time.perf_counter() - start, "rows": rows,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(script: str, data: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", script, str(data)], cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--skip-xlsx-baseline", action="store_true", help="openpyxl takes minutes at 10^6")
    args = parser.parse_args()
    results = {}
    for fmt, xlsx_max in (("csv", 0), ("xlsx", 10**8)):
        data = OUT / f"ingest_{fmt}_{args.records}"
        if not (data / "truth").exists():
            subprocess.run([sys.executable, "-m", "flows.cli", "synth", "--out", str(data), "--records",
                            str(args.records), "--seed", "5", "--xlsx-max", str(xlsx_max)], cwd=ROOT, check=True)
        ours = run(OURS, data)
        base = None if (fmt == "xlsx" and args.skip_xlsx_baseline) else run(PANDAS, data)
        results[fmt] = {"ours": ours, "pandas": base}
        ratio = f"{base['seconds'] / ours['seconds']:.1f}× pandas" if base else "baseline skipped"
        print(f"{fmt}: {ours['rows']:,} rows into the canonical frame in {ours['seconds']:.2f} s, peak "
              f"{ours['peak_mb']:.0f} MB ({ratio}"
              + (f": {base['seconds']:.2f} s, peak {base['peak_mb']:.0f} MB)" if base else ")"))
    (OUT / "ingest.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
