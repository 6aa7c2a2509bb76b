"""Receipts for returned correction forms (docs/correction-loop.md#receipts `receipts/<source>/…html|csv`).

One receipt per returned file processed in the run, for the department that
sent it: what was accepted, what was rejected and why, and what to do next.
Rendered from the ledger, so rerunning a night rewrites the same receipts.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from markupsafe import Markup, escape

from checks.returns import MARK_CLOSE, MARK_OPEN, bounded_name
from reports.forms import neutralize

OUTCOME_LABELS = {"processed": "已处理", "rejected": "整份文件未受理", "duplicate": "重复报送，未处理"}
VERDICT_LABELS = {"accepted": "已受理", "rejected": "未受理", "skipped": "未填写"}
#: Rows a receipt page shows at most (refused rows first; 1,000 open in about a second, 100,000 took 34 s);
#: the CSV receipt carries every row.
HTML_MAX_ROWS = 1_000
_MARKED = re.compile(re.escape(MARK_OPEN) + r"([^" + MARK_OPEN + MARK_CLOSE + r"]*)" + re.escape(MARK_CLOSE))
RECEIPT_HEADERS = ("行号", "问题编号", "记录编号", "名称", "处理结果", "更正后代码", "处理说明", "受理结果", "原因及下一步")


def receipt_name(entry: dict) -> str:
    """File stem of a receipt: the content hash keeps two files of one name apart; the name is bounded and safe."""
    return Path(bounded_name(entry["sha256"], entry["file_name"])).stem


def marked(text: str | None) -> Markup:
    """A reason for the HTML receipt: escaped, the differing characters `checks.returns.marked_pair` marked
    highlighted (`<mark>`); the CSV receipt keeps the brackets."""
    return Markup(_MARKED.sub(lambda m: f"<mark>{m.group(1)}</mark>", str(escape(text or ""))))


def ordered(rows: list[dict]) -> list[dict]:
    """Receipt rows as a department reads them: refused first, then by row."""
    return sorted(rows, key=lambda r: (r["verdict"] != "rejected", r["row"]))


def receipt_csv(entry: dict) -> str:
    """The receipt as CSV text (UTF-8 with BOM when written, formulas neutralized)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(RECEIPT_HEADERS)
    if entry["outcome"] != "processed":
        writer.writerow(["", "", "", "", "", "", "", OUTCOME_LABELS[entry["outcome"]], neutralize(entry["reason"])])
    for r in ordered(entry["rows"]):
        writer.writerow([r["row"]] + [neutralize(r[k] or "") for k in (
            "finding_id", "record_id", "name", "answer", "corrected_code", "note")] +
            [VERDICT_LABELS[r["verdict"]], neutralize(r["reason"])])
    return buffer.getvalue()


def write_receipts(folder: Path, env, entries: list[dict], source_names: dict[str, str], city: str,
                   run_date: str) -> list[dict]:
    """Write `folder/receipts/<source>/<name>.html|csv` for each entry; return links for the overview."""
    links = []
    template = env.get_template("receipt.html.j2")
    for entry in entries:
        target = folder / "receipts" / entry["source"]
        target.mkdir(parents=True, exist_ok=True)
        stem = receipt_name(entry)
        (target / f"{stem}.csv").write_text(receipt_csv(entry), encoding="utf-8-sig", newline="")
        rows = ordered(entry["rows"])
        shown = [{**r, "reason_html": marked(r["reason"])} for r in rows[:HTML_MAX_ROWS]]
        html = template.render(entry=entry, source_name=source_names.get(entry["source"], entry["source"]),
                               city=city, run_date=run_date, outcome_labels=OUTCOME_LABELS,
                               verdict_labels=VERDICT_LABELS, csv_name=f"{stem}.csv", rows=shown,
                               listed=len(rows), counts={v: sum(1 for r in rows if r["verdict"] == v)
                                                         for v in VERDICT_LABELS})
        (target / f"{stem}.html").write_text(html, encoding="utf-8")
        links.append({**{k: v for k, v in entry.items() if k != "rows"},
                      "source_name": source_names.get(entry["source"], entry["source"]),
                      "outcome_label": OUTCOME_LABELS[entry["outcome"]],
                      "html": f"receipts/{entry['source']}/{stem}.html",  # paths: pages URL-encode them
                      "csv": f"receipts/{entry['source']}/{stem}.csv"})
    return links
