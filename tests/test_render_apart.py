"""A large night's render in a process of its own (`flows.apart`): the same reports, a sentence when it dies, and
never a render left running after its night died. `render_apart_records = 1` makes the sample night a large one."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import polars as pl
import pytest

from checks import ledger
from flows.apart import ChildDied
from flows.stages import run_all
from tests.conftest import ROOT
from tests.test_unattended import ENV, NIGHT1, NIGHT2, _alive, _children, _cmdline, _outlives, db_of


def apart_config(tmp_path: Path) -> Path:
    """The shipped configuration with every night rendered apart."""
    text, changed = re.subn(r"(?m)^render_apart_records = .*$", "render_apart_records = 1",
                            (ROOT / "config" / "steward.toml").read_text("utf-8"))
    assert changed == 1
    path = tmp_path / "apart.toml"
    path.write_text(text, encoding="utf-8")
    return path


def render_child(parent: int) -> int | None:
    return next((pid for pid in _children(parent) if b"flows.apart" in _cmdline(pid)), None)


def test_a_large_night_is_rendered_by_another_process_into_the_same_reports(sample_copy, tmp_path, monkeypatch):
    here = tmp_path / "here"
    shutil.copytree(sample_copy, here)
    small = run_all(here, run_date=NIGHT1)
    from flows import stages

    def not_here(*args, **kwargs):
        raise AssertionError("a large night was rendered in the night's own process")

    monkeypatch.setattr(stages, "render_here", not_here)
    large = run_all(sample_copy, run_date=NIGHT1, config=str(apart_config(tmp_path)))
    assert large["open_findings"] == small["open_findings"] > 0
    a, b = here / "reports" / NIGHT1, sample_copy / "reports" / NIGHT1
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()) and len(files) > 20
    for name in files:
        if name.suffix == ".csv" and name.name != "audit.csv":  # the audit's lines say when each change was made
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
    timed = ("stage_seconds",)
    summary_a, summary_b = (json.loads((d / "summary.json").read_text("utf-8")) for d in (a, b))
    assert {k: v for k, v in summary_a.items() if k not in timed} == {k: v for k, v in summary_b.items() if k not in timed}
    assert pl.read_parquet(here / "state" / "entities.parquet").equals(pl.read_parquet(sample_copy / "state" / "entities.parquet"))
    assert not ledger.unfinished_nights(db_of(sample_copy))


NIGHT = """
import sys
from flows.stages import run_all
run_all(sys.argv[1], run_date="2026-11-01", config=sys.argv[2])
"""


def test_a_night_killed_while_its_render_runs_apart_leaves_no_render_running(sample_copy, tmp_path):
    # the out-of-memory killer takes the largest process, the night's or the render's: a render going on after its
    # night died would write reports and the register's ids with the data directory's lock released
    night = subprocess.Popen([sys.executable, "-c", NIGHT, str(sample_copy), str(apart_config(tmp_path))], cwd=ROOT,
                             env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    render, deadline = None, time.monotonic() + 120
    while render is None and night.poll() is None and time.monotonic() < deadline:
        render = render_child(night.pid)
        time.sleep(0.01)
    assert render is not None, "the night rendered in its own process"
    night.kill()
    night.wait(timeout=30)
    assert not _outlives(render, 10), "the render went on after its night was killed"
    time.sleep(1)
    assert not (sample_copy / "reports" / NIGHT1).exists()
    result = run_all(sample_copy, run_date=NIGHT1)  # the operator reruns the night
    assert (Path(result["overview"])).is_file() and not ledger.unfinished_nights(db_of(sample_copy))


def test_a_render_killed_by_the_system_fails_the_night_with_a_sentence_and_the_rerun_completes_it(sample_copy,
                                                                                                    tmp_path):
    killed = []

    def kill_the_render():
        deadline = time.monotonic() + 120
        while not killed and time.monotonic() < deadline:
            if (pid := render_child(os.getpid())) is not None:
                os.kill(pid, signal.SIGKILL)  # what the kernel's out-of-memory killer does
                killed.append(pid)
            time.sleep(0.01)

    killer = threading.Thread(target=kill_the_render, daemon=True)
    killer.start()
    with pytest.raises(ChildDied, match="SIGKILL.*内存不足") as died:
        run_all(sample_copy, run_date=NIGHT1, config=str(apart_config(tmp_path)))
    killer.join()
    assert killed
    db = db_of(sample_copy)
    assert ledger.unfinished_nights(db) == [NIGHT1] and not (sample_copy / "reports" / NIGHT1).exists()
    from flows.cli import failure_message

    said = failure_message(died.value, True)
    assert "生成报告的进程被系统终止" in said and "内存充足" in said and "重跑该日期" in said
    run_all(sample_copy, run_date=NIGHT1, config=str(apart_config(tmp_path)))
    assert not ledger.unfinished_nights(db) and (sample_copy / "reports" / NIGHT1 / "index.html").is_file()


def test_an_error_in_the_render_apart_is_raised_in_the_night_as_it_was_raised(sample_copy, tmp_path):
    (sample_copy / "reports").write_text("not a folder")  # an operator's mistake: a file where the reports go
    with pytest.raises(OSError) as raised:
        run_all(sample_copy, run_date=NIGHT1, config=str(apart_config(tmp_path)))
    assert "reports" in str(raised.value)
    assert ledger.unfinished_nights(db_of(sample_copy)) == [NIGHT1]


def test_a_large_night_of_a_data_directory_named_relative_to_where_the_night_runs(sample_copy, tmp_path, monkeypatch):
    # `uscc run --data-dir data` (the default) from the folder a scheduler starts it in: the render's child looked for
    # `data` in the checkout, and every large night failed
    monkeypatch.chdir(sample_copy.parent)
    result = run_all(Path(sample_copy.name), run_date=NIGHT1, config=str(apart_config(tmp_path)))
    assert (sample_copy / "reports" / NIGHT1 / "index.html").is_file() and result["open_findings"] > 0


def test_a_damaged_register_file_rendered_apart_says_the_same_sentence_as_in_the_nights_process(sample_copy,
                                                                                                  tmp_path):
    from checks.register import EntitiesUnreadable

    run_all(sample_copy, run_date=NIGHT1)
    path = sample_copy / "state" / "entities.parquet"
    ids = pl.read_parquet(path)
    pl.concat([ids, ids.head(1)]).write_parquet(path)  # a record twice: an edit by hand, found as the ids are read
    here = tmp_path / "here"
    shutil.copytree(sample_copy, here)
    with pytest.raises(EntitiesUnreadable) as in_process:
        run_all(here, run_date=NIGHT2)
    with pytest.raises(EntitiesUnreadable) as apart:  # its own type: the CLI's sentence and exit 2, not a traceback
        run_all(sample_copy, run_date=NIGHT2, config=str(apart_config(tmp_path)))
    assert str(apart.value) == str(in_process.value).replace(str(here), str(sample_copy)) and "已损坏" in str(apart.value)


def test_what_the_environment_prints_as_a_python_starts_does_not_garble_the_renders_answer(sample_copy, tmp_path,
                                                                                              monkeypatch):
    chatty = tmp_path / "chatty"
    chatty.mkdir()
    (chatty / "sitecustomize.py").write_text("print('a site that greets every python it starts')\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(chatty), str(ROOT)]))
    result = run_all(sample_copy, run_date=NIGHT1, config=str(apart_config(tmp_path)))
    assert (Path(result["overview"])).is_file() and not ledger.unfinished_nights(db_of(sample_copy))


SLOW_REGISTER = """
import checks.register as register
import time
write = register.EntitiesWriter.__call__
def slowly(self, slice_):
    write(self, slice_)
    time.sleep(4)  # the register's ids half written: the moment the night is stopped (less than GRACE)
