"""The nightly update of the ledger: tonight's findings move along their lifecycle (docs/correction-loop.md#statuses).

One transaction per night (`record_run`): new findings are recorded with their due dates, findings seen
again move (fixed → reopened, a waiver whose record changed → open, an answer tonight's newer extract
contradicts → open), findings no longer found are closed as fixed when tonight's extracts show why.
Rerunning the same night changes nothing that did not change in the data; rerunning an older night only
rewrites that night's counts (statuses move forward in time only).
"""

from __future__ import annotations

import json
import re
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from checks.form import CANCELLED, CORRECTED
from checks.guard import Extract
from checks.ledger_schema import CLOCK_RUNS, DEFAULT_DUE_DAYS, UNRESOLVED, _now, _Transaction, connect
from validators.column import compact_expr


@dataclass(frozen=True)
class Tonight:
    """What tonight's extracts hold, for deciding why a finding disappeared.

    Args:
        sources_read: sources whose extract was read tonight; findings of the others are left alone.
        records: one row per record of those extracts: `source`, `record_id`, `code` (`compact_expr`) and
            `checked` (False for a quarantined row: its findings are left alone too).
        extracts: each configured source's extract verdict tonight (`Extract`), kept per night in the ledger.
    """

    sources_read: frozenset[str]
    records: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(
        schema={"source": pl.String, "record_id": pl.String, "code": pl.String, "checked": pl.Boolean}))
    extracts: tuple[Extract, ...] = ()


#: Why a finding that is no longer found is closed as fixed (audit notes, shown to the steward).
GONE_NOTES = {
    "problem_gone": "本期数据中该问题已消除",
    "cancelled": "部门报已注销，记录已不在本期数据中",
    "record_and_code_gone": "记录及其代码均已不在本期数据中",
}


def record_run(db: Path, run_date: str, findings: pl.DataFrame, tonight: Tonight | None = None,
               actor: str = "nightly", due_days: dict[str, int] | None = None) -> dict:
    """Bring the ledger up to tonight's findings, in one transaction.

    Args:
        findings: tonight's findings (`finding_id, source, record_id, kind, severity, uscc, name`).
        due_days: days from first seen to due, by kind or severity (`Settings.due_days`; default
            `DEFAULT_DUE_DAYS`): a new finding's due date.
        tonight: tonight's extracts; None means every source was read and no record was quarantined
            (then a finding not found tonight is fixed). Findings of a source whose extract was not
            accepted tonight (held or rejected) keep their status: new ones are recorded, none moves.

    Returns:
        {"statuses": frame (finding_id, status, response), "new", "fixed", "reopened" (the night's, from
         the audit log: a rerun reports what the night did), "historical": bool,
         "open": int (unresolved errors and warnings: the road-to-zero count)}
    """
    days = due_days or DEFAULT_DUE_DAYS
    if "county" not in findings.columns:  # the county list a finding is on (`checks.counties`), when known
        findings = findings.with_columns(county=pl.lit(None, pl.String))
    tonight_rows = findings.select("finding_id", "source", "record_id", "kind", "severity", "uscc", "name", "related",
                                   "county",
                                   due=pl.col("kind").replace_strict(days, default=None, return_dtype=pl.Int64)
                                   .fill_null(pl.col("severity").replace_strict(days, default=30,
                                                                               return_dtype=pl.Int64)),
                                   seq=pl.int_range(pl.len())).sort("finding_id")
    now = _now()
    with closing(connect(db)) as conn, _Transaction(conn):
        latest = conn.execute("SELECT MAX(run_date) FROM runs").fetchone()[0]
        historical = latest is not None and run_date < latest
        conn.execute("CREATE TEMP TABLE tonight (finding_id TEXT PRIMARY KEY, source TEXT, record_id TEXT, "
                     "kind TEXT, severity TEXT, uscc TEXT, name TEXT, related TEXT, county TEXT, due INTEGER, "
                     "seq INTEGER) WITHOUT ROWID")
        # in finding_id order: a province's two million findings then go into every index (tonight's, the
        # ledger's, the audit log's) at its end instead of at random places; `seq` is tonight's order
        conn.executemany("INSERT INTO tonight VALUES (?,?,?,?,?,?,?,?,?,?,?)", tonight_rows.rows())
        if not historical:  # statuses move forward in time only
            fresh = _record_extracts(conn, run_date, tonight)
            _move_seen(conn, run_date, now, actor, fresh, None if tonight is None else tonight.sources_read)
            _close_gone(conn, run_date, now, actor, tonight)
            conn.execute("UPDATE reassignments SET run_date = ? WHERE run_date IS NULL", (run_date,))
        changes = _night_changes(conn, run_date, actor)
        statuses = _statuses(conn, run_date)
        conn.execute("DROP TABLE tonight")
        labelled = findings.select("finding_id", "severity").join(statuses, on="finding_id", how="left")
        unresolved = labelled.filter(pl.col("status").is_in(UNRESOLVED))
        open_count = unresolved.filter(pl.col("severity") != "info").height
        counts = unresolved.group_by("owner", "severity").len().rows()
        # a night is on the timeline once some run of it completed (`finish_run`); a rerun keeps that mark
        conn.execute("INSERT INTO runs (run_date, started_at, finished_at, open_count, counts_json) "
                     "VALUES (?,?,NULL,?,?) ON CONFLICT(run_date) DO UPDATE SET started_at = excluded.started_at, "
                     "open_count = excluded.open_count, counts_json = excluded.counts_json",
                     (run_date, now, open_count, json.dumps({f"{s}|{v}": n for s, v, n in counts}, sort_keys=True)))
    return {"statuses": statuses, **changes, "historical": historical, "open": open_count}


