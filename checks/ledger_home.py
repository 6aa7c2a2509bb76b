"""Which data directory a ledger belongs to.

The ledger is found through `[state] database` or $USCC_DATABASE, which may name a file outside the data
directory. Set for one city's directory while another's runs (an environment variable of a worker that runs
two), a night ran on the other city's ledger: every finding of that ledger missing from this directory's
extracts closed as fixed (a directory with no history of its own had its registries held first, the steward
told to restore a backup or accept them, which closed them the same way). So a ledger and its data directory
carry one id: `state/data-dir.id` in the directory, the `home` table in the ledger. A night whose two ids differ, or whose directory has none
while the ledger has one, is refused before anything is written (`flows.params.check_ledger`); the night binds
them, under its lock, where either is missing (`bind`).

A ledger written before ledgers knew their directory has no id. It is the directory's own when it lies inside
the directory (the default `state/steward.sqlite3`), or when the directory's report of the ledger's newest
completed night shows what the ledger recorded for it (each registry's file and rows read, the open count:
`matches_newest_night`); any other directory is refused. Two cities on one schedule both have a report folder of
that night, so the folder alone told them apart from nothing.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from contextlib import closing
from pathlib import Path

from checks.catalog import REPORTS
from checks.ledger_schema import connect, connect_read_only

#: The data directory's id, beside the default ledger.
DATA_DIR_ID = "state/data-dir.id"


def _value(db: Path, sql: str) -> str | None:
    """The first column of the query's first row, read only; None without a row, or when the ledger has no such
    table yet (an older version's ledger, an emptied file). Any other error is raised."""
    with closing(connect_read_only(db)) as conn:
        try:
            row = conn.execute(sql).fetchone()
        except sqlite3.OperationalError as exc:
            if not str(exc).startswith("no such table"):
                raise
            return None
    return row[0] if row else None


def ledger_id(db: Path) -> str | None:
    """The id of the data directory the ledger belongs to; None when it has none yet. Read only."""
    return _value(db, "SELECT id FROM home LIMIT 1")


def directory_id(data_dir: Path) -> str | None:
    """The data directory's id (`DATA_DIR_ID`); None when it has none yet."""
    path = Path(data_dir) / DATA_DIR_ID
    if not path.is_file() or path.is_symlink():
        return None
    # as a text editor may save it: a BOM, a line break, spaces
    return path.read_text("utf-8").replace("\ufeff", "").strip() or None


def newest_completed_night(db: Path) -> str | None:
    """The newest night that completed on this ledger (its report folder published); None before the first (an
    empty file has no tables). Read only."""
    return _value(db, "SELECT MAX(run_date) FROM runs WHERE finished_at IS NOT NULL")


def inside(db: Path, data_dir: Path) -> bool:
    """Whether the ledger file lies inside the data directory."""
    return Path(db).resolve().is_relative_to(Path(data_dir).resolve())


def matches_newest_night(db: Path, data_dir: Path, night: str) -> bool:
    """Whether the directory's report of `night` (`summary.json`) shows what the ledger recorded for that night:
    each registry's file and rows read, and the open count. Read only."""
    try:
        summary = json.loads((Path(data_dir) / REPORTS / night / "summary.json").read_text("utf-8"))
        shown, open_count = summary["sources"], summary["open"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    with closing(connect_read_only(db)) as conn:
        extracts = conn.execute("SELECT source, file, rows_read FROM extracts WHERE run_date = ?", (night,)).fetchall()
        recorded = conn.execute("SELECT open_count FROM runs WHERE run_date = ?", (night,)).fetchone()
    return (bool(extracts) and recorded is not None and recorded[0] == open_count and isinstance(shown, dict)
            and all(isinstance(shown.get(s), dict) and (shown[s].get("file"), shown[s].get("rows_read")) == (f, n)
                    for s, f, n in extracts))


def bind(db: Path, data_dir: Path) -> None:
    """Give the directory and the ledger the same id where either has none (the directory's when it has one).
    Called holding the night's lock, after `flows.params.check_ledger` found nothing against it."""
    path = Path(data_dir) / DATA_DIR_ID
    mine = directory_id(data_dir)
    if mine is None:
        mine = uuid.uuid4().hex
        path.parent.mkdir(parents=True, exist_ok=True)
        staged = path.with_name(f".{path.name}.tmp")
        staged.write_text(mine + "\n", "utf-8")
        os.replace(staged, path)
    with closing(connect(db)) as conn:
        conn.execute("BEGIN IMMEDIATE")
        if conn.execute("SELECT 1 FROM home").fetchone() is None:
            conn.execute("INSERT INTO home (id) VALUES (?)", (mine,))
        conn.execute("COMMIT")


__all__ = ["DATA_DIR_ID", "ledger_id", "directory_id", "newest_completed_night", "inside", "matches_newest_night",
           "bind"]
