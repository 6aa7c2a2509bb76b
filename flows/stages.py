"""The nightly job's stages as plain functions: the Prefect flow only wires them.

Stages exchange files in a work folder (`DATA_DIR/state/work/<run date>/`),
never big frames, so each stage can be a Prefect task, retried or rerun alone.

    ingest_source ×N (+ the plausibility guard) → detect → process_returns → update_ledger → render
    → complete_night

A source whose extract is rejected (unreadable) or held (implausible, `checks.guard`)
takes part tonight with its last accepted extract, so nothing that depends on it —
its own findings or the cross-registry findings of the others — moves on a file
that was not accepted. The night is on the ledger's timeline only once
`complete_night` ran; then its work folder (raw values of the extracts) is removed.

Returned forms are judged against the ledger as it stood before tonight's
findings (the forms were issued from earlier nights) and against tonight's
records (a corrected code must not be held by another entity).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import polars as pl

from checks import guard, ledger, returns
from checks.categories import unrecognized_types
from checks.counties import county_expr
from checks.detect import detect, prepare
from checks.ingest import SourceReport, ingest_source
from checks.lock import night_lock
from checks.partition import assemble, detect_partitioned, split
from checks.register import entity_keys, golden_register
from checks.schema import empty_canonical, empty_quarantine
from checks.settings import Settings, Source
from flows.params import Night, check_night, today  # noqa: F401  (today: the flow's default night)
from reports.receipts import OUTCOME_LABELS
from reports.render import RunView, write_run
from validators.column import compact_expr

#: Stage labels as the overview shows them, in order.
INGEST, DETECT, RETURNS, LEDGER, RENDER = "读取与校验格式", "问题检测", "处理反馈", "状态台账", "生成报告"


class StageClock:
    """Seconds per stage of one run, for the overview and summary.json."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, label: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[label] = time.perf_counter() - started


WORK_ROOT = "state/work"
#: The last accepted extract of each source (`<key>.parquet`): the guard's baseline, and what a held or
#: rejected source takes part with. It holds the extract's raw values, like extracts/ itself.
ACCEPTED_ROOT = "state/accepted"


def work_dir(data_dir: Path, run_date: str) -> Path:
    path = Path(data_dir) / WORK_ROOT / run_date
    path.mkdir(parents=True, exist_ok=True)
    return path


def clear_leftovers(settings: Settings, data_dir: Path, run_date: str, today_: str | None = None) -> list[str]:
    """Remove what dead runs left (called holding the data directory's lock): half-written report folders,
    and work folders of failed nights older than `keep_failed_work_nights`. Returns what was removed."""
    removed = []
    for reports in (Path(data_dir) / "reports", Path(data_dir) / "reports" / "months"):
        if reports.is_dir() and not reports.is_symlink():
            for path in reports.iterdir():
                if path.name.startswith(".") and (".tmp-" in path.name or ".old-" in path.name) and path.is_dir() \
                        and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                    removed.append(str(path.relative_to(data_dir)))
    root = Path(data_dir) / WORK_ROOT
    if root.is_dir():
        horizon = (dt.date.fromisoformat(today_ or today()) - dt.timedelta(days=settings.keep_failed_work_nights))
        for path in root.iterdir():
            try:
                night = dt.date.fromisoformat(path.name)
            except ValueError:
                night = None  # not a night's folder (e.g. an operator's `2026/11/30` attempt): stale
            if path.name != run_date and (night is None or night < horizon) and path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
                removed.append(f"{WORK_ROOT}/{path.name}")
    return removed


def ledger_path(data_dir: Path, settings: Settings) -> Path:
    """The ledger file: $USCC_DATABASE, else `[state] database` (relative to the data directory)."""
    configured = os.environ.get("USCC_DATABASE") or settings.database
    return Path(data_dir) / configured  # an absolute configured path wins over data_dir


def ingest_one(settings: Settings, data_dir: Path, work: Path, key: str) -> dict:
    """Read one source's newest extract into `<work>/<key>.records.parquet` (+ quarantine), then guard it."""
    source = settings.source(key)
    started = time.perf_counter()
    records, quarantine, report = ingest_source(source, Path(data_dir), settings.limits)
    return admit(settings, data_dir, work, source, records, quarantine, report, time.perf_counter() - started)


