"""The road to zero: statuses move with the data, reruns change nothing, every change is audited."""

import sqlite3

import polars as pl
import pytest

from checks import ledger, ledger_night, month
from checks.findings import FINDING_SCHEMA


def findings(*ids, severity="error", source="market", name="鹤岗市某某商贸有限公司"):
    rows = [{c: None for c in FINDING_SCHEMA} | {"finding_id": i, "source": source, "record_id": f"R-{i}", "kind":
             "bad_check_char", "severity": severity, "status": "open", "uscc": f"CODE-{i}", "name": name}
            for i in ids]
    return pl.DataFrame(rows, schema=FINDING_SCHEMA)


def status_of(result) -> dict:
    return dict(result["statuses"].select("finding_id", "status").rows())


def tonight(*records, sources=("market",)):
    """Tonight's extract: (record_id, code, checked) of source market."""
    frame = pl.DataFrame([{"source": "market", "record_id": r, "code": c, "checked": ok} for r, c, ok in records],
                         schema={"source": pl.String, "record_id": pl.String, "code": pl.String, "checked": pl.Boolean})
    return ledger.Tonight(frozenset(sources), frame)


def night(db, run_date, frame, tonight_=None):
    """A night that completed: the ledger update, then the mark that puts it on the timeline."""
    result = ledger.record_run(db, run_date, frame, tonight_)
    ledger.finish_run(db, run_date)
    return result


def answer(db, fid, answer_text, status, code=None, note=None, run_date="2026-11-01"):
    verdicts = pl.DataFrame([{"row": 2, "finding_id": fid, "record_id": f"R-{fid}", "name": None,
                              "answer": answer_text, "corrected_code": code, "note": note, "verdict": "accepted",
                              "reason": "已受理", "new_status": status, "audit_note": None}])
    returned = ledger.ReturnedFile("market", "f" * 64, "form.csv", "processed", None, None)
    ledger.apply_return(db, run_date, returned, verdicts)


def test_lifecycle_open_fixed_reopened(tmp_path):
    db = tmp_path / "state.sqlite3"
    first = night(db, "2026-11-01", findings("a", "b"))
    assert first["new"] == 2 and set(status_of(first).values()) == {"open"}
    second = night(db, "2026-11-02", findings("b"))
    assert second["fixed"] == 1
    third = night(db, "2026-11-03", findings("a", "b"))
    assert third["reopened"] == 1 and status_of(third)["a"] == "reopened"
    assert [h["open"] for h in ledger.history(db)] == [2, 1, 2]
    notes = [(e["finding_id"], e["old_status"], e["new_status"]) for e in ledger.audit_log(db, "a")]
    assert notes == [("a", None, "open"), ("a", "open", "fixed"), ("a", "fixed", "reopened")]


def test_the_night_audits_its_moves_in_the_order_of_tonights_findings(tmp_path):
    db = tmp_path / "state.sqlite3"
    night(db, "2026-11-01", findings("a", "b", "c"))
    night(db, "2026-11-02", findings())
    night(db, "2026-11-03", findings("c", "a", "b"))
    with sqlite3.connect(db) as conn:
        moved = [f for (f,) in conn.execute("SELECT finding_id FROM audit WHERE new_status = 'reopened' ORDER BY id")]
    assert moved == ["c", "a", "b"]


def test_rerunning_the_same_night_changes_nothing(tmp_path):
    db = tmp_path / "state.sqlite3"
    first = night(db, "2026-11-01", findings("a", "b"))
    before = ledger.audit_log(db)
    again = night(db, "2026-11-01", findings("a", "b"))
    assert (again["new"], again["fixed"], again["reopened"]) == (first["new"], 0, 0) == (2, 0, 0)  # the night's
    assert ledger.audit_log(db) == before
    assert len(ledger.history(db)) == 1


def test_rerunning_an_older_night_does_not_move_statuses_backwards(tmp_path):
    db = tmp_path / "state.sqlite3"
    ledger.record_run(db, "2026-11-01", findings("a"))
    ledger.record_run(db, "2026-11-02", findings())
    old = ledger.record_run(db, "2026-11-01", findings("a"))
    assert old["historical"] and status_of(old)["a"] == "fixed"


