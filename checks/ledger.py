"""The findings ledger: lifecycle of every finding across nightly runs (SPEC §6).

SQLite by default (`DATA_DIR/state/steward.sqlite3`). Tables:
    runs      one row per run date: counts, summary JSON
    findings  one row per finding id: status, first/last seen
    audit     every status change, with run, actor and note

Statuses: open → responded → fixed | rejected-response | waived; a fixed
finding that comes back is reopened. Rerunning the same night changes
nothing that did not change in the data; rerunning an older night only
rewrites that night's counts (statuses move forward in time only).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from contextlib import closing
from pathlib import Path

import polars as pl

SCHEMA = """
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
"""

#: Statuses that still need work (counted on the road to zero).
UNRESOLVED = ("open", "reopened", "responded", "rejected-response")
CLOSED = ("fixed", "waived")


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.executescript(SCHEMA)
    return conn


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def record_run(db: Path, run_date: str, findings: pl.DataFrame, actor: str = "nightly") -> dict:
    """Bring the ledger up to tonight's findings; return the findings' statuses and tonight's changes.

    Returns:
        {"status": {finding_id: status}, "new": int, "fixed": int, "reopened": int, "historical": bool,
         "open": int (unresolved errors and warnings: the road-to-zero count)}
    """
    with closing(connect(db)) as conn, conn:
        latest = conn.execute("SELECT MAX(run_date) FROM runs").fetchone()[0]
        historical = latest is not None and run_date < latest
        known = dict(conn.execute("SELECT finding_id, status FROM findings").fetchall())
        tonight = findings.select("finding_id", "source", "record_id", "kind", "severity").rows()
        now = _now()
        changes = {"new": 0, "fixed": 0, "reopened": 0}
        statuses: dict[str, str] = {}
        seen = set()
        for fid, source, record_id, kind, severity in tonight:
            seen.add(fid)
            old = known.get(fid)
            if historical:
                statuses[fid] = old or "open"
                continue
            if old is None:
                conn.execute("INSERT INTO findings VALUES (?,?,?,?,?,?,?,?,?)",
                             (fid, source, record_id, kind, severity, "open", run_date, run_date, now))
                _audit(conn, run_date, fid, None, "open", actor, "首次发现")
                changes["new"] += 1
                statuses[fid] = "open"
                continue
            status = old
            if status == "fixed":
                status = "reopened"
                _audit(conn, run_date, fid, "fixed", status, actor, "已更正的问题再次出现")
                changes["reopened"] += 1
            conn.execute("UPDATE findings SET status=?, last_seen=?, severity=?, status_changed="
                         "CASE WHEN status=? THEN status_changed ELSE ? END WHERE finding_id=?",
                         (status, run_date, severity, status, now, fid))
            statuses[fid] = status
        if not historical:
            gone = [fid for fid, status in known.items() if status in UNRESOLVED and fid not in seen]
            for fid in gone:
                conn.execute("UPDATE findings SET status='fixed', status_changed=? WHERE finding_id=?", (now, fid))
                _audit(conn, run_date, fid, known[fid], "fixed", actor, "本期数据中已不存在该问题")
            changes["fixed"] = len(gone)
        severity = {fid: sev for fid, _, _, _, sev in tonight}
        open_count = sum(1 for fid in seen if statuses[fid] in UNRESOLVED and severity[fid] != "info")
        counts = findings.with_columns(status=pl.col("finding_id").replace_strict(statuses, default="open")) \
            .filter(pl.col("status").is_in(UNRESOLVED)).group_by("source", "severity").len().rows()
        conn.execute("INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?)",
                     (run_date, now, None, open_count, json.dumps({f"{s}|{v}": n for s, v, n in counts})))
    return {"status": statuses, **changes, "historical": historical, "open": open_count}


def finish_run(db: Path, run_date: str) -> None:
    with closing(connect(db)) as conn, conn:
        conn.execute("UPDATE runs SET finished_at=? WHERE run_date=?", (_now(), run_date))


def _audit(conn, run_date, fid, old, new, actor, note) -> None:
    conn.execute("INSERT INTO audit (at, run_date, finding_id, old_status, new_status, actor, note) "
                 "VALUES (?,?,?,?,?,?,?)", (_now(), run_date, fid, old, new, actor, note))


def history(db: Path, limit: int = 90) -> list[dict]:
    """Unresolved errors and warnings per past run, oldest first: the road to zero."""
    with closing(connect(db)) as conn:
        rows = conn.execute("SELECT run_date, open_count, counts_json FROM runs ORDER BY run_date DESC LIMIT ?",
                            (limit,)).fetchall()
    return [{"run_date": d, "open": n, "counts": json.loads(c)} for d, n, c in reversed(rows)]


def audit_log(db: Path, finding_id: str | None = None) -> list[dict]:
    with closing(connect(db)) as conn:
        query = "SELECT at, run_date, finding_id, old_status, new_status, actor, note FROM audit"
        rows = conn.execute(query + (" WHERE finding_id=?" if finding_id else "") + " ORDER BY id",
                            (finding_id,) if finding_id else ()).fetchall()
    keys = ("at", "run_date", "finding_id", "old_status", "new_status", "actor", "note")
    return [dict(zip(keys, r)) for r in rows]
