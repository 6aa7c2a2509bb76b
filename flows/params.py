"""The nightly job's parameters, checked before anything touches state.

One place for the checks that `uscc run` and the Prefect flow (a deployment
parameter typed by an operator, `-p run_date=…`) both need: a night that
starts with a wrong parameter fails at once with a Chinese sentence, and
writes nothing — no ledger row, no report, no folder.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from checks import ledger, ledger_home
from checks.catalog import ENTITIES, REPORTS, ledger_path, traces_after, traces_of_earlier_nights
from checks.data_files import select_extract
from checks.ingest import file_sha256
from checks.register import unreadable_entities
from checks.settings import ConfigError, Settings, load_settings
from checks.textfile import quote

TIMEZONE = ZoneInfo("Asia/Shanghai")
#: No night before GB 32100-2015 came into force: an earlier date is a typo (`0001-01-01`).
FIRST_NIGHT = "2015-10-01"
#: The project checkout: a data directory may live below it (the demo's `data/`), never be it.
CHECKOUT = Path(__file__).resolve().parents[1]
_PLACEHOLDER_RE = re.compile(r"\{\{\s*\$?([A-Za-z_][A-Za-z0-9_]*)?\s*\}\}|\$\{?([A-Z_][A-Z0-9_]*)\}?")


class ParameterError(ValueError):
    """A parameter of the night is wrong; the message says which and how to fix it (in Chinese)."""


@dataclass(frozen=True)
class Night:
    """A night's checked parameters."""

    data_dir: Path
    run_date: str  # YYYY-MM-DD
    settings: Settings
    config: str | None
    buckets: int
    dask_workers: int
    lock_wait: float
    new_ledger: bool = False


def today() -> str:
    """Today in Asia/Shanghai (the city's calendar, not the server's UTC)."""
    return dt.datetime.now(TIMEZONE).date().isoformat()


def night_of(moment: dt.datetime) -> str:
    """The night a run scheduled at `moment` belongs to: its date in Asia/Shanghai.

    >>> night_of(dt.datetime(2026, 11, 30, 18, 0, tzinfo=dt.timezone.utc))  # 02:00 in Shanghai
    '2026-12-01'
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(TIMEZONE).date().isoformat()


def parse_run_date(value: object) -> str | None:
    """A run date as YYYY-MM-DD, or None for "tonight"; anything else is a ParameterError."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return night_of(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value).strip()
    try:
        parsed = dt.date.fromisoformat(text)
    except ValueError:
        parsed = None
    if parsed is None or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise ParameterError(f"运行日期“{_shown(text)}”格式不对，应为 YYYY-MM-DD（如 2026-11-30）。")
    return parsed.isoformat()


def check_data_dir(value: object) -> Path:
    """The data directory: given, resolved, existing, holding `extracts/`, not the checkout itself."""
    text = "" if value is None else str(value).strip()
    unresolved = _PLACEHOLDER_RE.search(text)
    if unresolved and not Path(text).expanduser().is_dir():  # a directory really named `信用{{v2}}` is one
        name = unresolved.group(1) or unresolved.group(2) or "USCC_DATA_DIR"
        raise ParameterError(f"数据目录参数“{_shown(text)}”中的变量 {name} 没有取值：部署时环境变量 {name} 未设置。"
                             f"请在执行 prefect deploy 的终端先 export {name}=/数据目录，然后重新部署。")
    if not text:
        raise ParameterError("没有给出数据目录（data_dir 为空）：部署时环境变量 USCC_DATA_DIR 可能未设置。"
                             "请 export USCC_DATA_DIR=/数据目录 后重新部署，或运行时用 --data-dir 指定。")
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise ParameterError(f"数据目录 {_shown(text)} 是一个文件，不是目录。请给出含 extracts/ 的数据目录。")
    if not path.is_dir():
        raise ParameterError(f"数据目录 {_shown(text)} 不存在。请检查路径，或先创建 {_shown(text)}/extracts/<来源>/。")
    if path.resolve() == CHECKOUT:
        raise ParameterError(f"数据目录 {_shown(text)} 是程序目录本身：报告和台账不能写进程序代码中。"
                             "请把数据放在单独的目录（例如 /srv/uscc/data）并用 USCC_DATA_DIR 指定。")
    if not (path / "extracts").is_dir():
        raise ParameterError(f"数据目录 {_shown(text)} 下没有 extracts/ 文件夹（应为 extracts/<来源>/<文件>）。"
                             "请确认数据目录是否正确。")
    return path


