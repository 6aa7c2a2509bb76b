"""pandera schemas (polars backend) of the canonical frames.

What a canonical extract is, declared once; `checks.ingest` validates every
source's frame with `lazy=True` and sends the rows that fail to quarantine.
Validation runs on collected frames: on a LazyFrame pandera would check
names and types only.
"""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

#: Canonical columns of one registry record, in order.
CANONICAL_COLUMNS = (
    "source", "record_id", "uscc_raw", "uscc_numeric", "name", "entity_type", "legal_rep",
    "established", "status", "address", "file", "row",
)

CANONICAL_SCHEMA = pa.DataFrameSchema(
    {
        "source": pa.Column(pl.String, nullable=False),
        "record_id": pa.Column(pl.String, nullable=False, unique=True, checks=pa.Check.str_length(min_value=1)),
        "uscc_raw": pa.Column(pl.String, nullable=True),
        "uscc_numeric": pa.Column(pl.Boolean, nullable=False),
        "name": pa.Column(pl.String, nullable=True),
        "entity_type": pa.Column(pl.String, nullable=True),
        "legal_rep": pa.Column(pl.String, nullable=True),
        "established": pa.Column(pl.Date, nullable=True),
        "status": pa.Column(pl.String, nullable=True),
        "address": pa.Column(pl.String, nullable=True),
        "file": pa.Column(pl.String, nullable=False),
        "row": pa.Column(pl.Int64, nullable=False, checks=pa.Check.ge(1)),
    },
    strict=True,
    ordered=True,
    name="canonical_extract",
)

#: `CANONICAL_SCHEMA` but for the uniqueness of `record_id`, for a frame whose ids are known to be all different
#: (`checks.ingest` knows it from their hashes: pandera's own check of 9 M ids took 5 s).
CANONICAL_ROWS_SCHEMA = CANONICAL_SCHEMA.update_column("record_id", unique=False)

QUARANTINE_COLUMNS = ("source", "file", "row", "record_id", "column", "value", "reason")

QUARANTINE_SCHEMA = pa.DataFrameSchema(
    {
        "source": pa.Column(pl.String),
        "file": pa.Column(pl.String),
        "row": pa.Column(pl.Int64, checks=pa.Check.ge(1)),
        "record_id": pa.Column(pl.String, nullable=True),
        "column": pa.Column(pl.String, nullable=True),
        "value": pa.Column(pl.String, nullable=True),
        "reason": pa.Column(pl.String, checks=pa.Check.str_length(min_value=1)),
    },
    strict=True,
    name="quarantine",
)


def empty_canonical() -> pl.DataFrame:
    return pl.DataFrame(schema={
        "source": pl.String, "record_id": pl.String, "uscc_raw": pl.String, "uscc_numeric": pl.Boolean,
        "name": pl.String, "entity_type": pl.String, "legal_rep": pl.String, "established": pl.Date,
        "status": pl.String, "address": pl.String, "file": pl.String, "row": pl.Int64,
    })


def empty_quarantine() -> pl.DataFrame:
    return pl.DataFrame(schema={c: (pl.Int64 if c == "row" else pl.String) for c in QUARANTINE_COLUMNS})
