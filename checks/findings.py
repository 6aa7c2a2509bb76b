"""The findings frame: its columns, the stable finding id, and the record finding that becomes a row.

Every stage of detection (`checks.rules`, `checks.cross_record`, `checks.repairs`) says what it
found as `RecordFinding`s about records by index; `to_frame` turns them into the frame that the
ledger, the reports and findings.csv read (docs/findings.md lists the kinds).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import polars as pl

from validators.column import BIT
from validators.tables import KINDS
from validators.uscc import Suggestion, mask

#: Columns of the findings frame (findings.csv carries them, SPEC §5) and their types.
FINDING_SCHEMA = {
    "finding_id": pl.String, "source": pl.String, "record_id": pl.String, "uscc": pl.String, "name": pl.String,
    "kind": pl.String, "severity": pl.String, "message": pl.String, "positions": pl.String,
    "suggested_code": pl.String, "confidence": pl.String, "suggestion_reason": pl.String, "related": pl.String,
    "related_detail": pl.String, "group_size": pl.Int64, "weakest_score": pl.Float64, "evidence": pl.String,
    "status": pl.String, "file": pl.String, "row": pl.Int64,
}
FINDING_COLUMNS = tuple(FINDING_SCHEMA)


@dataclass
class RecordFinding:
    """One problem of one record (by index), before it is a row of the findings frame."""

    idx: int
    kind: str
    message: str
    severity: str | None = None
    positions: tuple[int, ...] = ()
    suggestion: Suggestion | None = None
    related: list[int] = field(default_factory=list)
    group_size: int | None = None
    weakest_score: float | None = None
    evidence: str = ""
    #: the rules' own `medium` repair candidates for the record's code (record-level findings; `checks.repairs`)
    medium: tuple[Suggestion, ...] = ()


def finding_id(source: str, record_id: str, kind: str, code: str) -> str:
    """Stable id: the same problem on the same record has the same id every night."""
    return hashlib.sha1(f"{source}\x1f{record_id}\x1f{kind}\x1f{code}".encode()).hexdigest()[:16]


def to_frame(findings: list[RecordFinding], rows: dict[int, dict], source_names: dict[str, str]) -> pl.DataFrame:
    """The findings frame of record findings; `rows` holds every record they name (`checks.cross_record.row_store`)."""
    names = source_names

    def personal(i: int) -> bool:
        return bool(rows[i]["flags"] & BIT["personal_id"])

    def shown(i: int) -> str:
        value = rows[i]["uscc_raw"] or ""
        return mask(value.strip()) if personal(i) else value

    out = []
    kind_order = list(KINDS)
    for f in sorted(findings, key=lambda f: (f.idx, kind_order.index(f.kind))):
        m = rows[f.idx]
        code_key = mask(m["norm"]) if personal(f.idx) else m["norm"]
        related = [rows[i] for i in f.related]
        detail = [{"source": x["source"], "source_name": names.get(x["source"], x["source"]),
                   "record_id": x["record_id"], "name": x["name"], "code": shown(x["idx"])} for x in related]
        s = f.suggestion
        out.append({
            "finding_id": finding_id(m["source"], m["record_id"], f.kind, code_key),
            "source": m["source"], "record_id": m["record_id"], "uscc": shown(f.idx), "name": m["name"],
            "kind": f.kind, "severity": f.severity or KINDS[f.kind].severity, "message": f.message,
            "positions": ",".join(str(p) for p in f.positions),
            "suggested_code": s.code if s else None, "confidence": s.confidence if s else None,
            "suggestion_reason": s.reason if s else None,
            "related": ";".join(f"{x['source']}:{x['record_id']}" for x in related),
            "related_detail": json.dumps(detail, ensure_ascii=False),
            "group_size": f.group_size, "weakest_score": f.weakest_score, "evidence": f.evidence,
            "status": "open", "file": m["file"], "row": m["row"],
        })
    return pl.DataFrame(out, schema=FINDING_SCHEMA) if out else pl.DataFrame(schema=FINDING_SCHEMA)