register.EntitiesWriter.__call__ = slowly
"""


def test_a_night_stopped_while_its_render_writes_apart_leaves_no_half_written_file(sample_copy, tmp_path):
    slow = tmp_path / "slow"
    slow.mkdir()
    (slow / "sitecustomize.py").write_text(SLOW_REGISTER)
    env = ENV | {"PYTHONPATH": os.pathsep.join([str(slow), str(ROOT)])}
    night = subprocess.Popen([sys.executable, "-c", NIGHT, str(sample_copy), str(apart_config(tmp_path))], cwd=ROOT,
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    staged, deadline = sample_copy / "state" / ".entities.parquet.tmp", time.monotonic() + 120
    while not staged.exists() and night.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert staged.exists(), night.stderr.read() if night.poll() is not None else "no register written"
    render = render_child(night.pid)
    night.send_signal(signal.SIGINT)  # Ctrl-C at the terminal reaches the night's process
    night.wait(timeout=60)
    assert not _alive(render) and not staged.exists(), "the stopped render left its staged ids behind"
    assert not (sample_copy / "reports" / NIGHT1).exists()


def test_an_exception_the_child_raises_reaches_the_night_with_its_own_message_and_where_it_was_raised():
    from flows.apart import in_a_child
    from tests.apart_targets import Refused

    assert in_a_child("tests.apart_targets:answer", "测试", {"路径": Path("/tmp")}) == {"路径": Path("/tmp")}
    with pytest.raises(Refused) as raised:  # pickle alone made "甲（乙）（未说明）" of it
        in_a_child("tests.apart_targets:refuse", "测试", "甲", "乙")
    assert str(raised.value) == "甲（乙）"
    assert any("apart_targets.py" in note and "refuse" in note for note in raised.value.__notes__)


def test_an_answer_the_night_cannot_read_is_not_said_to_be_a_child_that_died():
    """A child that ended well with a whole answer the night cannot make again: the sentence says so, and names no
    exit code as if the child had failed."""
    from flows.apart import ChildDied, in_a_child

    with pytest.raises(ChildDied) as raised:
        in_a_child("tests.apart_targets:only_here", "测试")
    assert "子进程已结束，但其结果在主进程中无法读取" in str(raised.value) and "OnlyInTheChild" in str(raised.value)
    assert "异常退出" not in str(raised.value) and not raised.value.killed


def test_a_night_holding_over_a_thousand_open_files_still_hears_its_render(tmp_path):
    import resource

    from flows.apart import in_a_child

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"this machine allows {hard} open files")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]  # the answer pipe's number is now above 1,024
    try:
        assert in_a_child("tests.apart_targets:answer", "测试", 42) == 42
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


STOPPED_TWICE = """
import sys, time
from flows.apart import in_a_child
try:
    in_a_child("tests.apart_targets:slow_to_stop", "测试", sys.argv[1], 60)
