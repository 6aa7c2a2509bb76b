"""The nightly job's stages as plain functions, and the one order they run in (`drive`).

    ingest ×N (+ the plausibility guard) → detect → returns → ledger → render → complete the night

`drive` is that order, once: `run_all` runs it with plain calls, the Prefect flow (`flows.nightly`) with
tasks. Stages exchange files in the night's work folder (`checks.catalog.WorkFolder`), never big frames,
so each stage can be a Prefect task, retried or rerun alone. The settings are read once per night
(`flows.params.check_night`) and every stage gets that reading.

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
from dataclasses import replace
from pathlib import Path
from typing import Callable, Protocol

import polars as pl

from checks import frame_files, guard, ledger, ledger_home, returns, tonight
from checks.catalog import ACCEPTED_ROOT, ENTITIES, REPORTS, WORK_ROOT, WorkFolder, accepted_path, ledger_path
from checks.categories import unrecognized_types
from checks.detect import detect, detect_with_frame
from checks.ingest import SourceReport, ingest_source
from checks.lock import night_lock
from checks.partition import assemble, detect_partitioned, regions_of, split
from checks.register import PREPARED_COLUMNS, REGISTER_READS, EntitiesWriter, previous_entities, register_slices
from checks.rules import prepare
from checks.schema import empty_canonical, empty_quarantine
from checks.settings import Settings, Source
from flows.apart import in_a_child
from flows.collector import collector_paused
from flows.params import Night, check_home, check_night, check_timeline, today  # noqa: F401  (today: the flow's default night)
from reports import console
from reports.register_files import write_register
from reports.render import RunView, write_run

#: Stage labels as the overview shows them, in the order `drive` runs them.
INGEST, DETECT, RETURNS, LEDGER, RENDER = STAGES = ("读取与校验格式", "问题检测", "处理反馈", "状态台账", "生成报告")


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


def clear_leftovers(settings: Settings, data_dir: Path, run_date: str, today_: str | None = None) -> list[str]:
    """Remove what dead runs left (called holding the data directory's lock): half-written report folders,
    and work folders of failed nights older than `keep_failed_work_nights`. Returns what was removed."""
    removed = []
    for reports in (Path(data_dir) / REPORTS, Path(data_dir) / REPORTS / "months"):
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


# --------------------------------------------------------------------------- ingest and the guard

def ingest_one(settings: Settings, data_dir: Path, work: WorkFolder, key: str) -> dict:
    """Read one source's newest extract into the work folder (records + quarantine), then guard it."""
    source = settings.source(key)
    started = time.perf_counter()
    records, quarantine, report = ingest_source(source, Path(data_dir), settings.limits)
    return admit(settings, data_dir, work, source, records, quarantine, report, time.perf_counter() - started)


def admit(settings: Settings, data_dir: Path, work: WorkFolder, source: Source, records: pl.DataFrame,
          quarantine: pl.DataFrame, report: SourceReport, seconds: float) -> dict:
    """Judge a read extract with the plausibility guard; write what tonight's detection uses for the source:
    tonight's records when accepted, else the last accepted extract's."""
    result = _source_result(source, report, seconds)
    extract = guard.Extract(source.key, "rejected", report.file, report.sha256, report.rows_read, reason=report.reason)
    if report.status == "ok":
        db = ledger_path(data_dir, settings)
        known = db.exists()  # a ledger holding no accepted extract of the source (a first night): no baseline
        why = ledger.steward_acceptance(db, source.key, report.sha256) if known else None
        try:
            baseline = _baseline(data_dir, db, source) if known else None
        except BaselineLost as exc:
            extract = guard.Extract(source.key, "ok" if why else "held", records=records.height,
                                    reason=None if why else str(exc))
        else:
            erosion = ledger.recent_losses(db, source.key, work.night, settings.erosion_days) if baseline else None
            extract = guard.judge(records, quarantine["record_id"], baseline, settings.max_lost_share, why, source.key,
                                  source.departments, erosion)
        extract = replace(extract, file=report.file, sha256=report.sha256, rows_read=report.rows_read)
        if extract.held:
            result["status"], result["reason"] = "held", extract.reason
    result["extract"] = extract.as_dict()
    if result["status"] == "ok":
        records.write_parquet(work.records(source.key))
        quarantine.write_parquet(work.quarantine(source.key))
    else:
        result["carried_from"] = _carry_forward(data_dir, work, source.key)
    work.source_result(source.key).write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
    return result


class BaselineLost(RuntimeError):
    """The ledger has an accepted extract for a source but its copy in state/accepted/ is gone or damaged."""


def _baseline(data_dir: Path, db: Path, source: Source) -> guard.Baseline | None:
    key = source.key
    entry = ledger.accepted_extract(db, key)
    if entry is None:
        return None
    try:
        accepted = frame_files.read_parquet(accepted_path(data_dir, key), columns=["record_id", "uscc_raw"])
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise BaselineLost(
            f"上期已接受的数据（{entry['run_date']}，{entry['file']}，{entry['records']} 条）的副本 {ACCEPTED_ROOT}/{key}.parquet "
            f"缺失或已损坏（{type(exc).__name__}），无法核对本期数据是否完整。本期沿用台账中的状态，该部门的问题状态保持不变。"
            f"请运维人员从备份恢复该文件；或由市信用办核对本期数据后运行 uscc extracts accept {key} --why \"原因\" 确认接受。"
        ) from None
    return guard.Baseline.of(entry["run_date"], entry["file"], accepted, source.departments)


def _carry_forward(data_dir: Path, work: WorkFolder, key: str) -> str | None:
    """Tonight's records of a source that was not accepted: its last accepted extract (or none)."""
    try:
        carried = frame_files.read_parquet(accepted_path(data_dir, key))
    except (OSError, pl.exceptions.PolarsError):  # none yet, or lost (the guard has said so): nothing to carry
        carried = empty_canonical()
    carried.write_parquet(work.records(key))
    found = carried["file"].head(1).to_list()
    empty_quarantine().write_parquet(work.quarantine(key))
    return found[0] if found else None


def failed_source(settings: Settings, data_dir: Path, work: WorkFolder, key: str, error: BaseException) -> dict:
    """A source whose reading crashed (a bug, not bad data): rejected with the error; its last accepted extract
    takes part instead."""
    source = settings.source(key)
    report = SourceReport(key, source.name, status="rejected",
                          reason=f"读取时发生内部错误（{type(error).__name__}: {str(error)[:200]}），请把运行日志发给运维人员。")
    return admit(settings, data_dir, work, source, empty_canonical(), empty_quarantine(), report, 0.0)


def _source_result(source: Source, report: SourceReport, seconds: float) -> dict:
    return {**report.to_dict(), "departments": list(source.departments), "key": source.key, "seconds": seconds}


# --------------------------------------------------------------------------- detection

def detect_all(settings: Settings, work: WorkFolder, buckets: int = 0) -> dict:
    """All sources' records → the work folder's findings.

    Args:
        buckets: 0 for one process; else the number of key buckets of the partitioned detection
            (`checks.partition`), run here one step after another (`flows.partitioned` spreads it over Dask).
    """
    if buckets and (records := tonight.all_records(settings, work)).height:
        findings = detect_partitioned(records, settings, work.partitions, buckets=buckets, parts=buckets)
        _keep_prepared(work, list(regions_of(work.partitions)))
    else:
        # handed over, not kept: detection lets go of the columns it has read before the findings frame (what
        # comes back are the prepared records, in the columns the register and the findings frame read)
        findings, records = detect_with_frame(tonight.all_records(settings, work), settings)
        records.select(PREPARED_COLUMNS).write_parquet(work.prepared)
    findings.write_parquet(work.findings)
    return {"records": records.height, "findings": findings.height}


def _keep_prepared(work: WorkFolder, keys: list[str]) -> None:
    """The partitions' prepared records, in `idx` order, as the single-process detection keeps them."""
    frames = [frame_files.scan_parquet(work.partitions / f"prepared-{k}.parquet").select(PREPARED_COLUMNS) for k in keys]
    if frames:
        pl.concat(frames).sort("idx").sink_parquet(work.prepared)


def split_partitions(settings: Settings, work: WorkFolder, parts: int) -> list[str]:
    """Tonight's records split by region into the work folder's partitions; the partition keys."""
    return split(tonight.all_records(settings, work), work.partitions, parts)


def assemble_partitions(settings: Settings, work: WorkFolder, keys: list[str], buckets: int) -> dict:
    """The partitioned detection's last step → the work folder's findings."""
    folder = work.partitions
    findings = assemble(folder, keys, buckets, settings) if keys else detect(empty_canonical(), settings)
    _keep_prepared(work, keys)
    findings.write_parquet(work.findings)
    return {"records": sum(frame_files.scan_parquet(folder / f"part-{k}.parquet").select(pl.len()).collect().item()
                           for k in keys), "findings": findings.height}


# --------------------------------------------------------------------------- returns, ledger, reports

def judge_returns(settings: Settings, data_dir: Path, work: WorkFolder, run_date: str) -> list[dict]:
    """Judge and apply the departments' returned forms; one dict per file (receipts are rendered later)."""
    db = ledger_path(data_dir, settings)
    latest = ledger.latest_run(db)
    handled = []  # an older night rerun: answers are applied by the newest night only
    if latest is None or run_date >= latest:
        handled = returns.apply_waiting_returns(data_dir, db, run_date, settings,
                                                lambda codes: tonight.holders_of(settings, work, codes),
                                                lambda ids: tonight.suggestions_of(work, ids),
                                                returns.seen_at_start(work))
    returns.note_deferred(work, handled)  # written even when empty: an earlier attempt's list is not shown again
    return handled


def update_ledger(settings: Settings, data_dir: Path, work: WorkFolder, run_date: str, sources: list[dict]) -> dict:
    """Findings' lifecycle (docs/correction-loop.md) → the work folder's findings with status; tonight's
    changes, with the night's returned-file counts."""
    db = ledger_path(data_dir, settings)
    findings = tonight.with_county(settings, work, frame_files.read_parquet(work.findings))
    result = ledger.record_run(db, run_date, findings, tonight.ledger_input(settings, work, sources),
                               due_days=settings.due_days)
    statuses = result.pop("statuses")
    off_list = result.pop("off_list")
    off_list.write_parquet(work.off_list)
    result["off_list"] = off_list.filter(pl.col("severity") != "info").height  # of the open count
    findings = findings.drop("status").join(statuses, on="finding_id", how="left")
    findings.write_parquet(work.findings_status)
    return result | returns_counts(db, run_date)


def returns_counts(db: Path, run_date: str) -> dict:
    """The night's returned files in three numbers (the run result, the console, the Prefect summary), from
    the ledger, as summary.json has them: a rerun, or a run finishing a move a killed run left, says the same."""
    entries = ledger.return_counts_of_night(db, run_date)
    return {"return_files": len(entries), "returns_accepted": sum(e["accepted"] for e in entries),
            "returns_rejected": sum(e["rejected"] for e in entries)}


def render(settings: Settings, data_dir: Path, work: WorkFolder, *rest) -> Path:
    """Write the reports of the run (`render_here`'s arguments), from `[limits] render_apart_records` records in a
    process of its own (`flows.apart`); returns the run's report folder."""
    if sum(f.select(pl.len()).collect().item() for f in tonight.scan_records(settings, work)) \
            >= settings.limits.render_apart_records:
        return in_a_child("flows.stages:render_here", "生成报告", settings, data_dir, work, *rest)
    return render_here(settings, data_dir, work, *rest)


def render_here(settings: Settings, data_dir: Path, work: WorkFolder, run_date: str, sources: list[dict],
                changes: dict, stage_seconds: dict[str, float]) -> Path:
    """Write the reports of the run in this process; returns the run's report folder."""
    db = ledger_path(data_dir, settings)
    # the register first: building it is the render's peak, and nothing the pages read is held beside it yet
    register = register_of(settings, data_dir, work, changes.get("historical", False))
    findings = frame_files.read_parquet(work.findings_status)
    view = RunView(
        run_date=run_date, city=settings.city.name, sources=sources, findings=findings,
        quarantine=tonight.quarantined(settings, work),
        history=ledger.history(db, including=run_date), changes=changes, stage_seconds=stage_seconds,
        returns=ledger.returns_of_night(db, run_date), source_names=settings.source_names,
        audit=ledger.audit_of_night(db, run_date),
        stray_returns=returns.deferred_files(work) + returns.stray_files(data_dir, [s.key for s in settings.sources]),
        unfinished=[d for d in ledger.unfinished_nights(db) if d != run_date],
        reassignments=ledger.reassignments_of_night(db, run_date),
        unrecognized_types=unrecognized_types(pl.concat(tonight.scan_records(settings, work)
                                                        or [empty_canonical().lazy()])
                                              .select("source", "entity_type").collect()),
        register=register,
        off_list=frame_files.read_parquet(work.off_list) if work.off_list.exists() else None)
    return write_run(Path(data_dir) / REPORTS, view)


def register_of(settings: Settings, data_dir: Path, work: WorkFolder, historical: bool) -> tuple[Path, Path]:
    """Tonight's golden register (`checks.register`), its entity ids carried from the newest night's, written a
    slice of entities at a time into the work folder; returns its parquet and CSV files."""
    path = Path(data_dir) / ENTITIES
    # the records and the previous night's ids go in as the register's only references to them: it lets go of each
    # once used (no prepared file: no record tonight, or an older work folder); damaged ids: a sentence, never a
    # traceback or new ids for all. Of the findings only the columns it reads (all of them: 1.1 GB more at 10^7)
    slices = register_slices(frame_files.read_parquet(work.prepared) if work.prepared.exists() else
                             prepare(tonight.all_records(settings, work), settings),
                             frame_files.read_parquet(work.findings_status, columns=list(REGISTER_READS)), settings,
                             previous_entities(path))
    if historical:  # an older night rerun borrows the newest ids and leaves them as they are
        write_register(slices, work.register_parquet, work.register_csv)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        with EntitiesWriter(path, [s.key for s in settings.sources]) as keys:
            write_register(slices, work.register_parquet, work.register_csv, keys)
    return work.register_parquet, work.register_csv


def complete_night(settings: Settings, data_dir: Path, work: WorkFolder, run_date: str, sources: list[dict],
                   historical: bool = False) -> None:
    """The night completed: its accepted extracts become the next night's baseline, the night goes on the
    ledger's timeline, and its work folder (raw values of the extracts) is removed."""
    accepted = [s for s in sources if s["status"] == "ok"] if not historical else []
    for s in accepted:
        target = accepted_path(data_dir, s["key"])
        target.parent.mkdir(parents=True, exist_ok=True)
        staged = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(work.records(s["key"]), staged)
        os.replace(staged, target)
    ledger.finish_run(ledger_path(data_dir, settings), run_date, [tonight.extract_of(s) for s in accepted])
    shutil.rmtree(work.path, ignore_errors=True)


def result_of(folder: Path, sources: list[dict], changes: dict, handled: list[dict] = ()) -> dict:
    """What the run tells its caller; the open count is the ledger's. Returned files refused whole are
    named (the department gets its receipt; they do not fail the night), and those left for the next night."""
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
        # still arriving when they were judged: left where they are for the next night
        "returns_deferred": [{"source": h["source"], "file": h["file"]} for h in handled if h["outcome"] == "deferred"],
    }


