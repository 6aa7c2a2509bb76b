"""The findings ledger: lifecycle of every finding across nightly runs (SPEC §6).

SQLite by default (`DATA_DIR/state/steward.sqlite3`, or `[state] database` in
the configuration). Tables:
    runs          one row per run date: counts for the trend
    findings      one row per finding id: owner, record, status, first/last seen,
                  the department's last accepted answer
    return_files  every returned file seen, by content hash: outcome and counts
    responses     every row of every returned file, accepted or rejected, and why
    audit         every status change, and every refused attempt, with actor and note
    extracts      each night's verdict on each source's extract (ok | held | rejected), with its hash
    accepted_extracts   the last extract accepted per source: the plausibility guard's baseline
    extract_acceptances the steward's deliberate acceptances of held extracts (by content hash)
    reassignments the steward's hand-overs of findings to another department (stamped with the next night)

Statuses: open → responded → fixed | rejected-response | waived; a fixed
finding that comes back is reopened. Each step is one transaction: a crash
leaves the ledger as it was before the step. Rerunning the same night
changes nothing that did not change in the data; rerunning an older night
only rewrites that night's counts (statuses move forward in time only).

The schema is versioned (`PRAGMA user_version`); `MIGRATIONS` upgrades an
older file in place, one transaction per version.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from validators.column import compact_expr
from validators.uscc import mask_personal_ids

MIGRATIONS: tuple[str, ...] = (
    # 1: runs, findings, audit (the first release)
    """
    CREATE TABLE IF NOT EXISTS runs (
        run_date TEXT PRIMARY KEY,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        open_count INTEGER NOT NULL,
        counts_json TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS findings (
        finding_id TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        record_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        severity TEXT NOT NULL,
        status TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        status_changed TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS findings_status ON findings(status);
    CREATE TABLE IF NOT EXISTS audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        run_date TEXT NOT NULL,
        finding_id TEXT NOT NULL,
        old_status TEXT,
        new_status TEXT NOT NULL,
        actor TEXT NOT NULL,
        note TEXT
    );
    """,
    # 2: the correction loop — the record a finding is about, answers, returned files
    """
    ALTER TABLE findings ADD COLUMN uscc TEXT;
    ALTER TABLE findings ADD COLUMN name TEXT;
    ALTER TABLE findings ADD COLUMN related TEXT;
    ALTER TABLE findings ADD COLUMN answer TEXT;
    ALTER TABLE findings ADD COLUMN answer_code TEXT;
    ALTER TABLE findings ADD COLUMN answer_note TEXT;
    ALTER TABLE findings ADD COLUMN answered_on TEXT;
    ALTER TABLE findings ADD COLUMN waived_record TEXT;
    ALTER TABLE findings ADD COLUMN rejection TEXT;
    CREATE INDEX IF NOT EXISTS findings_answer_code ON findings(answer_code);
    CREATE INDEX IF NOT EXISTS audit_finding ON audit(finding_id);
    CREATE TABLE IF NOT EXISTS return_files (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        source TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        file_name TEXT NOT NULL,
        run_date TEXT NOT NULL,
        processed_at TEXT NOT NULL,
        outcome TEXT NOT NULL,
        reason TEXT,
        rows_total INTEGER NOT NULL DEFAULT 0,
        accepted INTEGER NOT NULL DEFAULT 0,
        rejected INTEGER NOT NULL DEFAULT 0,
        skipped INTEGER NOT NULL DEFAULT 0,
        archived_as TEXT
    );
    CREATE INDEX IF NOT EXISTS return_files_hash ON return_files(source, sha256);
    CREATE INDEX IF NOT EXISTS return_files_night ON return_files(run_date);
    CREATE TABLE IF NOT EXISTS responses (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        return_file INTEGER NOT NULL REFERENCES return_files(id),
        row INTEGER NOT NULL,
        finding_id TEXT,
        record_id TEXT,
        name TEXT,
        answer TEXT,
        corrected_code TEXT,
        note TEXT,
        verdict TEXT NOT NULL,
        reason TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS responses_file ON responses(return_file);
    """,
    # 3: unattended nights — each night's verdict on each source's extract, the last accepted
    # extract per source (the plausibility baseline), the steward's acceptances of held extracts;
    # a run date that is no date (an operator's `2026/11/30`) would sort after every real night
    """
    CREATE TABLE IF NOT EXISTS extracts (
        run_date TEXT NOT NULL,
        source TEXT NOT NULL,
        status TEXT NOT NULL,
        file TEXT,
        sha256 TEXT,
        rows_read INTEGER,
        records INTEGER,
        previous_records INTEGER,
        lost INTEGER,
        reason TEXT,
        PRIMARY KEY (run_date, source)
    );
    CREATE INDEX IF NOT EXISTS extracts_hash ON extracts(source, sha256);
    CREATE TABLE IF NOT EXISTS accepted_extracts (
        source TEXT PRIMARY KEY,
        run_date TEXT NOT NULL,
        file TEXT,
        sha256 TEXT,
        records INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS extract_acceptances (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        source TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        file TEXT,
        why TEXT NOT NULL,
        at TEXT NOT NULL,
        actor TEXT NOT NULL
    );
    DELETE FROM runs WHERE run_date NOT GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]';
    """,
    # 4: the steward's month — a due date per finding (set when first seen; the clock stops while an
    # answer waits for the next extract), and findings handed to another department
    """
    ALTER TABLE findings ADD COLUMN due_date TEXT;
    ALTER TABLE findings ADD COLUMN assigned_to TEXT;
    ALTER TABLE findings ADD COLUMN county TEXT;
    UPDATE findings SET due_date = date(first_seen, '+30 days') WHERE due_date IS NULL;
    CREATE TABLE IF NOT EXISTS reassignments (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        finding_id TEXT NOT NULL,
        from_source TEXT NOT NULL,
        to_source TEXT NOT NULL,
        why TEXT NOT NULL,
        at TEXT NOT NULL,
        run_date TEXT
    );
    """,
    # 5: resident ID numbers a clerk typed into returned forms before they were masked on the way in
    # (`mask_ids` is `validators.uscc.mask_personal_ids`, bound by `connect`)
    """
    UPDATE responses SET record_id = mask_ids(record_id), name = mask_ids(name), answer = mask_ids(answer),
        corrected_code = mask_ids(corrected_code), note = mask_ids(note), reason = mask_ids(reason);
    UPDATE findings SET answer_code = mask_ids(answer_code), answer_note = mask_ids(answer_note),
        rejection = mask_ids(rejection);
    UPDATE audit SET note = mask_ids(note);
    UPDATE return_files SET file_name = mask_ids(file_name), reason = mask_ids(reason);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

#: Statuses that still need work (counted on the road to zero).
UNRESOLVED = ("open", "reopened", "responded", "rejected-response")
CLOSED = ("fixed", "waived")
#: Statuses a department may answer (SPEC §6: the finding must be open).
ANSWERABLE = ("open", "reopened", "rejected-response")
#: Days from first seen to due, by severity, when the configuration says nothing (`[due]`).
DEFAULT_DUE_DAYS = {"error": 30, "warning": 60, "info": 90}


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating or upgrading) the ledger."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)  # explicit BEGIN/COMMIT below
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.create_function("mask_ids", 1, mask_personal_ids, deterministic=True)
    migrate(conn)
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the migrations this file lacks, each in its own transaction; return the version.

    The version is read again inside each write transaction: two connections opening a new file at
    once (the parallel ingest tasks do) must not both apply the same step.
    """
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise RuntimeError(f"ledger schema version {version} is newer than this program ({SCHEMA_VERSION})")
    for number in range(version + 1, SCHEMA_VERSION + 1):
        statements = [s for s in MIGRATIONS[number - 1].split(";") if s.strip()]
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("PRAGMA user_version").fetchone()[0] < number:
                for statement in statements:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return SCHEMA_VERSION


class _Transaction:
    """`with _Transaction(conn):` one BEGIN IMMEDIATE … COMMIT, rolled back on any exception."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self):
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb):
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
        return False


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _record(uscc: str | None, name: str | None) -> str:
    """The record as a department's decision is tied to it: its code and name."""
    return f"{uscc or ''}\x1f{name or ''}"


