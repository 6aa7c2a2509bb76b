"""The steward's hand on the ledger: reopening, reassigning, withdrawing, accepting a held extract; the extracts'
verdicts.

Every change is audited as the steward's, with the reason given (`--why`); a request the ledger can't carry
out raises `LedgerError` with a sentence in Chinese.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from checks.guard import Erosion
from checks.ledger_history import audit_log
from checks.ledger_schema import (PENDING_NIGHT, UNRESOLVED, WITHDRAWN, LedgerError, _audit, _now, _Transaction, connect,
                                  connect_read_only)


def accepted_extract(db: Path, source: str) -> dict | None:
    """The last extract accepted for a source (run_date, file, sha256, records), or None."""
    with closing(connect(db)) as conn:
        row = conn.execute("SELECT run_date, file, sha256, records FROM accepted_extracts WHERE source = ?",
                           (source,)).fetchone()
    return dict(zip(("run_date", "file", "sha256", "records"), row)) if row else None


def recent_losses(db: Path, source: str, run_date: str, days: int) -> Erosion | None:
    """What the nights accepted for a source in the `days` before `run_date` lost (the guard's `Erosion`): since
    the window's start, or since the last extract the steward accepted by hand (a loss deliberately accepted is
    not counted again). None when no such night."""
    if days <= 0:
        return None
    with closing(connect(db)) as conn:
        rows = conn.execute(
            "SELECT e.run_date, e.previous_records, e.records, e.lost, a.sha256 IS NOT NULL FROM extracts e "
            "LEFT JOIN (SELECT DISTINCT source, sha256 FROM extract_acceptances) a "
            "ON a.source = e.source AND a.sha256 = e.sha256 WHERE e.source = ? AND e.status = 'ok' "
            "AND e.run_date < ? AND e.run_date >= date(?, ?) ORDER BY e.run_date",
            (source, run_date, run_date, f"-{days} days")).fetchall()
    steward = [i for i, r in enumerate(rows) if r[4]]
    if steward:
        rows = rows[steward[-1] + 1:]
    if not rows:
        return None
    most = max((r[1] if r[1] is not None else r[2]) or 0 for r in rows)
    return Erosion(rows[0][0], most, sum(r[3] or 0 for r in rows), len(rows))


def untracked_sources(db: Path, configured: set[str]) -> list[dict]:
    """Registries the ledger tracks (unresolved findings, an accepted extract) that are neither configured nor
    withdrawn by the steward: source, unresolved, last_accepted. Read only (a check before a night writes
    nothing, not even a schema upgrade): a ledger from before withdrawals has none."""
    marks = ",".join("?" * len(UNRESOLVED))
    with closing(connect_read_only(db)) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        withdrawn = "SELECT source FROM withdrawn_sources" if "withdrawn_sources" in tables else "SELECT NULL"
        rows = conn.execute(
            f"SELECT source, SUM(unresolved), MAX(accepted) FROM ("
            f"SELECT source, COUNT(*) AS unresolved, NULL AS accepted FROM findings WHERE status IN ({marks}) "
            f"GROUP BY source UNION ALL SELECT source, 0, run_date FROM accepted_extracts) "
            f"WHERE source NOT IN ({withdrawn}) GROUP BY source ORDER BY source", UNRESOLVED).fetchall()
    return [{"source": s, "unresolved": n, "last_accepted": d} for s, n, d in rows if s not in configured]


def steward_acceptance(db: Path, source: str, sha256: str) -> str | None:
    """Why the steward accepted this exact extract (by content hash), or None."""
    with closing(connect(db)) as conn:
        row = conn.execute("SELECT why FROM extract_acceptances WHERE source = ? AND sha256 = ? ORDER BY id DESC",
                           (source, sha256)).fetchone()
    return row[0] if row else None


def extract_verdicts(db: Path, source: str | None = None, limit: int = 30) -> list[dict]:
    """The latest nights' verdicts on the extracts, newest first (`uscc extracts list`)."""
    keys = ("run_date", "source", "status", "file", "sha256", "rows_read", "records", "previous_records", "lost",
            "reason")
    with closing(connect(db)) as conn:
        rows = conn.execute(f"SELECT {', '.join(keys)} FROM extracts" + (" WHERE source = ?" if source else "")
                            + " ORDER BY run_date DESC, source LIMIT ?", ((source,) if source else ()) + (limit,))
        return [dict(zip(keys, r)) for r in rows.fetchall()]


