"""The night's progress in words: one line per step for the console (`uscc run --no-prefect`), the
flow's log and the Failed state's message. Chinese, for the steward and the operator."""

from __future__ import annotations

from checks.textfile import quote
from reports.receipts import OUTCOME_LABELS


def describe_source(s: dict) -> str:
    """One line per source: its rows, or why its extract was not accepted."""
    if s["status"] == "rejected":
        return f"{s['name']} 本期数据被拒收：{s['reason']}"
    if s["status"] == "held":
        return f"{s['name']} 本期数据待确认：{s['reason']}"
    return (f"{s['name']}：读取 {s['rows_read']} 行，检查 {s['rows_checked']} 行，隔离 {s['rows_quarantined']} 行，"
            f"空行 {s['rows_blank']} 行")


def describe_detection(counts: dict) -> str:
    return f"检测：{counts['records']} 条记录，{counts['findings']} 条问题"


def describe_return(h: dict) -> str:
    # a file name may hold line breaks: one line per file in the console and the flow's log
    if h["outcome"] == "deferred":  # still arriving: nothing was read
        return f"反馈 {h['source']}/{quote(h['file'], 120)}：{h['reason']}"
    outcome = OUTCOME_LABELS[h["outcome"]]
    return (f"反馈 {h['source']}/{quote(h['file'], 120)}：{outcome}，受理 {h.get('accepted', 0)} 行，"
            f"未受理 {h.get('rejected', 0)} 行" + (f"（{h['reason']}）" if h["reason"] else ""))


def describe_changes(changes: dict) -> str:
    carried = f"，记录变更接续 {changes['carried']}" if changes.get("carried") else ""
    off = f"（其中 {changes['off_list']} 条不在本期清单中，见总览）" if changes.get("off_list") else ""
    return (f"台账：新发现 {changes['new']}，已更正 {changes['fixed']}，重新出现 {changes['reopened']}{carried}；"
            f"待处理 {changes['open']}{off}")


def describe_leftover(removed: str) -> str:
    return f"已清理上次异常中断留下的 {removed}"


def failure_message(result: dict) -> str | None:
    """Why a night that wrote its reports still failed (a rejected or held source), or None."""
    parts = [f"{k} 被拒收：{v}" for k, v in result["rejected"].items()] + \
        [f"{k} 待确认：{v}" for k, v in result["held"].items()]
    return "；".join(parts) or None
