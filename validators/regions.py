"""GB/T 2260 region codes with history, for positions 3–8 of a USCC.

The table ships inside the package (`data/gb2260/regions.csv`, provenance in
`data/gb2260/PROVENANCE.md`): codes of every year-end list 1981–2024. A region
is judged by one lookup table shared by the scalar and the vectorized API, so
both always agree.

Statuses (docs/standard.md#region-codes):
    OK               listed, `100000` (national), or `xxxx01` 市辖区 of a listed prefecture
    ABOLISHED_EARLY  listed but abolished before USCCs were issued (warning)
    UNKNOWN_COUNTY   province part known, county part never listed (warning)
    UNKNOWN_PROVINCE positions 3–4 are no province (error)
    NOT_DIGITS       the six characters are not all digits (error)
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from validators.tables import NATIONAL_REGION, USCC_FIRST_YEAR

OK, ABOLISHED_EARLY, UNKNOWN_COUNTY, UNKNOWN_PROVINCE, NOT_DIGITS = range(5)
STATUS_SEVERITY = {
    OK: None,
    ABOLISHED_EARLY: "warning",
    UNKNOWN_COUNTY: "warning",
    UNKNOWN_PROVINCE: "error",
    NOT_DIGITS: "error",
}


@dataclass(frozen=True)
class Region:
    code: str
    name: str
    level: str
    first_year: int
    last_year: int


@lru_cache(maxsize=1)
def regions() -> dict[str, Region]:
    """All GB/T 2260 codes, each with the name of its newest row."""
    table: dict[str, Region] = {}
    text = resources.files("validators").joinpath("data/gb2260/regions.csv").read_text("utf-8")
    for row in csv.DictReader(text.splitlines()):
        code = row["code"]
        region = Region(code, row["name"], row["level"], int(row["first_year"]), int(row["last_year"]))
        old = table.get(code)
        if old is None:
            table[code] = region
        else:  # several rows per code (renames): keep the newest name, the widest years
            newest = region if region.last_year >= old.last_year else old
            table[code] = Region(code, newest.name, newest.level,
                                 min(old.first_year, region.first_year), max(old.last_year, region.last_year))
    return table


@lru_cache(maxsize=1)
def status_table() -> np.ndarray:
    """Status of every six-digit region value, indexed by its integer value."""
    table = regions()
    province_known = np.zeros(100, dtype=bool)
    for code, region in table.items():
        if region.level == "province":
            province_known[int(code[:2])] = True
    status = np.where(province_known[np.arange(1_000_000) // 10_000], UNKNOWN_COUNTY, UNKNOWN_PROVINCE).astype(np.uint8)
    for code, region in table.items():
        status[int(code)] = OK if region.last_year + 1 >= USCC_FIRST_YEAR else ABOLISHED_EARLY
        if region.level == "prefecture":  # the 市辖区 aggregate code of a prefecture
            status[int(code) + 1] = min(status[int(code) + 1], status[int(code)])
    status[int(NATIONAL_REGION)] = OK
    return status


def region_status(region: str) -> int:
    """Status of one six-character region part."""
    if len(region) != 6 or not all("0" <= ch <= "9" for ch in region):
        return NOT_DIGITS
    return int(status_table()[int(region)])


def region_name(region: str) -> str | None:
    """Chinese name of a region value, including the special values; None if unknown."""
    if region == NATIONAL_REGION:
        return "国家级登记机关"
    found = regions().get(region)
    if found:
        return found.name
    if region.endswith("01"):
        parent = regions().get(region[:4] + "00")
        if parent and parent.level == "prefecture":
            return parent.name + "市辖区"
    return None


def province_name(region: str) -> str | None:
    found = regions().get(region[:2] + "0000")
    return found.name if found else None
