"""The steward's month: progress per department and county, replayed from the audit log.

The city's plan asks for monthly tracking (逐月跟踪问效: 各责任单位要及时收集汇总台账的
工作月度进展情况，定期向市专班报送). Every figure here comes from the ledger's
findings and its audit log (`checks.ledger.lifecycle`), never from the current
statuses: a finding's status on a day is the last status change logged on or
before that day's night. So a month regenerated later, after more nights, shows
the same figures.

Counted are errors and warnings (the road to zero); info notes are left out.
For a department, county or the city, over the month:

    open_start + new + reopened + waiver_lifted − fixed − waived − withdrawn = open_end

`new`, `fixed`, `reopened`, `waived`, `waiver_lifted`, `withdrawn` count status changes
logged during the month (a finding fixed, back and fixed again counts twice). `withdrawn`:
findings the steward stopped tracking (their registry is no longer configured), and a
superseded finding whose successor is not carrying it on (its record came back); one that
comes back to the road is `reopened`. A finding carried on by a successor after its record
left is one finding with it (`ledger.lifecycle`): neither new, fixed nor withdrawn.
`cleared_share` is the share of the findings that needed work during the month
(unresolved at its start, or new, reopened or back from a waiver in it) that are
fixed or waived at its end. `median_days_to_fix` is the median of the days from
first seen to each fix of the month. `overdue`: see `overdue`.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from checks.ledger import CLOCK_RUNS, CLOSED, DEFAULT_DUE_DAYS, RETIRED, UNRESOLVED
from checks.settings import DEFAULT_OVERDUE_DAYS
from checks.counties import UNKNOWN as UNKNOWN_COUNTY
from checks.counties import county_expr, county_label

__all__ = ["month_bounds", "statuses_at", "with_county", "progress", "overdue", "trend", "months_between",
           "DEFAULT_OVERDUE_DAYS", "UNKNOWN_COUNTY"]

#: Counted on the road to zero (info notes are not).
COUNTED = ("error", "warning")
FIGURES = ("open_start", "new", "fixed", "reopened", "waived", "waiver_lifted", "withdrawn", "open_end",
           "cleared_share", "median_days_to_fix", "overdue")


def month_bounds(month: str) -> tuple[dt.date, dt.date]:
    """First and last day of `YYYY-MM`."""
    first = dt.date.fromisoformat(f"{month}-01")
    following = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return first, following - dt.timedelta(days=1)


def months_between(first: str, last: str) -> list[str]:
    """`YYYY-MM` from `first` to `last`, both included."""
    out, (year, mon) = [], map(int, first.split("-"))
    while f"{year:04d}-{mon:02d}" <= last:
        out.append(f"{year:04d}-{mon:02d}")
        year, mon = (year + 1, 1) if mon == 12 else (year, mon + 1)
    return out


def statuses_at(audit: pl.DataFrame, day: dt.date) -> pl.DataFrame:
    """(finding_id, status) of every finding first seen by `day`: its last logged status change up to that
    night. Findings not yet seen are absent."""
    return audit.filter(pl.col("run_date") <= day.isoformat()).sort("id") \
        .group_by("finding_id").agg(status=pl.col("new_status").last())


def with_county(findings: pl.DataFrame) -> pl.DataFrame:
    """The findings with `county` — the county list the nightly put each on (`checks.counties`, kept in the
    ledger), else the region of the finding's code — and `county_name`."""
    stored = pl.col("county") if "county" in findings.columns else pl.lit(None, pl.String)
    frame = findings.with_columns(county=pl.coalesce(stored, county_expr(pl.col("uscc"), pl.lit(None, pl.String),
                                                                         "")))
    names = {r: county_label(r) for r in frame["county"].unique().to_list()}
    return frame.with_columns(county_name=pl.col("county").replace_strict(names, return_dtype=pl.String))


