"""Is tonight's extract of a source plausible? The guard before anything may close or reopen.

A failed export looks like good news: a file with only its header, or a fifth
of the registry, makes every finding on the missing records look fixed. So
before tonight's extract of a source may move anything in the ledger it is
compared with the last extract accepted for that source (`Baseline`):

- it has data rows that can be checked;
- it has not lost more than `max_lost_share` of the baseline's record ids
  (a registry's normal churn adds records and marks others 注销/吊销; it does
  not delete a tenth of them overnight); a quarantined row is not there;
- nor, added to what the nights accepted in the last `erosion_days` lost
  (`Erosion`), more than that share of the largest extract of the window (and
  at least `MIN_HELD_RECORDS`): an export that loses 5 % a night never trips
  the night-by-night check;
- the code and name columns are not empty throughout, and the share of valid
  codes has not fallen by more than `max_lost_share` (blanked or shifted columns);
- no more than `max_lost_share` of the records it shares with the baseline now
  hold a code that another of its records held before (a code column shifted by a
  row keeps every code valid; a correction gives a record a new code, or another
  registry's, and never counts);
- the share of records whose code names another department (position 1) has
  not risen by more than `max_lost_share` (another registry's rows appended).
The last two need at least `MIN_HELD_RECORDS` such records, so a small registry's
ordinary night is not held.

An implausible extract is *held* (待确认): the night uses the last accepted
extract of that source instead, and none of its findings moves. The steward
accepts a held extract deliberately when the change is real
(`uscc extracts accept SOURCE --why …`, by the file's content hash); the next
night then takes it. `judge` is pure: frames and numbers in, a verdict (`Extract`) out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import polars as pl

from validators.column import compact_expr, is_valid_column

#: Share of the last accepted extract's records that may be missing tonight before the extract is held.
DEFAULT_MAX_LOST_SHARE = 0.10
#: Records that must look moved (codes swapped between records, another department's rows) before a share of a
#: small registry holds its extract: in a register of 30, three ordinary changes are not a broken export.
MIN_HELD_RECORDS = 20


@dataclass(frozen=True)
class Baseline:
    """The last extract accepted for a source: when, which file, and its record ids."""

    run_date: str
    file: str | None
    record_ids: pl.Series
    valid_share: float | None = None  # of its records, those whose code passes every error rule
    codes: pl.DataFrame | None = None  # record_id, code (`codes_of`)
    foreign_share: float | None = None  # of its records, those whose code names another department

    @classmethod
    def of(cls, run_date: str, file: str | None, accepted: pl.DataFrame, departments: tuple[str, ...]) -> Baseline:
        """The baseline of an accepted extract (`record_id`, `uscc_raw`), every figure derived from it."""
        codes = codes_of(accepted)
        return cls(run_date, file, accepted["record_id"], valid_share(accepted), codes,
                   foreign_share(codes, departments))


def codes_of(records: pl.DataFrame) -> pl.DataFrame:
    """Each record's code as codes are compared (`compact_expr`): `record_id`, `code`."""
    return records.select("record_id", code=compact_expr(pl.col("uscc_raw").fill_null("")))


def foreign_share(codes: pl.DataFrame, departments: tuple[str, ...]) -> float | None:
    """The share of records (`codes_of`) whose 18-character code starts with another department's letter (None
    for no records or no departments configured)."""
    if codes.height == 0 or not departments:
        return None
    code = pl.col("code")
    other = (code.str.len_chars() == 18) & ~code.str.slice(0, 1).is_in(list(departments))
    return float(codes.select(other.mean()).item())


@dataclass(frozen=True)
class Erosion:
    """What the nights accepted in the guard's window lost before tonight (`checks.ledger.recent_losses`)."""

    since: str  # the first night of the window
    records: int  # the most records an extract the window's nights were compared with held
    lost: int  # record ids those nights lost, each against the extract accepted before it
    nights: int


@dataclass(frozen=True)
class Extract:
    """The verdict on one source's extract tonight — accepted (`ok`), `held` by the guard, or `rejected`
    (unreadable) — with the figures behind it. The guard makes it, the source's result carries it
    (`as_dict`), and the ledger keeps it per night (`extracts` table)."""

    source: str
    status: str
    file: str | None = None
    sha256: str | None = None
    rows_read: int = 0
    records: int = 0
    previous_records: int | None = None
    lost: int | None = None
    reason: str | None = None  # why it is held or rejected (Chinese)
    note: str | None = None  # shown when accepted on the steward's word

    @property
    def held(self) -> bool:
        return self.status == "held"

    def as_dict(self) -> dict:
        return asdict(self)


def valid_share(records: pl.DataFrame) -> float | None:
    """The share of records whose code passes every error rule (None for no records)."""
    if records.height == 0:
        return None
    return float(is_valid_column(records["uscc_raw"]).mean())