def check_night(data_dir: object, run_date: object = None, config: str | None = None, buckets: object = 0,
                dask_workers: object = 2, lock_wait: object = 0, scheduled: dt.datetime | None = None,
                new_ledger: bool = False) -> Night:
    """Every parameter of a night, checked; raises ParameterError naming the first wrong one.

    Args:
        run_date: YYYY-MM-DD; when None, the night of `scheduled` (a scheduled run's start time)
            or else today in Asia/Shanghai.
        lock_wait: seconds to wait for another run on the same data directory to finish.
        new_ledger: start a new ledger although earlier nights left traces in the data directory
            (without it such a night is refused: the ledger was lost or the configuration points elsewhere).
    """
    night = parse_run_date(run_date) or (night_of(scheduled) if scheduled is not None else today())
    latest = (dt.date.fromisoformat(today()) + dt.timedelta(days=1)).isoformat()
    if night > latest:  # a night not yet come would make every real night an "older night's rerun"
        raise ParameterError(f"运行日期 {night} 晚于今天（{today()}，Asia/Shanghai），很可能是笔误。"
                             "夜间任务只能运行今天或以前的日期，请改正 --date / run_date。")
    if night < FIRST_NIGHT:
        raise ParameterError(f"运行日期 {night} 早于 GB 32100-2015 施行之日（{FIRST_NIGHT}），很可能是笔误。请改正 --date / run_date。")
    path = check_data_dir(data_dir)
    buckets = _whole(buckets, "buckets（分桶数）", minimum=0)
    dask_workers = _whole(dask_workers, "dask_workers（Dask 进程数）", minimum=1)
    try:
        wait = float(lock_wait)
    except (TypeError, ValueError):
        wait = -1.0
    if not 0 <= wait <= 24 * 3600:
        raise ParameterError(f"lock_wait（等待其他运行结束的秒数）“{_shown(str(lock_wait))}”无效，应为 0 到 86400 之间的数。")
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        raise ParameterError(str(exc)) from None
    check_ledger(path, settings, new_ledger)
    checked = Night(path, night, settings, config, buckets, dask_workers, wait, new_ledger)
    check_timeline(checked)
    problem = unreadable_entities(path / ENTITIES)
    if problem:
        raise ParameterError(problem)
    return checked


def check_timeline(night: Night) -> None:
    """The night fits the ledger's timeline and the data directory: a ledger not older than the data directory
    shows, no night made up after a later one, an older night rerun only on the files it read.

    Checked before anything starts, and again once the night's lock is held: a run that waited for another
    (`--wait`, the deployment's queue) is judged against the ledger that run left, not the one before it.
    """
    db = ledger_path(night.data_dir, night.settings)
    if not db.exists() or ledger.holds_no_night(db):  # read only: a new or emptied file is not written to
        return
    latest = ledger.latest_run(db)
    if not night.new_ledger:
        _check_not_behind(night.data_dir, db, latest)
    if night.run_date < latest:
        _check_older_night(db, night.run_date, latest)
        _check_rerun_data(night.data_dir, db, night.settings, night.run_date, latest)


def check_ledger(data_dir: Path, settings: Settings, new_ledger: bool = False) -> None:
    """The ledger can be used: readable and of a known version, or missing only where no night has run.

    A ledger that went missing while reports, accepted extracts and entity ids of earlier nights are still
    there (deleted, not restored with the rest, `[state] database` or $USCC_DATABASE pointing elsewhere)
    would start the road to zero again: every finding new, every waiver and answer forgotten, the trend and
    the months gone. That is refused unless the operator says so (`--new-ledger`).
    """
    db = ledger_path(data_dir, settings)
    if db.exists():
        problem = ledger.unreadable(db)
        if problem:
            raise ParameterError(problem)
        check_home(data_dir, db)
        if not ledger.holds_no_night(db):
            _check_sources(db, settings)
            return
    traces = traces_of_earlier_nights(data_dir)
    if traces and not new_ledger:
        shown = "、".join(traces[:3]) + (f" 等 {len(traces)} 项" if len(traces) > 3 else "")
        state = "是空的（没有任何一晚的记录）" if db.exists() else "不存在"
        raise ParameterError(
            f"台账文件 {db} {state}，但数据目录中有此前运行留下的 {shown}：台账可能被删除、清空或移走，或配置 [state] database、"
            "环境变量 USCC_DATABASE 指向了别处。本次运行未做任何改动。若从新台账开始，全部问题会被当作新发现，"
            "部门的答复、确认无误的结论、清零趋势和月报都会丢失。请从备份恢复台账文件；确需从头开始时，"
            "运行 uscc run --data-dir <数据目录> --new-ledger（部署参数 new_ledger=true）。")