def admit(settings: Settings, data_dir: Path, work: Path, source: Source, records: pl.DataFrame,
          quarantine: pl.DataFrame, report: SourceReport, seconds: float) -> dict:
    """Judge a read extract with the plausibility guard; write what tonight's detection uses for the source:
    tonight's records when accepted, else the last accepted extract's."""
    result = _source_result(source, report, seconds)
    result["extract"] = None
    if report.status == "ok":
        sha = report.sha256
        db = ledger_path(data_dir, settings)
        known = db.exists()  # the first night has no ledger yet: no baseline, no acceptance
        why = ledger.steward_acceptance(db, source.key, sha) if known else None
        try:
            baseline = _baseline(data_dir, db, source.key) if known else None
        except BaselineLost as exc:
            baseline, verdict = None, guard.Verdict(not why, records.height, reason=None if why else str(exc))
        else:
            verdict = guard.judge(records, quarantine["record_id"], baseline, settings.max_lost_share, why, source.key)
        result["extract"] = {"sha256": sha, "records": verdict.records, "previous_records": verdict.previous_records,
                             "lost": verdict.lost, "note": verdict.note}
        if verdict.held:
            result["status"], result["reason"] = "held", verdict.reason
    if result["status"] == "ok":
        records.write_parquet(work / f"{source.key}.records.parquet")
        quarantine.write_parquet(work / f"{source.key}.quarantine.parquet")
    else:
        result["carried_from"] = _carry_forward(data_dir, work, source.key)
    (work / f"{source.key}.source.json").write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
    return result


class BaselineLost(RuntimeError):
    """The ledger has an accepted extract for a source but its copy in state/accepted/ is gone or damaged."""


def _baseline(data_dir: Path, db: Path, key: str) -> guard.Baseline | None:
    entry = ledger.accepted_extract(db, key)
    if entry is None:
        return None
    path = Path(data_dir) / ACCEPTED_ROOT / f"{key}.parquet"
    try:
        accepted = pl.read_parquet(path, columns=["record_id", "uscc_raw"])
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise BaselineLost(
            f"上期已接受的数据（{entry['run_date']}，{entry['file']}，{entry['records']} 条）的副本 {ACCEPTED_ROOT}/{key}.parquet "
            f"缺失或已损坏（{type(exc).__name__}），无法核对本期数据是否完整。本期沿用台账中的状态，该部门的问题状态保持不变。"
            f"请运维人员从备份恢复该文件；或由市信用办核对本期数据后运行 uscc extracts accept {key} --why \"原因\" 确认接受。"
        ) from None
    return guard.Baseline(entry["run_date"], entry["file"], accepted["record_id"], guard.valid_share(accepted))


def _carry_forward(data_dir: Path, work: Path, key: str) -> str | None:
    """Tonight's records of a source that was not accepted: its last accepted extract (or none)."""
    accepted = Path(data_dir) / ACCEPTED_ROOT / f"{key}.parquet"
    try:
        carried = pl.read_parquet(accepted)
    except (OSError, pl.exceptions.PolarsError):  # none yet, or lost (the guard has said so): nothing to carry
        carried = empty_canonical()
    carried.write_parquet(work / f"{key}.records.parquet")
    found = carried["file"].head(1).to_list()
    empty_quarantine().write_parquet(work / f"{key}.quarantine.parquet")
    return found[0] if found else None


def _all_records(settings: Settings, work: Path) -> pl.DataFrame:
    frames = [pl.read_parquet(work / f"{s.key}.records.parquet") for s in settings.sources
              if (work / f"{s.key}.records.parquet").exists()]
    return pl.concat(frames) if frames else empty_canonical()


def failed_source(settings: Settings, data_dir: Path, work: Path, key: str, error: BaseException) -> dict:
    """A source whose reading crashed (a bug, not bad data): rejected with the error; its last accepted extract
    takes part instead."""
    source = settings.source(key)
    report = SourceReport(key, source.name, status="rejected",
                          reason=f"读取时发生内部错误（{type(error).__name__}: {str(error)[:200]}），请把运行日志发给运维人员。")
    return admit(settings, data_dir, work, source, empty_canonical(), empty_quarantine(), report, 0.0)


def _source_result(source: Source, report: SourceReport, seconds: float) -> dict:
    return {**report.to_dict(), "departments": list(source.departments), "key": source.key, "seconds": seconds}


def findings_table(work: Path) -> list[dict]:
    """Findings by source, kind and status (the Prefect table artifact)."""
    findings = pl.read_parquet(work / "findings.status.parquet", columns=["source", "kind", "status"])
    return findings.group_by("source", "kind", "status").len("findings").sort("source", "kind", "status").to_dicts()