# --------------------------------------------------------------------------- the nightly update

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
    extracts: tuple["Extract", ...] = ()


@dataclass(frozen=True)
class Extract:
    """One source's extract as judged tonight: accepted (`ok`), `held` by the plausibility guard, or `rejected`."""

    source: str
    status: str
    file: str | None = None
    sha256: str | None = None
    rows_read: int = 0
    records: int = 0
    previous_records: int | None = None
    lost: int | None = None
    reason: str | None = None


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
                                                                               return_dtype=pl.Int64)))
    now = _now()
    with closing(connect(db)) as conn, _Transaction(conn):
        latest = conn.execute("SELECT MAX(run_date) FROM runs").fetchone()[0]
        historical = latest is not None and run_date < latest
        conn.execute("CREATE TEMP TABLE tonight (finding_id TEXT PRIMARY KEY, source TEXT, record_id TEXT, "
                     "kind TEXT, severity TEXT, uscc TEXT, name TEXT, related TEXT, county TEXT, due INTEGER)")
        conn.executemany("INSERT INTO tonight VALUES (?,?,?,?,?,?,?,?,?,?)", tonight_rows.iter_rows())
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
                     (run_date, now, open_count, json.dumps({f"{s}|{v}": n for s, v, n in counts})))
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
    conn.execute("DROP TABLE fresh")
    conn.execute("CREATE TEMP TABLE since (source TEXT PRIMARY KEY, first_seen TEXT, movable INTEGER)")
    every = movable is None
    keys = set(fresh or {}) | set(movable or ())
    conn.executemany("INSERT INTO since VALUES (?, ?, ?)",
                     [(k, (fresh or {}).get(k), every or k in movable) for k in keys])
    conn.execute(
        """CREATE TEMP TABLE moves AS
           SELECT finding_id, old, new, note FROM (
             SELECT f.finding_id, f.status AS old,
               CASE
                 WHEN f.status = 'fixed' THEN 'reopened'
                 WHEN f.status = 'waived' AND f.waived_record IS NOT NULL
                      AND f.waived_record != (coalesce(t.uscc, '') || char(31) || coalesce(t.name, '')) THEN 'open'
                 WHEN f.status = 'responded' AND f.answer = '已更正'
                      AND f.answered_on < coalesce(s.first_seen, ?) THEN 'open'
               END AS new,
               CASE
                 WHEN f.status = 'fixed' THEN '已更正的问题再次出现'
                 WHEN f.status = 'waived' THEN '确认无误后记录（代码或名称）已变化，重新判定'
                 ELSE '部门报已更正，但本期数据中问题仍在'
               END AS note
             FROM tonight t JOIN findings f USING (finding_id) LEFT JOIN since s ON s.source = f.source
             WHERE ? OR s.movable)
           WHERE new IS NOT NULL""", (run_date, every))
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
    conn.execute("UPDATE findings SET last_seen = ?, severity = t.severity, uscc = t.uscc, name = t.name, "
                 "related = t.related, county = coalesce(t.county, findings.county) "
                 "FROM tonight t WHERE findings.finding_id = t.finding_id", (run_date,))


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
                          .when(pl.col("answer") == "已注销").then(pl.lit(GONE_NOTES["cancelled"]))
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