#: What using another data directory's ledger does (`check_home`).
_ELSEWHERE = ("用本目录的数据运行那本台账，那本台账登记的问题凡本目录的数据中没有的，都会被当作已更正（本目录尚无上期数据时先被拦截待确认，"
              "确认接受后同样如此），清零数字随之失真；在那本台账上处理问题、生成月报，改动和报告的也是另一个目录的问题。")


def check_home(data_dir: Path, db: Path) -> None:
    """The ledger is this data directory's own (`checks.ledger_home`): another directory's, named by
    `[state] database` or $USCC_DATABASE, would have its findings closed by this directory's extracts."""
    theirs, mine = ledger_home.ledger_id(db), ledger_home.directory_id(data_dir)
    if theirs is None:
        newest = ledger_home.newest_completed_night(db)
        if (newest is None or ledger_home.inside(db, data_dir)
                or ledger_home.matches_newest_night(db, data_dir, newest)):
            return  # a ledger of an older version: this directory's own
        raise ParameterError(
            f"台账 {db} 在本数据目录之外，由较早版本写入，没有记录它属于哪个数据目录；它最近完成的一晚是 {newest}，而本数据目录的报告 "
            f"{REPORTS}/{newest}/summary.json 与台账记录的那一晚（各部门的文件和读取行数、待处理数）不符或不存在：这本台账可能属于另一个"
            "数据目录，配置 [state] database 或环境变量 USCC_DATABASE 指向了别处。本次运行未做任何改动。"
            f"{_ELSEWHERE}请让每个数据目录使用自己的台账；若确认这本台账就是本数据目录的，把它移到本数据目录的 state/steward.sqlite3"
            "（并取消上述设置）后重新运行。")
    if theirs != mine:
        found = f"本数据目录的标识是 {mine}" if mine else f"本数据目录没有标识文件 {ledger_home.DATA_DIR_ID}"
        raise ParameterError(
            f"台账 {db} 属于另一个数据目录（台账记录的数据目录标识是 {theirs}，{found}）：配置 [state] database 或环境变量 "
            "USCC_DATABASE 可能指向了另一个数据目录的台账。本次运行未做任何改动。"
            f"{_ELSEWHERE}请让每个数据目录使用自己的台账；若确认这本台账就是本数据目录的（例如标识文件丢失），把 {theirs} 写入 "
            f"{ledger_home.DATA_DIR_ID} 后重新运行。")


def _check_not_behind(data_dir: Path, db: Path, latest: str) -> None:
    """The ledger knows every night the data directory shows: one restored from an older backup would reopen
    every answer given since and forget the returned files archived after it, silently."""
    known = ledger.known_return_prefixes(db)
    later = traces_after(data_dir, latest, lambda source, prefix: (source, prefix) in known)
    if later:
        shown = "、".join(later[:3]) + (f" 等 {len(later)} 项" if len(later) > 3 else "")
        raise ParameterError(
            f"台账 {db} 的最近一晚是 {latest}，但数据目录中有更晚的 {shown}：台账可能是从较早的备份恢复的，或配置 [state] "
            "database、环境变量 USCC_DATABASE 指向了另一本台账。本次运行未做任何改动。以这本台账继续，此后部门的答复、"
            "确认无误的结论和清零趋势都会丢失（已归档的反馈文件不会再被处理）。请恢复最新的台账文件；确需以这本台账继续时，"
            "先把 archive/returns/ 下这些日期的反馈文件移回 returns/<单位>/，再运行 uscc run --data-dir <数据目录> --new-ledger"
            "（部署参数 new_ledger=true）。")


def _check_older_night(db: Path, night: str, latest: str) -> None:
    """A night older than the ledger's newest (`latest`) is a rerun of a night that ran; one that never ran cannot
    be made up later (its extracts are gone: it would put today's data and today's count on a past date of the
    trend)."""
    if not ledger.ran_on(db, night):
        raise ParameterError(
            f"运行日期 {night} 早于台账中最近的一晚（{latest}），而 {night} 这一晚从未运行：那一晚的数据已无法重现，"
            "现在补跑只会把今天的数据和待处理数记在过去的日期上。本次运行未做任何改动。重新生成某晚的报告请指定台账中"
            f"已运行过的日期；未指定日期时请检查服务器时钟（按 Asia/Shanghai 今天是 {today()}）。")