def test_info_notes_do_not_count_toward_the_open_total(tmp_path):
    db = tmp_path / "state.sqlite3"
    result = night(db, "2026-11-01", pl.concat([findings("a"), findings("f", severity="info")]))
    assert ledger.history(db)[0]["open"] == 1 == result["open"]


def test_a_source_whose_extract_was_rejected_keeps_its_findings_open(tmp_path):
    db = tmp_path / "state.sqlite3"
    ledger.record_run(db, "2026-11-01", findings("a"))
    result = ledger.record_run(db, "2026-11-02", findings(), tonight(sources=()))
    assert result["fixed"] == 0 and ledger.statuses(db)["a"] == "open"


def test_a_quarantined_record_keeps_its_findings_open(tmp_path):
    db = tmp_path / "state.sqlite3"
    ledger.record_run(db, "2026-11-01", findings("a"))
    result = ledger.record_run(db, "2026-11-02", findings(), tonight(("R-a", None, False)))
    assert result["fixed"] == 0 and ledger.statuses(db)["a"] == "open"


def test_why_a_finding_closed_is_in_the_audit_log(tmp_path):
    db = tmp_path / "state.sqlite3"
    ledger.record_run(db, "2026-11-01", findings("a", "b", "c", "d"))
    answer(db, "c", "已注销", "responded")
    ledger.record_run(db, "2026-11-02", findings(), tonight(
        ("R-a", "CODE-A-NEW", True),     # record still there, problem gone
        ("R-other", "CODED", True),      # d's record is gone; its code stays on another record, without d's problem
    ))
    closed = {e["finding_id"]: e["note"] for e in ledger.audit_log(db) if e["new_status"] == "fixed"}
    assert closed == {"a": ledger.GONE_NOTES["problem_gone"], "b": ledger.GONE_NOTES["record_and_code_gone"],
                      "c": ledger.GONE_NOTES["cancelled"], "d": ledger.GONE_NOTES["record_gone"]}


def test_a_deleted_duplicate_copy_closes_its_finding_while_the_kept_copy_holds_the_code(tmp_path):
    db = tmp_path / "state.sqlite3"
    copy = findings("copy").with_columns(kind=pl.lit("duplicate_record"), uscc=pl.lit("CODE-K"),
                                         related=pl.lit("market:R-kept"))
    night(db, "2026-11-01", copy, tonight(("R-copy", "CODE-K", True), ("R-kept", "CODE-K", True)))
    result = night(db, "2026-11-02", findings(), tonight(("R-kept", "CODE-K", True)))
    assert ledger.statuses(db)["copy"] == "fixed" and result["open"] == 0 and result["fixed"] == 1


def renumbered(run_date, *pairs, kind="bad_check_char"):
    """Tonight's findings of records renumbered: (finding id, record id, code)."""
    return findings(*[f for f, _, _ in pairs]).with_columns(
        record_id=pl.Series([r for _, r, _ in pairs]), uscc=pl.Series([c for _, _, c in pairs]), kind=pl.lit(kind))


def test_a_renumbered_record_carries_its_finding_on_without_a_fix_or_a_new_problem(tmp_path):
    db = tmp_path / "state.sqlite3"
    night(db, "2026-11-01", renumbered("2026-11-01", ("old", "R-1", "CODE-X")), tonight(("R-1", "CODE-X", True)))
    result = night(db, "2026-11-20", renumbered("2026-11-20", ("new", "R-1-NEW", "CODE-X")),
                   tonight(("R-1-NEW", "CODE-X", True)))
    assert (result["new"], result["fixed"], result["carried"], result["open"]) == (0, 0, 1, 1)
    assert ledger.statuses(db) == {"old": "superseded", "new": "open"}
    new = ledger.finding_detail(db, "new")
    # the successor keeps the original clock: a renumbering does not give a department thirty more days
    assert (new["first_seen"], new["due_date"], new["succeeds"]) == ("2026-11-01", "2026-12-01", "old")
    assert ledger.finding_detail(db, "old")["succeeded_by"] == "new"
    # the month sees one finding, first seen on the 1st, still open, neither new twice nor fixed
    progress, overdue = month.progress(*ledger.lifecycle(db), "2026-11")
    city = progress.filter(pl.col("level") == "city").row(0, named=True)
    assert (city["new"], city["fixed"], city["withdrawn"], city["open_end"]) == (1, 0, 0, 1)


