"""Why a finding tonight's findings no longer show closes, hands over or stays — on what evidence.

Part of the nightly update (`checks.ledger_night.record_run`, one transaction): the unresolved findings
tonight's findings do not show are closed as fixed when tonight's extracts say why (the record is there and
the problem gone; the record left with its code, or while the code stays on other records; the department
said 已注销), handed over to the finding of a renumbered record (`superseded`), retired with a registry the
steward withdrew (`withdrawn`), or left unresolved — still counted, and listed off the departments' lists
with the reason (`off_list`). docs/correction-loop.md#closing.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field

import polars as pl

from checks.form import CANCELLED
from checks.guard import Extract
from checks.ledger_schema import SUPERSEDED, UNRESOLVED, WITHDRAWN, _audit
from validators.column import compact_expr


@dataclass(frozen=True)
class Tonight:
    """What tonight's extracts hold, for deciding why a finding disappeared.

    Args:
        sources_read: sources whose extract was read tonight; findings of the others are left alone.
        records: one row per record of those extracts: `source`, `record_id`, `code` (`compact_expr`) and
            `checked` (False for a quarantined row: its findings are left alone too).
        extracts: each configured source's extract verdict tonight (`Extract`), kept per night in the ledger.
    """

    sources_read: frozenset[str]
    records: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(
        schema={"source": pl.String, "record_id": pl.String, "code": pl.String, "checked": pl.Boolean}))
    extracts: tuple[Extract, ...] = ()

    def configured(self, source: str) -> bool:
        """Whether `source` is configured tonight (without verdicts: every source is)."""
        return not self.extracts or source in self.sources_read or any(e.source == source for e in self.extracts)


#: Why a finding that is no longer found is closed as fixed (audit notes, shown to the steward).
GONE_NOTES = {
    "problem_gone": "本期数据中该问题已消除",
    "cancelled": "部门报已注销，记录已不在本期数据中",
    "record_and_code_gone": "记录及其代码均已不在本期数据中",
    "record_gone": "记录已不在本期数据中；其代码仍由本单位其他记录使用，这些记录的问题各自跟踪",
}

#: Why a finding is withdrawn with a registry the steward withdrew (`{}`: that registry).
WITHDRAWN_NOTE = "相关记录所在来源 {} 已撤销跟踪，该问题无法再核实"

#: Why an unresolved finding is on no list tonight although it counts on the road to zero (the overview lists
#: them, `off_list.csv` has every one). Keys are stable (`off_list.csv`'s `reason`), the text is the clerk's
#: (`{source}`: the finding's source, `{owner}`: the department it is assigned to).
OFF_LIST_REASONS = {
    "unconfigured": "所属来源 {source} 已不在配置中；如该来源确已撤销，市信用办可运行 uscc ledger withdraw --source {source} "
                    "--why “原因” 撤销跟踪",
    "not_accepted": "所属部门本期没有可用的已接受数据，未能检查",
    "quarantined": "记录本期被隔离，未能检查（见总览“隔离记录”）",
    "related_not_accepted": "相关记录所在来源本期未检查（数据未被接受，或已从配置中删除而未撤销跟踪），暂不关闭",
    "owner_unconfigured": "已改派给的部门 {owner} 不在配置中，没有清单；请运行 uscc ledger reassign 问题编号 --to 现有部门 "
                          "--why “原因” 重新改派",
    "unexplained": "本期未检出，但缺少关闭依据",
}
#: Columns of the off-list findings (`record_run`'s "off_list", the work folder's copy, `off_list.csv`).
OFF_LIST_SCHEMA = {"finding_id": pl.String, "source": pl.String, "owner": pl.String, "record_id": pl.String,
                   "uscc": pl.String, "name": pl.String, "kind": pl.String, "severity": pl.String,
                   "status": pl.String, "first_seen": pl.String, "last_seen": pl.String, "due_date": pl.String,
                   "reason": pl.String}


def close_gone(conn: sqlite3.Connection, run_date: str, now: str, actor: str, tonight: Tonight | None,
               withdrawn: frozenset[str] = frozenset()) -> pl.DataFrame:
    """Close the unresolved findings tonight's extracts no longer show, on the evidence they give, saying why;
    return those it left unresolved (`off_list` says why). `withdrawn`: the registries the steward withdrew.

    A record that left its registry while its code stays there on other records closes its findings too: its
    own problems left with it, and the code's other holders carry their own findings. When the same problem
    appears tonight for the first time on a record holding that code under the same name (the registry
    renumbered the record, or deleted and entered it again), that finding carries this one on (`superseded`):
    it takes over the first-seen day, due date and reassignment, and neither a fix nor a new problem is
    counted. A finding whose problem involved a record of a registry the steward withdrew cannot be checked
    any more: it is `withdrawn` too, not fixed.
    """
    rows = conn.execute(
        "SELECT finding_id, source, coalesce(assigned_to, source), record_id, uscc, name, kind, severity, status, "
        "first_seen, last_seen, due_date, related, answer FROM findings WHERE status IN (%s) "
        "AND finding_id NOT IN (SELECT finding_id FROM tonight) ORDER BY source, record_id, finding_id"
        % ",".join("?" * len(UNRESOLVED)), UNRESOLVED).fetchall()
    schema = {c: pl.String for c in OFF_LIST_SCHEMA if c != "reason"} | {"related": pl.String, "answer": pl.String}
    unresolved = pl.DataFrame(rows, schema=schema, orient="row")
    if unresolved.height == 0:
        return unresolved
    gone = unresolved
    successors = pl.DataFrame(schema={"finding_id": pl.String, "successor": pl.String,
                                      "successor_record": pl.String})
    if tonight is None:
        gone = gone.with_columns(note=pl.lit(GONE_NOTES["problem_gone"]))
    else:
        records = tonight.records  # a quarantined record (checked False) keeps its findings as they are
        gone = gone.filter(pl.col("source").is_in(list(tonight.sources_read))) \
            .with_columns(code=compact_expr(pl.col("uscc").fill_null(""))) \
            .join(records.group_by("source", "record_id").agg(pl.col("checked").all()), on=["source", "record_id"],
                  how="left") \
            .join(records.filter(pl.col("code") != "").select("source", "code").unique()
                  .with_columns(code_held=pl.lit(True)), on=["source", "code"], how="left") \
            .filter(pl.col("checked").fill_null(True)) \
            .with_columns(note=pl.when(pl.col("checked")).then(pl.lit(GONE_NOTES["problem_gone"]))
                          .when(pl.col("answer") == CANCELLED).then(pl.lit(GONE_NOTES["cancelled"]))
                          .when(pl.col("code_held").is_null()).then(pl.lit(GONE_NOTES["record_and_code_gone"]))
                          .otherwise(pl.lit(GONE_NOTES["record_gone"])))
        # Not a problem that involved a record of a source not accepted tonight: that evidence was not checked.
        unread = _unread(tonight, _named_sources(gone), withdrawn)
        if unread:
            gone = gone.filter(~pl.col("related").fill_null("").str.contains(_naming(unread)))
        record_left = pl.col("checked").is_null() & (pl.col("answer").fill_null("") != CANCELLED)
        successors = _successors(conn, run_date, gone.filter(record_left))
        if withdrawn:  # the evidence of a withdrawn registry left with it: nobody can say the problem was fixed
            involved = pl.col("related").fill_null("").str.extract(_naming(withdrawn), 1)
            gone = gone.with_columns(
                new=pl.when(involved.is_not_null()).then(pl.lit(WITHDRAWN)).otherwise(pl.lit("fixed")),
                note=pl.when(involved.is_not_null()).then(pl.format(WITHDRAWN_NOTE, involved)).otherwise("note"))
    if "new" not in gone.columns:
        gone = gone.with_columns(new=pl.lit("fixed"))
    gone = gone.join(successors, on="finding_id", how="left")
    closed = gone.filter(pl.col("successor").is_null())
    carried = gone.filter(pl.col("successor").is_not_null())
    moves = closed.select("finding_id", "status", "new", "note").rows()
    conn.executemany("INSERT INTO audit (at, run_date, finding_id, old_status, new_status, actor, note) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)", [(now, run_date, f, s, new, actor, n) for f, s, new, n in moves])
    conn.executemany("UPDATE findings SET status = ?, status_changed = ? WHERE finding_id = ?",
                     [(new, now, f) for f, _, new, _ in moves])
    for f, record, status, first, due, successor, successor_record in carried.select(
            "finding_id", "record_id", "status", "first_seen", "due_date", "successor", "successor_record").rows():
        _audit(conn, now, run_date, f, status, SUPERSEDED, actor,
                    f"记录 {record} 已不在本期数据中，其代码现由本单位记录 {successor_record} 持有；同一问题由问题 "
                    f"{successor} 接续（沿用首次发现日期 {first} 和处理期限 {due}）")
        conn.execute("UPDATE findings SET status = ?, status_changed = ? WHERE finding_id = ?", (SUPERSEDED, now, f))
        # the successor is the same problem: its clock, and the department the steward gave it to
        conn.execute("UPDATE findings SET succeeds = ?, first_seen = ?, due_date = ?, assigned_to = (SELECT "
                     "assigned_to FROM findings WHERE finding_id = ?) WHERE finding_id = ?", (f, first, due, f, successor))
        conn.execute("UPDATE audit SET note = ? WHERE finding_id = ? AND old_status IS NULL",
                     (f"首次发现；接续记录 {record} 的问题 {f}（该记录已不在数据中），沿用其首次发现日期 {first}",
                      successor))
    return unresolved.join(gone.select("finding_id"), on="finding_id", how="anti")


def _successors(conn: sqlite3.Connection, run_date: str, candidates: pl.DataFrame) -> pl.DataFrame:
    """For findings whose record left its registry tonight (`candidates`: finding_id, source, kind, code, name),
    the finding that carries each on: first seen tonight, of the same kind, on a record of the same source
    holding the same code cell under the same non-empty name (a renumbered record; a code alone is not enough:
    placeholders such as “无” are shared by unrelated records).

    Tonight only: a successor that appeared on an earlier night was counted as new then, and taking that back
    later would change a month already reported. One successor per finding, ever (a finding that handed over
    never hands over again), and one finding per successor: within each (source, kind, code, name) the n-th
    finding in finding-id order pairs with the n-th candidate in record-id order, a linear join.
    """
    empty = pl.DataFrame(schema={"finding_id": pl.String, "successor": pl.String, "successor_record": pl.String})
    if candidates.height:
        handed = {r[0] for r in conn.execute("SELECT succeeds FROM findings WHERE succeeds >= ''")}
        candidates = candidates.filter(~pl.col("finding_id").is_in(list(handed)) & (_name() != ""))
    if candidates.height == 0:
        return empty
    rows = conn.execute("SELECT t.finding_id, t.source, t.record_id, t.kind, t.uscc, t.name FROM tonight t "
                        "JOIN findings f USING (finding_id) WHERE f.first_seen = ? AND f.succeeds IS NULL "
                        "AND f.status = 'open'", (run_date,)).fetchall()
    if not rows:
        return empty
    keys = ["source", "kind", "code", "same_name"]
    fresh = pl.DataFrame(rows, schema=["successor", "source", "successor_record", "kind", "uscc", "name"],
                         orient="row").with_columns(code=compact_expr(pl.col("uscc").fill_null("")), same_name=_name())
    mine = candidates.with_columns(same_name=_name()).select("finding_id", *keys).sort("finding_id") \
        .with_columns(n=pl.int_range(pl.len()).over(keys))
    theirs = fresh.select("successor", "successor_record", *keys).sort("successor_record", "successor") \
        .with_columns(n=pl.int_range(pl.len()).over(keys))
    return mine.join(theirs, on=[*keys, "n"]).select("finding_id", "successor", "successor_record")


def _name() -> pl.Expr:
    """A record's name as a renumbering keeps it (whitespace aside)."""
    return pl.col("name").fill_null("").str.replace_all(r"\s", "")