def extracts_of_night(db: Path, night: str) -> dict[str, dict]:
    """Each source's extract as a night saw it: {source: {"file", "sha256", "status"}}; read only."""
    with closing(connect_read_only(db)) as conn:
        rows = conn.execute("SELECT source, file, sha256, status FROM extracts WHERE run_date = ?", (night,)).fetchall()
    return {source: {"file": file, "sha256": sha, "status": status} for source, file, sha, status in rows}


def steward_accept_extract(db: Path, source: str, why: str) -> dict:
    """The steward accepts the extract the guard held last for this source; the next night uses it (audited)."""
    if not why.strip():
        raise LedgerError("请用 --why 写明接受该期数据的原因（如“3 月集中清理注销主体，经核实属实”），会记入审计日志。")
    with closing(connect(db)) as conn, _Transaction(conn):
        row = conn.execute("SELECT run_date, file, sha256, records, previous_records, reason FROM extracts "
                           "WHERE source = ? ORDER BY run_date DESC LIMIT 1", (source,)).fetchone()
        if row is None or row[2] is None:
            raise LedgerError(f"台账中没有来源 {source} 的数据检查记录：请先运行夜间任务。")
        night, file, sha, records, previous, reason = row
        status = conn.execute("SELECT status FROM extracts WHERE source = ? AND run_date = ?", (source, night)).fetchone()[0]
        if status != "held":
            shown = {"ok": "已接受", "rejected": "被拒收"}.get(status, status)
            raise LedgerError(f"来源 {source} 最近一期（{night}，{file}）的数据是“{shown}”，不是“待确认”，无需接受。")
        now = _now()
        conn.execute("INSERT INTO extract_acceptances (source, sha256, file, why, at, actor) VALUES (?,?,?,?,?,?)",
                     (source, sha, file, why.strip(), now, "steward"))
        _audit(conn, now, night, "", "held", "accepted", "steward",
               f"市信用办确认接受 {source} 的数据 {file}（上期 {previous} 条，本期 {records} 条；原因：{reason}）：{why.strip()}")
    return {"run_date": night, "file": file, "records": records, "previous_records": previous}


def finding_detail(db: Path, finding_id: str) -> dict:
    """One finding as the ledger holds it, with its audit trail (`uscc ledger show`)."""
    with closing(connect(db)) as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM findings WHERE finding_id = ?", (finding_id,)).fetchone()
        successor = conn.execute("SELECT finding_id FROM findings WHERE succeeds = ?", (finding_id,)).fetchone()
    if row is None:
        raise LedgerError(f"台账中没有问题编号 {finding_id}。")
    return {**dict(row), "succeeded_by": successor[0] if successor else None, "audit": audit_log(db, finding_id)}


def steward_reopen(db: Path, finding_id: str, why: str) -> tuple[str, str]:
    """The steward puts a finding back to `open` (lifts a waiver, takes back 非本单位 or 已注销, or a withdrawal);
    audited, and counted from the next night on (`PENDING_NIGHT`)."""
    if not why.strip():
        raise LedgerError("请用 --why 写明重新打开的原因（会记入审计日志）。")
    with closing(connect(db)) as conn, _Transaction(conn):
        row = conn.execute("SELECT status FROM findings WHERE finding_id = ?", (finding_id,)).fetchone()
        if row is None:
            raise LedgerError(f"台账中没有问题编号 {finding_id}。")
        old = row[0]
        if old not in ("responded", "waived", "rejected-response", WITHDRAWN):
            raise LedgerError(f"问题 {finding_id} 当前状态为 {old}，只有已反馈、确认无误、反馈未通过或已撤销跟踪的问题可以重新打开。")
        conn.execute("UPDATE findings SET status = 'open', status_changed = ?, waived_record = NULL WHERE finding_id = ?",
                     (_now(), finding_id))
        _audit(conn, _now(), PENDING_NIGHT, finding_id, old, "open", "steward", f"市信用办重新打开：{why.strip()}")
    return old, "open"


