"""The nightly update of the ledger: tonight's findings move along their lifecycle (docs/correction-loop.md#statuses).

One transaction per night (`record_run`): new findings are recorded with their due dates, findings seen
again move (fixed → reopened, a waiver whose record changed → open, an answer tonight's newer extract
contradicts → open), findings no longer found are closed when tonight's extracts show why (`checks.ledger_closing`).
Rerunning the same night changes nothing that did not change in the data; rerunning an older night only
rewrites that night's report, with the count it took (statuses move forward in time only).
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import polars as pl

from checks.form import CORRECTED
from checks.guard import Extract
from checks.ledger_closing import OFF_LIST_SCHEMA, Tonight, close_gone, unowned
from checks.ledger_closing import off_list as off_list_of
from checks.ledger_schema import (CLOCK_RUNS, DEFAULT_DUE_DAYS, PENDING_NIGHT, RETIRED, UNRESOLVED, _now, _Transaction,
                                  connect, connect_read_only)


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
        {"statuses": frame (finding_id, status, response), "new", "fixed", "reopened", "carried" (the night's,
         from the audit log: a rerun reports what the night did; "carried": findings that took over a
         superseded one), "historical": bool, "off_list": frame (`OFF_LIST_SCHEMA`: unresolved findings
         tonight's findings do not show, and why), "open": int (unresolved errors and warnings in the whole
         ledger, those off tonight's lists included: the road-to-zero count, as the month replays it)}
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
        # rows zipped from whole columns: `rows()` built each tuple value by value (1.6 s more at 10^7)
        conn.executemany("INSERT INTO tonight VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                         zip(*(tonight_rows[c].to_list() for c in tonight_rows.columns)))
        if not historical:  # statuses move forward in time only
            fresh = _record_extracts(conn, run_date, tonight)
            _move_seen(conn, run_date, now, actor, fresh, None if tonight is None else tonight.sources_read)
            withdrawn = frozenset(r[0] for r in conn.execute("SELECT source FROM withdrawn_sources"))
            left = close_gone(conn, run_date, now, actor, tonight, withdrawn)
            conn.execute("UPDATE reassignments SET run_date = ? WHERE run_date IS NULL", (run_date,))
            conn.execute("UPDATE audit SET run_date = ? WHERE run_date = ?", (run_date, PENDING_NIGHT))
        changes = _night_changes(conn, run_date, actor)
        statuses = _statuses(conn, run_date, tonight_rows)
        # an older night rerun is judged against today's ledger: what is off its lists is not known
        off_list = pl.DataFrame(schema=OFF_LIST_SCHEMA) if historical else off_list_of(left, tonight, withdrawn)
        unowned_ = pl.DataFrame(schema=OFF_LIST_SCHEMA) if historical else unowned(conn, tonight)
        conn.execute("DROP TABLE tonight")
        labelled = findings.select("finding_id", "severity").join(statuses, on="finding_id", how="left")
        unresolved = pl.concat([labelled.filter(pl.col("status").is_in(UNRESOLVED)).select("owner", "severity"),
                                off_list.select("owner", "severity")])
        off_list = pl.concat([off_list, unowned_])  # tonight's own findings: counted above already
        open_count = unresolved.filter(pl.col("severity") != "info").height
        counts = json.dumps({f"{s}|{v}": n for s, v, n in unresolved.group_by("owner", "severity").len().rows()},
                            sort_keys=True)
        stored = conn.execute("SELECT open_count, counts_json FROM runs WHERE run_date = ?", (run_date,)).fetchone()
        if historical and stored is not None:
            # an older night rerun: its count was taken when it was the newest night, off-list findings
            # included; today's statuses cannot say what was off that night's lists
            open_count, counts = stored
        # a night is on the timeline once some run of it completed (`finish_run`); a rerun keeps that mark
        conn.execute("INSERT INTO runs (run_date, started_at, finished_at, open_count, counts_json) "
                     "VALUES (?,?,NULL,?,?) ON CONFLICT(run_date) DO UPDATE SET started_at = excluded.started_at, "
                     "open_count = excluded.open_count, counts_json = excluded.counts_json",
                     (run_date, now, open_count, counts))
    return {"statuses": statuses, **changes, "historical": historical, "off_list": off_list, "open": open_count}


def _record_extracts(conn: sqlite3.Connection, run_date: str, tonight: Tonight | None) -> dict[str, str]:
    """Keep tonight's extract verdicts; return, per accepted source, the first night its extract was seen.

    A department's 已更正 is judged against an extract newer than the answer: the same file
    seen again on a later night proves nothing either way.
    """
    if tonight is None:
        return {}
    # a registry configured again is no longer withdrawn (a later removal needs the steward's word again)
    conn.executemany("DELETE FROM withdrawn_sources WHERE source = ?", [(e.source,) for e in tonight.extracts])
    # A rerun of the night with the same file keeps what the first run measured against the extract accepted
    # before it (by now the baseline is that very file): the guard adds these losses up over its window.
    conn.executemany("INSERT INTO extracts (run_date, source, status, file, sha256, rows_read, records, "
                     "previous_records, lost, reason) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT (run_date, source) "
                     "DO UPDATE SET status = excluded.status, file = excluded.file, rows_read = excluded.rows_read, "
                     "records = excluded.records, reason = excluded.reason, "
                     "previous_records = CASE WHEN extracts.status = 'ok' AND extracts.sha256 = excluded.sha256 "
                     "THEN extracts.previous_records ELSE excluded.previous_records END, "
                     "lost = CASE WHEN extracts.status = 'ok' AND extracts.sha256 = excluded.sha256 "
                     "THEN extracts.lost ELSE excluded.lost END, sha256 = excluded.sha256",
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
                 WHEN f.status IN (?, ?) THEN 'open'
                 WHEN f.status = 'waived' AND f.waived_record IS NOT NULL
                      AND f.waived_record != (coalesce(t.uscc, '') || char(31) || coalesce(t.name, '')) THEN 'open'
                 WHEN f.status = 'responded' AND f.answer = ?
                      AND f.answered_on < coalesce(s.first_seen, ?) THEN 'open'
               END AS new,
               CASE
                 WHEN f.status = 'fixed' THEN '已更正的问题再次出现'
                 WHEN f.status IN (?, ?) THEN '记录再次出现在本期数据中，重新跟踪'
                 WHEN f.status = 'waived' THEN '确认无误后记录（代码或名称）已变化，重新判定'
                 ELSE '部门报已更正，但本期数据中问题仍在'
               END AS note
             FROM tonight t JOIN findings f USING (finding_id) LEFT JOIN since s ON s.source = f.source
             WHERE f.status IN ('fixed', 'waived', 'responded', ?, ?) AND (? OR s.movable))
           WHERE new IS NOT NULL ORDER BY seen""", (*RETIRED, CORRECTED, run_date, *RETIRED, *RETIRED, every))
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


