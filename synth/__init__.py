"""Synthetic Hegang registry extracts with planted problems and their ground truth.

`generate(out, records=N, seed=S)` writes a data directory (docs/data-dir.md#layout layout):

    extracts/editorial/编办_机构名录.csv        GB18030 CSV
    extracts/market/市场主体名录.xlsx          XLSX (UTF-8 BOM CSV above --xlsx-max records)
    extracts/justice/司法行政机构名录.csv      UTF-8 with BOM CSV
    truth/findings.csv                       what a perfect run finds: source, record_id, kind,
                                             expected_code, derivable
    truth/near_miss.csv                      pairs of different entities that must not be linked

Entities are generated in chunks (memory stays flat at 10^7 records); every
planted problem is recorded at the moment it is planted. Record-level kinds of
a damaged code are what the GB 32100 rules say of it (the validator is tested
on its own against the standard); which records carry cross-record problems
is known only here.

Headers and the allowlisted pilot code are read from `config/steward.toml`, the look-alike
letters of digits from `validators.tables`. Modules: `entities` (who is in the registries),
`records` (a row, its planting flags, the truth), `damage` (record-level problems),
`planting` (cross-record problems and near misses), `workbook` (the XLSX writer of extracts),
`datadir` (chunks, sinks, truth files).
"""

from synth.datadir import generate

__all__ = ["generate"]
