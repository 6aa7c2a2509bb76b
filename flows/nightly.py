"""The nightly flow: read every registry, find every wrong code, report, track.

A table of contents of the job; each task is one stage of `flows.stages`.
Runs in Prefect's local (ephemeral) mode when no server is configured.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from checks.settings import load_settings
from flows import stages


@task(retries=2, retry_delay_seconds=10, cache_policy=NO_CACHE)
def ingest_source(data_dir: str, work: str, key: str, config: str | None) -> dict:
    """Read one registry's newest extract (retried: shared folders can hiccup)."""
    return stages.ingest_one(load_settings(config), Path(data_dir), Path(work), key)


@task(cache_policy=NO_CACHE)
def detect_findings(work: str, config: str | None) -> dict:
    """Validate every code and link records across registries."""
    return stages.detect_all(load_settings(config), Path(work))


@task(retries=2, retry_delay_seconds=10, cache_policy=NO_CACHE)
def process_returns(data_dir: str, work: str, run_date: str, config: str | None) -> list[dict]:
    """Judge the departments' returned forms row by row (retried: each file is one transaction)."""
    return stages.process_returns(load_settings(config), Path(data_dir), Path(work), run_date)


@task(cache_policy=NO_CACHE)
def update_ledger(data_dir: str, work: str, run_date: str, sources: list[dict], config: str | None) -> dict:
    """Move each finding along its lifecycle; count what changed tonight."""
    return stages.update_ledger(load_settings(config), Path(data_dir), Path(work), run_date, sources)


@task(retries=1, retry_delay_seconds=10, cache_policy=NO_CACHE)
def render_reports(data_dir: str, work: str, run_date: str, sources: list[dict], changes: dict,
                   seconds: dict, config: str | None) -> str:
    """Write the overview, the department lists and forms, atomically."""
    return str(stages.render(load_settings(config), Path(data_dir), Path(work), run_date, sources, changes, seconds))


@flow(name="uscc-nightly", task_runner=ThreadPoolTaskRunner(max_workers=3), log_prints=True)
def nightly(data_dir: str = "data", run_date: str | None = None, config: str | None = None, buckets: int = 0,
            dask_address: str | None = None, dask_workers: int = 2) -> dict:
    """USCC Steward nightly run over DATA_DIR (SPEC §7).

    Args:
        data_dir: extracts/, returns/, reports/, state/ of the city.
        run_date: YYYY-MM-DD (default: today in Asia/Shanghai); an earlier date reruns that night.
        config: the configuration file (default config/steward.toml).
        buckets: 0 detects in this process; N > 0 partitions by region and shuffles into N key buckets
            on Dask (`flows.partitioned`).
        dask_address: an existing Dask scheduler (`tcp://host:8786`); default a local cluster.
        dask_workers: worker processes of the local cluster.
    """
    logger = get_run_logger()
    settings = load_settings(config)
    run_date = run_date or stages.today()
    work = str(stages.work_dir(Path(data_dir), run_date))
    clock = stages.StageClock()

    with clock.stage(stages.INGEST):
        futures = ingest_source.map(data_dir, work, [s.key for s in settings.sources], config)
        sources = []
        for source, future in zip(settings.sources, futures):
            outcome = future.result(raise_on_failure=False)
            if isinstance(outcome, BaseException):  # one source failing never stops the others
                outcome = stages.failed_source(settings, Path(work), source.key, outcome)
            sources.append(outcome)
    for s in sources:
        (logger.warning if s["status"] == "rejected" else logger.info)(stages.describe_source(s))

    with clock.stage(stages.DETECT):
        if buckets:
            from flows.partitioned import dask_runner, detect_partitioned

            runner = dask_runner(dask_address, dask_workers)
            counts = detect_partitioned.with_options(task_runner=runner)(work, config, buckets, parts=buckets)
        else:
            counts = detect_findings(work, config)
    logger.info(stages.describe_detection(counts))
    with clock.stage(stages.RETURNS):
        handled = process_returns(data_dir, work, run_date, config)
    for h in handled:
        logger.info(stages.describe_return(h))
    with clock.stage(stages.LEDGER):
        changes = update_ledger(data_dir, work, run_date, sources, config) | stages.returns_counts(handled)
    logger.info(stages.describe_changes(changes))
    with clock.stage(stages.RENDER):
        folder = render_reports(data_dir, work, run_date, sources, changes, clock.seconds, config)
    logger.info("总览：%s", Path(folder, "index.html").resolve())

    result = stages.result_of(Path(folder), sources, changes)
    _publish(run_date, result, sources, counts, changes, Path(work))
    return result


def _publish(run_date: str, result: dict, sources: list[dict], counts: dict, changes: dict, work: Path) -> None:
    """A summary artifact, tables by department × kind and of row accounting, a link to the overview."""
    overview = Path(result["overview"]).resolve().as_uri()
    create_link_artifact(key="uscc-overview-link", link=overview, link_text=f"总览 {run_date}",
                         description="The overview page of the run (open from the reports folder)")
    create_table_artifact(key="uscc-findings-by-kind", table=stages.findings_table(work),
                          description="Findings by department, kind and status")
    create_markdown_artifact(
        key="uscc-overview",
        markdown=(f"# 统一社会信用代码重错码 {run_date}\n\n"
                  f"- 待处理问题（错误与警告）：**{result['open_findings']}**\n"
                  f"- 本期新发现 {changes['new']}，已更正 {changes['fixed']}，重新出现 {changes['reopened']}\n"
                  f"- 部门反馈文件 {changes['return_files']} 份：受理 {changes['returns_accepted']} 行，"
                  f"未受理 {changes['returns_rejected']} 行\n"
                  f"- 检查记录 {counts['records']} 条，发现 {counts['findings']} 条\n"
                  f"- 被拒收文件：{len(result['rejected'])}\n\n[打开总览]({overview})\n"),
        description="USCC Steward nightly summary")
    create_table_artifact(
        key="uscc-sources",
        table=[{k: s[k] for k in ("key", "name", "status", "file", "rows_read", "rows_checked",
                                  "rows_quarantined", "rows_blank", "reason")} for s in sources],
        description="Row accounting per source")


if __name__ == "__main__":
    nightly()
