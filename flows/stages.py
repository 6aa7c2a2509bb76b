"""The nightly job's stages as plain functions: the Prefect flow only wires them.

Stages exchange files in a work folder (`DATA_DIR/state/work/<run date>/`),
never big frames, so each stage can be a Prefect task, retried or rerun alone.

    ingest_source ×N → detect → update_ledger → render
"""

from __future__ import annotations

import datetime as dt
import json
import time
from contextlib import contextmanager
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl

from checks import ledger
from checks.detect import detect
from checks.ingest import ingest_source
from checks.schema import empty_canonical, empty_quarantine
from checks.settings import Settings, load_settings
from reports.render import RunView, write_run

TIMEZONE = ZoneInfo("Asia/Shanghai")
#: Stage labels as the overview shows them, in order.
INGEST, DETECT, LEDGER, RENDER = "读取与校验格式", "问题检测", "状态台账", "生成报告"


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


def ledger_path(data_dir: Path) -> Path:
    return Path(data_dir) / "state" / "steward.sqlite3"


def ingest_one(settings: Settings, data_dir: Path, work: Path, key: str) -> dict:
    """Read one source's newest extract into `<work>/<key>.records.parquet` (+ quarantine)."""
    source = settings.source(key)
    started = time.perf_counter()
    records, quarantine, report = ingest_source(source, Path(data_dir))
    records.write_parquet(work / f"{key}.records.parquet")
    quarantine.write_parquet(work / f"{key}.quarantine.parquet")
    result = {**report.to_dict(), "departments": list(source.departments), "key": key,
              "seconds": time.perf_counter() - started}
    (work / f"{key}.source.json").write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
    return result


def detect_all(settings: Settings, work: Path) -> dict:
    """All sources' records → `<work>/findings.parquet`."""
    frames = [pl.read_parquet(work / f"{s.key}.records.parquet") for s in settings.sources
              if (work / f"{s.key}.records.parquet").exists()]
    records = pl.concat(frames) if frames else empty_canonical()
    findings = detect(records, settings)
    findings.write_parquet(work / "findings.parquet")
    return {"records": records.height, "findings": findings.height}


def update_ledger(data_dir: Path, work: Path, run_date: str) -> dict:
    """Findings' lifecycle (SPEC §6) → `<work>/findings.status.parquet`; tonight's changes."""
    findings = pl.read_parquet(work / "findings.parquet")
    result = ledger.record_run(ledger_path(data_dir), run_date, findings)
    statuses = result.pop("status")
    findings = findings.with_columns(status=pl.col("finding_id").replace_strict(statuses, default="open"))
    findings.write_parquet(work / "findings.status.parquet")
    return result


def render(settings: Settings, data_dir: Path, work: Path, run_date: str, sources: list[dict], changes: dict,
           stage_seconds: dict[str, float]) -> Path:
    """Write the reports of the run; returns the run's report folder."""
    findings = pl.read_parquet(work / "findings.status.parquet")
    quarantines = [pl.read_parquet(p) for s in settings.sources
                   if (p := work / f"{s.key}.quarantine.parquet").exists()]
    view = RunView(
        run_date=run_date, city=settings.city.name, sources=sources, findings=findings,
        quarantine=pl.concat(quarantines) if quarantines else empty_quarantine(),
        history=ledger.history(ledger_path(data_dir)), changes=changes, stage_seconds=stage_seconds)
    folder = write_run(Path(data_dir) / "reports", view)
    ledger.finish_run(ledger_path(data_dir), run_date)
    return folder


def result_of(folder: Path, sources: list[dict], changes: dict) -> dict:
    """What the run tells its caller; the open count is the ledger's."""
    return {
        "overview": str(folder / "index.html"),
        "report_dir": str(folder),
        "open_findings": changes["open"],
        "rejected": {s["key"]: s["reason"] for s in sources if s["status"] == "rejected"},
    }


def run_all(data_dir: Path, run_date: str | None = None, config: str | None = None) -> dict:
    """The whole nightly job without Prefect (same stages, in order)."""
    settings = load_settings(config)
    run_date = run_date or today()
    work = work_dir(data_dir, run_date)
    clock = StageClock()
    with clock.stage(INGEST):
        sources = [ingest_one(settings, data_dir, work, s.key) for s in settings.sources]
    with clock.stage(DETECT):
        detect_all(settings, work)
    with clock.stage(LEDGER):
        changes = update_ledger(data_dir, work, run_date)
    with clock.stage(RENDER):
        folder = render(settings, data_dir, work, run_date, sources, changes, clock.seconds)
    return result_of(folder, sources, changes)
