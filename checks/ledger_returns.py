"""The ledger's side of the returned forms: what a returned row is judged against, and applying a file.

`checks.returns` judges each row (pure); `apply_return` records the file and its rows and moves the
findings its accepted rows answer, in one transaction per file. The receipts are rendered from
`returns_of_night`, so rerunning a night rewrites the same receipts.
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from checks.ledger_schema import PENDING_NIGHT, _audit, _now, _Transaction, connect, connect_read_only


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
                            "coalesce((SELECT nullif(a.run_date, ?) FROM audit a WHERE a.finding_id = f.finding_id AND "
                            "a.new_status = f.status ORDER BY a.id DESC LIMIT 1), substr(status_changed, 1, 10)), "
                            "answered_on, answer, related, coalesce(assigned_to, source) "
                            "FROM findings f JOIN wanted USING (finding_id)", (PENDING_NIGHT,)).fetchall()
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


def known_return_prefixes(db: Path) -> set[tuple[str, str]]:
    """(source, first 12 characters of the hash) of every returned file the ledger has handled; read only."""
    with closing(connect_read_only(db)) as conn:
        return set(conn.execute("SELECT DISTINCT source, substr(sha256, 1, 12) FROM return_files").fetchall())


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
