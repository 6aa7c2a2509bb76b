"""Detection stages 1 and 2: the records prepared once, the GB 32100 rules on each code, and each
code against its own record (department, category, region).

Both stages decide over whole columns; only the few flagged rows are worded one by one.
"""

from __future__ import annotations

import polars as pl

from checks.categories import expected_category_column
from checks.findings import RecordFinding
from checks.names import name_core_expr, normalize_name_expr
from checks.settings import Settings
from validators import regions
from validators.column import BIT, classify
from validators.tables import DEPARTMENTS, TERMINAL_KINDS
from validators.uscc import check

_TERMINAL_BITS = sum(BIT[k] for k in TERMINAL_KINDS)

#: File types whose cells carry a type (a text cell was not rounded by this file); a CSV has none:
#: Excel writes numbers into a CSV as it shows them, so 18 digits ending in 000 may be its damage.
TYPED_CELL_SUFFIXES = (".xlsx",)


def text_cell_expr() -> pl.Expr:
    """The code cell was stored as text in a typed sheet (an XLSX cell that is not a number)."""
    typed = pl.lit(False)
    for suffix in TYPED_CELL_SUFFIXES:
        typed = typed | pl.col("file").str.to_lowercase().str.ends_with(suffix)
    return (typed & ~pl.col("uscc_numeric")).fill_null(False)


def prepare(records: pl.DataFrame, settings: Settings) -> pl.DataFrame:
    """Records with the normalized code, its flags, and the keys used for linking."""
    records = records.with_columns(uscc_text=text_cell_expr())
    classified = classify(records["uscc_raw"], records["uscc_numeric"], settings.allowlist, records["uscc_text"])
    frame = records.with_columns(
        # a partition keeps the indexes of the whole run (checks.partition)
        idx=pl.col("idx") if "idx" in records.columns else pl.int_range(pl.len(), dtype=pl.Int64),
        norm=classified["code"],
        flags=classified["flags"],
        valid=classified["valid"],
    )
    # neither is read again: held until the end, with the names normalized beside the other keys (a `with_columns`
    # evaluates its columns at once), they took a province's prepare to its peak (6.6 → 4.8 GB at 10^7 without
    # both, in the same time; either alone 6.4–6.6 GB)
    del records, classified
    terminal = (pl.col("flags") & _TERMINAL_BITS) != 0
    is18 = (pl.col("norm").str.len_chars() == 18) & ~terminal
    org_ok = is18 & ((pl.col("flags") & (BIT["bad_org_check"] | BIT["bad_charset"])) == 0)
    frame = frame.with_columns(
        code=pl.when(is18).then(pl.col("norm")),
        org=pl.when(org_ok).then(pl.col("norm").str.slice(8, 9)),
        legacy_org=pl.when(((pl.col("flags") & BIT["legacy_number"]) != 0) & (pl.col("norm").str.len_chars() == 9))
        .then(pl.col("norm")),
    )
    # the names on their own: normalizing them makes several copies of the text on the way
    frame = frame.with_columns(name_norm=normalize_name_expr(pl.col("name"), settings.city.name_prefixes))
    frame = frame.with_columns(rep=pl.col("legal_rep").str.replace_all(r"\s", ""))
    weak = (pl.col("entity_type").fill_null("").str.contains("个体")
            | (pl.col("code").str.slice(0, 2) == "92").fill_null(False)
            | (pl.col("name_norm").str.len_chars() <= 4)
            | (pl.col("name_norm") == pl.col("rep")).fill_null(False))
    return frame.with_columns(weak=weak, name_core=name_core_expr(pl.col("name_norm")))


# --------------------------------------------------------------------------- stage 1: record level

