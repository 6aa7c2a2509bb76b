"""The nightly job on the sample data, as the steward runs it."""

import csv
import gc
import io
import json
import os
import shutil
import time
from pathlib import Path

import polars as pl
import pytest

from checks import ledger
from flows import stages
from flows.collector import CollectorPause
from flows.stages import run_all
from tests.conftest import CORPUS


def test_nightly_on_sample_data_writes_every_report(sample_copy):
    result = run_all(sample_copy, run_date="2026-11-27")
    folder = sample_copy / "reports" / "2026-11-27"
    assert result["overview"] == str(folder / "index.html") and not result["rejected"]
    for key in ("editorial", "market", "justice"):
        for ext in ("html", "xlsx", "csv"):
            assert (folder / f"{key}.{ext}").stat().st_size > 0
    summary = json.loads((folder / "summary.json").read_text("utf-8"))
    for s in summary["sources"].values():
        assert s["rows_read"] == s["rows_checked"] + s["rows_quarantined"] + s["rows_blank"]
    truth = pl.read_csv(sample_copy / "truth" / "findings.csv", infer_schema=False)
    assert set(summary["findings_by_kind"]) == set(truth["kind"])
    assert result["open_findings"] > 0


def test_the_stages_run_without_the_cycle_collector_and_it_is_back_after_a_night_that_failed(sample_copy, monkeypatch):
    seen = {}
    real_detect = stages.detect_all

    def detect(*args, **kwargs):
        seen["detect"] = gc.isenabled()
        return real_detect(*args, **kwargs)

    def render(*args, **kwargs):
        seen["render"] = gc.isenabled()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(stages, "detect_all", detect)
    monkeypatch.setattr(stages, "render", render)
    assert gc.isenabled()
    with pytest.raises(OSError):
        run_all(sample_copy, run_date="2026-11-27")
    assert seen == {"detect": False, "render": False}
    assert gc.isenabled()


def test_the_night_hands_its_records_over_to_detection(sample_copy, monkeypatch):
    """Detection lets go of the records' columns it has read only when the night keeps no other name for them
    (at 10^7 detection peaked 2 GB higher when it kept them)."""
    import weakref

    real = stages.detect_with_frame
    kept_elsewhere = []

    def detect_with_frame(records, settings):
        alive = weakref.ref(records)
        own = records.clone()
        del records
        kept_elsewhere.append(alive() is not None)
        return real(own, settings)

    monkeypatch.setattr(stages, "detect_with_frame", detect_with_frame)
    run_all(sample_copy, run_date="2026-11-27")
    assert kept_elsewhere == [False]


def test_the_night_hands_the_previous_nights_entity_ids_over_to_the_register(sample_copy, monkeypatch):
    """The register lets go of the previous night's entity ids once it has carried them only when the night keeps
    no other name for them (at 10^7, 10^7 rows that a night after the first held through the register's lists)."""
    import weakref

    real = stages.register_slices
    kept_elsewhere = []

    def register_slices(prepared, findings, settings, previous=None):
        if previous is not None:
            alive = weakref.ref(previous)
            own = previous.clone()
            del previous
            kept_elsewhere.append(alive() is not None)
            previous = own
        return real(prepared, findings, settings, previous)

    monkeypatch.setattr(stages, "register_slices", register_slices)
    run_all(sample_copy, run_date="2026-11-27")
    run_all(sample_copy, run_date="2026-11-28")
    assert kept_elsewhere == [False]  # the first night has no previous ids; the second hands them over


def test_a_pause_of_the_cycle_collector_leaves_it_off_when_it_was_off_and_nests():
    pause = CollectorPause()
    with pause():
        with pause():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer stage still runs
    assert gc.isenabled()
    gc.disable()
    try:
        with pause():
            pass
        assert not gc.isenabled()  # whoever turned it off keeps it off
    finally:
        gc.enable()


def corrected_extract(old: Path, dest: Path, codes: dict[str, str]) -> None:
    """Tonight's editorial extract: yesterday's file (GB18030) with some records' codes corrected."""
    rows = list(csv.reader(io.StringIO(old.read_bytes().decode("gb18030"))))
    for row in rows[1:]:
        if row and row[0] in codes:
            row[1] = codes[row[0]]
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    dest.write_bytes(out.getvalue().encode("gb18030"))
    later = time.time() + 60
    os.utime(dest, (later, later))


