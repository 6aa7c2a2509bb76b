"""The findings frame: its columns, the stable finding id, and the record finding that becomes a row.

Every stage of detection (`checks.rules`, `checks.cross_record`, `checks.repairs`) says what it
found as `RecordFinding`s about records by index; `to_frame` turns them into the frame that the
ledger, the reports and findings.csv read (docs/findings.md lists the kinds).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

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


@dataclass(slots=True)
class RecordFinding:
    """One problem of one record (by index), before it is a row of the findings frame (slots, not a `__dict__`:
    1.9 M of them at 10^7, each 100 bytes smaller)."""

    idx: int
    kind: str
    message: str
    severity: str | None = None
    positions: tuple[int, ...] = ()
    suggestion: Suggestion | None = None
    related: Sequence[int] = ()
    group_size: int | None = None
    weakest_score: float | None = None
    evidence: str = ""
    #: the rules' own `medium` repair candidates for the record's code (record-level findings; `checks.repairs`)
    medium: tuple[Suggestion, ...] = ()


#: What joins the parts of a finding's key (`finding_id`; `to_frame` joins whole columns with it).
_KEY_SEPARATOR = "\x1f"


def finding_id(source: str, record_id: str, kind: str, code: str) -> str:
    """Stable id: the same problem on the same record has the same id every night."""
    return _hashed(_KEY_SEPARATOR.join(str(part) for part in (source, record_id, kind, code)))


def _hashed(key: str) -> str:
    """The id of a finding's key (its parts joined)."""
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def to_frame(findings: list[RecordFinding], records: pl.DataFrame, source_names: dict[str, str]) -> pl.DataFrame:
    """The findings frame of record findings; `records` holds every record they name (the prepared records, or
    those involved: `checks.cross_record.ROW_COLUMNS`).

    Only what a finding itself says is read from the objects; what comes from its record and its related
    records (the shown code, the key, the JSON detail) is joined in over whole columns, each record once.
    """
    if not findings:
        return pl.DataFrame(schema=FINDING_SCHEMA)
    rank = {kind: i for i, kind in enumerate(KINDS)}
    suggestions = [f.suggestion for f in findings]
    said = pl.DataFrame({
        "idx": [f.idx for f in findings],
        "_rank": [rank[f.kind] for f in findings],
        "kind": [f.kind for f in findings],
        "severity": [f.severity or KINDS[f.kind].severity for f in findings],
        "message": [f.message for f in findings],
        "positions": [",".join(map(str, f.positions)) for f in findings],
        "suggested_code": [s.code if s else None for s in suggestions],
        "confidence": [s.confidence if s else None for s in suggestions],
        "suggestion_reason": [s.reason if s else None for s in suggestions],
        "group_size": [f.group_size for f in findings],
        "weakest_score": [f.weakest_score for f in findings],
        "evidence": [f.evidence for f in findings],
    }, schema_overrides={"idx": pl.Int64, "group_size": pl.Int64,
                         "weakest_score": pl.Float64, "suggested_code": pl.String, "confidence": pl.String,
                         "suggestion_reason": pl.String, "evidence": pl.String})
    # each record's findings together, in rule order (a stable sort: equal kinds keep the order they were found)
    said = said.with_row_index("_found").sort("idx", "_rank", maintain_order=True).drop("_rank") \
        .with_row_index("_pos")
    # the related records of all findings in one flat frame, in the order each finding lists them (a list column
    # built from Python lists is slow)
    related = pl.DataFrame({"_found": [n for n, f in enumerate(findings) for _ in f.related],
                            "_related": [i for f in findings for i in f.related]},
                           schema={"_found": pl.UInt32, "_related": pl.Int64})
    # nothing more is read of the objects: a caller that passes its only reference to the list (`checks.detect`)
    # lets go of them here, before the frame is joined and its ids made (at 10^7, 1.9 M objects)
    del findings, suggestions
    wanted = pl.concat([said["idx"], related["_related"]]).unique().to_frame("idx")
    shown = _shown_records(records.select(RECORD_COLUMNS).join(wanted, on="idx", how="semi"))
    missing = wanted.height - shown.height
    if missing:
        raise KeyError(f"{missing} records named by findings are not among the records given")
    # the JSON detail only of the records some finding names as related (at 10^7, 0.8 of the 1.9 M named)
    details = _with_detail(shown.join(related.select(idx="_related").unique(), on="idx", how="semi"), source_names)
    joined = related.join(details.select("idx", "_key", "_detail"), left_on="_related", right_on="idx", how="left",
                          maintain_order="left") \
        .group_by("_found", maintain_order=True) \
        .agg(related=pl.col("_key").str.join(";"), _details=pl.col("_detail").str.join(", "))
    frame = said.join(shown, on="idx", how="left").join(joined, on="_found", how="left").sort("_pos")
    # `finding_id` of each row, its text joined over whole columns (a null joins as `None`, as in the f-string)
    keys = frame.select(pl.concat_str([pl.col(c).fill_null("None") for c in ("source", "record_id", "kind", "_code_key")],
                                      separator=_KEY_SEPARATOR))
    ids = [_hashed(key) for key in keys.to_series().to_list()]
    return frame.select(
        finding_id=pl.Series(ids, dtype=pl.String), source="source", record_id="record_id", uscc="_shown",
        name="name", kind="kind", severity="severity", message="message", positions="positions",
        suggested_code="suggested_code", confidence="confidence", suggestion_reason="suggestion_reason",
        related=pl.col("related").fill_null(""),
        related_detail=pl.lit("[") + pl.col("_details").fill_null("") + pl.lit("]"),
        group_size="group_size", weakest_score="weakest_score", evidence="evidence", status=pl.lit("open"),
        file="file", row="row",
    ).cast(FINDING_SCHEMA)