def test_a_record_that_left_without_a_successor_does_not_hand_its_finding_to_an_unrelated_old_one(tmp_path):
    db = tmp_path / "state.sqlite3"
    night(db, "2026-11-01", renumbered("2026-11-01", ("x", "R-x", "CODE-X"), ("y", "R-y", "CODE-X")),
          tonight(("R-x", "CODE-X", True), ("R-y", "CODE-X", True)))
    result = night(db, "2026-11-02", renumbered("2026-11-02", ("y", "R-y", "CODE-X")), tonight(("R-y", "CODE-X", True)))
    assert ledger.statuses(db) == {"x": "fixed", "y": "open"} and result["carried"] == 0


def test_unresolved_findings_on_no_list_still_count_and_say_why(tmp_path):
    db = tmp_path / "state.sqlite3"
    night(db, "2026-11-01", findings("q", "r"), tonight(("R-q", "CODE-q", True), ("R-r", "CODE-r", True)))
    # R-q quarantined tonight (its row could not be checked): its finding is on no list, yet still to do
    result = night(db, "2026-11-02", findings("r"), tonight(("R-q", None, False), ("R-r", "CODE-r", True)))
    assert result["open"] == 2 and ledger.statuses(db)["q"] == "open"
    assert result["off_list"].select("finding_id", "reason").rows() == [("q", "quarantined")]
    assert ledger.history(db)[-1]["open"] == 2


def test_a_registry_removed_from_the_configuration_counts_until_the_steward_withdraws_it(tmp_path):
    db = tmp_path / "state.sqlite3"
    night(db, "2026-11-01", pl.concat([findings("m"), findings("c", source="civil")]),
          ledger.Tonight(frozenset({"market", "civil"}), tonight(("R-m", "CODE-m", True)).records))
    verdict = ledger.Extract("market", "ok")
    removed = ledger.Tonight(frozenset({"market"}), tonight(("R-m", "CODE-m", True)).records, (verdict,))
    result = night(db, "2026-11-02", findings("m"), removed)
    assert result["open"] == 2 and result["off_list"]["reason"].to_list() == ["unconfigured"]
    with pytest.raises(ledger.LedgerError, match="仍在配置中"):
        ledger.steward_withdraw(db, "market", "合并", {"market"})
    assert ledger.steward_withdraw(db, "civil", "民政局系统并入省平台", {"market"}) == \
        {"findings": 1, "counted": 1}
    result = night(db, "2026-11-03", findings("m"), removed)
    assert result["open"] == 1 and result["off_list"].height == 0
    progress, _ = month.progress(*ledger.lifecycle(db), "2026-11")
    city = progress.filter(pl.col("level") == "city").row(0, named=True)
    assert (city["new"], city["withdrawn"], city["open_end"]) == (2, 1, 1)
    assert ledger.audit_log(db, "c")[-1]["actor"] == "steward"


def test_a_waived_finding_stays_waived_while_the_record_is_unchanged(tmp_path):
    db = tmp_path / "state.sqlite3"
    ledger.record_run(db, "2026-11-01", findings("a"))
    answer(db, "a", "确认无误", "waived", note="已核对营业执照原件")
    second = ledger.record_run(db, "2026-11-02", findings("a"))
    assert status_of(second)["a"] == "waived" and second["open"] == 0
    renamed = ledger.record_run(db, "2026-11-03", findings("a", name="鹤岗市另一家商贸有限公司"))
    assert status_of(renamed)["a"] == "open" and renamed["open"] == 1
    assert ledger.audit_log(db, "a")[-1]["note"] == "确认无误后记录（代码或名称）已变化，重新判定"


def test_a_claimed_fix_the_next_extract_does_not_show_goes_back_to_open(tmp_path):
    db = tmp_path / "state.sqlite3"
    ledger.record_run(db, "2026-11-01", findings("a", "b"))
    answer(db, "a", "已更正", "responded", code="91230402MA1B2C3D4E", run_date="2026-11-02")
    answer(db, "b", "已更正", "responded", code="91230402MA1B2C3D4E", run_date="2026-11-02")
    same_night = ledger.record_run(db, "2026-11-02", findings("a", "b"))
    assert status_of(same_night) == {"a": "responded", "b": "responded"}
    assert "更正后代码 91230402MA1B2C3D4E" in same_night["statuses"].filter(pl.col("finding_id") == "a")["response"][0]
    next_night = ledger.record_run(db, "2026-11-03", findings("a"))
    assert status_of(next_night) == {"a": "open"}
    assert ledger.statuses(db)["b"] == "fixed"