#: Statuses whose due date runs (a `responded` answer waits for the next extract: its clock is stopped).
CLOCK_RUNS = ("open", "reopened", "rejected-response")


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


# --------------------------------------------------------------------------- extracts

def accepted_extract(db: Path, source: str) -> dict | None:
    """The last extract accepted for a source (run_date, file, sha256, records), or None."""
    with closing(connect(db)) as conn:
        row = conn.execute("SELECT run_date, file, sha256, records FROM accepted_extracts WHERE source = ?",
                           (source,)).fetchone()
    return dict(zip(("run_date", "file", "sha256", "records"), row)) if row else None


def steward_acceptance(db: Path, source: str, sha256: str) -> str | None:
    """Why the steward accepted this exact extract (by content hash), or None."""
    with closing(connect(db)) as conn:
        row = conn.execute("SELECT why FROM extract_acceptances WHERE source = ? AND sha256 = ? ORDER BY id DESC",
                           (source, sha256)).fetchone()
    return row[0] if row else None


def extract_verdicts(db: Path, source: str | None = None, limit: int = 30) -> list[dict]:
    """The latest nights' verdicts on the extracts, newest first (`uscc extracts list`)."""
    keys = ("run_date", "source", "status", "file", "sha256", "rows_read", "records", "previous_records", "lost",
            "reason")
    with closing(connect(db)) as conn:
        rows = conn.execute(f"SELECT {', '.join(keys)} FROM extracts" + (" WHERE source = ?" if source else "")
                            + " ORDER BY run_date DESC, source LIMIT ?", ((source,) if source else ()) + (limit,))
        return [dict(zip(keys, r)) for r in rows.fetchall()]


