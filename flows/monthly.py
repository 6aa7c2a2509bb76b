"""The monthly flow: the steward's progress report for the month before (issue 15, item 1).

Scheduled on the 1st at 06:00 Asia/Shanghai (`prefect.yaml`, deployment `monthly`), after the night
of the month's last day has run. Parameters are checked like the nightly's before anything is read.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from prefect import flow, get_run_logger, runtime, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed

from flows import month as steps
from flows.params import Month, ParameterError, check_month, today


@task(retries=1, retry_delay_seconds=10, cache_policy=NO_CACHE)
def write_month_report(params: Month) -> dict:
    """Replay the ledger's audit log over the month and write its page and workbook."""
    return steps.write_report(params, today())


@flow(name="uscc-monthly", log_prints=True)
def monthly(data_dir: str = "data", month: str | None = None, config: str | None = None):
    """USCC Steward monthly progress report over DATA_DIR: `reports/months/YYYY-MM/`.

    Args:
        data_dir: the city's data directory (the nightly's).
        month: YYYY-MM; default the month before the scheduled start (Asia/Shanghai).
        config: the configuration file (default config/steward.toml).
    """
    logger = get_run_logger()
    try:
        params = check_month(data_dir, month, config, scheduled=_scheduled())
        result = write_month_report(params)
    except ParameterError as exc:
        logger.error(str(exc))
        return Failed(message=str(exc), data={"refused": str(exc)})
    logger.info(steps.describe(result))
    page = Path(result["report"]).resolve().as_uri()
    create_link_artifact(key="uscc-month-link", link=page, link_text=f"月报 {result['month']}",
                         description="The monthly progress report (open from the reports folder)")
    create_markdown_artifact(key="uscc-month", markdown=f"# 统一社会信用代码重错码月报\n\n{steps.describe(result)}\n\n"
                                                        f"[打开月报]({page})\n", description="USCC Steward month")
    return result


def _scheduled() -> dt.datetime | None:
    moment = runtime.flow_run.scheduled_start_time
    return dt.datetime.fromisoformat(moment.isoformat()) if moment is not None else None


if __name__ == "__main__":
    monthly()
