"""The golden register (issue 15, item 5): one row per entity across all registries, stable ids."""

from __future__ import annotations

import shutil

import polars as pl
import pytest

from checks.register import entity_id, golden_register
from flows.stages import run_all
from reports.register_files import register_csv_frame
from tests.conftest import ROOT
from tests.test_loop import load, new_extract_xlsx
from validators.uscc import calc_check_char

NIGHT1, NIGHT2 = "2026-11-01", "2026-11-02"


def code(first17: str) -> str:
    return first17 + calc_check_char(first17)


X, Y = code("91230402MA1000001"), code("91230403MA1000002")
Z_MARKET, Z_EDITORIAL = code("91230404MA1000003"), code("12230404MB1000004")


def prepared(rows: list[tuple]) -> pl.DataFrame:
    """What `checks.rules.prepare` gives, for the columns the register reads."""
    return pl.DataFrame(rows, schema={"source": pl.String, "record_id": pl.String, "name": pl.String,
                                      "code": pl.String}, orient="row") \
        .with_columns(idx=pl.int_range(pl.len(), dtype=pl.Int64), valid=pl.col("code").is_not_null(),
                      flags=pl.lit(0, pl.Int64))


def findings(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"finding_id": pl.String, "source": pl.String, "record_id": pl.String,
                                      "kind": pl.String, "related": pl.String, "status": pl.String}, orient="row")


@pytest.fixture
def small(settings):
    records = prepared([
        ("market", "M1", "鹤岗市甲公司", X), ("editorial", "E1", "甲公司", X),  # one code, two registries
        ("market", "M2", "乙商店", Y), ("market", "M3", "丙商店", Y),  # 重码: two entities
        ("market", "M4", "丁公司", Z_MARKET), ("editorial", "E2", "丁中心", Z_EDITORIAL),  # 一主体多码
        ("justice", "J1", "戊律师事务所", None),  # no code
    ])
    found = findings([
        ("f1", "market", "M3", "duplicate_code", "market:M2", "open"),
        ("f2", "market", "M2", "duplicate_code", "market:M3", "open"),
        ("f3", "market", "M4", "multiple_codes", "editorial:E2", "open"),
        ("f4", "editorial", "E2", "multiple_codes", "market:M4", "fixed"),
        ("f5", "justice", "J1", "missing", "", "responded"),
    ])
    return golden_register(records, found, settings)


def _entity(register: pl.DataFrame, source: str, record_id: str) -> dict:
    [row] = register.filter(pl.col(f"{source}_record_ids").list.contains(record_id)).to_dicts()
    return row


def test_records_with_one_code_in_two_registries_are_one_entity_trusting_that_code(small):
    row = _entity(small, "market", "M1")
    assert row["editorial_record_ids"] == ["E1"] and row["records"] == 2
    assert row["trusted_code"] == X and row["id_basis"] == f"uscc:{X}" and row["entity_id"] == entity_id(f"uscc:{X}")
    assert row["open_findings"] == 0


def test_a_duplicate_code_is_two_entities_and_identifies_neither(small):
    m2, m3 = _entity(small, "market", "M2"), _entity(small, "market", "M3")
    assert m2["entity_id"] != m3["entity_id"]
    assert (m2["id_basis"], m3["id_basis"]) == ("record:market:M2", "record:market:M3")  # both would trust Y


def test_an_entity_id_is_its_basis_hashed_as_text_whatever_characters_the_record_id_holds(settings):
    # the ids are hashed from the bases' bytes: a record id in Chinese, full-width or beyond the BMP gets the id
    # `entity_id` gives its text, as before
    ids = ["鹤岗-００１", "𠀀号", "plain"]
    register = golden_register(prepared([("market", i, None, None) for i in ids]), findings([]), settings)
    assert sorted(register["entity_id"].to_list()) == sorted(entity_id(f"record:market:{i}") for i in ids)


