"""A returned form still being copied into returns/ while the night runs waits for the next night.

Before this, the night judged whatever part of the file had arrived when it reached the returned files, then
archived the file: the rows after that point were never judged, and the receipt did not say so. The copy here
is a real process writing the file while a real night runs.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import polars as pl

from checks import ledger
from checks.catalog import WorkFolder
from checks.return_file import STILL_ARRIVING
from checks.returns import apply_waiting_returns, archive_path, deferred_files, note_deferred, note_waiting, seen_at_start
from checks.settings import load_settings
from flows.nightly import summary_markdown
from flows.stages import run_all
from tests.test_loop import fill_csv, load

NIGHT1, NIGHT2, NIGHT3 = "2026-11-01", "2026-11-02", "2026-11-03"

#: A copy in progress: the first part at once, then a little more every 0.2 s until told to finish.
COPY = """
import sys, time
from pathlib import Path
source, target, finish = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
data = source.read_bytes()
at = len(data) // 2
with open(target, "wb") as out:
    out.write(data[:at]); out.flush()
    print("started", flush=True)
    while not finish.exists() and at < len(data) - 64:
        time.sleep(0.2)
        out.write(data[at:at + 16]); out.flush()
        at += 16
    out.write(data[at:])
"""


def test_a_returned_form_still_being_copied_waits_and_is_judged_whole_the_next_night(sample_copy, tmp_path):
    run_all(sample_copy, run_date=NIGHT1)
    f1 = load(sample_copy / "reports" / NIGHT1, "findings.csv").filter(pl.col("source") == "market")
    waive = f1.filter(pl.col("kind") == "region_outside")["finding_id"].tail(3).to_list()  # the form's later rows
    whole = tmp_path / "反馈.csv"
    fill_csv(sample_copy / "reports" / NIGHT1 / "market.csv", whole,
             {i: {"处理结果": "确认无误", "处理说明": "已核对"} for i in waive}, "gb18030")
    target, finish = sample_copy / "returns" / "market" / "反馈.csv", tmp_path / "finish"
    target.parent.mkdir(parents=True, exist_ok=True)
    copy = subprocess.Popen([sys.executable, "-c", COPY, str(whole), str(target), str(finish)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert copy.stdout.readline().strip() == "started"
        said: list[str] = []
        result = run_all(sample_copy, run_date=NIGHT2, say=said.append)
        assert copy.poll() is None, "the copy ended before the night judged the returned files"
        # the run's result names it, and so does the summary an operator reads in Prefect's UI
        assert result["returns_deferred"] == [{"source": "market", "file": "反馈.csv"}]
        summary = summary_markdown(NIGHT2, result, {"records": 1, "findings": 1}, {**result["returns"], "new": 0,
                                   "fixed": 0, "reopened": 0}, "file:///x")
        assert "留待下次运行处理的反馈文件（本次运行期间仍在写入或在运行开始后才放入）：market/反馈.csv" in summary
        db = sample_copy / "state" / "steward.sqlite3"
        assert ledger.returns_of_night(db, NIGHT2) == []  # nothing judged, nothing recorded
        assert [line for line in said if "反馈.csv" in line] == [f"反馈 market/反馈.csv：{STILL_ARRIVING}"]
        overview = (sample_copy / "reports" / NIGHT2 / "index.html").read_text("utf-8")
        assert f"returns/market/反馈.csv：{STILL_ARRIVING}" in overview
        assert not (sample_copy / "archive" / "returns").exists()  # not archived half-written either
    finally:
        finish.touch()
        copy.wait(timeout=60)
    assert target.read_bytes() == whole.read_bytes()

    run_all(sample_copy, run_date=NIGHT3)  # the file, whole and as it was when this night began: judged
    [entry] = ledger.returns_of_night(sample_copy / "state" / "steward.sqlite3", NIGHT3)
    assert (entry["outcome"], entry["accepted"], entry["rejected"]) == ("processed", 3, 0)
    sha = hashlib.sha256(whole.read_bytes()).hexdigest()
    assert not target.exists() and archive_path(sample_copy, "market", NIGHT3, sha, "反馈.csv").read_bytes() == \
        whole.read_bytes()


def test_a_file_put_in_place_after_the_night_began_is_left_unread_for_the_next_night(tmp_path):
    settings = load_settings(None)
    data, work = tmp_path / "data", WorkFolder(tmp_path / "work")
    work.path.mkdir()
    (data / "returns" / "market").mkdir(parents=True)
    note_waiting(work, data, [s.key for s in settings.sources])  # nothing was waiting as the night began
    late = data / "returns" / "market" / "晚到.xlsx"
    late.write_bytes(b"PK\x03\x04 half a workbook")  # judged now, it would be refused as damaged and archived
    handled = apply_waiting_returns(data, tmp_path / "ledger.sqlite3", NIGHT2, settings, lambda codes: [],
                                    seen=seen_at_start(work))
    assert [(h["file"], h["outcome"]) for h in handled] == [("晚到.xlsx", "deferred")]
    assert late.exists() and not (tmp_path / "ledger.sqlite3").exists()
    note_deferred(work, handled)
    assert deferred_files(work) == [{"file": "market/晚到.xlsx", "reason": STILL_ARRIVING}]