def unowned(conn: sqlite3.Connection, tonight: Tonight | None) -> pl.DataFrame:
    """Tonight's unresolved findings the steward handed to a department that is no longer configured: on no
    department's list although counted (shown with the off-list findings)."""
    if tonight is None or not tonight.extracts:
        return pl.DataFrame(schema=OFF_LIST_SCHEMA)
    rows = conn.execute(
        "SELECT f.finding_id, f.source, f.assigned_to, f.record_id, f.uscc, f.name, f.kind, f.severity, f.status, "
        "f.first_seen, f.last_seen, f.due_date FROM findings f JOIN tonight t USING (finding_id) "
        "WHERE f.assigned_to >= '' AND f.status IN (%s) ORDER BY f.source, f.record_id, f.finding_id"
        % ",".join("?" * len(UNRESOLVED)), UNRESOLVED).fetchall()
    rows = [r for r in rows if not tonight.configured(r[2])]
    return pl.DataFrame([(*r, "owner_unconfigured") for r in rows], schema=OFF_LIST_SCHEMA, orient="row")


def _unread(tonight: Tonight, sources: set[str], withdrawn: frozenset[str]) -> set[str]:
    """Those of `sources` whose records were not checked tonight: not accepted tonight (held, rejected), or no
    longer configured — unless the steward withdrew that registry: a registry dropped from the configuration by
    mistake must not close other registries' findings as fixed."""
    return sources - tonight.sources_read - withdrawn