def test_one_entity_under_two_codes_is_one_row_with_no_code_to_trust(small):
    row = _entity(small, "market", "M4")
    assert row["editorial_record_ids"] == ["E2"] and sorted(row["codes"]) == sorted([Z_MARKET, Z_EDITORIAL])
    assert row["trusted_code"] is None and row["id_basis"] == "record:editorial:E2"  # the smallest record key
    assert row["open_findings"] == 1 and row["open_kinds"] == ["multiple_codes"]  # f4 is fixed


def test_a_record_without_a_code_is_its_own_entity_with_its_open_finding(small):
    row = _entity(small, "justice", "J1")
    assert row["trusted_code"] is None and row["open_finding_ids"] == ["f5"] and row["justice_names"] == ["戊律师事务所"]


def test_a_lone_record_lists_what_a_record_of_a_bigger_entity_would(settings):
    records = prepared([("market", "M1", None, None), ("market", "M2", None, None), ("justice", "J1", None, X)])
    found = findings([("f1", "market", "M1", "name_mismatch", "market:M2", "open")])
    register = golden_register(records, found, settings)
    lone, pair = _entity(register, "justice", "J1"), _entity(register, "market", "M1")
    assert (lone["codes"], lone["sources"], lone["justice_names"], lone["market_record_ids"]) == ([X], ["justice"], [None], [])
    assert (pair["codes"], pair["sources"], pair["market_names"], pair["justice_record_ids"]) == ([], ["market"], [None, None], [])


def test_the_csv_joins_the_lists(small):
    csv = register_csv_frame(small)
    assert all(t == pl.String or t.is_numeric() for t in csv.schema.values())
    assert csv.height == small.height == 5


def test_a_list_is_joined_as_polars_joins_it_whatever_it_holds():
    # one value, none, a missing name, several with a missing one, an empty text, a missing list
    values = [["a"], [], [None], ["a", None], [None, None], ["a", "b", "c"], [""], ["", ""], None]
    lists = pl.DataFrame({"names": values, "records": list(range(len(values)))},
                         schema={"names": pl.List(pl.String), "records": pl.Int64})
    assert register_csv_frame(lists).equals(lists.with_columns(pl.col("names").list.join(";")))
    assert register_csv_frame(lists)["names"].to_list() == ["a", "", "", "a", "", "a;b;c", "", ";", None]


# --------------------------------------------------------------------------- on the nightly

@pytest.fixture(scope="module")
def two_nights(tmp_path_factory):
    data = tmp_path_factory.mktemp("register") / "data"
    shutil.copytree(ROOT / "sample_data", data)
    run_all(data, run_date=NIGHT1)
    market = load(data / "reports" / NIGHT1, "findings.csv").filter(pl.col("source") == "market")
    fix = market.filter((pl.col("kind") == "bad_check_char") & pl.col("suggested_code").is_not_null()).row(0, named=True)
    xlsx = next((data / "extracts" / "market").glob("*.xlsx"))
    new_extract_xlsx(xlsx, xlsx.with_name("m2.xlsx"), {fix["record_id"]: fix["suggested_code"]})
    run_all(data, run_date=NIGHT2)
    return data, fix


def _members(register: pl.DataFrame, sources: list[str]) -> pl.DataFrame:
    """(entity_id, members): each entity's records as one sorted key."""
    keys = [pl.col(f"{s}_record_ids").list.eval(pl.lit(f"{s}:") + pl.element()) for s in sources]
    return register.select("entity_id", members=pl.concat_list(keys).list.sort().list.join(";"))


def test_every_record_is_in_exactly_one_entity(two_nights, settings):
    data, _ = two_nights
    register = pl.read_parquet(data / "reports" / NIGHT1 / "register.parquet")
    summary = pl.read_json(data / "reports" / NIGHT1 / "summary.json")["sources"][0]
    checked = sum(summary[s.key]["rows_checked"] for s in settings.sources)
    assert register["records"].sum() == checked
    keys = [f"{s.key}:{r}" for s in settings.sources for ids in register[f"{s.key}_record_ids"] for r in ids]
    assert len(keys) == len(set(keys)) == checked
    assert register["entity_id"].n_unique() == register.height < checked  # some entities span records
    assert pl.read_csv(data / "reports" / NIGHT1 / "register.csv", infer_schema=False).height == register.height