def steward_accept_extract(db: Path, source: str, why: str) -> dict:
    """The steward accepts the extract the guard held last for this source; the next night uses it (audited)."""
    if not why.strip():
        raise LedgerError("请用 --why 写明接受该期数据的原因（如“3 月集中清理注销主体，经核实属实”），会记入审计日志。")
    with closing(connect(db)) as conn, _Transaction(conn):
        row = conn.execute("SELECT run_date, file, sha256, records, previous_records, reason FROM extracts "
                           "WHERE source = ? ORDER BY run_date DESC LIMIT 1", (source,)).fetchone()
        if row is None or row[2] is None:
            raise LedgerError(f"台账中没有来源 {source} 的数据检查记录：请先运行夜间任务。")
        night, file, sha, records, previous, reason = row
        status = conn.execute("SELECT status FROM extracts WHERE source = ? AND run_date = ?", (source, night)).fetchone()[0]
        if status != "held":
            shown = {"ok": "已接受", "rejected": "被拒收"}.get(status, status)
            raise LedgerError(f"来源 {source} 最近一期（{night}，{file}）的数据是“{shown}”，不是“待确认”，无需接受。")
        now = _now()
        conn.execute("INSERT INTO extract_acceptances (source, sha256, file, why, at, actor) VALUES (?,?,?,?,?,?)",
                     (source, sha, file, why.strip(), now, "steward"))
        _audit(conn, now, night, "", "held", "accepted", "steward",
               f"市信用办确认接受 {source} 的数据 {file}（上期 {previous} 条，本期 {records} 条；原因：{reason}）：{why.strip()}")
    return {"run_date": night, "file": file, "records": records, "previous_records": previous}


# --------------------------------------------------------------------------- returned forms

@dataclass(frozen=True)
class Known:
    """A finding as the ledger holds it, for judging a returned row."""

    finding_id: str
    source: str
    record_id: str
    kind: str
    status: str
    uscc: str | None
    name: str | None
    status_changed_on: str  # the run date of the last status change (what a clerk is told)
    answered_on: str | None
    answer: str | None
    related: str | None = None  # `source:record_id;…` of the records tied to this finding
    owner: str | None = None  # the department that answers it: the steward's reassignment, else `source`

    @property
    def answerer(self) -> str:
        return self.owner or self.source


def known_findings(db: Path, ids: list[str]) -> dict[str, Known]:
    """The ledger's entries for these finding ids (unknown ids are absent)."""
    with closing(connect(db)) as conn:
        conn.execute("CREATE TEMP TABLE wanted (finding_id TEXT PRIMARY KEY)")
        conn.executemany("INSERT OR IGNORE INTO wanted VALUES (?)", [(i,) for i in ids])
        rows = conn.execute("SELECT f.finding_id, source, record_id, kind, status, uscc, name, "
                            "coalesce((SELECT a.run_date FROM audit a WHERE a.finding_id = f.finding_id AND "
                            "a.new_status = f.status ORDER BY a.id DESC LIMIT 1), substr(status_changed, 1, 10)), "
                            "answered_on, answer, related, coalesce(assigned_to, source) "
                            "FROM findings f JOIN wanted USING (finding_id)").fetchall()
    return {r[0]: Known(*r) for r in rows}


