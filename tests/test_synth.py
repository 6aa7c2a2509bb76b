"""The synthetic data generator reads the registries' headers and the allowlist from the configuration."""

from __future__ import annotations

import csv
import dataclasses
import tomllib

import polars as pl

from checks.ingest import ingest_all
from checks.settings import parse_settings
from synth import generate
from synth.damage import LOOKALIKE_LETTER
from synth.records import Record
from tests.conftest import ROOT


def test_the_extracts_carry_the_configured_headers_and_the_configured_allowlisted_code(tmp_path):
    raw = tomllib.loads((ROOT / "config" / "steward.toml").read_text("utf-8"))
    justice = next(s for s in raw["sources"] if s["key"] == "justice")
    justice["columns"]["legal_rep"] = ["主要负责人", "负责人"]  # the first accepted header is the one written
    raw["allowlist"] = [{"code": "91350200M0002TGQXM", "reason": "试点代码"}]
    settings = parse_settings(raw)
    generate(tmp_path, records=200, seed=3, settings=settings)
    with open(tmp_path / "extracts/justice/司法行政机构名录.csv", encoding="utf-8-sig", newline="") as handle:
        assert "主要负责人" in next(csv.reader(handle))
    truth = pl.read_csv(tmp_path / "truth" / "findings.csv", infer_schema=False)
    assert truth.filter(pl.col("kind") == "allowlisted")["record_id"].len() == 1
    result = ingest_all(settings, tmp_path)
    assert {s.status for s in result.sources.values()} == {"ok"}
    assert "91350200M0002TGQXM" in result.records.filter(pl.col("source") == "market")["uscc_raw"].to_list()


def test_a_record_carries_its_planting_flags_as_fields():
    fields = {f.name for f in dataclasses.fields(Record)}
    assert {"numeric", "in_xlsx", "planted", "twin"} <= fields


def test_digits_are_mistyped_as_the_letters_the_validators_take_for_them():
    assert LOOKALIKE_LETTER == {"0": "O", "1": "I", "2": "Z", "5": "S"}