def test_entity_ids_are_the_same_on_the_next_night(two_nights, settings):
    data, fix = two_nights
    sources = [s.key for s in settings.sources]
    first = _members(pl.read_parquet(data / "reports" / NIGHT1 / "register.parquet"), sources)
    second = _members(pl.read_parquet(data / "reports" / NIGHT2 / "register.parquet"), sources)
    same = first.join(second, on="members", suffix="_next")
    assert same.height >= first.height - 2  # only the corrected record's entity may change
    assert same.filter(pl.col("entity_id") != pl.col("entity_id_next")).height == 0
    def entity_of(night: str) -> dict:
        return pl.read_parquet(data / "reports" / night / "register.parquet") \
            .filter(pl.col("market_record_ids").list.contains(fix["record_id"])).row(0, named=True)

    before, after = entity_of(NIGHT1), entity_of(NIGHT2)
    assert before["trusted_code"] is None and after["trusted_code"] == fix["suggested_code"]  # corrected
    assert after["entity_id"] == before["entity_id"]  # and still the same entity to the platform


def test_an_entity_that_splits_keeps_its_id_on_its_bigger_part_and_the_other_gets_a_new_one():
    from checks.register import carry_ids

    previous = pl.DataFrame({"source": ["market"] * 6, "record_id": ["M1", "M2", "M3", "M5", "M6", "M7"],
                             "entity_id": ["old"] * 3 + ["alone", "id7", "id6"], "id_basis": ["uscc:X"] * 6})
    members = pl.DataFrame({"source": ["market"] * 7, "record_id": ["M1", "M2", "M3", "M9", "M5", "M6", "M7"],
                            "entity": [0, 0, 2, 3, 5, 6, 6]})
    bases = pl.DataFrame({"entity": [0, 2, 3, 5, 6], "id_basis": ["uscc:X", "record:market:M3", "record:market:M9",
                                                                   "record:market:M5", "record:market:M6"]})
    carried = carry_ids(members, bases, previous)
    assert sorted(carried["entity"]) == sorted(bases["entity"])  # one id for each entity
    ids = dict(carried.select("entity", "entity_id").rows())
    # M5 alone keeps its id; M6 and M7 merged keep the smaller of their two ids
    assert ids == {0: "old", 2: entity_id("record:market:M3"), 3: entity_id("record:market:M9"), 5: "alone", 6: "id6"}
    # an id derived anew that an earlier entity still holds is derived again: no two entities share one
    taken = previous.with_columns(entity_id=pl.lit(entity_id("record:market:M9")))
    again = dict(carry_ids(members, bases, taken).select("entity", "entity_id").rows())
    assert again[0] == entity_id("record:market:M9") and again[3] == entity_id("record:market:M9#2")


def test_an_id_two_entities_hold_as_many_records_of_goes_to_the_one_with_the_smallest_record_key():
    """A tie in records goes to the record key (`source:record_id` as text): across sources, and whatever the
    entities' own numbers; the other entity's id is derived anew."""
    from checks.register import carry_ids

    previous = pl.DataFrame({"source": ["market", "editorial", "market", "market"],
                             "record_id": ["M1", "E1", "M2", "M3"], "entity_id": ["old"] * 2 + ["two"] * 2,
                             "id_basis": ["uscc:X"] * 2 + ["uscc:Y"] * 2})
    members = pl.DataFrame({"source": ["market", "editorial", "market", "market"], "record_id": ["M1", "E1", "M3", "M2"],
                            "entity": [1, 7, 4, 9]})
    bases = pl.DataFrame({"entity": [1, 7, 4, 9], "id_basis": ["record:market:M1", "record:editorial:E1",
                                                               "record:market:M3", "record:market:M2"]})
    carried = carry_ids(members, bases, previous)
    ids = dict(carried.select("entity", "entity_id").rows())
    basis = dict(carried.select("entity", "id_basis").rows())
    assert ids == {7: "old", 1: entity_id("record:market:M1"), 9: "two", 4: entity_id("record:market:M3")}
    assert basis[7] == "uscc:X" and basis[9] == "uscc:Y"