def test_an_older_ledger_file_is_upgraded_in_place(tmp_path):
    db = tmp_path / "state.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.executescript(ledger.MIGRATIONS[0])
        conn.execute("INSERT INTO findings VALUES ('a','market','R-a','bad_check_char','error','open',"
                     "'2026-10-01','2026-10-01','2026-10-01T00:00:00+00:00')")
    result = ledger.record_run(db, "2026-11-01", findings("a"))
    assert status_of(result) == {"a": "open"} and result["new"] == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == ledger.SCHEMA_VERSION
        assert conn.execute("SELECT uscc FROM findings").fetchone()[0] == "CODE-a"


def test_a_ledger_from_a_newer_program_is_refused(tmp_path):
    db = tmp_path / "state.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {ledger.SCHEMA_VERSION + 1}")
    with pytest.raises(RuntimeError, match="newer"):
        ledger.record_run(db, "2026-11-01", findings("a"))


def test_a_crash_inside_the_nightly_update_leaves_the_ledger_as_it_was(tmp_path, monkeypatch):
    db = tmp_path / "state.sqlite3"
    night(db, "2026-11-01", findings("a", "b"))
    before = (ledger.statuses(db), ledger.audit_log(db), ledger.history(db))
    assert before[2]

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ledger_night, "close_gone", crash)
    with pytest.raises(OSError):
        ledger.record_run(db, "2026-11-02", findings("b", "c"))
    assert (ledger.statuses(db), ledger.audit_log(db), ledger.history(db)) == before