def _record_extracts(conn: sqlite3.Connection, run_date: str, tonight: Tonight | None) -> dict[str, str]:
    """Keep tonight's extract verdicts; return, per accepted source, the first night its extract was seen.

    A department's 已更正 is judged against an extract newer than the answer: the same file
    seen again on a later night proves nothing either way.
    """
    if tonight is None:
        return {}
    conn.executemany("INSERT OR REPLACE INTO extracts (run_date, source, status, file, sha256, rows_read, records, "
                     "previous_records, lost, reason) VALUES (?,?,?,?,?,?,?,?,?,?)",
                     [(run_date, e.source, e.status, e.file, e.sha256, e.rows_read, e.records, e.previous_records,
                       e.lost, e.reason) for e in tonight.extracts])
    fresh = {}
    for e in tonight.extracts:
        if e.status == "ok" and e.sha256:
            fresh[e.source] = conn.execute("SELECT MIN(run_date) FROM extracts WHERE source = ? AND sha256 = ? "
                                           "AND status = 'ok'", (e.source, e.sha256)).fetchone()[0]
    return fresh


def _move_seen(conn: sqlite3.Connection, run_date: str, now: str, actor: str,
               fresh: dict[str, str] | None = None, movable: frozenset[str] | None = None) -> None:
    """New findings, and the status moves of findings seen again tonight.

    Args:
        fresh: accepted source → the first night tonight's extract was seen (see `_record_extracts`);
            without it an answer older than tonight counts as checked by tonight's extract.
        movable: sources whose findings may move tonight (None: all); the others only gain new findings.
    """
    conn.execute("CREATE TEMP TABLE fresh AS SELECT finding_id FROM tonight "
                 "WHERE finding_id NOT IN (SELECT finding_id FROM findings)")
    conn.execute("INSERT INTO findings (finding_id, source, record_id, kind, severity, status, first_seen, "
                 "last_seen, status_changed, uscc, name, related, county, due_date) SELECT finding_id, source, "
                 "record_id, kind, severity, 'open', ?, ?, ?, uscc, name, related, county, "
                 "date(?, '+' || due || ' days') "
                 "FROM tonight JOIN fresh USING (finding_id)", (run_date, run_date, now, run_date))
    conn.execute("INSERT INTO audit (at, run_date, finding_id, old_status, new_status, actor, note) "
                 "SELECT ?, ?, finding_id, NULL, 'open', ?, '首次发现' FROM fresh", (now, run_date, actor))
    conn.execute("CREATE TEMP TABLE since (source TEXT PRIMARY KEY, first_seen TEXT, movable INTEGER)")
    every = movable is None
    keys = set(fresh or {}) | set(movable or ())
    conn.executemany("INSERT INTO since VALUES (?, ?, ?)",
                     [(k, (fresh or {}).get(k), every or k in movable) for k in keys])
    # only the statuses that can move are kept (most findings are open), in tonight's order as before
    conn.execute(
        """CREATE TEMP TABLE moves AS
           SELECT finding_id, old, new, note FROM (
             SELECT t.seq AS seen, f.finding_id, f.status AS old,
               CASE
                 WHEN f.status = 'fixed' THEN 'reopened'
                 WHEN f.status = 'waived' AND f.waived_record IS NOT NULL
                      AND f.waived_record != (coalesce(t.uscc, '') || char(31) || coalesce(t.name, '')) THEN 'open'
                 WHEN f.status = 'responded' AND f.answer = ?
                      AND f.answered_on < coalesce(s.first_seen, ?) THEN 'open'
               END AS new,
               CASE
                 WHEN f.status = 'fixed' THEN '已更正的问题再次出现'
                 WHEN f.status = 'waived' THEN '确认无误后记录（代码或名称）已变化，重新判定'
                 ELSE '部门报已更正，但本期数据中问题仍在'
               END AS note
             FROM tonight t JOIN findings f USING (finding_id) LEFT JOIN since s ON s.source = f.source
             WHERE f.status IN ('fixed', 'waived', 'responded') AND (? OR s.movable))
           WHERE new IS NOT NULL ORDER BY seen""", (CORRECTED, run_date, every))
    conn.execute("DROP TABLE since")
    conn.execute("INSERT INTO audit (at, run_date, finding_id, old_status, new_status, actor, note) "
                 "SELECT ?, ?, finding_id, old, new, ?, note FROM moves", (now, run_date, actor))
    # the clock stopped while an answer waited for the next extract: the due date moves by those days
    conn.execute("UPDATE findings SET status = m.new, status_changed = ?, waived_record = NULL, "
                 "answer = CASE WHEN m.old = 'fixed' THEN NULL ELSE findings.answer END, "
                 "due_date = CASE WHEN m.old = 'responded' AND findings.answered_on IS NOT NULL THEN date(due_date, "
                 "'+' || CAST(julianday(?) - julianday(findings.answered_on) AS INTEGER) || ' days') ELSE due_date END "
                 "FROM moves m WHERE findings.finding_id = m.finding_id", (now, run_date))
    conn.execute("DROP TABLE moves")
    # the findings inserted above hold tonight's values already (on a first night: every one)
    conn.execute("UPDATE findings SET last_seen = ?, severity = t.severity, uscc = t.uscc, name = t.name, "
                 "related = t.related, county = coalesce(t.county, findings.county) "
                 "FROM tonight t WHERE findings.finding_id = t.finding_id "
                 "AND t.finding_id NOT IN (SELECT finding_id FROM fresh)", (run_date,))
    conn.execute("DROP TABLE fresh")