# --------------------------------------------------------------------------- the order of the night

class Steps(Protocol):
    """How each stage of one night runs: plain calls (`LocalSteps`) or Prefect tasks (`flows.nightly`)."""

    def ingest(self) -> list[dict]: ...

    def detect(self) -> dict: ...

    def returns(self) -> list[dict]: ...

    def ledger(self, sources: list[dict]) -> dict: ...

    def render(self, sources: list[dict], changes: dict, seconds: dict[str, float]) -> Path: ...

    def publish(self, result: dict, sources: list[dict], counts: dict, changes: dict) -> None: ...


def drive(night: Night, steps: Steps, say: Callable[[str], None], warn: Callable[[str], None]) -> dict:
    """One night, stage after stage in `STAGES` order (called holding the data directory's lock)."""
    for removed in clear_leftovers(night.settings, night.data_dir, night.run_date):
        warn(console.describe_leftover(removed))
    # the ledger and the data directory get one id where either has none; checked again, as another directory's
    # night may have given the ledger its id since this one's checks
    ledger_home.bind(ledger_path(night.data_dir, night.settings), night.data_dir)
    check_home(night.data_dir, ledger_path(night.data_dir, night.settings))
    # the returned files as they are now: one still arriving when they are judged waits for the next night
    returns.note_waiting(WorkFolder.of(night.data_dir, night.run_date), night.data_dir,
                         [s.key for s in night.settings.sources])
    clock = StageClock()
    with clock.stage(INGEST), collector_paused():
        sources = steps.ingest()
    with clock.stage(DETECT), collector_paused():
        counts = steps.detect()
    say(console.describe_detection(counts))
    with clock.stage(RETURNS), collector_paused():
        handled = steps.returns()
    for h in handled:
        say(console.describe_return(h))
    with clock.stage(LEDGER), collector_paused():
        changes = steps.ledger(sources)
    say(console.describe_changes(changes))
    with clock.stage(RENDER), collector_paused():
        folder = steps.render(sources, changes, clock.seconds)
    result = result_of(folder, sources, changes, handled)
    steps.publish(result, sources, counts, changes)
    complete_night(night.settings, night.data_dir, WorkFolder.of(night.data_dir, night.run_date), night.run_date,
                   sources, changes["historical"])
    return result


