"""What a clerk reads for a finding's codes: one place for the HTML list and the forms."""

from __future__ import annotations

import json

from validators.tables import CONFIDENCE_LABELS, KINDS, SEVERITY_LABELS, STATUS_LABELS


def with_labels(finding: dict) -> dict:
    """The finding plus its Chinese labels and its related records as a list."""
    return {
        **finding,
        "kind_label": KINDS[finding["kind"]].label,
        "severity_label": SEVERITY_LABELS[finding["severity"]],
        "confidence_label": CONFIDENCE_LABELS.get(finding["confidence"] or "", ""),
        "status_label": STATUS_LABELS.get(finding["status"], finding["status"]),
        "related_list": json.loads(finding["related_detail"] or "[]"),
        "response_text": finding.get("response") or "",
        "due_text": (finding.get("due_date") or "") + ("（已逾期）" if finding.get("overdue") else ""),
    }