def test_connections_opening_a_new_ledger_at_once_migrate_it_once(tmp_path):
    """The parallel ingest tasks of the first night all open the ledger: none may apply a step twice."""
    import threading

    errors = []
    for attempt in range(150):  # a clash is rare on one try (switching to WAL once failed ~1 in 60)
        db = tmp_path / f"state-{attempt}.sqlite3"

        def open_it():
            try:
                ledger.latest_run(db)
            except Exception as exc:  # noqa: BLE001  (collected for the assertion)
                errors.append(exc)

        threads = [threading.Thread(target=open_it) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == ledger.SCHEMA_VERSION
    assert errors == []


def test_upgrading_a_ledger_masks_the_id_numbers_earlier_versions_stored_from_returned_forms(tmp_path):
    db = tmp_path / "state.sqlite3"
    full = "230402199001011237"
    with sqlite3.connect(db) as conn:
        for number in (1, 2, 3, 4):
            conn.executescript(ledger.MIGRATIONS[number - 1])
        conn.execute("PRAGMA user_version = 4")
        conn.execute("INSERT INTO return_files (source, sha256, file_name, run_date, processed_at, outcome) "
                     f"VALUES ('market', 'f', '张三{full}.csv', '2026-11-01', 'x', 'processed')")
        conn.execute("INSERT INTO responses (return_file, row, finding_id, answer, corrected_code, note, verdict, "
                     f"reason) VALUES (1, 2, 'a', '已更正', '{full}', '经营者身份证 {full}', 'rejected', 'x')")
        conn.execute("INSERT INTO audit (at, run_date, finding_id, new_status, actor, note) "
                     f"VALUES ('x', '2026-11-01', 'a', 'open', 'market', '张三{full}.csv 第 2 行')")
    ledger.latest_run(db)  # any opening upgrades the file
    with sqlite3.connect(db) as conn:
        stored = "\n".join(str(v) for table in ("return_files", "responses", "audit")
                           for row in conn.execute(f"SELECT * FROM {table}") for v in row)
    assert full not in stored and "230402********1237" in stored


def balanced(db, month_):
    """Every row of the month's figures obeys its balance (docs: 平衡关系)."""
    progress, _ = month.progress(*ledger.lifecycle(db), month_)
    for r in progress.iter_rows(named=True):
        assert r["open_start"] + r["new"] + r["reopened"] + r["waiver_lifted"] - r["fixed"] - r["waived"] \
            - r["withdrawn"] == r["open_end"], r
    return progress.filter(pl.col("level") == "city").row(0, named=True)


def test_records_sharing_a_placeholder_code_do_not_inherit_each_others_findings(tmp_path):
    db = tmp_path / "state.sqlite3"
    first = renumbered("2026-11-01", ("jia", "R-jia", "无"), kind="missing").with_columns(name=pl.lit("甲法律服务所"))
    night(db, "2026-11-01", first, tonight(("R-jia", "无", True)))
    second = renumbered("2026-11-02", ("yi", "R-yi", "无"), kind="missing").with_columns(name=pl.lit("乙公证处"))
    result = night(db, "2026-11-02", second, tonight(("R-yi", "无", True)))
    assert ledger.statuses(db) == {"jia": "fixed", "yi": "open"} and result["carried"] == 0


def test_a_renumbering_reverted_and_done_again_keeps_one_successor_and_every_month_balanced(tmp_path):
    db = tmp_path / "state.sqlite3"
    night(db, "2026-11-28", renumbered("", ("a", "R-a", "CODE-X")), tonight(("R-a", "CODE-X", True)))
    night(db, "2026-11-29", renumbered("", ("a1", "R-a1", "CODE-X")), tonight(("R-a1", "CODE-X", True)))
    assert (balanced(db, "2026-11")["new"], balanced(db, "2026-11")["open_end"]) == (1, 1)
    # the registry takes the renumbering back (the old record's finding returns; the successor's record is gone),
    # then renumbers again
    night(db, "2026-11-30", renumbered("", ("a", "R-a", "CODE-X")), tonight(("R-a", "CODE-X", True)))
    november = balanced(db, "2026-11")
    assert november["open_end"] == 1
    night(db, "2026-12-01", renumbered("", ("a2", "R-a2", "CODE-X")), tonight(("R-a2", "CODE-X", True)))
    with sqlite3.connect(db) as conn:
        links = conn.execute("SELECT finding_id, succeeds FROM findings WHERE succeeds IS NOT NULL").fetchall()
    assert links == [("a1", "a")]  # a finding hands over once, ever
    assert ledger.history(db)[-1]["open"] == 1
    assert balanced(db, "2026-12")["open_end"] == 1
    # a month regenerated later, after the record came back, shows the same figures
    assert balanced(db, "2026-11") == november


def test_a_chain_of_renumberings_is_one_finding_in_the_month(tmp_path):
    db = tmp_path / "state.sqlite3"
    for day, fid in (("01", "a"), ("02", "b"), ("03", "c"), ("04", "d")):
        night(db, f"2026-11-{day}", renumbered("", (fid, f"R-{fid}", "CODE-X")), tonight((f"R-{fid}", "CODE-X", True)))
    city = balanced(db, "2026-11")
    assert (city["new"], city["fixed"], city["open_end"]) == (1, 0, 1)
    assert ledger.finding_detail(db, "d")["first_seen"] == "2026-11-01"


def test_a_successor_stays_with_the_department_the_steward_gave_the_problem_to(tmp_path):
    db = tmp_path / "state.sqlite3"
    night(db, "2026-11-01", renumbered("", ("a", "R-a", "CODE-X")), tonight(("R-a", "CODE-X", True)))
    ledger.steward_reassign(db, "a", "justice", "经核实由司法局登记", {"market": "市场监管局", "justice": "司法局"})
    result = night(db, "2026-11-02", renumbered("", ("a1", "R-a1", "CODE-X")), tonight(("R-a1", "CODE-X", True)))
    assert result["statuses"].filter(pl.col("finding_id") == "a1")["owner"].to_list() == ["justice"]


def test_rerunning_an_older_night_keeps_the_count_it_took_with_its_off_list_findings(tmp_path):
    db = tmp_path / "state.sqlite3"
    night(db, "2026-11-01", findings("q", "r"), tonight(("R-q", "CODE-q", True), ("R-r", "CODE-r", True)))
    night(db, "2026-11-02", findings("r"), tonight(("R-q", None, False), ("R-r", "CODE-r", True)))
    night(db, "2026-11-03", findings("q", "r"), tonight(("R-q", "CODE-q", True), ("R-r", "CODE-r", True)))
    rerun = night(db, "2026-11-02", findings("r"), tonight(("R-q", None, False), ("R-r", "CODE-r", True)))
    assert rerun["historical"] and rerun["open"] == 2
    assert [h["open"] for h in ledger.history(db)] == [2, 2, 2]


def test_a_registry_dropped_from_the_configuration_closes_nothing_elsewhere_until_withdrawn(tmp_path):
    db = tmp_path / "state.sqlite3"
    linked = findings("m").with_columns(kind=pl.lit("multiple_codes"), related=pl.lit("civil:C-1"))
    both = ledger.Tonight(frozenset({"market", "civil"}), tonight(("R-m", "CODE-m", True)).records)
    night(db, "2026-11-01", pl.concat([linked, findings("c", source="civil")]), both)
    dropped = ledger.Tonight(frozenset({"market"}), tonight(("R-m", "CODE-m", True)).records,
                             (ledger.Extract("market", "ok"),))
    result = night(db, "2026-11-02", findings(), dropped)  # tonight's detection no longer sees the civil record
    assert ledger.statuses(db)["m"] == "open" and result["fixed"] == 0
    assert dict(result["off_list"].select("finding_id", "reason").rows()) == \
        {"m": "related_not_accepted", "c": "unconfigured"}
    ledger.steward_withdraw(db, "civil", "民政局系统并入省平台", {"market"})
    result = night(db, "2026-11-03", findings(), dropped)
    # the civil record's evidence left with its registry: nobody fixed m, it is withdrawn with a note saying why
    assert ledger.statuses(db) == {"m": "withdrawn", "c": "withdrawn"} and result["open"] == 0
    assert ledger.audit_log(db, "m")[-1]["note"] == "相关记录所在来源 civil 已撤销跟踪，该问题无法再核实"
    assert balanced(db, "2026-11")["withdrawn"] == 2


def test_rerunning_a_night_with_the_same_file_keeps_what_it_lost_against_the_extract_before(tmp_path):
    db = tmp_path / "state.sqlite3"
    verdict = ledger.Extract("market", "ok", "m.csv", "a" * 64, 138, 138, 150, 12)
    night(db, "2026-11-02", findings("a"), ledger.Tonight(frozenset({"market"}), tonight().records, (verdict,)))
    # the rerun's baseline is by now that very file: it measures no loss
    rerun = ledger.Extract("market", "ok", "m.csv", "a" * 64, 138, 138, 138, 0)
    night(db, "2026-11-02", findings("a"), ledger.Tonight(frozenset({"market"}), tonight().records, (rerun,)))
    assert ledger.recent_losses(db, "market", "2026-11-03", 30).lost == 12


def test_a_finding_handed_to_a_department_no_longer_configured_is_listed_as_off_the_lists(tmp_path):
    db = tmp_path / "state.sqlite3"
    names = {"market": "市场监管局", "civil": "民政局"}
    night(db, "2026-11-01", findings("a"), tonight(("R-a", "CODE-a", True)))
    ledger.steward_reassign(db, "a", "civil", "经核实由民政局登记", names)
    only_market = ledger.Tonight(frozenset({"market"}), tonight(("R-a", "CODE-a", True)).records,
                                 (ledger.Extract("market", "ok"),))
    result = night(db, "2026-11-02", findings("a"), only_market)
    assert result["open"] == 1  # counted once
    assert result["off_list"].select("finding_id", "owner", "reason").rows() == [("a", "civil", "owner_unconfigured")]


def test_a_stewards_change_counts_from_the_next_night_whatever_date_that_night_runs_for(tmp_path):
    db = tmp_path / "state.sqlite3"
    night(db, "2026-11-01", findings("a", "b"))
    answer(db, "a", "确认无误", "waived", note="已核对执照")
    ledger.steward_reopen(db, "a", "执照已过期")
    assert ledger.statuses(db)["a"] == "open"  # at once in the ledger …
    assert balanced(db, "2026-11")["waiver_lifted"] == 0  # … in the month from the next night on
    night(db, "2026-11-02", findings("a", "b"))  # a catch-up night, run after the change
    assert ledger.audit_log(db, "a")[-1]["run_date"] == "2026-11-02"
    city = balanced(db, "2026-11")
    assert (city["waived"], city["waiver_lifted"], city["open_end"]) == (1, 1, 2)
    assert ledger.history(db)[-1]["open"] == 2
