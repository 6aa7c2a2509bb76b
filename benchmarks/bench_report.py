"""A department list with 20,000 findings in a real browser: open, filter, search, sort.

Renders `<source>.html` for 20,000 findings (and, as the baseline in the same
run, 2,000) with the production template, opens it in Debian chromium from
file://, and times in the page: load (navigation start → load event), filter
by kind, text search, and a column sort. Goal: open and filter under 2 s.

    python benchmarks/bench_report.py [--findings 20000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).parent / "out"
sys.path.insert(0, str(ROOT))

from checks.findings import FINDING_SCHEMA  # noqa: E402
from reports.render import RunView, render_department  # noqa: E402

KINDS = ["bad_check_char", "duplicate_code", "missing", "multiple_codes", "bad_org_check", "region_outside"]


def findings(n: int) -> pl.DataFrame:
    rows = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        rows.append({c: None for c in FINDING_SCHEMA} | {
            "finding_id": f"{i:016x}", "source": "market", "record_id": f"SC{i:08d}",
            "uscc": "91230402MA1C4B0P6" + "0123456789"[i % 10], "name": f"鹤岗市宏发{i}商贸有限公司",
            "kind": kind, "severity": "warning" if kind == "region_outside" else "error",
            "message": "第 18 位校验码与前 17 位不符（按 GB 32100 计算应为“8”），说明代码中有字符录错",
            "positions": "18", "suggested_code": "91230402MA1C4B0P68", "confidence": "medium",
            "suggestion_reason": "前 17 位全部校验通过，按 GB 32100 重新计算第 18 位校验码",
            "related": "editorial:BB1", "status": "open", "file": "m.csv", "row": i + 2,
            "related_detail": json.dumps([{"source": "editorial", "source_name": "市委编办", "record_id": "BB1",
                                           "name": "鹤岗市第一中学", "code": "12230400MA1C4B0P68"}],
                                         ensure_ascii=False)})
    return pl.DataFrame(rows, schema=FINDING_SCHEMA)


def measure(browser, path: Path) -> dict:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    start = time.perf_counter()
    page.goto(path.as_uri(), wait_until="load")
    wall = time.perf_counter() - start
    load = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
    timing = page.evaluate("""async () => {
        const layout = () => document.body.offsetHeight;  // count the browser's work, not only the script's
        const t = (f) => { const s = performance.now(); f(); layout(); return performance.now() - s; };
        const kind = document.getElementById('f-kind'), text = document.getElementById('f-text');
        const count = document.getElementById('f-count');
        const shownRows = () => document.querySelectorAll('#findings tbody tr:not(.off):not(.later)').length;
        const filter = t(() => { kind.value = 'missing'; kind.dispatchEvent(new Event('change')); });
        const shown = shownRows(), matched = count.textContent;
        const clear = t(() => { kind.value = ''; kind.dispatchEvent(new Event('change')); });
        const before = count.textContent, started = performance.now();
        text.value = 'SC00012345'; text.dispatchEvent(new Event('input'));
        while (count.textContent === before) await new Promise(r => setTimeout(r, 5));
        layout();
        const search = performance.now() - started;  // includes the 120 ms typing debounce
        text.value = ''; text.dispatchEvent(new Event('input'));
        await new Promise(r => setTimeout(r, 200));
        const sort = t(() => document.querySelectorAll('th.sortable')[1].click());
        return {filter, shown, matched, clear, search, sort};
    }""")
    page.close()
    return {"load_ms": load, "goto_wall_s": wall, **timing}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--findings", type=int, default=20_000)
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if not chromium:
        raise SystemExit("chromium not installed: make browser-deps")
    from playwright.sync_api import sync_playwright

    OUT.mkdir(exist_ok=True)
    results = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        for n in (args.findings // 10, args.findings):
            frame = findings(n)
            view = RunView("2026-11-28", "鹤岗市", [], frame, pl.DataFrame(), [], {}, {})
            path = OUT / f"list_{n}.html"
            started = time.perf_counter()
            path.write_bytes(render_department(view, {"key": "market", "name": "市市场监督管理局"}, frame))
            render = time.perf_counter() - started
            r = measure(browser, path) | {"render_s": render, "bytes": path.stat().st_size}
            results[n] = r
            print(f"{n:>6,} findings: render {render:.2f} s, {r['bytes'] / 1e6:.1f} MB; load {r['load_ms']:.0f} ms; "
                  f"filter {r['filter']:.0f} ms ({r['matched']}); clear {r['clear']:.0f} ms; "
                  f"search {r['search']:.0f} ms incl. 120 ms debounce; sort {r['sort']:.0f} ms")
        browser.close()
    small, big = results[args.findings // 10], results[args.findings]
    print(f"×10 findings → load ×{big['load_ms'] / small['load_ms']:.1f}, filter ×{big['filter'] / max(small['filter'], 1):.1f}")
    (OUT / "report.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
