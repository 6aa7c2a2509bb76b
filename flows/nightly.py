"""The nightly flow: read every registry, find every wrong code, report, track.

A table of contents of the job; each task is one stage of `flows.stages`.
Runs in Prefect's local (ephemeral) mode when no server is configured.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from prefect import flow, get_run_logger, runtime, task, unmapped
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed
from prefect.task_runners import ThreadPoolTaskRunner

from checks import frame_files
from checks.catalog import WorkFolder
from checks.lock import LockBusy, night_lock
from checks.settings import Settings
from flows import stages
from flows.params import ParameterError, check_night, check_timeline
from reports import console


@task(retries=2, retry_delay_seconds=10, cache_policy=NO_CACHE)
def ingest_source(settings: Settings, data_dir: str, work: str, key: str) -> dict:
    """Read one registry's newest extract (retried: shared folders can hiccup)."""
    return stages.ingest_one(settings, Path(data_dir), WorkFolder(Path(work)), key)


@task(cache_policy=NO_CACHE)
def detect_findings(settings: Settings, work: str) -> dict:
    """Validate every code and link records across registries."""
    return stages.detect_all(settings, WorkFolder(Path(work)))


@task(retries=2, retry_delay_seconds=10, cache_policy=NO_CACHE)
def judge_returns(settings: Settings, data_dir: str, work: str, run_date: str) -> list[dict]:
    """Judge the departments' returned forms row by row (retried: each file is one transaction)."""
    return stages.judge_returns(settings, Path(data_dir), WorkFolder(Path(work)), run_date)


@task(cache_policy=NO_CACHE)
def update_ledger(settings: Settings, data_dir: str, work: str, run_date: str, sources: list[dict]) -> dict:
    """Move each finding along its lifecycle; count what changed tonight."""
    return stages.update_ledger(settings, Path(data_dir), WorkFolder(Path(work)), run_date, sources)


@task(retries=1, retry_delay_seconds=10, cache_policy=NO_CACHE)
def render_reports(settings: Settings, data_dir: str, work: str, run_date: str, sources: list[dict], changes: dict,
                   seconds: dict) -> str:
    """Write the overview, the department lists and forms, atomically."""
    return str(stages.render(settings, Path(data_dir), WorkFolder(Path(work)), run_date, sources, changes, seconds))


@flow(name="uscc-nightly", task_runner=ThreadPoolTaskRunner(max_workers=3), log_prints=True)
def nightly(data_dir: str = "data", run_date: dt.date | None = None, config: str | None = None, buckets: int = 0,
            dask_address: str | None = None, dask_workers: int = 2, lock_wait: float = 0, new_ledger: bool = False):
    """USCC Steward nightly run over DATA_DIR (docs/running.md#orchestration).

    Ends Completed when every source was read and accepted; Failed — after writing every report it
    can — when a source was rejected or its extract held (the message names them), and Failed before
    touching anything when a parameter is wrong or another run holds the data directory.

    Args:
        data_dir: extracts/, returns/, reports/, state/ of the city.
        run_date: the night (YYYY-MM-DD); default: a scheduled run's scheduled date in Asia/Shanghai,
            else today there. An earlier date reruns that night.
        config: the configuration file (default config/steward.toml).
        buckets: 0 detects in this process; N > 0 partitions by region and shuffles into N key buckets
            on Dask (`flows.partitioned`).
        dask_address: an existing Dask scheduler (`tcp://host:8786`); default a local cluster.
        dask_workers: worker processes of the local cluster.
        lock_wait: seconds to wait for another run on the same data directory before giving up.
        new_ledger: start a new ledger although earlier nights left reports behind (the ledger was lost:
            refused without it, `flows.params.check_ledger`).
    """
    logger = get_run_logger()
    try:
        night = check_night(data_dir, run_date, config, buckets, dask_workers, lock_wait, scheduled=_scheduled(),
                            new_ledger=new_ledger)
        with night_lock(night.data_dir, night.run_date, night.lock_wait, logger.warning):
            check_timeline(night)  # again: the run this one waited for may have moved the ledger on
            result = _night(night, dask_address, logger)
    except (ParameterError, LockBusy) as exc:
        logger.error(str(exc))
        return Failed(message=str(exc), data={"refused": str(exc)})
    failure = console.failure_message(result)
    if failure:
        logger.error("本期运行未全部成功：%s", failure)
        return Failed(message=f"本期运行未全部成功（报告已生成）：{failure}", data=result)
    return result


def _scheduled() -> dt.datetime | None:
    """When this flow run was scheduled to start (a deployment's cron time; the call time otherwise)."""
    moment = runtime.flow_run.scheduled_start_time
    return dt.datetime.fromisoformat(moment.isoformat()) if moment is not None else None


def _night(night, dask_address: str | None, logger) -> dict:
    """The night's stages as Prefect tasks, in `stages.drive`'s order."""
    return stages.drive(night, PrefectSteps(night, dask_address, logger), logger.info, logger.warning)


