"""Reading the ledger's history: the road to zero, the audit log, a night's changes, the month's replay input."""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path

import polars as pl

from checks.ledger_schema import SUPERSEDED, connect


def history(db: Path, limit: int = 90, including: str | None = None) -> list[dict]:
    """Unresolved errors and warnings per completed night, oldest first: the road to zero.

    A night none of whose runs completed is not on it (see `unfinished_nights`), except `including`:
    the night whose reports are being written.
    """
    with closing(connect(db)) as conn:
        rows = conn.execute("SELECT run_date, open_count, counts_json FROM runs WHERE finished_at IS NOT NULL "
                            "OR run_date = ? ORDER BY run_date DESC LIMIT ?", (including, limit)).fetchall()
    return [{"run_date": d, "open": n, "counts": json.loads(c)} for d, n, c in reversed(rows)]


def audit_log(db: Path, finding_id: str | None = None) -> list[dict]:
    with closing(connect(db)) as conn:
        query = "SELECT at, run_date, finding_id, old_status, new_status, actor, note FROM audit"
        rows = conn.execute(query + (" WHERE finding_id=?" if finding_id else "") + " ORDER BY id",
                            (finding_id,) if finding_id else ()).fetchall()
    keys = ("at", "run_date", "finding_id", "old_status", "new_status", "actor", "note")
    return [dict(zip(keys, r)) for r in rows]


AUDIT_COLUMNS = ("at", "run_date", "finding_id", "source", "record_id", "kind", "old_status", "new_status", "actor",
                 "note")


def audit_of_night(db: Path, run_date: str) -> pl.DataFrame:
    """Every state change and refusal of one run date, with the finding's record (reports' audit.csv)."""
    with closing(connect(db)) as conn:
        rows = conn.execute("SELECT a.at, a.run_date, a.finding_id, f.source, f.record_id, f.kind, a.old_status, "
                            "a.new_status, a.actor, a.note FROM audit a LEFT JOIN findings f USING (finding_id) "
                            "WHERE a.run_date = ? ORDER BY a.id", (run_date,)).fetchall()
    return pl.DataFrame(rows, schema={c: pl.String for c in AUDIT_COLUMNS}, orient="row")


#: Columns of `lifecycle`'s two frames.
LIFECYCLE_FINDINGS = {"finding_id": pl.String, "source": pl.String, "record_id": pl.String, "name": pl.String,
                      "uscc": pl.String, "kind": pl.String, "severity": pl.String, "first_seen": pl.String,
                      "county": pl.String}
LIFECYCLE_AUDIT = {"id": pl.Int64, "run_date": pl.String, "finding_id": pl.String, "old_status": pl.String,
                   "new_status": pl.String, "actor": pl.String}


def lifecycle(db: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Every finding (who, what, first seen) and every status change of the audit log, read in one
    transaction: what a month's figures are replayed from (`checks.month`).

    Refused attempts (the status stays as it was) and entries that are no finding's (an extract accepted by
    the steward) are left out. A finding superseded by another (its record left while the same problem appeared
    on another record of its code) is one finding with the one that carries it on: its history goes under the
    successor's id, and the hand-over — its `superseded` step and the successor's first sighting — is neither a
    fix nor a new problem.
    """
    with closing(connect(db)) as conn:
        conn.execute("BEGIN")  # one snapshot for both reads: a night committing meanwhile is not half in
        findings = conn.execute("SELECT finding_id, source, record_id, name, uscc, kind, severity, first_seen, "
                                "county, succeeds, status FROM findings").fetchall()
        audit = conn.execute("SELECT a.id, a.run_date, a.finding_id, a.old_status, a.new_status, a.actor FROM audit a "
                             "JOIN findings f USING (finding_id) WHERE a.old_status IS NOT a.new_status "
                             "ORDER BY a.id").fetchall()
        conn.execute("COMMIT")
    return _handed_over(pl.DataFrame(findings, schema={**LIFECYCLE_FINDINGS, "succeeds": pl.String,
                                                       "status": pl.String}, orient="row"),
                        pl.DataFrame(audit, schema=LIFECYCLE_AUDIT, orient="row"))


def _handed_over(findings: pl.DataFrame, audit: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Each finding that was superseded and the finding that carries it on as one finding, from the hand-over on.

    What the superseded finding logged before its hand-over goes under its successor's id (down a chain of
    renumberings, to the last); the hand-over step is dropped, and the successor's first sighting continues from
    the status handed over (no event). Decided by the hand-over alone, so a month regenerated later is the same:
    if the superseded record comes back, what it logs from then on stays under its own id (a return: reopened).
    """
    successors = findings.filter(pl.col("succeeds").is_not_null()).sort("finding_id") \
        .unique("succeeds", keep="first", maintain_order=True).select(pred="succeeds", succ="finding_id")
    findings = findings.select(list(LIFECYCLE_FINDINGS))
    if successors.height == 0:
        return findings, audit
    handovers = audit.filter(pl.col("new_status") == SUPERSEDED).sort("id") \
        .unique("finding_id", keep="first", maintain_order=True).select(pred="finding_id", h="id", handed="old_status")
    links = successors.join(handovers, on="pred")
    if links.height == 0:
        return findings, audit
    audit = audit.join(links.select(id="h"), on="id", how="anti") \
        .join(links.select(finding_id="succ", handed="handed"), on="finding_id", how="left") \
        .with_columns(old_status=pl.when(pl.col("old_status").is_null() & pl.col("handed").is_not_null())
                      .then(pl.col("handed")).otherwise(pl.col("old_status"))).drop("handed")
    for _ in range(1000):  # a chain is as long as the record was renumbered; each pass moves one step down it
        joined = audit.join(links.select("pred", "succ", "h"), left_on="finding_id", right_on="pred", how="left")
        moved = pl.col("succ").is_not_null() & (pl.col("id") < pl.col("h"))
        if not joined.select(moved.any()).item():
            break
        audit = joined.with_columns(finding_id=pl.when(moved).then(pl.col("succ")).otherwise(pl.col("finding_id"))) \
            .drop("succ", "h")
    audit = audit.filter(pl.col("old_status").is_null() | (pl.col("old_status") != pl.col("new_status"))).sort("id")
    return findings, audit.select(list(LIFECYCLE_AUDIT))


def statuses(db: Path) -> dict[str, str]:
    """Every finding's current status (for tests and the steward's queries)."""
    with closing(connect(db)) as conn:
        return dict(conn.execute("SELECT finding_id, status FROM findings").fetchall())