def judge(records: pl.DataFrame, quarantined_ids: pl.Series, baseline: Baseline | None,
          max_lost_share: float = DEFAULT_MAX_LOST_SHARE, steward_why: str | None = None,
          source: str = "<来源>", departments: tuple[str, ...] = (), erosion: Erosion | None = None) -> Extract:
    """The guard's verdict on tonight's extract of one source.

    Args:
        records: tonight's checked records of the source (canonical frame).
        quarantined_ids: record ids of tonight's quarantined rows (present, though not checkable).
        baseline: the last accepted extract, None on the source's first night.
        steward_why: the steward's reason, when this very file was accepted deliberately.
        source: the source's key, for the command the reason tells the steward to run.
        departments: the registration-authority letters the source's records should carry (position 1).
        erosion: what the earlier nights of the window lost (None or no nights: night by night only).
    """
    # quarantined rows cannot be checked: their records take no part tonight, so they count as missing
    n = records.height + quarantined_ids.len()
    previous = baseline.record_ids.len() if baseline is not None else None
    lost = None
    if baseline is not None:  # the baseline's records tonight has no record of (10^7 ids: 1 s, as a set 4 s)
        lost = baseline.record_ids.cast(pl.String).to_frame("record_id").join(
            records.select(pl.col("record_id").cast(pl.String)), on="record_id", how="anti").height
    if steward_why:
        return Extract(source, "ok", records=n, previous_records=previous, lost=lost,
                       note=f"市信用办已确认接受本期数据：{steward_why}")
    reasons = []
    if n == 0:
        reasons.append("本期文件没有任何数据行（只有表头或空行），很可能是导出失败")
    elif records.height == 0:
        reasons.append(f"本期 {n} 行全部被隔离（编号缺失或重复、字段错位等），没有可检查的记录")
    else:
        for column, label in (("uscc_raw", "统一社会信用代码"), ("name", "名称")):
            if records.height and records[column].null_count() == records.height:
                reasons.append(f"“{label}”列在全部 {records.height} 行中都为空，很可能是导出时列错位或缺失")
    if baseline is not None and previous and lost is not None and lost > max_lost_share * previous:
        reasons.append(f"与上期（{baseline.run_date}，{baseline.file or '—'}）相比，上期 {previous} 条记录中有 {lost} 条"
                       f"（{lost / previous:.0%}）不在本期可检查的数据中，超过允许的 {max_lost_share:.0%}")
    elif erosion is not None and erosion.nights and lost is not None \
            and (total := erosion.lost + lost) >= MIN_HELD_RECORDS \
            and total > max_lost_share * (most := max(erosion.records, previous or 0)):
        # against the largest extract of the window: a registry that grows while it drops a few is not eroding
        reasons.append(f"自 {erosion.since} 起已接受的各期数据逐期减少，连同本期共有 {total} 条记录不再出现"
                       f"（期间最多 {most} 条中的 {total / most:.0%}），累计超过允许的 "
                       f"{max_lost_share:.0%}；逐期小幅减少同样可能是导出逐步缺失")
    share = valid_share(records)
    if baseline is not None and baseline.valid_share is not None and share is not None \
            and baseline.valid_share - share > max_lost_share:
        reasons.append(f"有效代码的占比从上期的 {baseline.valid_share:.0%} 降至本期的 {share:.0%}，"
                       "很可能是代码列被清空、错位或与其他列对调")
    tonight = codes_of(records) if baseline is not None else None  # compared once, for both checks below
    if baseline is not None and baseline.codes is not None and records.height:
        # a code column slipped by a row (or records and codes shuffled) gives records the codes other records of
        # this registry held last time; a correction gives a record a code it did not hold — a new one, or another
        # registry's (the trusted code of 一主体多码) — and never counts, however many there are
        both = tonight.join(baseline.codes, on="record_id", how="inner", suffix="_before")
        # the few records whose code changed, then which of their new codes some record held: two passes over the
        # baseline's 10^7 codes cost 7 s
        new = both.filter(pl.col("code") != pl.col("code_before"))
        held_before = baseline.codes.filter((pl.col("code") != "") & pl.col("code").is_in(new["code"].implode()))
        changed = new.filter(pl.col("code").is_in(held_before["code"].implode())).height
        if both.height and changed >= max(MIN_HELD_RECORDS, max_lost_share * both.height):
            reasons.append(f"两期都有的 {both.height} 条记录中有 {changed} 条（{changed / both.height:.0%}）本期的代码是上期"
                           f"本单位另一条记录的代码，超过允许的 {max_lost_share:.0%}，很可能是导出时代码列错行或记录与代码错位")
    foreign = foreign_share(tonight, departments) if baseline is not None else None
    if baseline is not None and baseline.foreign_share is not None and foreign is not None \
            and foreign - baseline.foreign_share > max_lost_share \
            and (foreign - baseline.foreign_share) * records.height >= MIN_HELD_RECORDS:
        reasons.append(f"代码第 1 位不是本单位登记管理部门码（{'、'.join(departments)}）的记录从上期的 "
                       f"{baseline.foreign_share:.0%} 增至本期的 {foreign:.0%}，很可能混入了其他部门的数据")
    if not reasons:
        return Extract(source, "ok", records=n, previous_records=previous, lost=lost)
    figures = f"上期 {previous} 条，本期 {n} 条" if previous is not None else f"本期 {n} 条"
    reason = (f"{figures}：{'；'.join(reasons)}。本期沿用上期已接受的数据，该部门的问题状态保持不变。"
              "请数据报送单位核实并重新导出；如数据确实如此（如集中清理注销主体），市信用办可运行"
              f" uscc extracts accept {source} --why \"原因\" 确认接受，下一次运行即采用。")
    return Extract(source, "held", records=n, previous_records=previous, lost=lost, reason=reason)