def test_the_next_night_shows_fixes_and_the_trend(sample_copy):
    first = run_all(sample_copy, run_date="2026-11-27")
    before = pl.read_csv(sample_copy / "reports" / "2026-11-27" / "findings.csv", infer_schema=False)
    # editorial sends a new extract with its suggested codes applied: the newest file wins, the old one is unused
    editorial = before.filter((pl.col("source") == "editorial") & pl.col("suggested_code").is_not_null())
    single = before.group_by("record_id").len().filter(pl.col("len") == 1)["record_id"]
    fixed = editorial.filter(pl.col("record_id").is_in(single.to_list()))
    assert fixed.height >= 1
    [old] = (sample_copy / "extracts" / "editorial").glob("*.csv")
    corrected_extract(old, old.with_name("zz_newer.csv"), dict(fixed.select("record_id", "suggested_code").rows()))
    run_all(sample_copy, run_date="2026-11-28")
    after = pl.read_csv(sample_copy / "reports" / "2026-11-28" / "findings.csv", infer_schema=False)
    summary = json.loads((sample_copy / "reports" / "2026-11-28" / "summary.json").read_text("utf-8"))
    resolved = set(before["finding_id"]) - set(after["finding_id"])
    assert set(fixed["finding_id"]) <= resolved
    assert summary["changes"]["fixed"] == len(resolved)
    html = (sample_copy / "reports" / "2026-11-28" / "index.html").read_text("utf-8")
    assert "2026-11-27：待处理 %d 条" % first["open_findings"] in html  # the trend keeps last night
    assert "编办_机构名录.csv（不是最新文件，本次未使用）" in html


def test_a_rejected_file_is_reported_and_the_others_still_run(sample_copy):
    target = sample_copy / "extracts" / "justice"
    shutil.rmtree(target)
    target.mkdir()
    shutil.copy(CORPUS / "binary.csv", target / "binary.csv")
    result = run_all(sample_copy, run_date="2026-11-27")
    assert set(result["rejected"]) == {"justice"}
    html = (sample_copy / "reports" / "2026-11-27" / "index.html").read_text("utf-8")
    assert "被拒收" in html and "不是文本文件" in html
    assert (sample_copy / "reports" / "2026-11-27" / "market.html").exists()


@pytest.mark.prefect
def test_the_prefect_flow_runs_the_same_job(prefect_server, sample_copy):
    """One real flow run through Prefect (what `make run` and the deployment do)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.nightly import nightly

    result = nightly(data_dir=str(sample_copy), run_date="2026-11-27")
    assert not result["rejected"]
    assert (sample_copy / "reports" / "2026-11-27" / "index.html").exists()
    assert ledger.history(sample_copy / "state" / "steward.sqlite3")[-1]["open"] == result["open_findings"]
    with get_client(sync_client=True) as client:
        keys = ("uscc-overview", "uscc-overview-link", "uscc-findings-by-kind", "uscc-sources")
        found = {a.key: a for a in client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=list(keys))))}
    assert set(found) == set(keys)
    assert f"待处理问题（错误与警告）：**{result['open_findings']}**" in found["uscc-overview"].data
    assert (sample_copy / "reports" / "2026-11-27" / "index.html").resolve().as_uri() in found["uscc-overview-link"].data
    local = run_all(sample_copy, run_date="2026-11-27")
    assert local["open_findings"] == result["open_findings"]


@pytest.mark.prefect
def test_a_source_whose_task_crashes_is_rejected_and_the_others_still_run(prefect_server, sample_copy, monkeypatch):
    from flows import nightly as nightly_module

    real = stages.ingest_one

    def crash_on_justice(settings, data_dir, work, key):
        if key == "justice":
            raise MemoryError("simulated")
        return real(settings, data_dir, work, key)

    monkeypatch.setattr(stages, "ingest_one", crash_on_justice)
    monkeypatch.setattr(nightly_module, "ingest_source", nightly_module.ingest_source.with_options(retries=0))
    state = nightly_module.nightly(data_dir=str(sample_copy), run_date="2026-11-27", return_state=True)
    # the night fails loudly (a notification can fire on it) after writing every report it can
    assert state.is_failed() and "justice 被拒收" in state.message and "内部错误" in state.message
    result = state.result(raise_on_failure=False)
    assert set(result["rejected"]) == {"justice"} and "内部错误" in result["rejected"]["justice"]
    assert "MemoryError" in (sample_copy / "reports" / "2026-11-27" / "index.html").read_text("utf-8")
    assert (sample_copy / "reports" / "2026-11-27" / "market.xlsx").exists()


@pytest.mark.prefect
def test_wrong_parameters_fail_the_flow_run_before_anything_is_written(prefect_server, sample_copy, tmp_path):
    from flows.nightly import nightly

    typed = nightly(data_dir=str(sample_copy), run_date="2026/11/30", return_state=True)  # `-p run_date=2026/11/30`
    assert typed.is_failed()
    negative = nightly(data_dir=str(sample_copy), buckets=-1, return_state=True)
    assert negative.is_failed() and "不能小于 0" in negative.message
    missing = nightly(data_dir=str(tmp_path / "nowhere"), return_state=True)
    assert missing.is_failed() and "不存在" in missing.message and not (tmp_path / "nowhere").exists()
    unresolved = nightly(data_dir="{{ $USCC_DATA_DIR }}", return_state=True)
    assert unresolved.is_failed() and "USCC_DATA_DIR" in unresolved.message
    assert not (sample_copy / "state").exists() and not (sample_copy / "reports").exists()


@pytest.mark.prefect
def test_a_scheduled_run_takes_its_night_from_its_scheduled_start_in_shanghai(prefect_server, sample_copy):
    """A run scheduled for 02:00 on 2026-11-21 in Shanghai that starts late is still that night's."""
    import datetime as dt

    from prefect.client.orchestration import get_client
    from prefect.flow_engine import run_flow
    from prefect.states import Scheduled

    from flows.nightly import nightly

    due = dt.datetime(2026, 11, 20, 18, 0, tzinfo=dt.timezone.utc)  # 02:00 on 11-21 in Asia/Shanghai
    with get_client(sync_client=True) as client:
        flow_run = client.create_flow_run(nightly, parameters={"data_dir": str(sample_copy)},
                                          state=Scheduled(scheduled_time=due))
    state = run_flow(nightly, flow_run=flow_run, parameters={"data_dir": str(sample_copy)}, return_type="state")
    assert state.is_completed(), state.message
    assert (sample_copy / "reports" / "2026-11-21" / "index.html").exists()
    assert [h["run_date"] for h in ledger.history(sample_copy / "state" / "steward.sqlite3")] == ["2026-11-21"]