def _named_sources(findings: pl.DataFrame) -> set[str]:
    """The sources the findings' `related` lists name."""
    return {s for r in findings["related"].drop_nulls().to_list() for s in _sources_of(r)}


def _naming(sources: set[str] | frozenset[str]) -> str:
    """A pattern for a `related` list naming a record of one of `sources` (group 1: which)."""
    return "(?:^|;)(" + "|".join(re.escape(s) for s in sorted(sources)) + "):"


def off_list(frame: pl.DataFrame, tonight: Tonight | None, withdrawn: frozenset[str] = frozenset()) -> pl.DataFrame:
    """The unresolved findings tonight's findings do not show (`close_gone` left them; they stay on the road to
    zero), and why (`OFF_LIST_REASONS`)."""
    if frame.height == 0 or tonight is None:
        return frame.with_columns(reason=pl.lit(None, pl.String)).select(list(OFF_LIST_SCHEMA))
    read = tonight.sources_read
    configured = [s for s in frame["source"].unique().to_list() if tonight.configured(s)]
    quarantined = tonight.records.filter(~pl.col("checked")).select("source", "record_id").unique() \
        .with_columns(quarantined=pl.lit(True))
    unread = _unread(tonight, _named_sources(frame), withdrawn)
    related_unread = pl.col("related").fill_null("").str.contains(_naming(unread)) if unread else pl.lit(False)
    reason = pl.when(~pl.col("source").is_in(list(configured))).then(pl.lit("unconfigured")) \
        .when(~pl.col("source").is_in(list(read))).then(pl.lit("not_accepted")) \
        .when(pl.col("quarantined").fill_null(False)).then(pl.lit("quarantined")) \
        .when(related_unread).then(pl.lit("related_not_accepted")) \
        .otherwise(pl.lit("unexplained"))
    return frame.join(quarantined, on=["source", "record_id"], how="left", maintain_order="left") \
        .with_columns(reason=reason).select(list(OFF_LIST_SCHEMA))


def _sources_of(related: str) -> set[str]:
    """The sources named in a finding's `related` (`source:record_id;…`)."""
    return {part.split(":", 1)[0] for part in related.split(";") if ":" in part}
