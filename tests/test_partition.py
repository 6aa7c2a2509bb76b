"""Partitioned detection (by region, then a shuffle by key) finds exactly what one process finds."""

import polars as pl
import pytest

from checks.detect import detect
from checks.ingest import ingest_all
from checks.partition import OTHER, detect_partitioned, partition_key_expr, regions_of, split


@pytest.fixture(scope="module")
def records(synth_dir, settings):
    return ingest_all(settings, synth_dir).records


@pytest.mark.parametrize("buckets, parts", [(1, 1), (2, 8), (7, 30)])
def test_partitioned_findings_equal_the_single_process_findings(records, settings, tmp_path, buckets, parts):
    single = detect(records, settings).sort("finding_id")
    partitioned = detect_partitioned(records, settings, tmp_path, buckets=buckets, parts=parts).sort("finding_id")
    assert single.height > 300
    assert partitioned.equals(single)


def test_records_are_partitioned_by_region_and_the_rest_go_to_other(tmp_path):
    codes = ["91230402MA1B2C3D4X", " 9 1 2 3 0 1 0 0 x", "", None, "12100000400002697C", "9.12304E+17"]
    frame = pl.DataFrame({"uscc_raw": codes})
    assert frame.select(partition_key_expr())["uscc_raw"].to_list() == ["230402", "230100", OTHER, OTHER, "100000",
                                                                         OTHER]
    keys = split(frame, tmp_path, parts=3)
    assert len(keys) == 3
    assert sorted(r for regions in regions_of(tmp_path).values() for r in regions) == [
        "100000", "230100", "230402", OTHER]
    parts = pl.concat([pl.read_parquet(tmp_path / f"part-{k}.parquet") for k in keys])
    assert sorted(parts["idx"]) == list(range(len(codes)))  # every record once, with its run-wide index
    assert split(frame, tmp_path, parts=10) == ["g0", "g1", "g2", "g3"]  # never more groups than regions


def test_a_duplicate_code_across_regions_and_sources_is_still_found(settings, tmp_path):
    """The same code held in two prefecture partitions meets in one key bucket."""
    rows = [("market", "M1", "91230402MA1B2C3D4X", "鹤岗市甲商贸有限公司"),
            ("market", "M2", "91230402MA1B2C3D4X", "鹤岗市乙建材有限公司"),
            ("justice", "J1", "31230100MD0001234X", "鹤岗市丙律师事务所")]
    base = {c: None for c in ("entity_type", "legal_rep", "established", "status", "address")}
    frame = pl.DataFrame([{"source": s, "record_id": r, "uscc_raw": c, "uscc_numeric": False, "name": n,
                           **base, "file": "x.csv", "row": i + 2} for i, (s, r, c, n) in enumerate(rows)],
                         schema_overrides={"established": pl.Date} | {c: pl.String for c in base if c != "established"})
    single = detect(frame, settings).sort("finding_id")
    assert "duplicate_code" in single["kind"].to_list()
    assert detect_partitioned(frame, settings, tmp_path, buckets=5).sort("finding_id").equals(single)