def pending_codes(db: Path, codes: list[str]) -> list[tuple[str, str, str, str | None]]:
    """Codes departments have already reported as corrections, awaiting the next extract.

    Returns (code, source, record_id, name) for each accepted correction to one of `codes`.
    """
    if not codes:
        return []
    with closing(connect(db)) as conn:
        return conn.execute("SELECT answer_code, source, record_id, name FROM findings WHERE status = 'responded' "
                            "AND answer_code IN (%s)" % ",".join("?" * len(codes)), codes).fetchall()


def handled_return(db: Path, source: str, sha256: str) -> dict | None:
    """The earlier processing of this exact file for this source, if any."""
    with closing(connect(db)) as conn:
        row = conn.execute("SELECT id, file_name, run_date, outcome, reason, archived_as, accepted, rejected, skipped "
                           "FROM return_files WHERE source = ? AND sha256 = ? AND outcome != 'duplicate' "
                           "ORDER BY id LIMIT 1", (source, sha256)).fetchone()
    keys = ("id", "file_name", "run_date", "outcome", "reason", "archived_as", "accepted", "rejected", "skipped")
    return dict(zip(keys, row)) if row else None


@dataclass(frozen=True)
class ReturnedFile:
    """One returned file as processed tonight: the receipt's header."""

    source: str
    sha256: str
    file_name: str
    outcome: str  # processed | rejected (file-level) | duplicate (same content seen before)
    reason: str | None
    archived_as: str | None


def apply_return(db: Path, run_date: str, returned: ReturnedFile, verdicts: pl.DataFrame) -> int:
    """Record one returned file and apply its accepted rows, in one transaction; return its id.

    Blank rows (`skipped`) are counted, not stored: a form of 10^5 rows with ten answers keeps ten rows.

    Args:
        verdicts: one row per form row (`checks.returns.VERDICT_SCHEMA`): the row's answer, `verdict`
            (accepted | rejected | skipped), `reason`, and `new_status` (None: the finding does not move).
    """
    now = _now()
    counts = {v: n for v, n in verdicts.group_by("verdict").len().rows()} if verdicts.height else {}
    with closing(connect(db)) as conn, _Transaction(conn):
        file_id = conn.execute(
            "INSERT INTO return_files (source, sha256, file_name, run_date, processed_at, outcome, reason, "
            "rows_total, accepted, rejected, skipped, archived_as) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (returned.source, returned.sha256, returned.file_name, run_date, now, returned.outcome, returned.reason,
             verdicts.height, counts.get("accepted", 0), counts.get("rejected", 0), counts.get("skipped", 0),
             returned.archived_as)).lastrowid
        conn.executemany(
            "INSERT INTO responses (return_file, row, finding_id, record_id, name, answer, corrected_code, note, "
            "verdict, reason) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [(file_id, *r) for r in verdicts.filter(pl.col("verdict") != "skipped").select(
                "row", "finding_id", "record_id", "name", "answer", "corrected_code", "note", "verdict", "reason",
            ).iter_rows()])
        actor = returned.source
        for v in verdicts.filter(pl.col("new_status").is_not_null() | pl.col("audit_note").is_not_null()) \
                .iter_rows(named=True):
            old = conn.execute("SELECT status FROM findings WHERE finding_id = ?", (v["finding_id"],)).fetchone()
            old = old[0] if old else None
            new = v["new_status"]
            if new is None:  # refused: logged, nothing moves
                _audit(conn, now, run_date, v["finding_id"] or "", old, old or "-", actor, v["audit_note"])
                continue
            if new == "rejected-response":
                conn.execute("UPDATE findings SET status = ?, status_changed = ?, rejection = ? WHERE finding_id = ?",
                             (new, now, v["reason"], v["finding_id"]))
            else:
                waived = new == "waived"
                conn.execute(
                    "UPDATE findings SET status = ?, status_changed = ?, answer = ?, answer_code = ?, answer_note = ?, "
                    "answered_on = ?, rejection = NULL, waived_record = CASE WHEN ? THEN "
                    "coalesce(uscc, '') || char(31) || coalesce(name, '') END WHERE finding_id = ?",
                    (new, now, v["answer"], v["corrected_code"] or None, v["note"] or None, run_date, waived,
                     v["finding_id"]))
            _audit(conn, now, run_date, v["finding_id"], old, new, actor,
                   f"{returned.file_name} 第 {v['row']} 行：{v['answer']}" + (f"；{v['reason']}" if v["reason"] else ""))
    return file_id


