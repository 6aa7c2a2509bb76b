"""Which data directory a ledger belongs to.

The ledger is found through `[state] database` or $USCC_DATABASE, which may name a file outside the data
directory. Set for one city's directory while another's runs (an environment variable of a worker that runs
two), a night ran on the other city's ledger: it took a date of that ledger's timeline and wrote its trend and
audit log, every registry was held as not matching the ledger's last accepted extract (a steward told to
restore a backup or accept the extract), and once accepted, every finding of the ledger's own registries missing
from these extracts would close as fixed. So a ledger and its data directory carry one id: `state/data-dir.id`
in the directory, the `home` table in the ledger. A night whose two ids differ, or whose directory has none
while the ledger has one, is refused before anything is written (`flows.params.check_ledger`); the night binds
them, under its lock, where either is missing (`bind`).

A ledger written before ledgers knew their directory has no id: it is taken by the directory holding the report
folder of its newest completed night, and refused elsewhere.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from contextlib import closing
from pathlib import Path

from checks.ledger_schema import connect, connect_read_only

#: The data directory's id, beside the default ledger.
DATA_DIR_ID = "state/data-dir.id"


def ledger_id(db: Path) -> str | None:
    """The id of the data directory the ledger belongs to; None when it has none yet. Read only."""
    with closing(connect_read_only(db)) as conn:
        try:
            row = conn.execute("SELECT id FROM home LIMIT 1").fetchone()
        except sqlite3.OperationalError:  # a ledger of an older version: no such table until it is upgraded
            return None
    return row[0] if row else None


def directory_id(data_dir: Path) -> str | None:
    """The data directory's id (`DATA_DIR_ID`); None when it has none yet."""
    path = Path(data_dir) / DATA_DIR_ID
    if not path.is_file() or path.is_symlink():
        return None
    return path.read_text("utf-8").strip() or None


def newest_completed_night(db: Path) -> str | None:
    """The newest night that completed on this ledger (its report folder published); None before the first (an
    empty file has no tables). Read only."""
    with closing(connect_read_only(db)) as conn:
        try:
            return conn.execute("SELECT MAX(run_date) FROM runs WHERE finished_at IS NOT NULL").fetchone()[0]
        except sqlite3.OperationalError:
            return None


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


__all__ = ["DATA_DIR_ID", "ledger_id", "directory_id", "newest_completed_night", "bind"]