class LocalSteps:
    """The stages as plain calls in this process, in order (`uscc run --no-prefect`, tests)."""

    def __init__(self, night: Night, say: Callable[[str], None]):
        self.night, self.say = night, say
        self.settings, self.data_dir, self.run_date = night.settings, night.data_dir, night.run_date
        self.work = WorkFolder.of(night.data_dir, night.run_date)

    def ingest(self) -> list[dict]:
        sources = []
        for s in self.settings.sources:
            sources.append(ingest_one(self.settings, self.data_dir, self.work, s.key))
            self.say(console.describe_source(sources[-1]))
        return sources

    def detect(self) -> dict:
        return detect_all(self.settings, self.work, self.night.buckets)

    def returns(self) -> list[dict]:
        return judge_returns(self.settings, self.data_dir, self.work, self.run_date)

    def ledger(self, sources: list[dict]) -> dict:
        return update_ledger(self.settings, self.data_dir, self.work, self.run_date, sources)

    def render(self, sources: list[dict], changes: dict, seconds: dict[str, float]) -> Path:
        return render(self.settings, self.data_dir, self.work, self.run_date, sources, changes, seconds)

    def publish(self, result: dict, sources: list[dict], counts: dict, changes: dict) -> None:
        pass


def run_all(data_dir: Path, run_date: str | None = None, config: str | None = None, buckets: int = 0,
            say: Callable[[str], None] = lambda line: None, lock_wait: float = 0, new_ledger: bool = False,
            night: Night | None = None) -> dict:
    """The whole nightly job without Prefect (same stages, in order); `say` gets a line per step.

    Raises `flows.params.ParameterError` for a wrong parameter and `checks.lock.LockBusy` when another run
    holds the data directory, before anything is written.

    Args:
        night: the parameters `check_night` already checked (the CLI's): the others are then not read, and the
            ledger's integrity check (a read of the whole file) is not run twice.
    """
    night = night or check_night(data_dir, run_date, config, buckets, lock_wait=lock_wait, new_ledger=new_ledger)
    with night_lock(night.data_dir, night.run_date, night.lock_wait, say):
        check_timeline(night)  # again: the run this one waited for may have moved the ledger on
        return drive(night, LocalSteps(night, say), say, say)