def _check_rerun_data(data_dir: Path, db: Path, settings: Settings, night: str, latest: str) -> None:
    """A night older than the ledger's newest (`latest`) is rerun only on the very files it read: its report is
    written again from tonight's extracts, so newer ones would put another night's data under its date (the
    ledger's statuses never move back in time, so the report would not even agree with itself)."""
    then = ledger.extracts_of_night(db, night)
    changed = []
    for source in settings.sources:
        path, _ = select_extract(data_dir / "extracts" / source.key, data_dir)
        used = then.get(source.key, {})
        if path is None:
            same = not used.get("file")
        elif used.get("sha256"):
            same = used["sha256"] == file_sha256(path)
        else:  # a file refused that night has no hash: the same name, refused again
            same = used.get("file") == quote(path.name, 120)
        if not same:
            was = used.get("file") or "没有可用文件"
            changed.append(f"{source.name}（当晚：{was}；现在：{path.name if path is not None else '没有文件'}）")
    if changed:
        raise ParameterError(
            f"{night} 早于台账中最近的一晚（{latest}），而此后数据已更新：{'；'.join(changed)}。重跑会用现在的数据重写"
            f" reports/{night}/，报告将与当晚的台账记录不符。本次运行未做任何改动，当晚已发布的报告保持不变。"
            "如确需重跑，请先让 extracts/ 中每个单位的最新文件恢复为当晚使用的文件。")


def _check_sources(db: Path, settings: Settings) -> None:
    """Every registry the ledger tracks is configured, or was withdrawn by the steward.

    A registry missing from the configuration (a renamed key, a section deleted by mistake) would make its
    findings drop off the lists, invent department mismatches in the others (their cross-listed records lose
    the registry that holds them) and fixes when it returns: the night is refused, naming it.
    """
    missing = ledger.untracked_sources(db, {s.key for s in settings.sources})
    if missing:
        shown = "；".join(f"{m['source']}（{m['unresolved']} 条待处理问题，最近一次接受数据 {m['last_accepted'] or '—'}）"
                         for m in missing)
        raise ParameterError(
            f"台账中有配置里没有的来源：{shown}。本次运行未做任何改动。如果是配置文件写错（来源 key 改名、误删 [[sources]]），"
            "请改正 config/steward.toml；如果该登记系统确已撤销或并入其他系统，请先运行 "
            f"uscc ledger withdraw --source {missing[0]['source']} --why “原因” 撤销跟踪，再运行夜间任务。")


@dataclass(frozen=True)
class Month:
    """A monthly report's checked parameters."""

    data_dir: Path
    month: str  # YYYY-MM
    settings: Settings
    config: str | None


def month_before(moment: dt.datetime | dt.date) -> str:
    """The month before the one `moment` falls in, in Asia/Shanghai (the monthly run on the 1st reports it).

    >>> month_before(dt.datetime(2026, 11, 30, 22, 0, tzinfo=dt.timezone.utc))  # 06:00 on 1 December in Shanghai
    '2026-11'
    """
    day = dt.date.fromisoformat(night_of(moment)) if isinstance(moment, dt.datetime) else moment
    return (day.replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")


def check_month(data_dir: object, month: object = None, config: str | None = None,
                scheduled: dt.datetime | None = None) -> Month:
    """A monthly report's parameters, checked; raises ParameterError naming the first wrong one.

    Args:
        month: YYYY-MM; when None, the month before `scheduled` (a scheduled run's start) or before today,
            in Asia/Shanghai. A month after the current one is refused; the current one is reported so far.
    """
    if month is None or str(month).strip() == "":
        month = month_before(scheduled) if scheduled is not None else month_before(dt.date.fromisoformat(today()))
    text = str(month).strip()
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", text):
        raise ParameterError(f"月份“{_shown(text)}”格式不对，应为 YYYY-MM（如 2026-11）。")
    if text > today()[:7]:
        raise ParameterError(f"月份 {text} 尚未开始（今天是 {today()}），无法生成月报。")
    if text < FIRST_NIGHT[:7]:
        raise ParameterError(f"月份 {text} 早于 GB 32100-2015 施行之月（{FIRST_NIGHT[:7]}），很可能是笔误。")
    path = check_data_dir(data_dir)
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        raise ParameterError(str(exc)) from None
    db = ledger_path(path, settings)
    problem = ledger.unreadable(db) if db.exists() else None
    if problem:
        raise ParameterError(problem)
    if db.exists():  # another directory's ledger would give this directory that city's month
        check_home(path, db)
    return Month(path, text, settings, config)


def _whole(value: object, label: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().lstrip("-").isdigit():
        raise ParameterError(f"参数 {label}“{_shown(str(value))}”应为整数。")
    number = int(value)
    if number < minimum:
        raise ParameterError(f"参数 {label} 为 {number}，不能小于 {minimum}。")
    return number


def _shown(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