def detect_all(settings: Settings, work: Path, buckets: int = 0) -> dict:
    """All sources' records → `<work>/findings.parquet`.

    Args:
        buckets: 0 for one process; else the number of key buckets of the partitioned detection
            (`checks.partition`), run here one step after another (`flows.partitioned` spreads it over Dask).
    """
    records = _all_records(settings, work)
    if buckets and records.height:
        findings = detect_partitioned(records, settings, work / "partitions", buckets=buckets, parts=buckets)
    else:
        findings = detect(records, settings)
    findings.write_parquet(work / "findings.parquet")
    return {"records": records.height, "findings": findings.height}


def split_partitions(settings: Settings, work: Path, parts: int) -> tuple[Path, list[str]]:
    """Tonight's records split by region into `<work>/partitions/`; the partition keys."""
    folder = work / "partitions"
    return folder, split(_all_records(settings, work), folder, parts)


def assemble_partitions(settings: Settings, work: Path, folder: Path, keys: list[str], buckets: int) -> dict:
    """The partitioned detection's last step → `<work>/findings.parquet`."""
    findings = assemble(folder, keys, buckets, settings) if keys else detect(empty_canonical(), settings)
    findings.write_parquet(work / "findings.parquet")
    return {"records": sum(pl.scan_parquet(folder / f"part-{k}.parquet").select(pl.len()).collect().item()
                           for k in keys), "findings": findings.height}


def _records(settings: Settings, work: Path) -> list[pl.LazyFrame]:
    return [pl.scan_parquet(p) for s in settings.sources if (p := work / f"{s.key}.records.parquet").exists()]


def process_returns(settings: Settings, data_dir: Path, work: Path, run_date: str) -> list[dict]:
    """Judge and apply the departments' returned forms; one dict per file (receipts are rendered later)."""
    db = ledger_path(data_dir, settings)
    latest = ledger.latest_run(db)
    if latest is not None and run_date < latest:
        return []  # an older night rerun: answers are applied by the newest night only

    def holders_of(codes: list[str]) -> list[returns.Holder]:
        frames = _records(settings, work)
        if not codes or not frames:
            return []
        found = pl.concat(frames).select("source", "record_id", "name", code=compact_expr(pl.col("uscc_raw"))) \
            .filter(pl.col("code").is_in(codes)).collect()
        return [returns.Holder(c, s, r, n) for c, s, r, n in found.select("code", "source", "record_id", "name").rows()]

    def suggestions_of(ids: list[str]) -> dict[str, str]:
        """The code tonight's detection suggests for these findings (what an empty 更正后代码 may adopt)."""
        found = pl.scan_parquet(work / "findings.parquet") \
            .filter(pl.col("finding_id").is_in(ids) & pl.col("suggested_code").is_not_null()) \
            .select("finding_id", "suggested_code").collect()
        return dict(found.rows())

    return returns.apply_waiting_returns(data_dir, db, run_date, settings, holders_of, suggestions_of)


def tonight_of(settings: Settings, work: Path, sources: list[dict]) -> ledger.Tonight:
    """What tonight's extracts hold (checked and quarantined records), for closing findings."""
    checked = [f.select("source", "record_id", code=compact_expr(pl.col("uscc_raw")), checked=pl.lit(True))
               for f in _records(settings, work)]
    held = [pl.scan_parquet(p).filter(pl.col("record_id").is_not_null())
            .select("source", "record_id", code=pl.lit(None, pl.String), checked=pl.lit(False))
            for s in settings.sources if (p := work / f"{s.key}.quarantine.parquet").exists()]
    frames = checked + held
    records = pl.concat(frames).collect() if frames else ledger.Tonight(frozenset()).records
    return ledger.Tonight(frozenset(s["key"] for s in sources if s["status"] == "ok"), records,
                          tuple(extract_of(s) for s in sources))


def extract_of(s: dict) -> ledger.Extract:
    """A source's result as the ledger keeps its extract verdict."""
    e = s.get("extract") or {}
    return ledger.Extract(s["key"], s["status"], s.get("file"), e.get("sha256"), s.get("rows_read", 0),
                          e.get("records", 0), e.get("previous_records"), e.get("lost"), s.get("reason"))