def _night_changes(conn: sqlite3.Connection, run_date: str, actor: str) -> dict:
    """What the nightly update of this run date changed, from the audit log (a finding that carries on a
    superseded one is `carried`, not new)."""
    rows = conn.execute("SELECT old_status, new_status FROM audit WHERE run_date = ? AND actor = ?",
                        (run_date, actor)).fetchall()
    # from the few successors through their index (`>= ''`: a range every SQLite version serves from it), not by
    # looking up the finding of every row of the night
    carried = conn.execute("SELECT COUNT(*) FROM findings f WHERE f.succeeds >= '' AND EXISTS (SELECT 1 FROM "
                           "audit a WHERE a.finding_id = f.finding_id AND a.run_date = ? AND a.actor = ? "
                           "AND a.old_status IS NULL)", (run_date, actor)).fetchone()[0]
    return {"new": sum(1 for old, _ in rows if old is None) - carried,
            "fixed": sum(1 for _, new in rows if new == "fixed"),
            "reopened": sum(1 for _, new in rows if new == "reopened"),
            "carried": carried}


#: What `_statuses` reads of a finding besides its due date.
STATUS_COLUMNS = ("status", "answer", "answer_code", "answer_note", "answered_on", "rejection", "assigned_to")


def _statuses(conn: sqlite3.Connection, run_date: str, tonight: pl.DataFrame) -> pl.DataFrame:
    """Status of each of tonight's findings, what the department last said about it, its due date, whether
    it is overdue tonight, and the department that owns it now (`owner`: reassigned or the record's).

    `tonight`: the rows of the `tonight` table (`finding_id`, `source`, `seq`).
    """
    # every finding's due date and place in `tonight`; the rest of a finding's values only where it is not plainly
    # open (most are: nobody answered or reassigned them), so no Python text is made of 1.86 M ids, statuses and
    # owners at 10^7 (the read took 3.8 s instead of 4.8 s)
    due = conn.execute("SELECT t.seq, f.due_date FROM tonight t LEFT JOIN findings f USING (finding_id)").fetchall()
    said = conn.execute(f"SELECT t.seq, {', '.join(f'f.{c}' for c in STATUS_COLUMNS)} FROM tonight t "
                        "JOIN findings f USING (finding_id) WHERE NOT (f.status = 'open' AND f.answer IS NULL "
                        "AND f.answer_code IS NULL AND f.answer_note IS NULL AND f.answered_on IS NULL "
                        "AND f.rejection IS NULL AND f.assigned_to IS NULL)").fetchall()
    due = pl.DataFrame(due, orient="row", schema={"seq": pl.Int64, "due_date": pl.String})
    said = pl.DataFrame(said, orient="row", schema={"seq": pl.Int64, **dict.fromkeys(STATUS_COLUMNS, pl.String)})
    frame = tonight.select("finding_id", "source", "seq") \
        .join(due, on="seq", how="left", validate="1:1", maintain_order="left") \
        .join(said, on="seq", how="left", validate="1:1", maintain_order="left").select(
        "finding_id", pl.col("status").fill_null("open"), "answer", "answer_code", "answer_note", "answered_on",
        "rejection", "due_date", owner=pl.coalesce("assigned_to", "source"))
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


def ran_on(db: Path, run_date: str) -> bool:
    """Whether a night of `run_date` ran its ledger step (finished or not); read only."""
    with closing(connect_read_only(db)) as conn:
        return conn.execute("SELECT 1 FROM runs WHERE run_date=?", (run_date,)).fetchone() is not None


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