def _close_gone(conn: sqlite3.Connection, run_date: str, now: str, actor: str, tonight: Tonight | None) -> None:
    """Close as fixed the unresolved findings tonight's extracts no longer show, saying why."""
    rows = conn.execute(
        "SELECT finding_id, source, record_id, uscc, status, answer, related FROM findings WHERE status IN (%s) "
        "AND finding_id NOT IN (SELECT finding_id FROM tonight)" % ",".join("?" * len(UNRESOLVED)),
        UNRESOLVED).fetchall()
    if not rows:
        return
    gone = pl.DataFrame(rows, schema=["finding_id", "source", "record_id", "uscc", "status", "answer", "related"],
                        orient="row")
    if tonight is None:
        gone = gone.with_columns(note=pl.lit(GONE_NOTES["problem_gone"]))
    else:
        records = tonight.records  # a quarantined record (checked False) keeps its findings as they are
        gone = gone.filter(pl.col("source").is_in(list(tonight.sources_read))) \
            .with_columns(code=compact_expr(pl.col("uscc").fill_null(""))) \
            .join(records.group_by("source", "record_id").agg(pl.col("checked").all()), on=["source", "record_id"],
                  how="left") \
            .join(records.select("source", "code").unique().with_columns(code_held=pl.lit(True)),
                  on=["source", "code"], how="left") \
            .filter(pl.col("checked").fill_null(True)) \
            .with_columns(note=pl.when(pl.col("checked")).then(pl.lit(GONE_NOTES["problem_gone"]))
                          .when(pl.col("answer") == CANCELLED).then(pl.lit(GONE_NOTES["cancelled"]))
                          .when(pl.col("code_held").is_null()).then(pl.lit(GONE_NOTES["record_and_code_gone"])))
        # A record gone while its code stays in the extract under another record id is not a fix.
        gone = gone.filter(pl.col("note").is_not_null())
        # Nor a problem that involved a record of a source not accepted tonight: that evidence was not checked.
        unread = [s for s in {s for r in gone["related"].drop_nulls().to_list() for s in _sources_of(r)}
                  if s not in tonight.sources_read]
        if unread:
            gone = gone.filter(~pl.col("related").fill_null("").str.contains(
                "(^|;)(" + "|".join(re.escape(s) for s in unread) + "):"))
    moves = gone.select("finding_id", "status", "note").rows()
    conn.executemany("INSERT INTO audit (at, run_date, finding_id, old_status, new_status, actor, note) "
                     "VALUES (?, ?, ?, ?, 'fixed', ?, ?)", [(now, run_date, f, s, actor, n) for f, s, n in moves])
    conn.executemany("UPDATE findings SET status = 'fixed', status_changed = ? WHERE finding_id = ?",
                     [(now, f) for f, _, _ in moves])


