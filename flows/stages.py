"""The nightly job's stages as plain functions: the Prefect flow only wires them.

Stages exchange files in a work folder (`DATA_DIR/state/work/<run date>/`),
never big frames, so each stage can be a Prefect task, retried or rerun alone.

    ingest_source ×N → detect → process_returns → update_ledger → render

Returned forms are judged against the ledger as it stood before tonight's
findings (the forms were issued from earlier nights) and against tonight's
records (a corrected code must not be held by another entity).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable
from zoneinfo import ZoneInfo

import polars as pl

from checks import ledger, returns
from checks.detect import detect
from checks.ingest import SourceReport, ingest_source
from checks.partition import assemble, detect_partitioned, split
from checks.schema import empty_canonical, empty_quarantine
from checks.settings import Settings, Source, load_settings
from reports.receipts import OUTCOME_LABELS
from reports.render import RunView, write_run
from validators.column import compact_expr

TIMEZONE = ZoneInfo("Asia/Shanghai")
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


def today() -> str:
    return dt.datetime.now(TIMEZONE).date().isoformat()


def work_dir(data_dir: Path, run_date: str) -> Path:
    path = Path(data_dir) / "state" / "work" / run_date
    path.mkdir(parents=True, exist_ok=True)
    return path


def ledger_path(data_dir: Path, settings: Settings) -> Path:
    """The ledger file: $USCC_DATABASE, else `[state] database` (relative to the data directory)."""
    configured = os.environ.get("USCC_DATABASE") or settings.database
    return Path(data_dir) / configured  # an absolute configured path wins over data_dir


def ingest_one(settings: Settings, data_dir: Path, work: Path, key: str) -> dict:
    """Read one source's newest extract into `<work>/<key>.records.parquet` (+ quarantine)."""
    source = settings.source(key)
    started = time.perf_counter()
    records, quarantine, report = ingest_source(source, Path(data_dir), settings.limits)
    records.write_parquet(work / f"{key}.records.parquet")
    quarantine.write_parquet(work / f"{key}.quarantine.parquet")
    result = _source_result(source, report, time.perf_counter() - started)
    (work / f"{key}.source.json").write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
    return result


def _all_records(settings: Settings, work: Path) -> pl.DataFrame:
    frames = [pl.read_parquet(work / f"{s.key}.records.parquet") for s in settings.sources
              if (work / f"{s.key}.records.parquet").exists()]
    return pl.concat(frames) if frames else empty_canonical()


def failed_source(settings: Settings, work: Path, key: str, error: BaseException) -> dict:
    """A source whose reading crashed (a bug, not bad data): rejected with the error, empty frames."""
    source = settings.source(key)
    empty_canonical().write_parquet(work / f"{key}.records.parquet")
    empty_quarantine().write_parquet(work / f"{key}.quarantine.parquet")
    report = SourceReport(key, source.name, status="rejected",
                          reason=f"读取时发生内部错误（{type(error).__name__}: {error}），请把运行日志发给运维人员。")
    return _source_result(source, report, 0.0)


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

    return returns.process_returns(data_dir, db, run_date, settings, holders_of)


def tonight_of(settings: Settings, work: Path, sources: list[dict]) -> ledger.Tonight:
    """What tonight's extracts hold (checked and quarantined records), for closing findings."""
    checked = [f.select("source", "record_id", code=compact_expr(pl.col("uscc_raw")), checked=pl.lit(True))
               for f in _records(settings, work)]
    held = [pl.scan_parquet(p).filter(pl.col("record_id").is_not_null())
            .select("source", "record_id", code=pl.lit(None, pl.String), checked=pl.lit(False))
            for s in settings.sources if (p := work / f"{s.key}.quarantine.parquet").exists()]
    frames = checked + held
    records = pl.concat(frames).collect() if frames else ledger.Tonight(frozenset()).records
    return ledger.Tonight(frozenset(s["key"] for s in sources if s["status"] == "ok"), records)


def update_ledger(settings: Settings, data_dir: Path, work: Path, run_date: str, sources: list[dict]) -> dict:
    """Findings' lifecycle (SPEC §6) → `<work>/findings.status.parquet`; tonight's changes."""
    findings = pl.read_parquet(work / "findings.parquet")
    result = ledger.record_run(ledger_path(data_dir, settings), run_date, findings, tonight_of(settings, work, sources))
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
        history=ledger.history(db), changes=changes, stage_seconds=stage_seconds,
        returns=ledger.returns_of_night(db, run_date), source_names=settings.source_names,
        audit=ledger.audit_of_night(db, run_date),
        stray_returns=returns.stray_files(data_dir, [s.key for s in settings.sources]))
    folder = write_run(Path(data_dir) / "reports", view)
    ledger.finish_run(db, run_date)
    return folder


def returns_counts(handled: list[dict]) -> dict:
    """Tonight's returned files in three numbers (the run result and the Prefect summary)."""
    return {"return_files": len(handled), "returns_accepted": sum(h.get("accepted", 0) for h in handled),
            "returns_rejected": sum(h.get("rejected", 0) for h in handled)}


def result_of(folder: Path, sources: list[dict], changes: dict) -> dict:
    """What the run tells its caller; the open count is the ledger's."""
    return {
        "overview": str(folder / "index.html"),
        "report_dir": str(folder),
        "open_findings": changes["open"],
        "rejected": {s["key"]: s["reason"] for s in sources if s["status"] == "rejected"},
        "returns": {k: changes.get(k, 0) for k in ("returns_accepted", "returns_rejected", "return_files")},
    }


def describe_source(s: dict) -> str:
    """One progress line per source (the flow's log and `uscc run --no-prefect`)."""
    if s["status"] == "rejected":
        return f"{s['name']} 本期数据被拒收：{s['reason']}"
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


def run_all(data_dir: Path, run_date: str | None = None, config: str | None = None, buckets: int = 0,
            say: Callable[[str], None] = lambda line: None) -> dict:
    """The whole nightly job without Prefect (same stages, in order); `say` gets a line per step."""
    settings = load_settings(config)
    run_date = run_date or today()
    work = work_dir(data_dir, run_date)
    clock = StageClock()
    with clock.stage(INGEST):
        sources = []
        for s in settings.sources:
            sources.append(ingest_one(settings, data_dir, work, s.key))
            say(describe_source(sources[-1]))
    with clock.stage(DETECT):
        counts = detect_all(settings, work, buckets)
    say(describe_detection(counts))
    with clock.stage(RETURNS):
        handled = process_returns(settings, data_dir, work, run_date)
    for h in handled:
        say(describe_return(h))
    with clock.stage(LEDGER):
        changes = update_ledger(settings, data_dir, work, run_date, sources) | returns_counts(handled)
    say(describe_changes(changes))
    with clock.stage(RENDER):
        folder = render(settings, data_dir, work, run_date, sources, changes, clock.seconds)
    return result_of(folder, sources, changes)