def update_ledger(settings: Settings, data_dir: Path, work: Path, run_date: str, sources: list[dict]) -> dict:
    """Findings' lifecycle (SPEC §6) → `<work>/findings.status.parquet`; tonight's changes."""
    findings = with_county(settings, work, pl.read_parquet(work / "findings.parquet"))
    result = ledger.record_run(ledger_path(data_dir, settings), run_date, findings, tonight_of(settings, work, sources),
                               due_days=settings.due_days)
    statuses = result.pop("statuses")
    findings = findings.drop("status").join(statuses, on="finding_id", how="left")
    findings.write_parquet(work / "findings.status.parquet")
    return result


def render(settings: Settings, data_dir: Path, work: Path, run_date: str, sources: list[dict], changes: dict,
           stage_seconds: dict[str, float]) -> Path:
    """Write the reports of the run; returns the run's report folder."""
    db = ledger_path(data_dir, settings)
    findings = pl.read_parquet(work / "findings.status.parquet")
    quarantines = [pl.read_parquet(p) for s in settings.sources
                   if (p := work / f"{s.key}.quarantine.parquet").exists()]
    view = RunView(
        run_date=run_date, city=settings.city.name, sources=sources, findings=findings,
        quarantine=pl.concat(quarantines) if quarantines else empty_quarantine(),
        history=ledger.history(db, including=run_date), changes=changes, stage_seconds=stage_seconds,
        returns=ledger.returns_of_night(db, run_date), source_names=settings.source_names,
        audit=ledger.audit_of_night(db, run_date),
        stray_returns=returns.stray_files(data_dir, [s.key for s in settings.sources]),
        unfinished=[d for d in ledger.unfinished_nights(db) if d != run_date],
        reassignments=ledger.reassignments_of_night(db, run_date),
        unrecognized_types=unrecognized_types(pl.concat(_records(settings, work) or [empty_canonical().lazy()])
                                              .select("source", "entity_type").collect()),
        register=register_of(settings, data_dir, work, findings, changes.get("historical", False)))
    return write_run(Path(data_dir) / "reports", view)


def with_county(settings: Settings, work: Path, findings: pl.DataFrame) -> pl.DataFrame:
    """Each finding's county list (`checks.counties`): from its code, else its record's address."""
    frames = _records(settings, work)
    addresses = pl.concat(frames).select("source", "record_id", "address").collect() if frames else \
        pl.DataFrame(schema={"source": pl.String, "record_id": pl.String, "address": pl.String})
    joined = findings.join(addresses.unique(["source", "record_id"]), on=["source", "record_id"], how="left")
    county = county_expr(pl.col("uscc"), pl.col("address"), settings.city.jurisdiction_prefix)
    return joined.with_columns(county=county).drop("address")


#: Each record's entity in the newest night's register: the next night keeps those entity ids.
ENTITIES = "state/entities.parquet"


def register_of(settings: Settings, data_dir: Path, work: Path, findings: pl.DataFrame, historical: bool) -> pl.DataFrame:
    """Tonight's golden register (`checks.register`), its entity ids carried from the newest night's."""
    path = Path(data_dir) / ENTITIES
    previous = pl.read_parquet(path) if path.exists() else None
    found = golden_register(prepare(_all_records(settings, work), settings), findings, settings, previous)
    if not historical:  # an older night rerun borrows the newest ids and leaves them as they are
        path.parent.mkdir(parents=True, exist_ok=True)
        staged = path.with_name(f".{path.name}.tmp")
        entity_keys(found, [s.key for s in settings.sources]).write_parquet(staged)
        os.replace(staged, path)
    return found


def complete_night(settings: Settings, data_dir: Path, work: Path, run_date: str, sources: list[dict],
                   historical: bool = False) -> None:
    """The night completed: its accepted extracts become the next night's baseline, the night goes on the
    ledger's timeline, and its work folder (raw values of the extracts) is removed."""
    accepted = [s for s in sources if s["status"] == "ok"] if not historical else []
    folder = Path(data_dir) / ACCEPTED_ROOT
    folder.mkdir(parents=True, exist_ok=True)
    for s in accepted:
        staged = folder / f".{s['key']}.parquet.tmp"
        shutil.copyfile(work / f"{s['key']}.records.parquet", staged)
        os.replace(staged, folder / f"{s['key']}.parquet")
    ledger.finish_run(ledger_path(data_dir, settings), run_date, [extract_of(s) for s in accepted])
    shutil.rmtree(work, ignore_errors=True)


def returns_counts(settings: Settings, data_dir: Path, run_date: str) -> dict:
    """The night's returned files in three numbers (the run result, the console, the Prefect summary), from
    the ledger, as summary.json has them: a rerun, or a run finishing a move a killed run left, says the same."""
    entries = ledger.return_counts_of_night(ledger_path(data_dir, settings), run_date)
    return {"return_files": len(entries), "returns_accepted": sum(e["accepted"] for e in entries),
            "returns_rejected": sum(e["rejected"] for e in entries)}