def _sources_of(related: str) -> set[str]:
    """The sources named in a finding's `related` (`source:record_id;…`)."""
    return {part.split(":", 1)[0] for part in related.split(";") if ":" in part}


def _night_changes(conn: sqlite3.Connection, run_date: str, actor: str) -> dict:
    """What the nightly update of this run date changed, from the audit log."""
    rows = conn.execute("SELECT old_status, new_status FROM audit WHERE run_date = ? AND actor = ?",
                        (run_date, actor)).fetchall()
    return {"new": sum(1 for old, new in rows if old is None),
            "fixed": sum(1 for _, new in rows if new == "fixed"),
            "reopened": sum(1 for _, new in rows if new == "reopened")}


def _statuses(conn: sqlite3.Connection, run_date: str) -> pl.DataFrame:
    """Status of each of tonight's findings, what the department last said about it, its due date, whether
    it is overdue tonight, and the department that owns it now (`owner`: reassigned or the record's)."""
    rows = conn.execute("SELECT t.finding_id, coalesce(f.status, 'open'), f.answer, f.answer_code, f.answer_note, "
                        "f.answered_on, f.rejection, f.due_date, coalesce(f.assigned_to, t.source) "
                        "FROM tonight t LEFT JOIN findings f USING (finding_id)").fetchall()
    frame = pl.DataFrame(rows, orient="row", schema={
        "finding_id": pl.String, "status": pl.String, "answer": pl.String, "answer_code": pl.String,
        "answer_note": pl.String, "answered_on": pl.String, "rejection": pl.String, "due_date": pl.String,
        "owner": pl.String})
    overdue = pl.col("status").is_in(CLOCK_RUNS) & (pl.col("due_date") < run_date).fill_null(False)
    return frame.select("finding_id", "status", response=response_text_expr(), due_date=pl.col("due_date"),
                        overdue=overdue, owner=pl.col("owner"))


def response_text_expr() -> pl.Expr:
    """What the department said last, in one line for the list and the form."""
    answered = pl.concat_str([
        pl.col("answered_on"), pl.lit(" 答复“"), pl.col("answer"), pl.lit("”"),
        pl.when(pl.col("answer_code").is_not_null()).then(pl.lit("，更正后代码 ") + pl.col("answer_code"))
        .otherwise(pl.lit("")),
        pl.when(pl.col("answer_note").is_not_null() & (pl.col("answer_note") != ""))
        .then(pl.lit("，说明：") + pl.col("answer_note")).otherwise(pl.lit("")),
    ])
    return (pl.when(pl.col("status") == "rejected-response").then(pl.lit("上次答复未通过：") + pl.col("rejection"))
            .when(pl.col("answer").is_not_null() & pl.col("status").is_in(["responded", "waived"])).then(answered)
            .otherwise(pl.lit(None, pl.String)))


def latest_run(db: Path) -> str | None:
    """The newest run date in the ledger (None before the first run)."""
    with closing(connect(db)) as conn:
        return conn.execute("SELECT MAX(run_date) FROM runs").fetchone()[0]


def finish_run(db: Path, run_date: str, accepted: list[Extract] = ()) -> None:
    """Mark the night completed, and make its accepted extracts the next night's baseline (one transaction)."""
    with closing(connect(db)) as conn, _Transaction(conn):
        conn.execute("UPDATE runs SET finished_at=? WHERE run_date=?", (_now(), run_date))
        conn.executemany("INSERT OR REPLACE INTO accepted_extracts (source, run_date, file, sha256, records) "
                         "VALUES (?,?,?,?,?)", [(e.source, run_date, e.file, e.sha256, e.records) for e in accepted])


def unfinished_nights(db: Path) -> list[str]:
    """Nights whose ledger step ran but no run of which completed (a failure the steward should see)."""
    with closing(connect(db)) as conn:
        return [d for (d,) in conn.execute("SELECT run_date FROM runs WHERE finished_at IS NULL ORDER BY run_date")]