def record_level(frame: pl.DataFrame, allowlist: dict[str, str] | None = None) -> list[RecordFinding]:
    """The validator's findings on every flagged code (one scalar check per distinct cell), each with the
    rules' own `medium` repair candidates (what stage 4 offers when no other registry has evidence)."""
    flagged = frame.filter(pl.col("flags") != 0).select("idx", "uscc_raw", "uscc_numeric", "uscc_text")
    findings: list[RecordFinding] = []
    reports: dict[tuple, tuple] = {}
    for idx, raw, numeric, text in flagged.iter_rows():
        seen = reports.get((raw, numeric, text))
        if seen is None:
            report = check(raw, numeric=numeric, text=text, allowlist=allowlist, least="medium")
            seen = reports[(raw, numeric, text)] = (
                report, tuple(s for s in report.suggestions if s.confidence == "medium"))
        report, medium = seen
        for f in report.findings:
            findings.append(RecordFinding(idx, f.kind, f.message, f.severity, f.positions, medium=medium))
    return findings


# --------------------------------------------------------------------------- stage 2: in context

def context_level(frame: pl.DataFrame, settings: Settings) -> list[RecordFinding]:
    """department_mismatch, category_mismatch, region_outside: decided over the whole
    column at once, worded for the few rows they flag."""
    prefix = settings.city.jurisdiction_prefix
    dept, cat = pl.col("code").str.slice(0, 1), pl.col("code").str.slice(1, 1)
    own = pl.lit(False)
    for source in settings.sources:
        own = pl.when(pl.col("source") == source.key).then(dept.is_in(list(source.departments))).otherwise(own)
    valid_pairs = [d + c for d, (_, cats) in DEPARTMENTS.items() for c in cats]
    region = pl.col("code").str.slice(2, 6)
    columns = frame.select("idx", "source", "code", "flags", "entity_type", "name").with_columns(
        _expected=expected_category_column(frame["entity_type"], frame["name"]))
    coded = pl.col("code").is_not_null()
    # the three tests as columns of the whole frame, then its few flagged rows taken: filtered to the records with
    # a code first, the frame was copied whole (at 10^7, 1.2 GB more held)
    flagged = columns.with_columns(
        _dept=coded & dept.is_in(list(DEPARTMENTS)) & ~own,
        _cat=coded & (pl.col("_expected").str.slice(0, 1) == dept) & (pl.col("_expected").str.slice(1, 1) != cat)
        & ((pl.col("flags") & BIT["bad_category"]) == 0) & pl.col("code").str.slice(0, 2).is_in(valid_pairs),
        _region=coded & region.str.contains(r"^[0-9]{6}$") & ((pl.col("flags") & BIT["bad_region"]) == 0)
        & ~region.str.starts_with(prefix),
    ).filter(pl.col("_dept") | pl.col("_cat").fill_null(False) | pl.col("_region"))
    departments = settings.departments
    findings: list[RecordFinding] = []
    for r in flagged.iter_rows(named=True):
        code, idx = r["code"], r["idx"]
        if r["_dept"]:
            owners = "、".join(departments[r["source"]])
            findings.append(RecordFinding(idx, "department_mismatch",
                                    f"代码第 1 位“{code[0]}”表示{DEPARTMENTS[code[0]][0]}部门登记，"
                                    f"而本单位登记的主体应为“{owners}”开头", positions=(1,)))
        if r["_cat"]:
            exp_cat, by_type = r["_expected"][1], r["_expected"][2] == "T"
            names = DEPARTMENTS[code[0]][1]
            said = f"主体类型“{r['entity_type']}”" if by_type else f"名称“{r['name']}”"
            findings.append(RecordFinding(idx, "category_mismatch",
                                    f"{said}表明为{names[exp_cat]}，代码第 2 位应为“{exp_cat}”，"
                                    f"现为“{code[1]}”（{names[code[1]]}）", positions=(2,)))
        if r["_region"]:
            where = regions.region_name(code[2:8]) or code[2:8]
            findings.append(RecordFinding(idx, "region_outside",
                                    f"代码第 3–8 位“{code[2:8]}”（{where}）不在本市辖区（{prefix}）", positions=range(3, 9)))
    return findings