def overdue(findings: pl.DataFrame, at_end: pl.DataFrame, end: dt.date, due_days: int | dict[str, int]) -> pl.DataFrame:
    """The findings overdue at `end`: open, reopened or refused at `end` (an answer waiting for the next
    extract has its clock stopped) and first seen more than their due days before it.

    The one place the monthly report decides overdue. `due_days` is `Settings.due_days` (by kind, else by
    severity: the nightly due dates' rule) or one number for every finding. Returns the findings with
    `status` (at `end`) and `days_open`.
    """
    if isinstance(due_days, dict):
        allowed = pl.col("kind").replace_strict(due_days, default=None, return_dtype=pl.Int64).fill_null(
            pl.col("severity").replace_strict(due_days, default=DEFAULT_OVERDUE_DAYS, return_dtype=pl.Int64))
    else:
        allowed = pl.lit(due_days)
    return findings.join(at_end, on="finding_id") \
        .filter(pl.col("status").is_in(CLOCK_RUNS)) \
        .with_columns(days_open=(pl.lit(end) - pl.col("first_seen").str.to_date(strict=False)).dt.total_days()) \
        .filter(pl.col("days_open") > allowed) \
        .sort("source", "county", "days_open", "finding_id", descending=[False, False, True, False])


def _events(findings: pl.DataFrame, audit: pl.DataFrame, first: dt.date, end: dt.date) -> pl.DataFrame:
    """The month's status changes that move a finding onto or off the road to zero, with its keys."""
    old, new = pl.col("old_status"), pl.col("new_status")
    changes = audit.filter(pl.col("run_date").is_between(pl.lit(first.isoformat()), pl.lit(end.isoformat()))).with_columns(
        event=pl.when(old.is_null()).then(pl.lit("new"))
        .when(new == "fixed").then(pl.lit("fixed"))
        .when((new == "reopened") | (old.is_in(RETIRED) & new.is_in(UNRESOLVED))).then(pl.lit("reopened"))
        .when(new.is_in(RETIRED)).then(pl.lit("withdrawn"))
        .when(new == "waived").then(pl.lit("waived"))
        .when((old == "waived") & new.is_in(UNRESOLVED)).then(pl.lit("waiver_lifted")))
    return changes.filter(pl.col("event").is_not_null()).join(findings, on="finding_id") \
        .with_columns(days=(pl.col("run_date").str.to_date() - pl.col("first_seen").str.to_date()).dt.total_days())


