"""Every finding over the canonical frame: one findings frame (the kinds: docs/findings.md).

The table of contents of detection; each stage is pure, frames in, findings out:

    0. prepare          — normalized codes, their flags, link keys          `checks.rules.prepare`
    1. record level     — the GB 32100 rules on each code (validators)      `checks.rules.record_level`
                          (on a second thread, beside stages 2 and 3's pairs)
    2. in context       — department / category / region against the record `checks.rules.context_level`
    3. across records   — duplicate codes, duplicate records, one entity     `checks.cross_record`
                          with many codes, names that disagree (blocking and
                          pair evidence: `checks.linking`)
    4. repairs          — suggestions backed by evidence                    `checks.repairs`
    5. findings frame   — rows with stable ids                              `checks.findings`

`checks.partition` runs the same stages spread over partitions and key buckets.
"""

from __future__ import annotations

import time

import polars as pl

from checks.beside import Beside
from checks.cross_record import DICT_COLUMNS, Context, cross_decided, scored_pairs
from checks.findings import FINDING_SCHEMA, RECORD_COLUMNS, RecordFinding, to_frame
from checks.register import PREPARED_COLUMNS
from checks.repairs import READS_ROW, attach_formatting_fixes, attach_repairs
from checks.rules import context_level, prepare, record_level
from checks.settings import Settings


def assemble(record_findings: list[RecordFinding], cross: list[RecordFinding], ctx: Context) -> pl.DataFrame:
    """Repairs on the record findings, then every finding as the findings frame."""
    attach_repairs(record_findings, ctx)
    findings = record_findings + cross
    attach_formatting_fixes(findings, ctx)
    ctx.release()
    return to_frame(findings, ctx.frame, ctx.settings.source_names)


def detect(records: pl.DataFrame, settings: Settings, stats: dict | None = None) -> pl.DataFrame:
    """The findings frame (columns `FINDING_COLUMNS`) of a canonical frame.

    Args:
        stats: if given, filled with seconds per stage and the number of candidate pairs.
    """
    return detect_with_frame(records, settings, stats)[0]


def detect_with_frame(records: pl.DataFrame, settings: Settings,
                      stats: dict | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`detect`, and the prepared records (`checks.rules.prepare`) it worked on, in the columns the golden register
    reads (`checks.register.PREPARED_COLUMNS`) and the findings frame reads of them: the register reads them
    instead of validating every code again.

    A caller that hands over its only reference to `records` (passes them without keeping a name for them) lets
    detection let go of every other column once the findings across records are made (at 10^7, GB less held
    while the findings frame is built). The prepared records' `file` is a Categorical (the findings' is text).
    """
    clock = _Clock(stats)
    # handed over in turn: the prepared records are new columns (the records' row groups made one chunk), and with
    # the records kept here through `prepare` a province's detection peaked there (6.4 → 4.8 GB at 10^7)
    handed = [records]
    del records
    # nothing after `prepare` reads the registry's status or the representative as written (`rep` is made of it),
    # and only the findings frame reads the file's name, one of a few per row (text again there): a province's
    # detection peaked 0.3 GB lower without them as text (5.88 → 5.59 GB at 10^7, the same findings)
    frame = prepare(handed.pop(), settings).drop("legal_rep", "status", strict=False) \
        .with_columns(pl.col("file").cast(pl.Categorical))
    if frame.height == 0:
        return pl.DataFrame(schema=FINDING_SCHEMA), frame.select(KEPT_COLUMNS)
    clock.lap("prepare (validate + keys)")
    # the record level is Python over every flagged code, on a second thread beside the findings in context and
    # the candidate pairs, polars for the most part, which let go of Python's lock (at 10^7, 75 → 67 s together)
    with Beside(record_level, frame, settings.allowlist, name="record-level") as record:
        context = context_level(frame, settings)
        clock.lap("in context")
        scored, shared = scored_pairs(frame, settings)
        findings = record.result() + context
    clock.lap("pairs scored, the record level beside them")
    # the addresses, names' cores and other keys are read: let go of before the rows and links become dicts (at
    # 10^7, 1.1 GB of the 7.4 GB this stage peaked at)
    frame = frame.select(_CROSS_COLUMNS)
    cross, ctx = cross_decided(frame, settings, {f.idx for f in findings if f.kind in READS_ROW}, scored, shared)
    del scored, shared, context  # held by nothing else (`ctx` keeps the shared codes until it is released)
    frame = ctx.frame = frame.select(KEPT_COLUMNS)  # linking has read the addresses, compared names and keys
    clock.lap("across records")
    attach_repairs(findings, ctx)
    findings += cross
    del cross
    attach_formatting_fixes(findings, ctx)
    clock.lap("repairs")
    if stats is not None:
        stats["pairs"] = len(ctx.links)
        stats["same_links"] = sum(1 for link in ctx.links.values() if link["same"])
    ctx.release()
    # handed over: `to_frame` lets go of the findings as objects once it has their columns
    handed = [findings]
    del findings
    result = to_frame(handed.pop(), ctx.frame, ctx.settings.source_names)
    clock.lap("findings frame")
    return result, frame


#: The columns of the prepared records detection keeps once the findings across records are made: the findings
#: frame's and the golden register's.
KEPT_COLUMNS = tuple(dict.fromkeys(RECORD_COLUMNS + PREPARED_COLUMNS))
#: … and what the findings across records read of them besides (their rows as dicts, `Context.rows`).
_CROSS_COLUMNS = tuple(dict.fromkeys(KEPT_COLUMNS + DICT_COLUMNS))


class _Clock:
    def __init__(self, stats: dict | None):
        self.stats = stats
        self.last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        if self.stats is not None:
            self.stats.setdefault("seconds", {})[stage] = now - self.last
        self.last = now


__all__ = ["detect", "detect_with_frame", "assemble"]