class PrefectSteps:
    """`stages.Steps` as Prefect tasks: sources read in parallel, detection optionally on Dask."""

    def __init__(self, night, dask_address: str | None, logger):
        self.night, self.dask_address, self.logger = night, dask_address, logger
        self.settings, self.data_dir, self.run_date = night.settings, str(night.data_dir), night.run_date
        self.work = WorkFolder.of(night.data_dir, night.run_date)

    def ingest(self) -> list[dict]:
        futures = ingest_source.map(unmapped(self.settings), self.data_dir, str(self.work.path),
                                    [s.key for s in self.settings.sources])
        sources = []
        for source, future in zip(self.settings.sources, futures):
            outcome = future.result(raise_on_failure=False)
            if isinstance(outcome, BaseException):  # one source failing never stops the others
                outcome = stages.failed_source(self.settings, self.night.data_dir, self.work, source.key, outcome)
            sources.append(outcome)
        for s in sources:
            (self.logger.warning if s["status"] != "ok" else self.logger.info)(console.describe_source(s))
        return sources

    def detect(self) -> dict:
        if self.night.buckets:
            from flows.partitioned import dask_runner, detect_partitioned

            runner = dask_runner(self.dask_address, self.night.dask_workers)
            return detect_partitioned.with_options(task_runner=runner)(str(self.work.path), self.night.config,
                                                                       self.night.buckets, parts=self.night.buckets)
        return detect_findings(self.settings, str(self.work.path))

    def returns(self) -> list[dict]:
        return judge_returns(self.settings, self.data_dir, str(self.work.path), self.run_date)

    def ledger(self, sources: list[dict]) -> dict:
        return update_ledger(self.settings, self.data_dir, str(self.work.path), self.run_date, sources)

    def render(self, sources: list[dict], changes: dict, seconds: dict[str, float]) -> Path:
        folder = Path(render_reports(self.settings, self.data_dir, str(self.work.path), self.run_date, sources,
                                     changes, seconds))
        self.logger.info("总览：%s", (folder / "index.html").resolve())
        return folder

    def publish(self, result: dict, sources: list[dict], counts: dict, changes: dict) -> None:
        _publish(self.run_date, result, sources, counts, changes, self.work)


def _publish(run_date: str, result: dict, sources: list[dict], counts: dict, changes: dict,
             work: WorkFolder) -> None:
    """A summary artifact, tables by department × kind and of row accounting, a link to the overview."""
    overview = Path(result["overview"]).resolve().as_uri()
    create_link_artifact(key="uscc-overview-link", link=overview, link_text=f"总览 {run_date}",
                         description="The overview page of the run (open from the reports folder)")
    create_table_artifact(key="uscc-findings-by-kind", table=findings_table(work),
                          description="Findings by department, kind and status")
    create_markdown_artifact(key="uscc-overview", markdown=summary_markdown(run_date, result, counts, changes, overview),
                             description="USCC Steward nightly summary")
    create_table_artifact(
        key="uscc-sources",
        table=[{k: s[k] for k in ("key", "name", "status", "file", "rows_read", "rows_checked",
                                  "rows_quarantined", "rows_blank", "reason")} for s in sources],
        description="Row accounting per source")


def findings_table(work: WorkFolder) -> list[dict]:
    """Findings by source, kind and status (the Prefect table artifact)."""
    findings = frame_files.read_parquet(work.findings_status, columns=["source", "kind", "status"])
    return findings.group_by("source", "kind", "status").len("findings").sort("source", "kind", "status").to_dicts()


def summary_markdown(run_date: str, result: dict, counts: dict, changes: dict, overview: str) -> str:
    """The run's summary as the operator reads it in Prefect's UI (the `uscc-overview` artifact)."""
    return (f"# 统一社会信用代码重错码 {run_date}\n\n"
            f"- 待处理问题（错误与警告）：**{result['open_findings']}**\n"
            f"- 本期新发现 {changes['new']}，已更正 {changes['fixed']}，重新出现 {changes['reopened']}\n"
            f"- 部门反馈文件 {changes['return_files']} 份：受理 {changes['returns_accepted']} 行，"
            f"未受理 {changes['returns_rejected']} 行\n"
            f"- 检查记录 {counts['records']} 条，发现 {counts['findings']} 条\n"
            f"- 被拒收文件：{len(result['rejected'])}；待确认数据：{len(result['held'])}\n"
            + "".join(f"  - {k}：{v}\n" for k, v in {**result["rejected"], **result["held"]}.items())
            + "".join(f"- 整份未受理的反馈文件：{h['source']}/{h['file']}（{h['reason']}）\n"
                      for h in result.get("returns_refused", []))
            + "".join(f"- 留待下次运行处理的反馈文件（本次运行期间仍在写入或在运行开始后才放入）："
                      f"{h['source']}/{h['file']}\n" for h in result.get("returns_deferred", []))
            + f"\n[打开总览]({overview})\n")


if __name__ == "__main__":
    nightly()