def result_of(folder: Path, sources: list[dict], changes: dict, handled: list[dict] = ()) -> dict:
    """What the run tells its caller; the open count is the ledger's. Returned files refused whole are
    named (the department gets its receipt; they do not fail the night)."""
    return {
        "run_date": folder.name,
        "overview": str(folder / "index.html"),
        "report_dir": str(folder),
        "open_findings": changes["open"],
        "rejected": {s["key"]: s["reason"] for s in sources if s["status"] == "rejected"},
        "held": {s["key"]: s["reason"] for s in sources if s["status"] == "held"},
        "returns": {k: changes.get(k, 0) for k in ("returns_accepted", "returns_rejected", "return_files")},
        "returns_refused": [{"source": h["source"], "file": h["file"], "reason": h["reason"]}
                            for h in handled if h["outcome"] == "rejected"],
    }


def describe_source(s: dict) -> str:
    """One progress line per source (the flow's log and `uscc run --no-prefect`)."""
    if s["status"] == "rejected":
        return f"{s['name']} 本期数据被拒收：{s['reason']}"
    if s["status"] == "held":
        return f"{s['name']} 本期数据待确认：{s['reason']}"
    return (f"{s['name']}：读取 {s['rows_read']} 行，检查 {s['rows_checked']} 行，隔离 {s['rows_quarantined']} 行，"
            f"空行 {s['rows_blank']} 行")


def describe_detection(counts: dict) -> str:
    return f"检测：{counts['records']} 条记录，{counts['findings']} 条问题"


def describe_return(h: dict) -> str:
    outcome = OUTCOME_LABELS[h["outcome"]]
    return (f"反馈 {h['source']}/{h['file']}：{outcome}，受理 {h.get('accepted', 0)} 行，未受理 {h.get('rejected', 0)} 行"
            + (f"（{h['reason']}）" if h["reason"] else ""))


def describe_changes(changes: dict) -> str:
    return (f"台账：新发现 {changes['new']}，已更正 {changes['fixed']}，重新出现 {changes['reopened']}；"
            f"待处理 {changes['open']}")


def failure_message(result: dict) -> str | None:
    """Why a night that wrote its reports still failed (a rejected or held source), or None."""
    parts = [f"{k} 被拒收：{v}" for k, v in result["rejected"].items()] + \
        [f"{k} 待确认：{v}" for k, v in result["held"].items()]
    return "；".join(parts) or None


def run_all(data_dir: Path, run_date: str | None = None, config: str | None = None, buckets: int = 0,
            say: Callable[[str], None] = lambda line: None, lock_wait: float = 0) -> dict:
    """The whole nightly job without Prefect (same stages, in order); `say` gets a line per step.

    Raises `flows.params.ParameterError` for a wrong parameter and `checks.lock.LockBusy` when another run
    holds the data directory, before anything is written.
    """
    night = check_night(data_dir, run_date, config, buckets, lock_wait=lock_wait)
    with night_lock(night.data_dir, night.run_date, night.lock_wait, say):
        return _run_night(night, say)


def _run_night(night: Night, say: Callable[[str], None]) -> dict:
    settings, data_dir, run_date = night.settings, night.data_dir, night.run_date
    for removed in clear_leftovers(settings, data_dir, run_date):
        say(f"已清理上次异常中断留下的 {removed}")
    work = work_dir(data_dir, run_date)
    clock = StageClock()
    with clock.stage(INGEST):
        sources = []
        for s in settings.sources:
            sources.append(ingest_one(settings, data_dir, work, s.key))
            say(describe_source(sources[-1]))
    with clock.stage(DETECT):
        counts = detect_all(settings, work, night.buckets)
    say(describe_detection(counts))
    with clock.stage(RETURNS):
        handled = process_returns(settings, data_dir, work, run_date)
    for h in handled:
        say(describe_return(h))
    with clock.stage(LEDGER):
        changes = update_ledger(settings, data_dir, work, run_date, sources) | returns_counts(settings, data_dir,
                                                                                            run_date)
    say(describe_changes(changes))
    with clock.stage(RENDER):
        folder = render(settings, data_dir, work, run_date, sources, changes, clock.seconds)
    complete_night(settings, data_dir, work, run_date, sources, changes["historical"])
    return result_of(folder, sources, changes, handled)