def steward_reassign(db: Path, finding_id: str, to_source: str, why: str, source_names: dict[str, str]) -> dict:
    """Hand a finding to another department (the usual follow-up of 非本单位); audited as the steward.

    The new department sees it on its next list and form and only it may answer; an answer that
    was waiting (responded) is set aside, the finding is open for the new owner.
    """
    if to_source not in source_names:
        raise LedgerError(f"没有来源“{to_source}”；已配置的来源：{'、'.join(source_names)}。")
    if not why.strip():
        raise LedgerError("请用 --why 写明改派的原因（如“经核实该律所由司法局登记”），会记入审计日志。")
    with closing(connect(db)) as conn, _Transaction(conn):
        row = conn.execute("SELECT status, coalesce(assigned_to, source) FROM findings WHERE finding_id = ?",
                           (finding_id,)).fetchone()
        if row is None:
            raise LedgerError(f"台账中没有问题编号 {finding_id}。")
        status, owner = row
        if status not in UNRESOLVED:
            raise LedgerError(f"问题 {finding_id} 当前状态为 {status}，已关闭的问题无需改派。")
        if owner == to_source:
            raise LedgerError(f"问题 {finding_id} 已由{source_names[to_source]}处理，无需改派。")
        now = _now()
        new = "open" if status == "responded" else status
        conn.execute("UPDATE findings SET assigned_to = ?, status = ?, status_changed = ? WHERE finding_id = ?",
                     (to_source, new, now, finding_id))
        conn.execute("INSERT INTO reassignments (finding_id, from_source, to_source, why, at) VALUES (?,?,?,?,?)",
                     (finding_id, owner, to_source, why.strip(), now))
        # dated by the next night, which takes up the reassignment itself too
        _audit(conn, now, PENDING_NIGHT, finding_id, status, new, "steward",
               f"市信用办改派：由{source_names.get(owner, owner)}改为{source_names[to_source]}处理：{why.strip()}")
    return {"from": owner, "to": to_source, "old_status": status, "new_status": new}


def steward_withdraw(db: Path, source: str, why: str, configured: set[str] | frozenset[str]) -> dict:
    """The steward stops tracking a registry that is no longer configured (merged into another, or retired): its
    unresolved findings leave the road to zero as `withdrawn`, audited as the steward's, and its records no
    longer keep other registries' findings from closing (until then a registry dropped from the configuration
    — perhaps by a typo — counts as not read). Returns {"findings": n, "counted": errors and warnings among them}.

    Counted from the next night on (`PENDING_NIGHT`).

    A configured registry's findings are never withdrawn: they are closed by its extracts or its answers.
    """
    if not why.strip():
        raise LedgerError("请用 --why 写明撤销跟踪的原因（如“该登记系统已并入市场监管局系统”），会记入审计日志。")
    if source in configured:
        raise LedgerError(f"来源 {source} 仍在配置中，其问题由每晚的数据和部门反馈关闭，不能撤销跟踪。"
                          "只有已从 config/steward.toml 删除的来源可以撤销。")
    marks = ",".join("?" * len(UNRESOLVED))
    with closing(connect(db)) as conn, _Transaction(conn):
        known = conn.execute("SELECT 1 FROM findings WHERE source = ? LIMIT 1", (source,)).fetchone() or \
            conn.execute("SELECT 1 FROM extracts WHERE source = ? LIMIT 1", (source,)).fetchone()
        if not known:
            raise LedgerError(f"台账中没有来源 {source} 的任何记录（请检查来源名称）。")
        found = conn.execute(f"SELECT severity FROM findings WHERE source = ? AND status IN ({marks})",
                             (source, *UNRESOLVED)).fetchall()
        now = _now()
        conn.execute("INSERT INTO audit (at, run_date, finding_id, old_status, new_status, actor, note) "
                     f"SELECT ?, ?, finding_id, status, ?, 'steward', ? FROM findings WHERE source = ? "
                     f"AND status IN ({marks}) ORDER BY finding_id",
                     (now, PENDING_NIGHT, WITHDRAWN, f"市信用办撤销跟踪（来源 {source} 已不在配置中）：{why.strip()}", source,
                      *UNRESOLVED))
        conn.execute(f"UPDATE findings SET status = ?, status_changed = ? WHERE source = ? AND status IN ({marks})",
                     (WITHDRAWN, now, source, *UNRESOLVED))
        conn.execute("INSERT OR REPLACE INTO withdrawn_sources (source, why, at, findings) VALUES (?,?,?,?)",
                     (source, why.strip(), now, len(found)))
    return {"findings": len(found), "counted": sum(1 for (severity,) in found if severity != "info")}


def reassignments_of_night(db: Path, run_date: str) -> list[dict]:
    """The steward's reassignments that tonight's run took up (the overview lists them)."""
    keys = ("finding_id", "from_source", "to_source", "why", "at")
    with closing(connect(db)) as conn:
        rows = conn.execute(f"SELECT {', '.join(keys)} FROM reassignments WHERE run_date = ? ORDER BY id",
                            (run_date,)).fetchall()
    return [dict(zip(keys, r)) for r in rows]
