"""Each returned row judged against the ledger and tonight's records (docs/correction-loop.md); pure.

- the finding exists, belongs to the returning department (anything else is refused and
  logged: a department only ever changes its own findings) and is open, reopened or had
  its last answer rejected;
- `处理结果` is one of the four answers; `已更正` brings a code that fully validates and
  that no other entity holds; `确认无误` and `非本单位` give a reason in `处理说明`;
- the record's identity columns are as we sent them (`checks.return_match`);
- an `已更正` whose 更正后代码 is empty, or a number a spreadsheet made of the digits typed,
  adopts the code we suggest tonight when the row shows that suggestion and every surviving
  digit agrees; the adopted code is checked like a typed one;
- the accepted answers to one record's findings agree with each other.

Resident ID numbers in anything a clerk typed are masked before a verdict is stored or shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import polars as pl

from checks import ledger
from checks.form import ANSWERS, CANCELLED, CONFIRMED, CORRECTED, NOT_OURS
from checks.names import normalize_name
from checks.return_file import ANSWER, CODE, KEY, NAME, NEW_CODE, NOTE, RECORD, SUGGESTED, clean_cell
from checks.return_match import marked_pair, quoted, spreadsheet_number_of, unaltered
from validators.tables import DEPARTMENTS, STATUS_LABELS, TRIM_CHARS
from validators.uscc import check, compact, mask_personal_ids

#: Kinds whose fix is not a new code (remove the duplicate record, correct the name).
FIX_WITHOUT_CODE = frozenset({"duplicate_record", "name_mismatch"})
#: Answers that need a reason in 处理说明.
#: Characters of a 处理说明 at most: it is stored, shown on the lists and carried into every later form.
NOTE_LIMIT = 1_000
NEEDS_NOTE = {CONFIRMED: f"选择“{CONFIRMED}”时请在“处理说明”写明依据（如已核对证照原件），否则无法受理。",
              NOT_OURS: f"选择“{NOT_OURS}”时请在“处理说明”写明该记录应由哪个单位处理。"}
#: What an accepted answer does to the finding, and what the receipt says about it.
ACCEPTED = {
    CORRECTED: ("responded", "已受理，待下期数据核验：数据中代码已改正时问题自动关闭。"),
    CONFIRMED: ("waived", "已受理：确认无误。记录（代码、名称）不变时不再列出。"),
    CANCELLED: ("responded", "已受理：该记录不再出现在本单位数据中时问题关闭。"),
    NOT_OURS: ("responded", "已受理：市信用办将核实记录归属。"),
}
EXCEL_ADVICE = ("请把“更正后代码”列设置为“文本”格式（或在代码前加英文单引号 '），重新输入完整的 18 位代码后保存报送。")

#: Verdict fields that carry what a clerk typed (or quote it): resident ID numbers in them are masked.
TYPED_FIELDS = ("finding_id", "record_id", "name", "answer", "corrected_code", "note", "reason", "audit_note")

VERDICT_SCHEMA = {
    "row": pl.Int64, "finding_id": pl.String, "record_id": pl.String, "name": pl.String, "answer": pl.String,
    "corrected_code": pl.String, "note": pl.String, "verdict": pl.String, "reason": pl.String,
    "new_status": pl.String, "audit_note": pl.String,
}


@dataclass(frozen=True)
class Holder:
    """A record (tonight) or an accepted correction (pending) that holds a code."""

    code: str
    source: str
    record_id: str
    name: str | None
    pending: bool = False


def form_for_another(form: pl.DataFrame, source: str, known: dict[str, ledger.Known]) -> str | None:
    """The other source this whole form belongs to, when none of its findings is the returner's (neither to
    answer nor on its records: the returner's own older form, whose findings the steward has since handed to
    another department, is judged row by row)."""
    entries = [known[i] for i in form[KEY] if i in known]
    owners = {f.answerer for f in entries}
    if any(f.source == source for f in entries):
        return None
    return owners.pop() if len(owners) == 1 and source not in owners else None


def judge(form: pl.DataFrame, source: str, known: dict[str, ledger.Known], holders: list[Holder],
          source_names: dict[str, str], allowlist: dict[str, str] | None = None,
          name_prefixes: tuple[str, ...] = (), suggested: dict[str, str] | None = None,
          departments: dict[str, tuple[str, ...]] | None = None) -> pl.DataFrame:
    """One verdict per form row (`VERDICT_SCHEMA`); pure.

    Args:
        form: `read_return` output.
        source: the returning department's source key (from the folder the file came in).
        known: the ledger's entries for the form's finding ids.
        holders: every record tonight and every pending correction holding one of the form's corrected codes
            (the suggested codes of `suggested` included).
        suggested: the code we suggest tonight for each finding id that has one (never the form's 建议代码 cell,
            which a clerk can edit): what an `已更正` without a usable 更正后代码 may adopt.
        departments: each registry's GB 32100 department codes (`Source.departments`): a department mismatch
            "corrected" to a code of the same wrong department is what the night would flag again, and is refused.
    """
    by_code: dict[str, list[Holder]] = {}
    for h in holders:
        by_code.setdefault(h.code, []).append(h)
    same_entity = _name_equality(name_prefixes)
    seen_rows: dict[str, int] = {}
    on_record: dict[str, list[dict]] = {}  # accepted answers per record, checked together at the end
    out = []
    for r in form.iter_rows(named=True):
        fid, answer = r[KEY], r[ANSWER]
        v = {"row": r["row"], "finding_id": fid or None, "record_id": r[RECORD] or None, "name": r[NAME] or None,
             "answer": answer or None, "corrected_code": r[NEW_CODE] or None, "note": r[NOTE] or None,
             "verdict": "rejected", "reason": "", "new_status": None, "audit_note": None}
        out.append(v)
        f = known.get(fid)
        if not answer:
            v["verdict"], v["reason"] = "skipped", "未填写处理结果，本行未处理。"
            continue
        if not fid:
            v["reason"] = "缺少问题编号，无法对应到问题。请勿删除或修改“问题编号”列。"
            continue
        if f is None:
            v["reason"] = f"问题编号 {quoted(fid)} 不存在。请使用市信用办下发的最新更正清单填写，不要修改“问题编号”。"
            continue
        if f.answerer != source:  # the record's department, or the one the steward handed it to
            owner = source_names.get(f.answerer, f.answerer)
            v["reason"] = (f"该问题已由市信用办转交{owner}处理，本单位无需再答复，本行未受理。" if f.source == source else
                           f"该问题属于{owner}，本单位无权处理，本行未受理并已记录。如该记录确属本单位，请联系市信用办。")
            v["audit_note"] = f"拒绝：{source_names.get(source, source)}报送的文件试图处理{owner}的问题（第 {r['row']} 行）"
            continue
        if fid in seen_rows:
            v["reason"] = f"本文件第 {seen_rows[fid]} 行已处理同一问题，本行未处理。"
            continue
        seen_rows[fid] = r["row"]
        if f.status not in ledger.ANSWERABLE:
            v["reason"] = _not_answerable(f)
            continue
        reason, code, adopted = _check_answer(r, f, by_code, same_entity, source_names, allowlist,
                                               (suggested or {}).get(fid), departments)
        if reason:
            v["reason"], v["new_status"] = reason, "rejected-response"
            continue
        v["corrected_code"] = code
        v["new_status"], v["reason"] = ACCEPTED[answer]
        if adopted:
            v["reason"] = f"{adopted}{v['reason']}"
        v["verdict"] = "accepted"
        on_record.setdefault(f.record_id, []).append(v)
        if code:
            # a second row correcting another record to the same code in this file collides too
            by_code.setdefault(code, []).append(Holder(code, f.source, f.record_id, f.name, pending=True))
    for record_id, answers in on_record.items():
        why = contradiction(answers)
        if why:
            said = "、".join(f"第 {v['row']} 行“{v['answer']}”" + (f"（更正后代码 {v['corrected_code']}）"
                                                                 if v["corrected_code"] else "") for v in answers)
            for v in answers:
                v["verdict"], v["new_status"] = "rejected", "rejected-response"
                v["reason"] = (f"同一记录（记录编号 {record_id}）在本文件中的答复互相矛盾：{said}；{why}"
                               f"这 {len(answers)} 行均未受理，请对该记录的各条问题统一答复后重新报送。")
    for v in out:  # judged on what was typed; stored and shown with resident ID numbers masked
        for key in TYPED_FIELDS:
            v[key] = mask_personal_ids(v[key])
    return pl.DataFrame(out, schema=VERDICT_SCHEMA) if out else pl.DataFrame(schema=VERDICT_SCHEMA)


def contradiction(answers: list[dict]) -> str | None:
    """Why accepted answers to several findings of one record cannot all hold (None when they can).

    A record has one code: two different corrected codes, a corrected code beside "确认无误" (the code is
    right), or "非本单位" beside any other answer (then the department cannot answer for it) contradict.
    """
    said = {v["answer"] for v in answers}
    codes = {v["corrected_code"] for v in answers if v["answer"] == CORRECTED and v["corrected_code"]}
    if len(codes) > 1:
        return "一条记录只能有一个代码，各行填写的更正后代码不一致。"
    if codes and CONFIRMED in said:
        return "一处报代码已更正，另一处又确认代码无误。"
    if NOT_OURS in said and len(said) > 1:
        return "一处报该记录不属于本单位，另一处又作了其他答复。"
    return None


def _not_answerable(f: ledger.Known) -> str:
    when = f.status_changed_on
    if f.status == "fixed":
        return f"该问题已于 {when} 核验为已更正并关闭，无需再处理。"
    if f.status == "waived":
        return f"该问题已于 {f.answered_on or when} 确认无误，无需再处理。"
    if f.status == "responded":
        return (f"该问题已于 {f.answered_on or when} 答复（{f.answer}），正在等待下期数据核验；"
                "如需更改答复，请联系市信用办。")
    if f.status == ledger.SUPERSEDED:
        return "该问题的记录已变更编号，同一问题已转至新记录，请在本期清单中按新的问题编号答复。"
    if f.status == ledger.WITHDRAWN:
        return "该问题已由市信用办撤销跟踪，无需再处理。"
    return f"该问题当前状态为“{STATUS_LABELS.get(f.status, f.status)}”，不能答复。"


def _check_answer(r: dict, f: ledger.Known, by_code: dict[str, list[Holder]], same_entity, source_names: dict,
                  allowlist, ours: str | None = None, departments: dict[str, tuple[str, ...]] | None = None
                  ) -> tuple[str | None, str | None, str | None]:
    """(reason the row is rejected or None, the corrected code as recorded, how it was adopted or None).

    `ours` is the code we suggest for the finding: an `已更正` with 更正后代码 left empty, or turned into a number
    by a spreadsheet that agrees with it in every digit that survived, adopts it; the adopted code then passes
    every check a typed one does.
    """
    answer = r[ANSWER]
    if answer not in ANSWERS:
        return f"处理结果“{quoted(answer)}”无效，只能填写：{'、'.join(ANSWERS)}。", None, None
    for header, sent in ((RECORD, f.record_id), (NAME, f.name), (CODE, f.uscc)):
        if not unaltered(header, r[header], clean_cell(sent), r.get("saved_as")):
            was, now = marked_pair(clean_cell(sent), r[header])
            # the ledger's value is tonight's: an older form of a record changed since differs without an edit
            return (f"只读列“{header}”与市信用办的记录不一致（记录为“{was}”，报送为“{now}”，标出的是不同之处）。"
                    "如未修改过灰色列，说明所用的是旧的清单或该记录已在本单位系统中变更，请改用最新下发的更正清单填写；"
                    "请勿修改灰色列，记录信息如需更正，请在本单位系统中修改，并在“处理说明”中注明。"), None, None
    if answer in NEEDS_NOTE and not r[NOTE]:
        return NEEDS_NOTE[answer], None, None
    if len(r[NOTE] or "") > NOTE_LIMIT:
        return (f"“处理说明”有 {len(r[NOTE]):,} 字，超过 {NOTE_LIMIT:,} 字的上限。请精简后重新报送（详细材料请另行提交"
                "市信用办）。"), None, None
    if answer != CORRECTED:
        return None, None, None
    typed, adopted = r[NEW_CODE], None
    if not typed:
        if f.kind in FIX_WITHOUT_CODE:
            return None, None, None
        if not ours:
            return "处理结果为“已更正”时，请在“更正后代码”填写更正后的 18 位代码。", None, None
        if not _same_suggestion(r.get(SUGGESTED), ours):
            shown = "报送文件中本行没有“建议代码”" if not r.get(SUGGESTED) else \
                f"本行“建议代码”与市信用办下发的（{ours}）不一致"
            return (f"“更正后代码”未填写，而{shown}，无法确认采用哪个代码。"
                    "请在“更正后代码”填写更正后的 18 位代码。"), None, None
        typed, adopted = ours, f"“更正后代码”未填写，按建议代码 {ours} 受理。"
    report = check(typed, numeric=r["code_numeric"], allowlist=allowlist, suggest=False)
    if "excel_mangled" in report.kinds:
        if not (ours and spreadsheet_number_of(typed, ours) and _same_suggestion(r.get(SUGGESTED), ours)):
            return f"更正后代码“{quoted(typed)}”已被 Excel 按数字保存，后几位已丢失。{EXCEL_ADVICE}", None, None
        adopted = (f"“更正后代码”被表格软件按数字保存为“{typed}”，保留下来的每一位数字都与建议代码 {ours} 一致，"
                   f"按建议代码受理（以后请把该列设为文本格式）。")
        typed = ours
        report = check(typed, allowlist=allowlist, suggest=False)
    if report.is_personal_id:
        return "更正后代码是居民身份证号码，不是统一社会信用代码。请核对营业执照后填写。", None, None
    if not report.valid:
        errors = "；".join(x.message for x in report.findings if x.severity == "error")
        return f"更正后代码“{quoted(typed)}”不是有效的统一社会信用代码：{errors}。请核对证照后重新填写。", None, None
    code = report.code
    if code == (f.uscc or "").strip(TRIM_CHARS):  # a lower-case or spaced current code is a formatting fix
        return "更正后代码与当前代码相同。如当前代码无误，请选择“确认无误”并写明依据。", None, None
    related = set((f.related or "").split(";"))
    # the night listed this record's department as wrong (it is not held by that department's registry): a
    # "correction" keeping that department repeats the finding. Any other code may be cross-listed where the night
    # alone can tell (docs/decisions.md#cross-listing), and is judged by the next extract as before.
    own = (departments or {}).get(f.source)
    if f.kind == "department_mismatch" and own and code[0] not in own \
            and code[0] == compact(f.uscc or "")[:1] and not any(
                code[0] in departments.get(h.source, ()) and not h.pending and (f"{h.source}:{h.record_id}" in related
                                                                      or same_entity(h.name, f.name))
                for h in by_code.get(code, [])):
        return (f"更正后代码第 1 位“{code[0]}”仍表示{DEPARTMENTS[code[0]][0]}部门登记，而{source_names.get(f.source, f.source)}"
                f"登记的主体代码应以“{'、'.join(own)}”开头：这正是本条问题，更正后仍会被列为“登记管理部门与登记机关不符”。"
                "请核对证照后重新填写；如该主体确由其他部门登记，请选择“非本单位”并在“处理说明”中写明。"), None, None
    for h in by_code.get(code, []):
        if (h.source, h.record_id) == (f.source, f.record_id) or f"{h.source}:{h.record_id}" in related \
                or same_entity(h.name, f.name):
            continue  # the same record, a record linked to it as the same entity, or the same name
        who = f"{source_names.get(h.source, h.source)}的记录 {h.record_id}（{h.name or '无名称'}）"
        how = "已报送为其更正后代码" if h.pending else "正在使用"
        return f"更正后代码 {code} {who}{how}，与本记录不是同一主体，不能重复使用。请核对证照后重新填写。", None, None
    return None, code, adopted


def _same_suggestion(cell: str | None, ours: str) -> bool:
    """The form's 建议代码 cell shows the code we suggest (as text, or as a spreadsheet turned it into a number):
    the clerk saw what we would adopt."""
    return bool(cell) and (compact(cell) == ours or spreadsheet_number_of(cell, ours))


def _name_equality(prefixes: tuple[str, ...]) -> Callable[[str | None, str | None], bool]:
    """Two names that are equal after `checks.names.normalize_name` (each name normalized once)."""
    norm = lru_cache(maxsize=None)(lambda name: normalize_name(name, prefixes))
    return lambda a, b: bool(a) and bool(b) and norm(a) == norm(b)

__all__ = ["judge", "contradiction", "form_for_another", "Holder", "VERDICT_SCHEMA", "ACCEPTED"]
