"""`uscc` command line: check codes, run the nightly job, make synthetic data.

Exit codes: 0 all good, 1 some code invalid (check) / some source rejected or held (run),
2 usage or input error, or another run holds the data directory (with a message, never a traceback),
3 the night started and failed (a full disk, a ledger kept locked, a bug: a sentence, and the traceback).
"""

from __future__ import annotations

import argparse
import errno
import json
import signal
import sys
import traceback
from collections import Counter
from pathlib import Path

from flows.apart import ChildDied


class UsageError(Exception):
    """A problem with what the user asked for; printed as one line, exit 2."""


class NightFailed(Exception):
    """A night that started and failed (a full disk, a ledger another program kept locked, a bug): exit 3, so
    that monitoring tells it from a refused parameter (2) and from a source held or rejected (1)."""


def failure_message(error: BaseException, ledger_moved: bool | None = None) -> str:
    """What the operator is told of a failed night, in Chinese, with the error itself; `ledger_moved`: whether the
    night's ledger step had committed (None: not known)."""
    text = f"{type(error).__name__}: {str(error)[:300]}"
    if (isinstance(error, OSError) and error.errno == errno.ENOSPC) or any(
            words in str(error) for words in ("disk is full", "No space left on device")):  # SQLite's, polars'
        cause = "磁盘空间已满"
        todo = "请清理数据目录所在磁盘（如 archive/、旧的 reports/）后重跑该日期"
    elif "database is locked" in str(error):
        cause = "台账文件被其他程序锁定（如备份工具或打开台账的 SQLite 客户端）超过 2 分钟"
        todo = "请关闭该程序后重跑该日期"
    elif isinstance(error, ChildDied) and error.killed:  # a stage's own process killed (`flows.apart`): memory
        cause = f"{error.what}的进程被系统终止"
        todo = "请确认服务器空闲内存充足（一千万条记录的夜间任务约需 6 GB）后重跑该日期"
    else:
        cause, todo = "运行出错", "请把运行日志发给运维人员，排除后重跑该日期"
    ledger_said = {
        False: "台账未更新，没有问题因此被关闭或新增",
        True: "台账步骤已完成（问题状态已按本晚数据更新），本晚记为“运行未完成”，不计入清零趋势；重跑该日期会补出报告，"
              "不会重复计入",
        None: "若台账步骤已完成，本晚记为“运行未完成”，不计入清零趋势，重跑该日期会补出报告",
    }[ledger_moved]
    return f"夜间任务失败：{cause}（{text}）。本晚的报告未发布；{ledger_said}。{todo}。"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="uscc", description="统一社会信用代码（GB 32100）重错码治理工具")
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help="校验代码（参数、文件或标准输入 -）")
    check.add_argument("codes", nargs="*", help="要校验的代码；- 表示从标准输入逐行读取")
    check.add_argument("--input", "-i", help="每行一个代码的文本文件，或配合 --column 的 CSV 文件")
    check.add_argument("--column", help="CSV 文件中代码所在列的列名")
    output = check.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="每个代码输出一行 JSON")
    output.add_argument("--summary", action="store_true", help="只输出各类问题的数量（适合百万级文件）")
    check.add_argument("--config", help="配置文件（白名单），默认 config/steward.toml")

    run = sub.add_parser("run", help="运行夜间任务")
    run.add_argument("--data-dir", default="data", help="数据目录（extracts/、returns/、reports/、state/）")
    run.add_argument("--date", help="运行日期 YYYY-MM-DD（默认今天，重跑某晚时指定）")
    run.add_argument("--config", help="配置文件，默认 config/steward.toml")
    run.add_argument("--no-prefect", action="store_true", help="不经 Prefect 直接运行（调试用）")
    run.add_argument("--buckets", type=int, default=0,
                     help="按地区分区、按键分桶检测（桶数；0 = 单进程）。经 Prefect 时在 Dask 集群上运行")
    run.add_argument("--dask-address", help="已有 Dask 集群的调度器地址（如 tcp://10.0.0.5:8786）；默认本机临时集群")
    run.add_argument("--dask-workers", type=int, default=2, help="本机临时 Dask 集群的进程数")
    run.add_argument("--new-ledger", action="store_true",
                     help="台账文件不存在而数据目录中有以前运行的报告时，确认从新台账开始（默认拒绝运行）")
    run.add_argument("--wait", type=float, default=0,
                     help="数据目录正被另一运行使用时最多等待的秒数（默认 0：立即退出，退出码 2）")

    extracts = sub.add_parser("extracts", help="查看各部门本期数据的检查结论，或确认接受“待确认”的数据")
    extracts.add_argument("action", choices=["list", "accept"], help="list 列出最近的检查结论；accept 确认接受")
    extracts.add_argument("source", nargs="?", help="来源（如 market）；accept 时必填")
    extracts.add_argument("--why", default="", help="accept 的原因（记入审计日志）")
    extracts.add_argument("--data-dir", default="data", help="数据目录")
    extracts.add_argument("--config", help="配置文件，默认 config/steward.toml")

    book = sub.add_parser("ledger", help="查看台账中的问题，或由市信用办重新打开、改派、撤销跟踪")
    book.add_argument("--data-dir", default="data", help="数据目录")
    book.add_argument("--config", help="配置文件，默认 config/steward.toml")
    book.add_argument("action", choices=["show", "reopen", "reassign", "withdraw"],
                      help="show 显示问题及其审计记录；reopen 重新打开；reassign 改派给另一部门；"
                           "withdraw 撤销跟踪已从配置中删除的来源的全部待处理问题")
    book.add_argument("finding_id", nargs="?", help="问题编号（show / reopen / reassign）")
    book.add_argument("--why", default="", help="reopen / reassign / withdraw 的原因（记入审计日志）")
    book.add_argument("--to", help="reassign：改由哪个来源处理（如 justice）")
    book.add_argument("--source", help="withdraw：已从配置中删除的来源（如 civil）")

    report = sub.add_parser("report", help="生成月度进展报告（逐月跟踪问效）")
    report.add_argument("period", choices=["month"], help="month：月报")
    report.add_argument("month", nargs="?", help="月份 YYYY-MM（默认上个月）")
    report.add_argument("--data-dir", default="data", help="数据目录")
    report.add_argument("--config", help="配置文件，默认 config/steward.toml")

    synth = sub.add_parser("synth", help="生成合成数据（含标准答案）")
    synth.add_argument("--out", required=True, help="输出的数据目录")
    synth.add_argument("--records", type=int, default=3000, help="记录总数")
    synth.add_argument("--seed", type=int, default=1, help="随机种子")
    synth.add_argument("--xlsx-max", type=int, default=200_000,
                       help="市场监管局超过该记录数时改写 CSV（XLSX 单表上限约 104 万行）")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "check":
            return _check(args)
        if args.command == "run":
            return _run(args)
        if args.command == "synth":
            return _synth(args)
        if args.command == "ledger":
            return _ledger(args)
        if args.command == "extracts":
            return _extracts(args)
        if args.command == "report":
            return _report(args)
    except UsageError as exc:
        print(f"uscc {args.command}: {exc}", file=sys.stderr)
        return 2
    except NightFailed as exc:
        print(f"uscc {args.command}: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130
    return 2


# --------------------------------------------------------------------------- check

def _read_codes(args) -> list[str]:
    from checks.textfile import TextFileError, read_text_file

    codes: list[str] = []
    for code in args.codes:
        if code == "-":
            codes.extend(line.rstrip("\r\n") for line in sys.stdin)
        else:
            codes.append(code)
    if args.input:
        path = Path(args.input)
        if not path.is_file():
            raise UsageError(f"找不到输入文件 {path}")
        try:
            text = read_text_file(path)
        except TextFileError as exc:
            raise UsageError(str(exc)) from None
        if args.column:
            import csv
            import io

            from checks.ingest import normalize_header

            rows = csv.reader(io.StringIO(text))
            header = [h.strip().lstrip("\ufeff") for h in next(rows, [])]
            wanted = [normalize_header(h) for h in header]  # as ingest matches headers: NFKC, no spaces
            if normalize_header(args.column) not in wanted:
                raise UsageError(f"{path} 中没有列“{args.column}”；文件中的列：{'、'.join(header)}")
            col = wanted.index(normalize_header(args.column))
            codes.extend(row[col] if col < len(row) else "" for row in rows if any(cell.strip() for cell in row))
        else:
            codes.extend(line for line in text.splitlines())
    elif args.column:
        raise UsageError("--column 需要与 --input 一起使用")
    if not codes:
        raise UsageError("没有要校验的代码：请给出代码、--input 文件或 -（标准输入）")
    return codes


def _check(args) -> int:
    import polars as pl

    from checks.settings import ConfigError, load_settings
    from validators import uscc
    from validators.column import classify, kinds_of_flags
    from validators.tables import KINDS

    try:
        allowlist = load_settings(args.config).allowlist
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    codes = _read_codes(args)
    classified = classify(pl.Series(codes, dtype=pl.String), allowlist=allowlist)
    all_valid = bool(classified["valid"].all())

    if args.summary:
        counts: Counter[str] = Counter()
        for bits, n in classified["flags"].value_counts().iter_rows():  # few distinct values
            for kind in kinds_of_flags(bits):
                counts[kind] += n
        n_valid = int(classified["valid"].sum())
        print(f"共 {len(codes)} 个代码：有效 {n_valid}，无效 {len(codes) - n_valid}")
        for kind, n in sorted(counts.items(), key=lambda kv: -kv[1]):
            print(f"  {kind:<16} {KINDS[kind].label:<12} {n}")
        return 0 if all_valid else 1

    flags = classified["flags"].to_list()
    out = sys.stdout
    for code, bits in zip(codes, flags):
        report = uscc.check(code, allowlist=allowlist) if bits else uscc.Report(code, uscc.compact(code), True)
        if args.json:
            out.write(json.dumps(report.to_dict(), ensure_ascii=False) + "\n")
        else:
            out.write(_describe(report) + "\n")
    return 0 if all_valid else 1


def _describe(report) -> str:
    from validators.tables import CONFIDENCE_LABELS, SEVERITY_LABELS

    shown = report.to_dict()
    head = f"{shown['input']}: {'有效' if report.valid else '无效'}"
    lines = [head]
    for f in report.findings:
        lines.append(f"  [{SEVERITY_LABELS[f.severity]}] {f.kind}: {f.message}")
    for s in report.suggestions[:8]:
        lines.append(f"  建议（{CONFIDENCE_LABELS[s.confidence]}）{s.code}：{s.reason}")
    if len(report.suggestions) > 8:
        lines.append(f"  ……另有 {len(report.suggestions) - 8} 个候选，用 --json 查看全部")
    return "\n".join(lines)


# --------------------------------------------------------------------------- run / synth

def _ledger_moved(night) -> bool | None:
    """Whether a failed night's ledger step had committed its run (None when the ledger cannot tell)."""
    from checks import ledger
    from checks.catalog import ledger_path

    try:
        db = ledger_path(night.data_dir, night.settings)
        return db.exists() and ledger.ran_on(db, night.run_date)
    except Exception:  # noqa: BLE001 (the ledger itself may be what failed)
        return None


def _interrupted(signum, frame) -> None:
    raise KeyboardInterrupt


def _run(args) -> int:
    from checks.lock import LockBusy, holder_of
    from flows.params import ParameterError, check_night

    try:
        night = check_night(args.data_dir, args.date, args.config, args.buckets, args.dask_workers, args.wait,
                            new_ledger=args.new_ledger)
    except ParameterError as exc:
        raise UsageError(str(exc)) from None
    if args.no_prefect:
        from checks.register import EntitiesUnreadable
        from flows.stages import run_all

        try:
            result = run_all(night.data_dir, say=lambda line: print(line, flush=True), night=night)
        except (LockBusy, EntitiesUnreadable, ParameterError) as exc:  # a sentence, exit 2, never a traceback
            raise UsageError(str(exc)) from None
        except Exception as exc:  # the traceback for the operator's log, then the sentence and exit 3
            traceback.print_exc()
            raise NightFailed(failure_message(exc, _ledger_moved(night))) from None
    else:
        import os

        holder = holder_of(night.data_dir)
        if holder is not None and not night.lock_wait:  # fail fast, before paying for Prefect's start-up
            raise UsageError(str(LockBusy(holder, 0)))
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
        # a `kill` (a scheduler's time-out, systemd stopping the job) ends the run as Ctrl-C does, so that Prefect's
        # temporary server is stopped with it: killed outright it was left running, ~250 MB a night
        signal.signal(signal.SIGTERM, _interrupted)
        if not os.environ.get("PREFECT_API_URL"):  # the temporary server: stopped even if this run is killed
            from flows.watchdog import watch_this_run

            watch_this_run()
        from flows.nightly import nightly

        state = nightly(data_dir=str(night.data_dir), run_date=night.run_date, config=args.config,
                        buckets=night.buckets, dask_address=args.dask_address, dask_workers=night.dask_workers,
                        lock_wait=night.lock_wait, new_ledger=args.new_ledger, return_state=True)
        result = state.result(raise_on_failure=False)
        if isinstance(result, dict) and "refused" in result:
            raise UsageError(result["refused"])
        if not isinstance(result, dict):  # the flow failed (Prefect's log has the traceback)
            raise NightFailed(failure_message(result) if isinstance(result, BaseException) else
                              f"夜间任务失败：{state.message or result}。本晚的报告未发布。请查看 Prefect 的运行日志后重跑该日期。")
    returns = result["returns"]
    print(f"总览：{Path(result['overview']).resolve()}")
    print(f"待处理问题（错误与警告）{result['open_findings']} 条；被拒收文件 {len(result['rejected'])} 个；"
          f"待确认数据 {len(result['held'])} 份；部门反馈 {returns['return_files']} 份（受理 {returns['returns_accepted']} 行，"
          f"未受理 {returns['returns_rejected']} 行）。")
    for source, reason in result["rejected"].items():
        print(f"  被拒收：{source}：{reason}", file=sys.stderr)
    for source, reason in result["held"].items():
        print(f"  待确认：{source}：{reason}", file=sys.stderr)
    return 1 if result["rejected"] or result["held"] else 0


def _ledger_db(args):
    from checks.settings import ConfigError, load_settings
    from checks.catalog import ledger_path

    try:
        settings = load_settings(args.config)
        db = ledger_path(Path(args.data_dir), settings)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if not db.exists():
        raise UsageError(f"{db} 不存在：数据目录 {args.data_dir} 还没有运行过夜间任务")
    from checks import ledger

    problem = ledger.unreadable(db)
    if problem:
        raise UsageError(problem)
    from flows.params import ParameterError, check_home

    if not Path(args.data_dir).is_dir():  # the ledger says which directory it belongs to: it must be named
        raise UsageError(f"数据目录 {args.data_dir} 不存在：请用 --data-dir 指定台账所属的数据目录。")
    try:  # a steward's command on another data directory's ledger would act on that directory's findings
        check_home(Path(args.data_dir), db)
    except ParameterError as exc:
        raise UsageError(str(exc)) from None
    return settings, db


def _extracts(args) -> int:
    from checks import ledger

    settings, db = _ledger_db(args)
    if args.source and args.source not in settings.source_names:
        raise UsageError(f"没有来源“{args.source}”；已配置的来源：{'、'.join(settings.source_names)}")
    labels = {"ok": "已接受", "held": "待确认", "rejected": "被拒收"}
    if args.action == "accept":
        if not args.source:
            raise UsageError("请指明要接受的来源，如：uscc extracts accept market --why \"原因\"")
        try:
            done = ledger.steward_accept_extract(db, args.source, args.why)
        except ledger.LedgerError as exc:
            raise UsageError(str(exc)) from None
        print(f"已确认接受 {settings.source_names[args.source]} 的数据 {done['file']}（{done['run_date']} 待确认；"
              f"上期 {done['previous_records']} 条，本期 {done['records']} 条），下一次运行即采用。已记入审计日志。")
        return 0
    for v in ledger.extract_verdicts(db, args.source):
        figures = f"上期 {v['previous_records']} 条，" if v["previous_records"] is not None else ""
        print(f"{v['run_date']}  {settings.source_names.get(v['source'], v['source'])}  {labels.get(v['status'], v['status'])}"
              f"  {v['file'] or '—'}  {figures}本期 {v['records']} 条" + (f"\n    {v['reason']}" if v["reason"] else ""))
    return 0


def _ledger(args) -> int:
    from checks import ledger

    settings, db = _ledger_db(args)
    if args.action == "withdraw":
        if not args.source:
            raise UsageError("撤销跟踪需要 --source <来源>，如：uscc ledger withdraw --source civil --why \"原因\"")
        try:
            done = ledger.steward_withdraw(db, args.source, args.why, set(settings.source_names))
        except ledger.LedgerError as exc:
            raise UsageError(str(exc)) from None
        print(f"来源 {args.source} 已撤销跟踪：{done['findings']} 条待处理问题（其中错误与警告 {done['counted']} 条）"
              "已不再计入待处理问题（月报自下一次运行起计入“撤销跟踪”），其他部门涉及该来源记录的问题在下一次运行时"
              "一并撤销跟踪；已记入审计日志"
              "（如需恢复单个问题，可运行 uscc ledger reopen ID --why \"原因\"）。")
        return 0
    if not args.finding_id:
        raise UsageError(f"请给出问题编号，如：uscc ledger {args.action} 89e9aaa2602691a6")
    try:
        if args.action == "reassign":
            if not args.to:
                raise UsageError("改派需要 --to <来源>，如：uscc ledger reassign ID --to justice --why \"原因\"")
            done = ledger.steward_reassign(db, args.finding_id, args.to, args.why, settings.source_names)
            names = settings.source_names
            print(f"问题 {args.finding_id}：由{names.get(done['from'], done['from'])}改为{names[done['to']]}处理"
                  f"（状态 {done['old_status']} → {done['new_status']}），下一次运行起出现在其清单和填报表中；已记入审计日志。")
            return 0
        if args.action == "reopen":
            old, new = ledger.steward_reopen(db, args.finding_id, args.why)
            print(f"问题 {args.finding_id}：{old} → {new}（已记入审计日志）")
            return 0
        f = ledger.finding_detail(db, args.finding_id)
    except ledger.LedgerError as exc:
        raise UsageError(str(exc)) from None
    owner = settings.source_names.get(f["source"], f["source"])
    print(f"问题 {f['finding_id']}  {owner} 记录 {f['record_id']}  {f['name'] or ''}  {f['uscc'] or ''}")
    print(f"类型 {f['kind']}（{f['severity']}）  状态 {f['status']}  首次发现 {f['first_seen']}  最近 {f['last_seen']}"
          f"  处理期限 {f['due_date'] or '—'}")
    if f["assigned_to"]:
        print(f"已改派：由{settings.source_names.get(f['assigned_to'], f['assigned_to'])}处理")
    if f["answer"]:
        print(f"部门答复（{f['answered_on']}）：{f['answer']} {f['answer_code'] or ''} {f['answer_note'] or ''}".rstrip())
    if f.get("succeeds"):
        print(f"接续问题 {f['succeeds']}（原记录已不在数据中，同一问题转至本记录）")
    if f.get("succeeded_by"):
        print(f"已由问题 {f['succeeded_by']} 接续（本记录已不在数据中，同一问题转至该问题的记录）")
    for e in f["audit"]:
        night = "下次运行" if e["run_date"] == ledger.PENDING_NIGHT else e["run_date"]
        print(f"  {night}  {e['old_status'] or '—'} → {e['new_status']}  {e['actor']}：{e['note'] or ''}")
    return 0


def _report(args) -> int:
    from flows.month import describe, report_month
    from flows.params import ParameterError

    try:
        result = report_month(args.data_dir, args.month, args.config)
    except ParameterError as exc:
        raise UsageError(str(exc)) from None
    print(f"月报：{Path(result['report']).resolve()}")
    print(f"表格：{Path(result['workbook']).resolve()}")
    print(describe(result))
    return 0


def _synth(args) -> int:
    from synth import generate

    if args.records < 100:
        raise UsageError("--records 至少为 100")
    truth = generate(Path(args.out), records=args.records, seed=args.seed, xlsx_max=args.xlsx_max)
    print(f"已生成 {args.records} 条记录到 {args.out}（标准答案：{truth}）")
    return 0


if __name__ == "__main__":
    sys.exit(main())
