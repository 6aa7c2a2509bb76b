"""A ledger belongs to one data directory: another directory's night, pointed at it by $USCC_DATABASE or
`[state] database`, is refused before anything is written.

Before this, such a night ran: it took a date of the other city's timeline and wrote its trend, and held every
registry as not matching that ledger's accepted extracts, telling the steward to restore a backup or accept them
(accepted, the other city's findings would close as fixed).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from checks import ledger
from checks.ledger_home import DATA_DIR_ID, directory_id, ledger_id
from flows.params import ParameterError
from flows.stages import run_all
from tests.conftest import ROOT

NIGHT1, NIGHT2 = "2026-11-01", "2026-11-02"


def statuses(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT finding_id, status FROM findings ORDER BY 1").fetchall()


@pytest.fixture
def two_cities(tmp_path, monkeypatch):
    """Two data directories and one ledger outside both, as a worker's environment variable names it."""
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(ROOT / "sample_data", a)
    subprocess.run([sys.executable, "-m", "flows.cli", "synth", "--out", str(b), "--records", "3000", "--seed", "11"],
                   cwd=ROOT, check=True, capture_output=True)  # another city's registries
    db = tmp_path / "shared" / "steward.sqlite3"
    monkeypatch.setenv("USCC_DATABASE", str(db))
    return a, b, db


def test_another_data_directorys_night_on_a_ledger_is_refused_and_closes_nothing(two_cities):
    a, b, db = two_cities
    run_all(a, run_date=NIGHT1)
    before = statuses(db)
    assert ledger_id(db) == directory_id(a) is not None
    with pytest.raises(ParameterError, match="属于另一个数据目录") as refused:
        run_all(b, run_date=NIGHT2)
    assert "USCC_DATABASE" in str(refused.value) and "本次运行未做任何改动" in str(refused.value)
    assert statuses(db) == before and ledger.latest_run(db) == NIGHT1
    assert not (b / "reports").exists() and directory_id(b) is None
    run_all(a, run_date=NIGHT2)  # its own directory goes on
    assert ledger.latest_run(db) == NIGHT2


def test_a_ledger_from_before_ledgers_knew_their_directory_is_taken_only_by_its_own(two_cities, monkeypatch):
    # two cities on one schedule, each with its own ledger in state/, as an older version left them (no ids)
    a, b, shared = two_cities
    monkeypatch.delenv("USCC_DATABASE")
    for city in (a, b):
        run_all(city, run_date=NIGHT1)
        with sqlite3.connect(city / "state" / "steward.sqlite3") as conn:
            conn.execute("DELETE FROM home")
        (city / DATA_DIR_ID).unlink()
    theirs = a / "state" / "steward.sqlite3"
    before = statuses(theirs)
    monkeypatch.setenv("USCC_DATABASE", str(theirs))  # b's night pointed at a's ledger: both have reports/NIGHT1/
    with pytest.raises(ParameterError, match=f"reports/{NIGHT1}/summary.json 与台账记录的那一晚"):
        run_all(b, run_date=NIGHT2)
    assert statuses(theirs) == before and ledger_id(theirs) is None and directory_id(b) is None
    # a's ledger moved out of its directory and named by the variable: its report of NIGHT1 shows what it recorded
    shared.parent.mkdir()
    for suffix in ("", "-wal", "-shm"):  # the file with its write-ahead log, as an operator copies a ledger
        if Path(f"{theirs}{suffix}").exists():
            shutil.move(f"{theirs}{suffix}", f"{shared}{suffix}")
    monkeypatch.setenv("USCC_DATABASE", str(shared))
    run_all(a, run_date=NIGHT2)
    assert ledger_id(shared) == directory_id(a) is not None
    # b's own ledger, in its directory, is its own even when its report folders are gone (pruned, left behind)
    monkeypatch.delenv("USCC_DATABASE")
    shutil.rmtree(b / "reports")
    run_all(b, run_date=NIGHT2)
    assert ledger_id(b / "state" / "steward.sqlite3") == directory_id(b) is not None


def test_a_directory_that_lost_its_id_is_refused_with_the_id_that_lets_it_go_on(two_cities):
    a, _, db = two_cities
    run_all(a, run_date=NIGHT1)
    lost = (a / DATA_DIR_ID).read_text("utf-8").strip()
    (a / DATA_DIR_ID).unlink()
    with pytest.raises(ParameterError, match=f"把 {lost} 写入 {DATA_DIR_ID}"):
        run_all(a, run_date=NIGHT2)
    (a / DATA_DIR_ID).write_text(lost, "utf-8")
    run_all(a, run_date=NIGHT2)
    assert ledger.latest_run(db) == NIGHT2


def test_the_stewards_commands_and_the_month_report_refuse_another_directorys_ledger(two_cities):
    a, b, db = two_cities
    run_all(a, run_date=NIGHT1)
    (b / "state").mkdir(exist_ok=True)
    before = statuses(db)
    for command in (["ledger", "show", before[0][0]], ["extracts", "list"],
                    ["report", "month", "2026-11"]):
        done = subprocess.run([sys.executable, "-m", "flows.cli", *command, "--data-dir", str(b)], cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
        assert done.returncode == 2 and "属于另一个数据目录" in done.stderr, (command, done.stderr[-1500:])
    assert statuses(db) == before and not (b / "reports").exists()
    nowhere = subprocess.run([sys.executable, "-m", "flows.cli", "ledger", "show", before[0][0], "--data-dir",
                              str(b / "no-such-dir")], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                             capture_output=True, text=True)  # the variable alone names no directory
    assert nowhere.returncode == 2 and "不存在：请用 --data-dir 指定台账所属的数据目录" in nowhere.stderr, nowhere.stderr


def test_an_id_file_saved_by_a_text_editor_with_a_bom_and_a_line_break_is_the_same_id(two_cities):
    a, _, db = two_cities
    run_all(a, run_date=NIGHT1)
    (a / DATA_DIR_ID).write_bytes(b"\xef\xbb\xbf" + ledger_id(db).encode() + b"\r\n")
    run_all(a, run_date=NIGHT2)
    assert ledger.latest_run(db) == NIGHT2