def return_counts_of_night(db: Path, run_date: str) -> list[dict]:
    """Each returned file processed on this run date, with its counts (no rows)."""
    with closing(connect(db)) as conn:
        rows = conn.execute("SELECT source, file_name, outcome, accepted, rejected, skipped FROM return_files "
                            "WHERE run_date = ? ORDER BY id", (run_date,)).fetchall()
    return [dict(zip(("source", "file_name", "outcome", "accepted", "rejected", "skipped"), r)) for r in rows]


def returns_of_night(db: Path, run_date: str) -> list[dict]:
    """Every returned file processed on this run date with its rows: what the receipts show."""
    with closing(connect(db)) as conn:
        files = conn.execute("SELECT id, source, sha256, file_name, processed_at, outcome, reason, rows_total, "
                             "accepted, rejected, skipped, archived_as FROM return_files WHERE run_date = ? "
                             "ORDER BY id", (run_date,)).fetchall()
        keys = ("id", "source", "sha256", "file_name", "processed_at", "outcome", "reason", "rows_total",
                "accepted", "rejected", "skipped", "archived_as")
        out = []
        for f in files:
            entry = dict(zip(keys, f))
            rows = conn.execute("SELECT row, finding_id, record_id, name, answer, corrected_code, note, verdict, "
                                "reason FROM responses WHERE return_file = ? ORDER BY row, id", (f[0],)).fetchall()
            entry["rows"] = [dict(zip(("row", "finding_id", "record_id", "name", "answer", "corrected_code", "note",
                                       "verdict", "reason"), r)) for r in rows]
            out.append(entry)
    return out


# --------------------------------------------------------------------------- reading

def _audit(conn, at, run_date, fid, old, new, actor, note) -> None:
    conn.execute("INSERT INTO audit (at, run_date, finding_id, old_status, new_status, actor, note) "
                 "VALUES (?,?,?,?,?,?,?)", (at, run_date, fid, old, new, actor, note))


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


class LedgerError(ValueError):
    """A steward's request the ledger can't carry out; the message says why (in Chinese)."""


def finding_detail(db: Path, finding_id: str) -> dict:
    """One finding as the ledger holds it, with its audit trail (`uscc ledger show`)."""
    with closing(connect(db)) as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM findings WHERE finding_id = ?", (finding_id,)).fetchone()
    if row is None:
        raise LedgerError(f"台账中没有问题编号 {finding_id}。")
    return {**dict(row), "audit": audit_log(db, finding_id)}


def steward_reopen(db: Path, finding_id: str, why: str) -> tuple[str, str]:
    """The steward puts a finding back to `open` (lifts a waiver, takes back 非本单位 or 已注销); audited."""
    if not why.strip():
        raise LedgerError("请用 --why 写明重新打开的原因（会记入审计日志）。")
    with closing(connect(db)) as conn, _Transaction(conn):
        row = conn.execute("SELECT status FROM findings WHERE finding_id = ?", (finding_id,)).fetchone()
        if row is None:
            raise LedgerError(f"台账中没有问题编号 {finding_id}。")
        old = row[0]
        if old not in ("responded", "waived", "rejected-response"):
            raise LedgerError(f"问题 {finding_id} 当前状态为 {old}，只有已反馈、确认无误或反馈未通过的问题可以重新打开。")
        run_date = conn.execute("SELECT MAX(run_date) FROM runs").fetchone()[0]
        conn.execute("UPDATE findings SET status = 'open', status_changed = ?, waived_record = NULL WHERE finding_id = ?",
                     (_now(), finding_id))
        _audit(conn, _now(), run_date, finding_id, old, "open", "steward", f"市信用办重新打开：{why.strip()}")
    return old, "open"