def progress(findings: pl.DataFrame, audit: pl.DataFrame, month: str, end: dt.date | None = None,
             overdue_days: int | dict[str, int] = DEFAULT_DUE_DAYS, sources: tuple[str, ...] = ()) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The month's figures per department and county, per department, and for the city; and its overdue list.

    Args:
        findings: `ledger.lifecycle`'s findings.
        audit: `ledger.lifecycle`'s audit log.
        end: the last day counted (default the month's last day; earlier for a month not yet over).
        sources: departments that get a row even with nothing to count (every configured one).

    Returns:
        (progress, overdue): progress has `level` (`county` | `department` | `city`), `source`, `county`,
        `county_name` and `FIGURES`; overdue is `overdue`'s frame.
    """
    first, last = month_bounds(month)
    end = min(end or last, last)
    # findings first seen later are not the month's: a month regenerated later has the same rows
    scope = with_county(findings.filter(pl.col("severity").is_in(COUNTED) & (pl.col("first_seen") <= end.isoformat())))
    at_start = statuses_at(audit, first - dt.timedelta(days=1))
    at_end = statuses_at(audit, end)
    events = _events(scope, audit, first, end)
    late = overdue(scope, at_end, end, overdue_days)
    state = scope.select("finding_id", "source", "county", "county_name") \
        .join(at_start.rename({"status": "start"}), on="finding_id", how="left") \
        .join(at_end.rename({"status": "end"}), on="finding_id", how="left")
    entered = events.filter(pl.col("event").is_in(["new", "reopened", "waiver_lifted"])).select("finding_id").unique()
    needing = state.filter(pl.col("start").is_in(UNRESOLVED)
                           | pl.col("finding_id").is_in(entered["finding_id"].implode()))
    levels = (("county", ["source", "county", "county_name"]), ("department", ["source"]), ("city", []))
    frames = []
    for level, keys in levels:
        def count(frame: pl.DataFrame, **aggs) -> pl.DataFrame:
            return frame.group_by(keys).agg(**aggs) if keys else frame.select(**aggs)

        parts = [
            count(state, open_start=pl.col("start").is_in(UNRESOLVED).sum(),
                  open_end=pl.col("end").is_in(UNRESOLVED).sum()),
            count(events, **{e: (pl.col("event") == e).sum()
                             for e in ("new", "fixed", "reopened", "waived", "waiver_lifted", "withdrawn")},
                  median_days_to_fix=pl.col("days").filter(pl.col("event") == "fixed").median()),
            count(needing, _needing=pl.len(), _cleared=pl.col("end").is_in(CLOSED).sum()),
            count(late, overdue=pl.len()),
        ]
        merged = parts[0]
        for part in parts[1:]:
            merged = merged.join(part, on=keys, how="left") if keys else pl.concat([merged, part], how="horizontal")
        if not keys:
            merged = merged.with_columns(source=pl.lit(None, pl.String))
        if level == "department":  # a department with nothing to count still reports its zeros
            merged = pl.concat([merged, pl.DataFrame({"source": [s for s in sources if s not in merged["source"]]},
                                                     schema={"source": pl.String})], how="diagonal_relaxed")
        if level != "county":
            merged = merged.with_columns(county=pl.lit(None, pl.String), county_name=pl.lit(None, pl.String))
        frames.append(merged.with_columns(level=pl.lit(level)))
    counts = ("open_start", "open_end", "new", "fixed", "reopened", "waived", "waiver_lifted", "withdrawn", "overdue",
              "_needing", "_cleared")
    out = pl.concat([f.select("level", "source", "county", "county_name", *counts, "median_days_to_fix")
                     .with_columns(pl.col(c).cast(pl.Int64).fill_null(0) for c in counts) for f in frames])
    out = out.with_columns(cleared_share=pl.when(pl.col("_needing") > 0)
                           .then(pl.col("_cleared") / pl.col("_needing"))).drop("_needing", "_cleared")
    order = pl.col("level").replace_strict({"county": 1, "department": 0, "city": 2}, return_dtype=pl.Int8)
    out = out.sort(pl.col("source").is_null(), "source", order, "county", nulls_last=False)
    return out.select("level", "source", "county", "county_name", *FIGURES), late


def trend(findings: pl.DataFrame, audit: pl.DataFrame, months: list[str], end: dt.date | None = None) -> pl.DataFrame:
    """Per month and department: unresolved errors and warnings at the month's end, and fixes in the month.

    `end` caps the last month (a month not yet over is counted up to that day).
    """
    scope = findings.filter(pl.col("severity").is_in(COUNTED)).select("finding_id", "source")
    sources = sorted(scope["source"].unique().to_list())
    frames = []
    for month in months:
        first, last = month_bounds(month)
        stop = min(end or last, last)
        at = statuses_at(audit, stop).join(scope, on="finding_id")
        open_ = at.filter(pl.col("status").is_in(UNRESOLVED)).group_by("source").len("open_end")
        fixed = audit.filter(pl.col("run_date").is_between(pl.lit(first.isoformat()), pl.lit(stop.isoformat()))
                             & (pl.col("new_status") == "fixed")).join(scope, on="finding_id") \
            .group_by("source").len("fixed")
        frames.append(pl.DataFrame({"source": sources}, schema={"source": pl.String})
                      .join(open_, on="source", how="left").join(fixed, on="source", how="left")
                      .with_columns(month=pl.lit(month), open_end=pl.col("open_end").fill_null(0).cast(pl.Int64),
                                    fixed=pl.col("fixed").fill_null(0).cast(pl.Int64)))
    if not frames:
        return pl.DataFrame(schema={"month": pl.String, "source": pl.String, "open_end": pl.Int64, "fixed": pl.Int64})
    return pl.concat(frames).select("month", "source", "open_end", "fixed")