except KeyboardInterrupt:
    print("stopped", flush=True)  # a process that lives on (a Prefect worker, a notebook)
    time.sleep(60)
"""


def test_a_second_ctrl_c_while_the_child_cleans_up_kills_it_before_the_night_goes_on(tmp_path):
    started = tmp_path / "started"
    night = subprocess.Popen([sys.executable, "-c", STOPPED_TWICE, str(started)], cwd=ROOT, env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(started.read_text())
    night.send_signal(signal.SIGINT)  # the child is asked to stop, and takes a minute to clean up …
    time.sleep(1)
    night.send_signal(signal.SIGINT)  # … the operator presses Ctrl-C again
    try:
        assert night.stdout.readline() == "stopped\n"
        assert not _alive(child), "the child went on after the night gave up on it"
    finally:
        night.kill()
        night.wait()


@pytest.mark.prefect
def test_the_prefect_flow_renders_a_large_night_apart(prefect_server, sample_copy, tmp_path, monkeypatch):
    # the flow's render task (a Prefect task, on the flow's thread) waits for the child as `run_all` does
    from flows import stages
    from flows.nightly import nightly

    def not_here(*args, **kwargs):
        raise AssertionError("a large night was rendered in the flow's own process")

    monkeypatch.setattr(stages, "render_here", not_here)
    state = nightly(data_dir=str(sample_copy), run_date=NIGHT1, config=str(apart_config(tmp_path)), return_state=True)
    assert state.is_completed(), state.message
    assert (sample_copy / "reports" / NIGHT1 / "index.html").is_file() and not ledger.unfinished_nights(db_of(sample_copy))