def test_the_register_lets_go_of_the_previous_nights_ids_before_it_builds_its_lists(settings, monkeypatch):
    """Handed over, the previous night's ids are let go of once joined to tonight's records: not held while the ids
    are voted on, nor beside the per-entity lists, the register's biggest part (a night after the first peaked
    0.3 GB higher at 10^7 for them, alone)."""
    import weakref

    from checks import register

    refs, alive_at_lists, alive_at_votes = [], [], []
    real, real_first = register._summary, register._first_of_each

    def _summary(frame, settings):
        alive_at_lists.append(refs[0]() is not None)
        return real(frame, settings)

    def _first_of_each(*args):
        alive_at_votes.append(refs[0]() is not None)
        return real_first(*args)

    def last_night() -> pl.DataFrame:
        ids = pl.DataFrame({"source": ["market"], "record_id": ["M1"], "entity_id": ["0123456789abcdef"],
                            "id_basis": [f"uscc:{X}"]})
        refs.append(weakref.ref(ids))
        return ids

    monkeypatch.setattr(register, "_summary", _summary)
    monkeypatch.setattr(register, "_first_of_each", _first_of_each)
    records = prepared([("market", "M1", "鹤岗市甲公司", X), ("editorial", "E1", "甲公司", X)])
    carried = golden_register(records, findings([]), settings, last_night())
    assert carried["entity_id"].to_list() == ["0123456789abcdef"]  # the id was carried …
    assert alive_at_votes and not any(alive_at_votes)  # … let go of once joined, before the votes …
    assert alive_at_lists == [False]  # … and before the lists were built


def test_a_written_slice_is_let_go_of_before_the_next_slices_lists_are_built(settings, monkeypatch, tmp_path):
    """Only one slice's lists are held at once: the slice just written is dead, in the register and in its writer,
    when the next slice's lists are built (at 10^7, a slice held beside the next is ~0.7 GB)."""
    import weakref

    from checks import register
    from reports.register_files import write_register

    seen, alive_at_lists = [], []

    class Watched:  # passes the slices on, keeping only weak references to them
        def __init__(self, slices):
            self.slices = slices

        def __iter__(self):
            return self

        def __next__(self):
            part = next(self.slices)
            seen.append(weakref.ref(part))
            return part

    real = register._summary

    def _summary(frame, settings):
        alive_at_lists.append([ref() is not None for ref in seen])
        return real(frame, settings)

    monkeypatch.setattr(register, "_summary", _summary)
    records = prepared([("market", f"M{i}", f"{i}号商店", None) for i in range(4)])
    written = write_register(Watched(register.register_slices(records, findings([]), settings, at_once=1)),
                             tmp_path / "register.parquet", tmp_path / "register.csv")
    assert written == 4 and alive_at_lists == [[], [False], [False, False], [False, False, False]]


def test_the_register_is_in_entity_id_order_whatever_ids_the_last_night_left(settings):
    records = prepared([("market", f"M{i}", f"公司{i}", code(f"91230402MA{i:07d}")) for i in range(60)])
    derived = golden_register(records, findings([]), settings)["entity_id"].to_list()
    assert len(set(derived)) == 60 and derived == sorted(derived)  # ids from 0… to f…: sorted as their text is
    # ids carried from the last night: two alike in their first eight digits, and (hand-edited) any text at all
    carried = {"M0": "0123456789abcdef", "M1": "01234567000000ff", "M2": "fffffffe00000000"}
    previous = pl.DataFrame({"source": "market", "record_id": list(carried), "entity_id": list(carried.values()),
                             "id_basis": "uscc:x"})
    edited = previous.with_columns(entity_id=pl.Series(["Z-手改", "ABCDEF0123456789", "0123"]))
    for last_night in (previous, edited):
        ids = golden_register(records, findings([]), settings, last_night)["entity_id"].to_list()
        assert set(last_night["entity_id"]) <= set(ids) and ids == sorted(ids)