#: What `json.dumps(ensure_ascii=False)` escapes in a string, and how.
_JSON_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
_JSON_ESCAPES |= {chr(c): f"\\u{c:04x}" for c in range(0x20) if chr(c) not in _JSON_ESCAPES}


def _json_string(text: pl.Expr) -> pl.Expr:
    """A string as `json.dumps(text, ensure_ascii=False)` writes it (`null` for nothing)."""
    escaped = text.str.replace_many(list(_JSON_ESCAPES), list(_JSON_ESCAPES.values()))
    return pl.when(text.is_null()).then(pl.lit("null")).otherwise(pl.lit('"') + escaped + pl.lit('"'))


#: What a finding takes from its record and its related records.
RECORD_COLUMNS = ("idx", "source", "record_id", "name", "file", "row", "uscc_raw", "norm", "flags")


def _shown_records(records: pl.DataFrame) -> pl.DataFrame:
    """Per record: the code as shown (a resident ID number masked) and the code the finding id is made of."""
    at = ((records["flags"] & BIT["personal_id"]) != 0).fill_null(False).arg_true()
    shown = records["uscc_raw"].fill_null("")
    code_key = records["norm"]
    if len(at):  # masked in Python: `str.strip` and `mask` exactly as everywhere else
        shown = shown.scatter(at, pl.Series([mask(v.strip()) for v in shown.gather(at).to_list()], dtype=pl.String))
        code_key = code_key.scatter(at, pl.Series([None if v is None else mask(v) for v in code_key.gather(at).to_list()],
                                                  dtype=pl.String))
    return records.with_columns(_shown=shown, _code_key=code_key).drop("uscc_raw", "norm", "flags")


def _with_detail(shown: pl.DataFrame, source_names: dict[str, str]) -> pl.DataFrame:
    """`_shown_records` with the `related` key (`source:record_id`) and the JSON detail
    (`json.dumps(..., ensure_ascii=False)`) that the findings naming the record show."""
    record_id = pl.col("record_id").fill_null("None")
    return shown.with_columns(
        _key=pl.col("source") + pl.lit(":") + record_id,
        _detail=pl.concat_str([
            pl.lit('{"source": '), _json_string(pl.col("source")),
            pl.lit(', "source_name": '),
            _json_string(pl.col("source").replace_strict(source_names, default=pl.col("source"), return_dtype=pl.String)),
            pl.lit(', "record_id": '), _json_string(pl.col("record_id")),
            pl.lit(', "name": '), _json_string(pl.col("name")),
            pl.lit(', "code": '), _json_string(pl.col("_shown")), pl.lit("}")]),
    )
