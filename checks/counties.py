"""Which county or district office a finding goes to (每个分局、县区各管各的).

The county is the registering authority's region: positions 3–8 of the
record's 18-character code when they are six digits inside the city. When the
code cannot say (missing, mangled, a legacy number, a masked resident ID,
letters there) or names another city, the record's address is read for the
name of one of the city's counties or districts (GB/T 2260); then a code of
another city keeps that city's region; failing all, the finding goes to
`unknown` (未能确定区县), which the department's own office handles. Every finding lands in exactly one county, so the counties'
counts add up to the department's.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import polars as pl

from validators import regions
from validators.column import compact_expr

UNKNOWN = "unknown"


def city_counties(prefix: str) -> dict[str, str]:
    """The city's current counties and districts: code → name (`230402` → `向阳区`)."""
    return {code: r.name for code, r in regions.regions().items()
            if code.startswith(prefix) and r.level == "county" and r.last_year >= regions.USCC_FIRST_YEAR}


@lru_cache(maxsize=1)
def _known_regions() -> frozenset[str]:
    """Every region value GB/T 2260 accepts in a code (listed, national, 市辖区)."""
    table = regions.status_table()
    return frozenset(f"{v:06d}" for v in np.flatnonzero(table == regions.OK))


def county_expr(code: pl.Expr, address: pl.Expr, prefix: str) -> pl.Expr:
    """The six-digit region a finding's county list is: from the code, else the address, else `unknown`."""
    compact = compact_expr(code.fill_null(""))
    region = compact.str.slice(2, 6)
    usable = (compact.str.len_chars() == 18) & region.is_in(list(_known_regions()))  # no bad_region list
    inside = pl.when(usable & region.str.starts_with(prefix)).then(region)
    outside = pl.when(usable).then(region)  # registered elsewhere, no county named in the address
    from_address = pl.lit(None, pl.String)
    # without a city (the month's replay: no addresses) every county of the country would be a branch: 10 s
    for county, name in sorted(city_counties(prefix).items() if prefix else (), reverse=True):
        from_address = pl.when(address.fill_null("").str.contains(name, literal=True)).then(pl.lit(county)) \
            .otherwise(from_address)
    return pl.coalesce(inside, from_address, outside, pl.lit(UNKNOWN))


#: The county list of findings whose county nothing could tell.
UNKNOWN_LABEL = "未能确定区县"


def county_label(region: str) -> str:
    """A county list's name alone: `向阳区`; `未能确定区县` for `unknown`; `未知地区` for a region GB/T 2260
    does not name."""
    if region == UNKNOWN:
        return UNKNOWN_LABEL
    return regions.region_name(region) or "未知地区"


def county_name(region: str) -> str:
    """What a county list is called: `230402 向阳区`, `未能确定区县`."""
    return UNKNOWN_LABEL if region == UNKNOWN else f"{region} {county_label(region)}"
