"""Detection spread over a Dask cluster: partitions by region, a shuffle by key (docs/running.md#scale).

A subflow of the nightly flow, run with Prefect's Dask task runner: a
`LocalCluster` on this machine by default, or an existing cluster by address
(`tcp://scheduler:8786`). Every worker must see the same work folder (shared
or network file system) and have this project installed. Same findings as
the single-process detection (`checks.partition` says how, a test shows it).
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect_dask import DaskTaskRunner

from checks import partition
from checks.catalog import WorkFolder
from checks.settings import Settings, load_settings
from flows import collector, stages


def dask_runner(address: str | None = None, workers: int = 2) -> DaskTaskRunner:
    """An existing Dask cluster by address, else a local cluster of `workers` processes.

    The local workers are told the API of this run (in local mode Prefect's temporary server),
    so their task runs are reported to the same place instead of each starting a server of its own.
    Workers of an existing cluster need PREFECT_API_URL in their environment (README).
    """
    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True,
                                          "dashboard_address": None, "env": {"PREFECT_API_URL": _api_url()}})


def _api_url() -> str:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return str(client.api_url).rstrip("/")


@task(cache_policy=NO_CACHE)
def scan_partition(folder: str, key: str, settings: Settings) -> dict:
    """Validate one region's records and derive their link keys."""
    # in a worker process, where the flow process's pause does not reach (the module, not its lock, is what a
    # task pickled by value takes along)
    with collector.collector_paused():
        return partition.scan_partition(Path(folder), key, settings)


@task(cache_policy=NO_CACHE)
def link_bucket(folder: str, keys: list[str], bucket: int, buckets: int) -> dict:
    """Candidate pairs of the keys hashing to one bucket (the shuffle)."""
    with collector.collector_paused():
        return partition.link_bucket(Path(folder), keys, bucket, buckets)


@flow(name="uscc-detect-partitioned", log_prints=True)
def detect_partitioned(work: str, config: str | None = None, buckets: int = 8, parts: int = 8) -> dict:
    """Split by region → scan partitions → link buckets → assemble findings."""
    logger = get_run_logger()
    settings = load_settings(config)  # once: every task of the subflow gets this reading
    work_folder = WorkFolder(Path(work))
    folder = work_folder.partitions
    keys = stages.split_partitions(settings, work_folder, parts)
    for key, regions in partition.regions_of(folder).items():
        shown = "、".join(regions[:12]) + (f" 等 {len(regions)} 个" if len(regions) > 12 else "")
        logger.info("分区 %s：地区 %s", key, shown)
    if not keys:  # no source could be read tonight: nothing to spread
        return stages.assemble_partitions(settings, work_folder, keys, buckets)
    scanned = scan_partition.map(str(folder), keys, unmapped(settings))
    for s in scanned.result():
        logger.info("分区 %s：%d 条记录，%d 条单条记录问题", s["partition"], s["records"], s["findings"])
    linked = link_bucket.map(str(folder), unmapped(keys), range(buckets), unmapped(buckets))
    logger.info("按键分桶 %d 个，候选记录对 %d", buckets, sum(b["pairs"] for b in linked.result()))
    return stages.assemble_partitions(settings, work_folder, keys, buckets)
