"""The road to zero: statuses move with the data, reruns change nothing, every change is audited."""

import polars as pl

from checks import ledger
from checks.detect import FINDING_SCHEMA


def findings(*ids, severity="error"):
    rows = [{c: None for c in FINDING_SCHEMA} | {"finding_id": i, "source": "market", "record_id": i, "kind":
             "bad_check_char", "severity": severity, "status": "open"} for i in ids]
    return pl.DataFrame(rows, schema=FINDING_SCHEMA)


def test_lifecycle_open_fixed_reopened(tmp_path):
    db = tmp_path / "state.sqlite3"
    first = ledger.record_run(db, "2026-11-01", findings("a", "b"))
    assert first["new"] == 2 and set(first["status"].values()) == {"open"}
    second = ledger.record_run(db, "2026-11-02", findings("b"))
    assert second["fixed"] == 1
    third = ledger.record_run(db, "2026-11-03", findings("a", "b"))
    assert third["reopened"] == 1 and third["status"]["a"] == "reopened"
    assert [h["open"] for h in ledger.history(db)] == [2, 1, 2]
    notes = [(e["finding_id"], e["old_status"], e["new_status"]) for e in ledger.audit_log(db, "a")]
    assert notes == [("a", None, "open"), ("a", "open", "fixed"), ("a", "fixed", "reopened")]


def test_rerunning_the_same_night_changes_nothing(tmp_path):
    db = tmp_path / "state.sqlite3"
    ledger.record_run(db, "2026-11-01", findings("a", "b"))
    before = ledger.audit_log(db)
    again = ledger.record_run(db, "2026-11-01", findings("a", "b"))
    assert (again["new"], again["fixed"], again["reopened"]) == (0, 0, 0)
    assert ledger.audit_log(db) == before
    assert len(ledger.history(db)) == 1


def test_rerunning_an_older_night_does_not_move_statuses_backwards(tmp_path):
    db = tmp_path / "state.sqlite3"
    ledger.record_run(db, "2026-11-01", findings("a"))
    ledger.record_run(db, "2026-11-02", findings())
    old = ledger.record_run(db, "2026-11-01", findings("a"))
    assert old["historical"] and old["status"]["a"] == "fixed"


def test_info_notes_do_not_count_toward_the_open_total(tmp_path):
    db = tmp_path / "state.sqlite3"
    result = ledger.record_run(db, "2026-11-01", pl.concat([findings("a"), findings("f", severity="info")]))
    assert ledger.history(db)[0]["open"] == 1 == result["open"]
