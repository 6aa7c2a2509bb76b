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

#: Columns of the findings frame (findings.csv carries them, docs/data-dir.md#findings-csv) and their types.
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
    """The findings frame of record findings; `rows` holds every record they name (`checks.cross_record.row_store`).

    Built column by column; what each related record contributes (its `related` key and its JSON detail)
    is worked out once per record, however many findings name it.
    """
    shown_of: dict[int, str] = {}
    personal_of: dict[int, bool] = {}
    key_of: dict[int, str] = {}
    detail_of: dict[int, str] = {}

    def shown(i: int) -> str:
        value = shown_of.get(i)
        if value is None:
            r = rows[i]
            personal_of[i] = personal = bool(r["flags"] & BIT["personal_id"])
            raw = r["uscc_raw"] or ""
            value = shown_of[i] = mask(raw.strip()) if personal else raw
        return value

    def related_key(i: int) -> str:
        key = key_of.get(i)
        if key is None:
            key = key_of[i] = f"{rows[i]['source']}:{rows[i]['record_id']}"
        return key

    def detail(i: int) -> str:  # one element of json.dumps([...], ensure_ascii=False)
        text = detail_of.get(i)
        if text is None:
            x = rows[i]
            text = detail_of[i] = json.dumps(
                {"source": x["source"], "source_name": source_names.get(x["source"], x["source"]),
                 "record_id": x["record_id"], "name": x["name"], "code": shown(i)}, ensure_ascii=False)
        return text

    rank = {kind: i for i, kind in enumerate(KINDS)}
    ordered = sorted(findings, key=lambda f: (f.idx, rank[f.kind]))
    columns: dict[str, list] = {name: [] for name in FINDING_SCHEMA}
    for f in ordered:
        m = rows[f.idx]
        uscc = shown(f.idx)
        code_key = mask(m["norm"]) if personal_of[f.idx] else m["norm"]
        s = f.suggestion
        for name, value in (
            ("finding_id", finding_id(m["source"], m["record_id"], f.kind, code_key)),
            ("source", m["source"]), ("record_id", m["record_id"]), ("uscc", uscc), ("name", m["name"]),
            ("kind", f.kind), ("severity", f.severity or KINDS[f.kind].severity), ("message", f.message),
            ("positions", ",".join(str(p) for p in f.positions)),
            ("suggested_code", s.code if s else None), ("confidence", s.confidence if s else None),
            ("suggestion_reason", s.reason if s else None),
            ("related", ";".join(related_key(i) for i in f.related)),
            ("related_detail", "[" + ", ".join(detail(i) for i in f.related) + "]"),
            ("group_size", f.group_size), ("weakest_score", f.weakest_score), ("evidence", f.evidence),
            ("status", "open"), ("file", m["file"]), ("row", m["row"]),
        ):
            columns[name].append(value)
    return pl.DataFrame(columns, schema=FINDING_SCHEMA)
