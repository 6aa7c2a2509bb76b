"""Receipts for returned correction forms (SPEC §5 `receipts/<source>/…html|csv`).

One receipt per returned file processed in the run, for the department that
sent it: what was accepted, what was rejected and why, and what to do next.
Rendered from the ledger, so rerunning a night rewrites the same receipts.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from checks.returns import bounded_name
from reports.forms import neutralize

OUTCOME_LABELS = {"processed": "已处理", "rejected": "整份文件未受理", "duplicate": "重复报送，未处理"}
VERDICT_LABELS = {"accepted": "已受理", "rejected": "未受理", "skipped": "未填写"}
RECEIPT_HEADERS = ("行号", "问题编号", "记录编号", "名称", "处理结果", "更正后代码", "处理说明", "受理结果", "原因及下一步")


def receipt_name(entry: dict) -> str:
    """File stem of a receipt: the content hash keeps two files of one name apart; the name is bounded and safe."""
    return Path(bounded_name(entry["sha256"], entry["file_name"])).stem


def receipt_csv(entry: dict) -> str:
    """The receipt as CSV text (UTF-8 with BOM when written, formulas neutralized)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(RECEIPT_HEADERS)
    if entry["outcome"] != "processed":
        writer.writerow(["", "", "", "", "", "", "", OUTCOME_LABELS[entry["outcome"]], neutralize(entry["reason"])])
    for r in sorted(entry["rows"], key=lambda r: (r["verdict"] != "rejected", r["row"])):
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
        html = template.render(entry=entry, source_name=source_names.get(entry["source"], entry["source"]),
                               city=city, run_date=run_date, outcome_labels=OUTCOME_LABELS,
                               verdict_labels=VERDICT_LABELS, csv_name=f"{stem}.csv")
        (target / f"{stem}.html").write_text(html, encoding="utf-8")
        links.append({**{k: v for k, v in entry.items() if k != "rows"},
                      "source_name": source_names.get(entry["source"], entry["source"]),
                      "outcome_label": OUTCOME_LABELS[entry["outcome"]],
                      "html": f"receipts/{entry['source']}/{stem}.html",  # paths: pages URL-encode them
                      "csv": f"receipts/{entry['source']}/{stem}.csv"})
    return links