@pytest.mark.prefect
def test_the_partitioned_flow_on_a_dask_cluster_finds_exactly_the_same(prefect_server, sample_copy, tmp_path,
                                                                         monkeypatch):
    """Partitions by region and the key shuffle on a Dask LocalCluster = the single-process run."""
    from flows.nightly import nightly

    from flows import partitioned

    single = shutil.copytree(sample_copy, tmp_path / "single")
    run_all(single, run_date="2026-11-27")
    seen = []
    real = partitioned.partition.regions_of
    monkeypatch.setattr(partitioned.partition, "regions_of", lambda folder: seen.append(real(folder)) or seen[-1])
    result = nightly(data_dir=str(sample_copy), run_date="2026-11-27", buckets=3, dask_workers=2)
    [regions] = seen
    assert len(regions) == 3 and sum(len(r) for r in regions.values()) > 3  # several regions in each of 3 groups
    expected = pl.read_csv(single / "reports" / "2026-11-27" / "findings.csv", infer_schema=False)
    got = pl.read_csv(sample_copy / "reports" / "2026-11-27" / "findings.csv", infer_schema=False)
    assert got.sort("finding_id").equals(expected.sort("finding_id"))
    assert result["open_findings"] == run_all(single, run_date="2026-11-27")["open_findings"]


def test_the_deployment_runs_the_nightly_flow_at_two_in_shanghai():
    import inspect

    import yaml

    from flows.nightly import nightly
    from tests.conftest import ROOT

    project = yaml.safe_load((ROOT / "prefect.yaml").read_text("utf-8"))
    deployment = next(d for d in project["deployments"] if d["name"] == "nightly")
    assert deployment["name"] == "nightly" and deployment["entrypoint"] == "flows/nightly.py:nightly"
    [schedule] = deployment["schedules"]
    assert (schedule["cron"], schedule["timezone"]) == ("0 2 * * *", "Asia/Shanghai")
    assert set(deployment["parameters"]) <= set(inspect.signature(nightly.fn).parameters)
    assert deployment["work_pool"]["name"] == "uscc-local"


def test_a_registry_with_every_other_code_left_blank_gets_its_missing_findings(sample_copy):
    """Scattered blank codes beside the configured allowlist crashed every night (IndexError), no report at all."""
    path = sample_copy / "extracts" / "justice" / "司法行政机构名录.csv"
    rows = list(csv.reader(io.StringIO(path.read_text("utf-8-sig"))))
    blanked = [r[0] for i, r in enumerate(rows[1:]) if i % 2 and len(r) > 1 and r[0]]
    for i, r in enumerate(rows[1:]):
        if i % 2 and len(r) > 1:
            r[1] = ""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    path.write_text(out.getvalue(), encoding="utf-8-sig")
    result = run_all(sample_copy, run_date="2026-11-27")
    assert not result["rejected"]
    found = pl.read_csv(sample_copy / "reports" / "2026-11-27" / "findings.csv", infer_schema=False)
    missing = found.filter((pl.col("source") == "justice") & (pl.col("kind") == "missing"))["record_id"]
    assert len(set(blanked) & set(missing)) >= 0.9 * len(blanked) > 30  # (a few are the same entity's twins)