def steward_reassign(db: Path, finding_id: str, to_source: str, why: str, source_names: dict[str, str]) -> dict:
    """Hand a finding to another department (the usual follow-up of 非本单位); audited as the steward.

    The new department sees it on its next list and form and only it may answer; an answer that
    was waiting (responded) is set aside, the finding is open for the new owner.
    """
    if to_source not in source_names:
        raise LedgerError(f"没有来源“{to_source}”；已配置的来源：{'、'.join(source_names)}。")
    if not why.strip():
        raise LedgerError("请用 --why 写明改派的原因（如“经核实该律所由司法局登记”），会记入审计日志。")
    with closing(connect(db)) as conn, _Transaction(conn):
        row = conn.execute("SELECT status, coalesce(assigned_to, source) FROM findings WHERE finding_id = ?",
                           (finding_id,)).fetchone()
        if row is None:
            raise LedgerError(f"台账中没有问题编号 {finding_id}。")
        status, owner = row
        if status not in UNRESOLVED:
            raise LedgerError(f"问题 {finding_id} 当前状态为 {status}，已关闭的问题无需改派。")
        if owner == to_source:
            raise LedgerError(f"问题 {finding_id} 已由{source_names[to_source]}处理，无需改派。")
        now = _now()
        run_date = conn.execute("SELECT MAX(run_date) FROM runs").fetchone()[0]
        new = "open" if status == "responded" else status
        conn.execute("UPDATE findings SET assigned_to = ?, status = ?, status_changed = ? WHERE finding_id = ?",
                     (to_source, new, now, finding_id))
        conn.execute("INSERT INTO reassignments (finding_id, from_source, to_source, why, at) VALUES (?,?,?,?,?)",
                     (finding_id, owner, to_source, why.strip(), now))
        _audit(conn, now, run_date, finding_id, status, new, "steward",
               f"市信用办改派：由{source_names.get(owner, owner)}改为{source_names[to_source]}处理：{why.strip()}")
    return {"from": owner, "to": to_source, "old_status": status, "new_status": new}


def reassignments_of_night(db: Path, run_date: str) -> list[dict]:
    """The steward's reassignments that tonight's run took up (the overview lists them)."""
    keys = ("finding_id", "from_source", "to_source", "why", "at")
    with closing(connect(db)) as conn:
        rows = conn.execute(f"SELECT {', '.join(keys)} FROM reassignments WHERE run_date = ? ORDER BY id",
                            (run_date,)).fetchall()
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
    the steward) are left out.
    """
    with closing(connect(db)) as conn:
        conn.execute("BEGIN")  # one snapshot for both reads: a night committing meanwhile is not half in
        findings = conn.execute("SELECT finding_id, source, record_id, name, uscc, kind, severity, first_seen, "
                                "county FROM findings").fetchall()
        audit = conn.execute("SELECT a.id, a.run_date, a.finding_id, a.old_status, a.new_status, a.actor FROM audit a "
                             "JOIN findings f USING (finding_id) WHERE a.old_status IS NOT a.new_status "
                             "ORDER BY a.id").fetchall()
        conn.execute("COMMIT")
    return (pl.DataFrame(findings, schema=LIFECYCLE_FINDINGS, orient="row"),
            pl.DataFrame(audit, schema=LIFECYCLE_AUDIT, orient="row"))


def statuses(db: Path) -> dict[str, str]:
    """Every finding's current status (for tests and the steward's queries)."""
    with closing(connect(db)) as conn:
        return dict(conn.execute("SELECT finding_id, status FROM findings").fetchall())