def test_an_entity_is_the_smallest_record_index_of_its_component_however_the_links_run():
    import numpy as np

    from checks.register import _components

    nodes = np.array([3, 5, 7, 10, 20, 42, 50])  # indexes with gaps, as a partition keeps them; 5, 50 on no edge
    roots = _components(nodes, np.array([42, 20, 7]), np.array([10, 42, 3]))
    assert roots.tolist() == [3, 5, 3, 10, 10, 10, 50]
    assert _components(nodes, np.array([], dtype=int), np.array([], dtype=int)).tolist() == nodes.tolist()
    chain = np.arange(1000)  # a long chain, linked from its far end
    assert (_components(chain, chain[:0:-1], chain[-2::-1]) == 0).all()


def test_the_code_to_trust_is_detections_rule_for_every_entity(sample_copy, settings):
    from checks.cross_record import Context
    from checks.detect import detect
    from checks.rules import prepare
    from checks.ingest import ingest_source
    from checks.register import entities, trusted_codes

    records = pl.concat([ingest_source(s, sample_copy)[0] for s in settings.sources])
    found = detect(records, settings)
    frame = prepare(records, settings).join(entities(prepare(records, settings), found), on="idx")
    grouped = frame.group_by("entity").agg(pl.col("idx"))
    ours = trusted_codes(grouped, frame, settings)
    ctx = Context(frame, settings, {r["idx"]: r for r in frame.iter_rows(named=True)}, {}, {}, {})
    theirs = [ctx.trusted_code(tuple(sorted(m))) for m in ours["idx"].to_list()]
    assert [(t[0], t[2]) if t else (None, None) for t in theirs] == list(zip(ours["trusted_code"], ours["trusted_why"]))
    assert ours["trusted_code"].null_count() < ours.height  # most entities have a code to trust


def test_the_code_to_trust_agrees_with_detections_rule_on_random_groups(settings):
    # entities of one to four records: issued by the own registry or not, valid or not, with or without a
    # region warning, one code shared or several (the sample has few such mixtures)
    import random

    from checks.cross_record import Context
    from checks.register import trusted_codes
    from validators.column import BIT

    rng = random.Random(7)
    codes = ["11230402MB0000001X", "91230402MA1B2C3D4X", "31230000MD0000001Y", "92230402MA1B2C3D5Y", None]
    rows, members = [], []
    for entity in range(3000):
        group = []
        for _ in range(rng.choice([1, 1, 2, 2, 3, 4])):
            idx = len(rows)
            rows.append({"idx": idx, "entity": entity, "source": rng.choice(["editorial", "market", "justice"]),
                         "code": rng.choice(codes), "valid": rng.random() < 0.8,
                         "flags": BIT["bad_region"] if rng.random() < 0.2 else 0})
            group.append(idx)
        members.append(group)
    frame = pl.DataFrame(rows, schema={"idx": pl.Int64, "entity": pl.Int64, "source": pl.String, "code": pl.String,
                                       "valid": pl.Boolean, "flags": pl.UInt16})
    grouped = pl.DataFrame({"entity": range(len(members)), "idx": members},
                           schema={"entity": pl.Int64, "idx": pl.List(pl.Int64)})
    ours = trusted_codes(grouped, frame, settings).sort("entity")
    ctx = Context(frame, settings, {r["idx"]: r for r in rows}, {}, {}, {})
    theirs = [ctx.trusted_code(tuple(m)) for m in members]
    assert [(t[0], t[2]) if t else (None, None) for t in theirs] == list(zip(ours["trusted_code"], ours["trusted_why"]))
    several = [t for t, m in zip(theirs, members) if len(m) > 1]
    assert {t[2] if t else None for t in several} == {"该代码的登记管理部门", "唯一没有警告的有效代码", None}


def test_a_night_without_a_single_record_still_writes_its_report(tmp_path):
    # every extract missing: the lists must still go out, saying so (the register is empty, not an error)
    (tmp_path / "extracts").mkdir()
    (tmp_path / "returns").mkdir()
    run_all(tmp_path, "2026-11-30")
    folder = tmp_path / "reports" / "2026-11-30"
    assert "下没有本期数据文件" in (folder / "index.html").read_text("utf-8")
    assert pl.read_parquet(folder / "register.parquet").height == 0
    header = (folder / "register.csv").read_text("utf-8").splitlines()
    assert header == [",".join(pl.read_parquet(folder / "register.parquet").columns)]  # the columns, no row


