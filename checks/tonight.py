"""What tonight's work folder holds, as the later stages ask for it.

The records of every source taking part tonight (tonight's extract, or a held or rejected source's last
accepted one), the quarantined rows, and the questions asked of them: who holds a code (a returned
answer must not give a code another entity holds), what detection suggests (an empty 更正后代码 adopts
it), what the ledger needs to decide why a finding disappeared, and each finding's county list.
"""

from __future__ import annotations

import polars as pl

from checks import frame_files, ledger
from checks.catalog import WorkFolder
from checks.guard import Extract
from checks.counties import county_expr
from checks.return_judge import Holder
from checks.schema import empty_canonical, empty_quarantine
from checks.settings import Settings
from validators.column import compact_expr


def scan_records(settings: Settings, work: WorkFolder) -> list[pl.LazyFrame]:
    """Each source's records taking part tonight, lazily (sources with no file tonight left out)."""
    return [frame_files.scan_parquet(p) for s in settings.sources if (p := work.records(s.key)).exists()]


def all_records(settings: Settings, work: WorkFolder) -> pl.DataFrame:
    """Every record taking part tonight, sources in configuration order."""
    frames = [frame_files.read_parquet(p) for s in settings.sources if (p := work.records(s.key)).exists()]
    return pl.concat(frames) if frames else empty_canonical()


def quarantined(settings: Settings, work: WorkFolder) -> pl.DataFrame:
    """Every source's quarantined rows of tonight."""
    frames = [frame_files.read_parquet(p) for s in settings.sources if (p := work.quarantine(s.key)).exists()]
    return pl.concat(frames) if frames else empty_quarantine()


def holders_of(settings: Settings, work: WorkFolder, codes: list[str]) -> list[Holder]:
    """Tonight's records holding any of `codes` (compared as codes: spaces and case do not matter)."""
    frames = scan_records(settings, work)
    if not codes or not frames:
        return []
    found = pl.concat(frames).select("source", "record_id", "name", code=compact_expr(pl.col("uscc_raw"))) \
        .filter(pl.col("code").is_in(codes)).collect()
    return [Holder(c, s, r, n) for c, s, r, n in found.select("code", "source", "record_id", "name").rows()]


def suggestions_of(work: WorkFolder, ids: list[str]) -> dict[str, str]:
    """The code tonight's detection suggests for these findings (what an empty 更正后代码 may adopt)."""
    found = frame_files.scan_parquet(work.findings) \
        .filter(pl.col("finding_id").is_in(ids) & pl.col("suggested_code").is_not_null()) \
        .select("finding_id", "suggested_code").collect()
    return dict(found.rows())


def ledger_input(settings: Settings, work: WorkFolder, sources: list[dict]) -> ledger.Tonight:
    """What tonight's extracts hold (checked and quarantined records) and each extract's verdict, for the
    ledger to decide why a finding disappeared."""
    checked = [f.select("source", "record_id", code=compact_expr(pl.col("uscc_raw")), checked=pl.lit(True))
               for f in scan_records(settings, work)]
    held = [frame_files.scan_parquet(p).filter(pl.col("record_id").is_not_null())
            .select("source", "record_id", code=pl.lit(None, pl.String), checked=pl.lit(False))
            for s in settings.sources if (p := work.quarantine(s.key)).exists()]
    frames = checked + held
    records = pl.concat(frames).collect() if frames else ledger.Tonight(frozenset()).records
    return ledger.Tonight(frozenset(s["key"] for s in sources if s["status"] == "ok"), records,
                          tuple(extract_of(s) for s in sources))


def extract_of(s: dict) -> Extract:
    """A source's result's extract verdict (`checks.guard.Extract`), as the ledger keeps it."""
    return Extract(**s["extract"])


def with_county(settings: Settings, work: WorkFolder, findings: pl.DataFrame) -> pl.DataFrame:
    """Each finding's county list (`checks.counties`): from its code, else its record's address."""
    frames = scan_records(settings, work)
    wanted = findings.select("source", "record_id").unique().lazy()
    addresses = pl.concat(frames).select("source", "record_id", "address") \
        .join(wanted, on=["source", "record_id"], how="semi").collect() if frames else \
        pl.DataFrame(schema={"source": pl.String, "record_id": pl.String, "address": pl.String})
    joined = findings.join(addresses.unique(["source", "record_id"]), on=["source", "record_id"], how="left")
    county = county_expr(pl.col("uscc"), pl.col("address"), settings.city.jurisdiction_prefix)
    return joined.with_columns(county=county).drop("address")
