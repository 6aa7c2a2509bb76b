"""The ledger's file: its schema and upgrades, the lifecycle's statuses, connections and transactions.

The schema is versioned (`PRAGMA user_version`); `MIGRATIONS` upgrades an
older file in place, one transaction per version. The statuses a finding moves
through (docs/correction-loop.md#returned-files) are named here once; the nightly update, the returned forms,
the month's replay and the reports read them from here (via `checks.ledger`).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from pathlib import Path

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
    # 6: findings that leave the road to zero without a fix — the finding a successor carries on (a record
    # that left its registry while the same problem appeared on another record of the same code), and the
    # steward's withdrawal of a source no longer configured
    """
    ALTER TABLE findings ADD COLUMN succeeds TEXT;
    CREATE INDEX IF NOT EXISTS findings_succeeds ON findings(succeeds);
    CREATE TABLE IF NOT EXISTS withdrawn_sources (
        source TEXT PRIMARY KEY,
        why TEXT NOT NULL,
        at TEXT NOT NULL,
        findings INTEGER NOT NULL
    );
    """,
    # the data directory the ledger belongs to (`checks.ledger_home`): one row
    """
    CREATE TABLE IF NOT EXISTS home (id TEXT NOT NULL);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

#: Statuses that still need work (counted on the road to zero).
UNRESOLVED = ("open", "reopened", "responded", "rejected-response")
CLOSED = ("fixed", "waived")
#: Statuses of a finding no longer tracked, though never fixed or waived: its record left the registry while
#: the same problem appeared on another record of the same code (`superseded`: the finding that `succeeds` it
#: carries on, with its first-seen day and due date), or the steward withdrew it because its registry is no
#: longer configured (`withdrawn`). Neither is on the road to zero, and neither is a fix.
SUPERSEDED, WITHDRAWN = RETIRED = ("superseded", "withdrawn")
#: The `run_date` of the audit rows of a steward's action until the next night takes them up (`record_run`):
#: the change holds in the ledger at once, and is counted from that night on — dated by the night, a change
#: never lands in a month already reported, nor before a night that runs after it.
PENDING_NIGHT = "pending"
#: Statuses a department may answer: still to do, and not waiting on an answer already given
#: (docs/correction-loop.md#judging-a-returned-row).
ANSWERABLE = ("open", "reopened", "rejected-response")
#: Days from first seen to due, by severity, when the configuration says nothing (`[due]`).
DEFAULT_DUE_DAYS = {"error": 30, "warning": 60, "info": 90}
#: Statuses whose due date runs (a `responded` answer waits for the next extract: its clock is stopped).
CLOCK_RUNS = ("open", "reopened", "rejected-response")


#: Page cache of a connection, for the ledger and its temporary tables each (KiB; pages are taken as needed).
CACHE_KIB = 256 * 1024


#: Seconds a connection waits for another holding the ledger's write lock (SQLite's default is 5).
LOCKED_WAIT = 120.0


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating or upgrading) the ledger."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # explicit BEGIN/COMMIT below; another writer (a steward's command, a backup) is waited for up to 2 minutes
    conn = sqlite3.connect(path, isolation_level=None, timeout=LOCKED_WAIT)
    _use_wal(conn)
    conn.execute("PRAGMA foreign_keys=ON")
    # a night touches every finding: with SQLite's default 2 MB page cache the indexes are read again and again
    conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    conn.execute(f"PRAGMA temp.cache_size = -{CACHE_KIB}")
    conn.create_function("mask_ids", 1, mask_personal_ids, deterministic=True)
    migrate(conn)
    return conn


def _use_wal(conn: sqlite3.Connection, wait: float = 30.0) -> None:
    """Put the file in WAL mode. Switching needs the file to itself, and SQLite answers `database is locked` at
    once, without waiting, when another connection opens the new file at the same moment (the first night's
    parallel ingest tasks): try again for up to `wait` seconds."""
    deadline = time.monotonic() + wait
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def connect_read_only(path: Path) -> sqlite3.Connection:
    """Open an existing ledger to look only: nothing is created, upgraded or locked for long (checks before a
    night writes anything). The path is percent-quoted into the URI: spelled out, a `?`, `#` or `%20` in a
    data directory's name ended or changed it, and SQLite opened (and created) another file."""
    return sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True, timeout=30)


def unreadable(path: Path) -> str | None:
    """Why an existing ledger file cannot be used (a sentence in Chinese), or None. Read only: nothing is
    created, upgraded or locked for long. SQLite's `quick_check` reads every page (0.2 s for a city's first
    night, seconds for a province's months): a page damaged in the middle is found before the night writes."""
    try:
        conn = connect_read_only(path)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            verdict = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        verdict = str(exc)
    if verdict != "ok":
        return (f"台账文件 {path} 无法读取或已损坏（{verdict}），可能是磁盘故障或复制不完整。本次运行未做任何改动。"
                "请运维人员从备份恢复该文件后重跑；不要删除它重新开始，否则全部处理记录和清零进度都会丢失。")
    if version > SCHEMA_VERSION:
        return (f"台账文件 {path} 由更新版本的程序写入（结构版本 {version}，本程序为 {SCHEMA_VERSION}）。"
                "本次运行未做任何改动；请使用相同或更新版本的程序运行。")
    return None


def holds_no_night(path: Path) -> bool:
    """The ledger file has not recorded a single night (a new or an emptied file: a 0-byte file is an empty
    database to SQLite)."""
    conn = connect_read_only(path)
    try:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'runs'").fetchone():
            return True
        return conn.execute("SELECT 1 FROM runs LIMIT 1").fetchone() is None
    finally:
        conn.close()


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


def _audit(conn, at, run_date, fid, old, new, actor, note) -> None:
    conn.execute("INSERT INTO audit (at, run_date, finding_id, old_status, new_status, actor, note) "
                 "VALUES (?,?,?,?,?,?,?)", (at, run_date, fid, old, new, actor, note))


class LedgerError(ValueError):
    """A steward's request the ledger can't carry out; the message says why (in Chinese)."""