def test_a_night_builds_and_writes_its_register_a_slice_of_entities_at_a_time(tmp_path, settings, monkeypatch):
    """A province's register built whole was the night's peak (10.9 GB at 10^7): a night holds the lists of at
    most `ENTITIES_AT_ONCE` entities at once, and its files are byte for byte those of the register built whole."""
    from checks import register

    nights, real = {}, register._summary
    for at_once in (None, 40):  # the default (the whole sample in one slice), then slices of 40 entities
        data = tmp_path / f"at-once-{at_once}"
        shutil.copytree(ROOT / "sample_data", data)
        if at_once:
            monkeypatch.setattr(register, "ENTITIES_AT_ONCE", at_once)
        held = []
        monkeypatch.setattr(register, "_summary", lambda frame, settings, held=held:
                            held.append(frame["entity"].n_unique()) or real(frame, settings))
        run_all(data, run_date=NIGHT1)
        nights[at_once] = data / "reports" / NIGHT1, held
    (whole, once), (sliced, slices) = nights[None], nights[40]
    assert len(once) == 1 and len(slices) == -(-once[0] // 40) and max(slices) == 40 and sum(slices) == once[0]
    assert (sliced / "register.csv").read_bytes() == (whole / "register.csv").read_bytes()
    assert pl.read_parquet(sliced / "register.parquet").equals(pl.read_parquet(whole / "register.parquet"))
    ids = [pl.read_parquet(folder.parents[1] / "state" / "entities.parquet").sort("source", "record_id")
           for folder in (whole, sliced)]
    assert ids[0].equals(ids[1]) and ids[0].height == sum(
        summary["rows_checked"] for summary in pl.read_json(whole / "summary.json")["sources"][0].values())


def test_a_failure_writing_the_parquet_file_stops_the_register_and_keeps_last_nights_ids(settings, tmp_path):
    """register.parquet is written on a second thread beside the CSV: what goes wrong there (a full disk) still
    stops the register, and the night's ids are not put in place of the last night's."""
    from checks import register
    from reports.register_files import write_register

    last = tmp_path / "entities.parquet"
    last.write_bytes(b"last night's ids")
    calls = []

    def full_disk(part):
        calls.append(part.height)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")

    records = prepared([("market", f"M{i}", f"{i}号商店", None) for i in range(4)])
    with pytest.raises(OSError, match="No space left"):
        with register.EntitiesWriter(last, ["market"]) as keys:
            write_register(register.register_slices(records, findings([]), settings, at_once=1),
                           tmp_path / "register.parquet", tmp_path / "register.csv",
                           lambda part: (full_disk(part), keys(part)))
    assert calls == [1, 1]  # stopped at the slice that failed, never went on to the next
    assert last.read_bytes() == b"last night's ids"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no partial copy left beside it


def test_a_failure_writing_the_csv_waits_for_the_parquet_writer_before_closing_it(settings, tmp_path, monkeypatch):
    """The CSV failing while the other thread still writes the same slice's parquet: the error is the CSV's, and
    the parquet writer is closed only once that thread is done (never closed under it)."""
    import threading
    import time

    import pyarrow.parquet as pq

    from checks import register
    from reports import register_files

    done = []

    def slow(part):  # the parquet side still busy when the CSV fails
        time.sleep(0.5)
        done.append(part.height)

    def broken(frame):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(register_files, "neutralized_frame", broken)
    records = prepared([("market", f"M{i}", f"{i}号商店", None) for i in range(4)])
    with pytest.raises(OSError, match="Input/output error"):
        register_files.write_register(register.register_slices(records, findings([]), settings, at_once=1),
                                      tmp_path / "register.parquet", tmp_path / "register.csv", slow)
    assert done == [1]  # the first slice's parquet was finished …
    assert not [t for t in threading.enumerate() if t.name == "register-parquet"]  # … by a thread that has ended
    assert pq.read_table(tmp_path / "register.parquet").num_rows == 1  # … and the file closed after it, whole
