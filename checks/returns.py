"""Returned correction forms (SPEC §6): read, judge row by row, apply, archive.

A department returns the form we sent (`DATA_DIR/returns/<source>/*.csv|xlsx`,
often re-saved by Excel in GBK). Each row is judged:

- the finding exists, belongs to the returning department (anything else is
  refused and logged: a department only ever changes its own findings) and is
  open, reopened or had its last answer rejected;
- `处理结果` is one of the four answers; `已更正` brings a code that fully
  validates and that no other entity holds; `确认无误` and `非本单位` give a
  reason in `处理说明`;
- the read-only columns that identify the record (记录编号, 名称, 当前代码)
  are as we sent them, compared as the validators normalize them; a `?` (or
  a merged character) where the file's encoding could not hold ours is no
  alteration, a real edit is quoted with the differing characters marked;
- an `已更正` whose 更正后代码 is empty, or a number a spreadsheet made of the
  digits typed, adopts the code we suggest tonight when the row shows that
  suggestion and every surviving digit agrees; the adopted code is checked
  like a typed one;
- the accepted answers to one record's findings agree with each other.

Resident ID numbers in anything a clerk typed (and in the file's name) are
masked before a verdict is stored or shown.

`judge` is pure (frames and dicts in, a verdict frame out). `process_returns`
does the I/O around it: one ledger transaction per file, then the file moves
to `DATA_DIR/archive/returns/<source>/<run date>/`, named with its content
hash and a bounded, safe form of its name; the same content dropped again is
not processed twice.
"""

from __future__ import annotations

import csv
import difflib
import io
import os
import re
import shutil
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Callable

import polars as pl

from checks import ledger, xlsx
from checks.form import ANSWER_COLUMNS, ANSWERS, READ_ONLY, RECOVERABLE
from checks.ingest import HEADER_SEARCH_ROWS, entry_refusal, file_sha256, folder_refusal, list_folder, name_refusal
from checks.names import normalize_name
from checks.textfile import TextFileError, decode, quote, sniff_delimiter
from validators.tables import STATUS_LABELS, TRIM_CHARS
from validators.uscc import check, compact, mask_personal_ids

SUPPORTED_SUFFIXES = (".csv", ".xlsx")
FORM_HEADERS = tuple(h for h, _ in READ_ONLY) + ANSWER_COLUMNS
KEY, RECORD, NAME, CODE, SUGGESTED = "问题编号", "记录编号", "名称", "当前代码", "建议代码"
ANSWER, NEW_CODE, NOTE = ANSWER_COLUMNS
#: Columns a returned form must keep: the key, the record's identity and the answers.
REQUIRED_HEADERS = (KEY, RECORD, NAME, CODE) + ANSWER_COLUMNS
#: Kinds whose fix is not a new code (remove the duplicate record, correct the name).
FIX_WITHOUT_CODE = frozenset({"duplicate_record", "name_mismatch"})
#: Answers that need a reason in 处理说明.
NEEDS_NOTE = {"确认无误": "选择“确认无误”时请在“处理说明”写明依据（如已核对证照原件），否则无法受理。",
              "非本单位": "选择“非本单位”时请在“处理说明”写明该记录应由哪个单位处理。"}
#: What an accepted answer does to the finding, and what the receipt says about it.
ACCEPTED = {
    "已更正": ("responded", "已受理，待下期数据核验：数据中代码已改正时问题自动关闭。"),
    "确认无误": ("waived", "已受理：确认无误。记录（代码、名称）不变时不再列出。"),
    "已注销": ("responded", "已受理：该记录不再出现在本单位数据中时问题关闭。"),
    "非本单位": ("responded", "已受理：市信用办将核实记录归属。"),
}
#: What a spreadsheet saves a CSV in when it cannot hold every character (it writes `?` instead): a file we
#: decode as GB18030 was saved by Excel or Calc as GBK (code page 936) as a rule.
LOSSY_SAVES = {"gb18030": "gbk"}
#: Marks around the characters that differ when a read-only column was altered: brackets in the CSV receipt,
#: highlighted in the HTML one.
MARK_OPEN, MARK_CLOSE = "⟦", "⟧"
#: Characters of an altered value quoted in a reason at most.
QUOTE_LIMIT = 200
EXCEL_ADVICE = ("请把“更正后代码”列设置为“文本”格式（或在代码前加英文单引号 '），重新输入完整的 18 位代码后保存报送。")

#: Verdict fields that carry what a clerk typed (or quote it): resident ID numbers in them are masked.
TYPED_FIELDS = ("finding_id", "record_id", "name", "answer", "corrected_code", "note", "reason", "audit_note")

VERDICT_SCHEMA = {
    "row": pl.Int64, "finding_id": pl.String, "record_id": pl.String, "name": pl.String, "answer": pl.String,
    "corrected_code": pl.String, "note": pl.String, "verdict": pl.String, "reason": pl.String,
    "new_status": pl.String, "audit_note": pl.String,
}


class ReturnFormError(ValueError):
    """The returned file is not a correction form we can use; the message says why (in Chinese)."""


# --------------------------------------------------------------------------- reading

def clean_cell(value: object) -> str:
    """A cell as the department meant it: no padding, no tab, no neutralizing apostrophe."""
    text = "" if value is None else str(value)
    text = text.strip(" \t\r\n\u3000\u00a0\ufeff")
    if RECOVERABLE.match(text) or (text.startswith("'") and text[1:].isalnum()):
        text = text[1:]  # our formula guard, or the apostrophe a clerk types to keep a code as text
    return text


def read_return(path: Path) -> pl.DataFrame:
    """The form's rows as strings under the form's headers, with `row` (line or sheet row),
    `code_numeric` (the 更正后代码 cell was stored as a number by Excel) and `saved_as` (the encoding the
    file was most likely saved in when that encoding cannot hold every character, else null)."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise ReturnFormError(f"{path.name} 是空文件。请使用下发的更正清单填写后重新报送。")
    if path.suffix.lower() == ".xlsx":
        try:  # bounded like an extract: what the workbook declares is checked, the parser runs in a child
            sheets = xlsx.read_workbook(path, quote(path.name, 120))
        except xlsx.XlsxError as exc:
            raise ReturnFormError(str(exc)) from None
        frames = []  # a long list spans 更正清单, 更正清单(2), …: every sheet with the key column counts
        for workbook_sheet in sheets:
            sheet, frame = workbook_sheet.name, workbook_sheet.cells
            if frame is None:
                continue
            for at in range(min(frame.height, HEADER_SEARCH_ROWS)):
                header = [clean_cell(v) for v in frame.row(at)]
                if KEY in header:
                    xml = xlsx.sheet_xml(path, sheet)
                    first = xlsx.first_used_row(xml) if xml is not None else 1
                    numeric = set()
                    if xml is not None and NEW_CODE in header:
                        numeric = xlsx.numeric_rows(xml, header.index(NEW_CODE)) or set()
                    rows = [(first + at + 1 + i, list(r)) for i, r in enumerate(frame.slice(at + 1).iter_rows())]
                    frames.append(_to_frame(path, header, rows, numeric, sheet if frames else None))
                    break
        if not frames:
            raise ReturnFormError(f"{path.name} 中找不到含“{KEY}”列的工作表。请使用下发的更正清单填写后报送。")
        return pl.concat(frames, how="diagonal_relaxed")
    try:
        text, encoding = decode(path.read_bytes(), path.name)
    except TextFileError as exc:
        raise ReturnFormError(str(exc)) from None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(text[:65536]))
    try:
        header = [clean_cell(h) for h in next(reader, [])]
        rows = [(reader.line_num, r) for r in reader]
    except csv.Error as exc:
        raise ReturnFormError(f"{path.name} 第 {reader.line_num} 行无法按 CSV 读取（{exc}）。"
                              "请用 Excel 另存为“CSV UTF-8”或 .xlsx 后重新报送。") from None
    return _to_frame(path, header, rows, set(), saved_as=LOSSY_SAVES.get(encoding))


def _to_frame(path: Path, header: list[str], rows: list[tuple[int, list]], numeric: set[int],
              sheet: str | None = None, saved_as: str | None = None) -> pl.DataFrame:
    missing = [h for h in REQUIRED_HEADERS if h not in header]
    if missing:
        found = quote("、".join(h for h in header if h), 200) or "（无）"
        where = f"{path.name}（工作表“{sheet}”）" if sheet else path.name
        raise ReturnFormError(f"{where} 缺少列：{'、'.join(missing)}（文件中的列：{found}）。"
                              "请使用下发的更正清单，不要删除或改名表头，填写后重新报送。")
    positions = {h: header.index(h) for h in FORM_HEADERS if h in header}
    kept = [(n, r) for n, r in rows if any(clean_cell(c) for c in r)]
    data = {h: [clean_cell(r[i]) if i < len(r) else "" for _, r in kept] for h, i in positions.items()}
    data["row"] = [n for n, _ in kept]
    data["code_numeric"] = [n in numeric for n, _ in kept]
    data["saved_as"] = [saved_as] * len(kept)
    schema = {h: pl.String for h in positions} | {"row": pl.Int64, "code_numeric": pl.Boolean, "saved_as": pl.String}
    return pl.DataFrame(data, schema=schema)


# --------------------------------------------------------------------------- judging

@dataclass(frozen=True)
class Holder:
    """A record (tonight) or an accepted correction (pending) that holds a code."""

    code: str
    source: str
    record_id: str
    name: str | None
    pending: bool = False


def form_for_another(form: pl.DataFrame, source: str, known: dict[str, ledger.Known]) -> str | None:
    """The other source this whole form belongs to, when none of its findings is the returner's."""
    owners = {known[i].answerer for i in form[KEY] if i in known}
    return owners.pop() if len(owners) == 1 and source not in owners else None


def judge(form: pl.DataFrame, source: str, known: dict[str, ledger.Known], holders: list[Holder],
          source_names: dict[str, str], allowlist: dict[str, str] | None = None,
          name_prefixes: tuple[str, ...] = (), suggested: dict[str, str] | None = None) -> pl.DataFrame:
    """One verdict per form row (`VERDICT_SCHEMA`); pure.

    Args:
        form: `read_return` output.
        source: the returning department's source key (from the folder the file came in).
        known: the ledger's entries for the form's finding ids.
        holders: every record tonight and every pending correction holding one of the form's corrected codes
            (the suggested codes of `suggested` included).
        suggested: the code we suggest tonight for each finding id that has one (never the form's 建议代码 cell,
            which a clerk can edit): what an `已更正` without a usable 更正后代码 may adopt.
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
            v["reason"] = f"该问题属于{owner}，本单位无权处理，本行未受理并已记录。如该记录确属本单位，请联系市信用办。"
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
                                               (suggested or {}).get(fid))
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
    codes = {v["corrected_code"] for v in answers if v["answer"] == "已更正" and v["corrected_code"]}
    if len(codes) > 1:
        return "一条记录只能有一个代码，各行填写的更正后代码不一致。"
    if codes and "确认无误" in said:
        return "一处报代码已更正，另一处又确认代码无误。"
    if "非本单位" in said and len(said) > 1:
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
    return f"该问题当前状态为“{STATUS_LABELS.get(f.status, f.status)}”，不能答复。"


def _check_answer(r: dict, f: ledger.Known, by_code: dict[str, list[Holder]], same_entity, source_names: dict,
                  allowlist, ours: str | None = None) -> tuple[str | None, str | None, str | None]:
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
            return (f"只读列“{header}”被修改（下发为“{was}”，报送为“{now}”，标出的是不同之处）。请勿修改灰色列；"
                    "记录信息如需更正，请在本单位系统中修改，并在“处理说明”中注明。"), None, None
    if answer in NEEDS_NOTE and not r[NOTE]:
        return NEEDS_NOTE[answer], None, None
    if answer != "已更正":
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


def spreadsheet_number_of(cell: str, code: str) -> bool:
    """Whether a number a spreadsheet made of a typed code could have come from `code`, every digit that
    survived agreeing: Excel keeps 15 significant digits (cut off as typed, or rounded when a CSV is saved
    as displayed), LibreOffice a binary double; fewer digits shown (`9.12304E+17`) prove nothing.

    >>> ours = "312304043113364567"
    >>> [spreadsheet_number_of(n, ours) for n in ("3.12304043113364E+017", "312304043113364000",
    ...                                          "312304043113364480", "3.12304043113365E+17", "9.12304E+17")]
    [True, True, True, True, False]
    >>> spreadsheet_number_of("3.12304043113366E+17", ours), spreadsheet_number_of("31230404311336", ours)
    (False, False)
    """
    if len(code) != 18 or not code.isdigit():
        return False
    try:
        number = Decimal(cell.strip().replace(",", ""))
    except InvalidOperation:
        return False
    if not number.is_finite() or number.is_signed() or number.adjusted() != 17:  # 18 digits, before any int()
        return False
    ours = int(code)
    shown = "".join(map(str, number.normalize().as_tuple().digits))  # significant digits written, no trailing 0
    kept = 10 ** 3  # 18 - 15 digits lost
    if len(shown) > 15:  # a binary double written out with its noise digits
        if abs(int(number) - ours) < 128:  # the double nearest to `code` (spacing 64 at 10^17), as written
            return True
        shown = str((int(number) + kept // 2) // kept).rstrip("0")  # a 15-digit value stored as a double
    return any(str(first15).rstrip("0") == shown for first15 in (ours // kept, (ours + kept // 2) // kept))





_INVISIBLE = frozenset("\u200b\u200c\u200d\u2060\ufeff")


def _plain(text: str) -> str:
    """A record id or name as compared: NFKC, no whitespace or zero-width characters."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", text) if not ch.isspace() and ch not in _INVISIBLE)


def _as_saved(text: str, codec: str) -> tuple[str, ...]:
    """The text as a spreadsheet saving in `codec` writes it and we read it back (GB18030): what the codec
    cannot hold becomes `?` (Excel), or for U+0080–U+00FF its single Latin-1 byte, which then pairs with
    the next byte into another character (Calc writes an NBSP as byte A0: `M\u00a0A` reads back as `M燗`)."""
    def calc(ch: str) -> bytes:
        try:
            return ch.encode(codec)
        except UnicodeEncodeError:
            return bytes([ord(ch)]) if ord(ch) < 256 else b"?"

    excel = text.encode(codec, errors="replace").decode(codec)
    return excel, b"".join(calc(ch) for ch in text).decode("gb18030", errors="replace")


def unaltered(header: str, returned: str, sent: str, saved_as: str | None = None) -> bool:
    """A read-only cell as we sent it: equal after the validators' normalization (`compact` for the code,
    NFKC and whitespace for ids and names), or differing only where the file's encoding could not hold
    our character (a GBK save writes `?` for an NBSP or a rare character).

    >>> unaltered(CODE, "9123 0402ma1b2c3d4x", "91230402MA1B2C3D4X")
    True
    >>> unaltered(NAME, "鹤岗?商贸有限公司", "鹤岗\u00a0商贸有限公司", "gbk"), unaltered(NAME, "鹤岗?商贸", "鹤岗市商贸", "gbk")
    (True, False)
    >>> unaltered(CODE, "91230403M燗L7L7Y95Y", "91230403M\u00a0AL7L7Y95Y", "gbk")  # as LibreOffice saves an NBSP
    True
    """
    norm = compact if header == CODE else _plain
    if norm(returned) == norm(sent):
        return True
    return saved_as is not None and any(norm(returned) == norm(v) for v in _as_saved(sent, saved_as))


def marked_pair(sent: str, returned: str, limit: int = QUOTE_LIMIT) -> tuple[str, str]:
    """Both values with the characters that differ between `MARK_OPEN` and `MARK_CLOSE`, invisible
    characters spelled out (`U+00A0`), each at most about `limit` characters around the first difference.

    >>> marked_pair("9123\u00a00402", "9123?0402")
    ('9123⟦U+00A0⟧0402', '9123⟦?⟧0402')
    """
    def shown(text: str) -> str:
        text = text.replace(MARK_OPEN, "[").replace(MARK_CLOSE, "]")
        return "".join(f"U+{ord(ch):04X}" if (ch.isspace() and ch != " ") or unicodedata.category(ch) in ("Cc", "Cf")
                       else ch for ch in text)

    head = len(_common_prefix(sent, returned))
    tail = len(_common_prefix(sent[head:][::-1], returned[head:][::-1]))
    a, b = sent[head:len(sent) - tail], returned[head:len(returned) - tail]
    if len(a) > 2 * limit or len(b) > 2 * limit:  # a whole different text: marked as one, not diffed
        pairs = [(a, b, True)]
    else:
        pairs = [(a[i1:i2], b[j1:j2], op != "equal")
                 for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()]
    before, after = sent[:head], sent[len(sent) - tail:]

    def side(index: int) -> str:
        middle = "".join(f"{MARK_OPEN}{shown(p[index])}{MARK_CLOSE}" if p[2] else shown(p[index]) for p in pairs)
        lead = shown(before[-40:]) if len(before) > 40 else shown(before)
        text = ("…" if len(before) > 40 else "") + lead + middle + shown(after)
        if len(text) <= limit:
            return text
        cut = text[:limit]
        if cut.count(MARK_OPEN) > cut.count(MARK_CLOSE):
            cut += MARK_CLOSE
        return cut + "…"

    return side(0), side(1)


def quoted(text: str, limit: int = QUOTE_LIMIT) -> str:
    """What a clerk typed, as a reason quotes it: at most `limit` characters, then `…`."""
    return text if len(text) <= limit else text[:limit] + "…"


def _common_prefix(a: str, b: str) -> str:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return a[:n]


def _name_equality(prefixes: tuple[str, ...]) -> Callable[[str | None, str | None], bool]:
    """Two names that are equal after `checks.names.normalize_name` (each name normalized once)."""
    norm = lru_cache(maxsize=None)(lambda name: normalize_name(name, prefixes))
    return lambda a, b: bool(a) and bool(b) and norm(a) == norm(b)


# --------------------------------------------------------------------------- processing (I/O)

def pending_files(returns_dir: Path) -> list[Path]:
    """Files waiting in one source's returns folder, oldest first (mtime, then name).

    Only regular files inside the data directory (`checks.ingest.list_folder`): symlinks,
    devices, FIFOs, folders, hidden and lock files are never opened; `stray_files` lists them.
    """
    files, _ = list_folder(Path(returns_dir), Path(returns_dir).parent.parent)
    return sorted(files, key=lambda p: (os.lstat(p).st_mtime, p.name))


def stray_files(data_dir: Path, source_keys: list[str]) -> list[dict]:
    """Entries under returns/ that are not processed, each with why: files no configured
    department's folder holds (listed, never guessed at), and in a department's folder
    whatever `pending_files` leaves out (symlinks, devices, hidden files …)."""
    root = Path(data_dir) / "returns"
    refused = folder_refusal(root, Path(data_dir))
    if refused:
        return [{"file": "", "reason": refused + "。"}]
    if not root.is_dir():
        return []
    keys = "、".join(source_keys)
    out = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        where = quote(entry.name, 60)
        if entry.is_dir(follow_symlinks=False):
            files, skipped = list_folder(Path(entry.path), Path(data_dir))
            out += [{"file": f"{where}/{f['file']}", "reason": f["reason"] + "。"} for f in skipped]
            if entry.name not in source_keys:
                out += [{"file": f"{where}/{quote(p.name, 120)}",
                         "reason": f"目录 {where} 不是已配置的单位（{keys}），文件未处理。"} for p in files]
            continue
        reason = entry_refusal(Path(entry.path), Path(data_dir)) or name_refusal(entry.name)
        out.append({"file": where, "reason": (reason + "。") if reason else
                    f"直接放在 returns/ 下，无法判断是哪个单位报送的。请移入 returns/<单位>/（{keys}）。"})
    return out


#: UTF-8 bytes of a returned file's own name kept in archive and receipt names (a file system allows 255
#: per name; the rest holds the hash, a dash and the suffix).
NAME_BYTES = 120
#: Characters of a file name kept as they are: letters, digits (any script) and these; the rest becomes `_`
#: (path separators, `#`, `?`, `%`, quotes, spaces and control characters break links or paths).
_NAME_KEEP = frozenset("-_.()（）[]【】《》·、，")
_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


def bounded_name(sha256: str, name: str) -> str:
    """`<sha256[:12]>-<name>`, safe in a path and a link and at most ~150 bytes, whatever name a file had.

    The hash keeps files apart; the shortened name is only there for a person to recognise the file.

    >>> bounded_name("ab" * 32, "反馈 #1?.csv")
    'abababababab-反馈_1_.csv'
    >>> len(bounded_name("ab" * 32, "表" * 80 + ".xlsx").encode())
    138
    """
    name = unicodedata.normalize("NFC", Path(name).name or "")
    suffix = Path(name).suffix
    if not _SUFFIX.match(suffix):
        suffix = ""
    stem = name[: len(name) - len(suffix)] if suffix else name
    safe = "".join(ch if ch in _NAME_KEEP or unicodedata.category(ch)[0] in "LN" else "_" for ch in stem)
    safe = re.sub(r"_{2,}", "_", safe).lstrip("._-")
    cut = safe.encode("utf-8")[:NAME_BYTES].decode("utf-8", errors="ignore")
    return f"{sha256[:12]}-{cut or 'file'}{suffix.lower()}"


def archive_path(data_dir: Path, source: str, run_date: str, sha256: str, name: str) -> Path:
    return Path(data_dir) / "archive" / "returns" / source / run_date / bounded_name(sha256, name)


def _exists(path: Path) -> bool:
    """Whether a path exists; False for a path the file system cannot even look up (a name too long)."""
    try:
        return path.exists()
    except OSError:
        return False


def process_returns(data_dir: Path, db: Path, run_date: str, settings,
                    holders_of: Callable[[list[str]], list[Holder]],
                    suggestions_of: Callable[[list[str]], dict[str, str]] = lambda ids: {}) -> list[dict]:
    """Judge and apply every waiting returned file of every configured source.

    Args:
        holders_of: tonight's records holding any of the given codes (the collision check).
        suggestions_of: the code tonight's detection suggests for each of the given finding ids that has one.

    Returns:
        One dict per file: source, file, outcome, reason, accepted, rejected, skipped.
    """
    done = []
    for source in settings.sources:
        for path in pending_files(Path(data_dir) / "returns" / source.key):
            done.append(process_file(path, source.key, data_dir, db, run_date, settings, holders_of,
                                     suggestions_of))
    return done


def process_file(path: Path, source: str, data_dir: Path, db: Path, run_date: str, settings,
                 holders_of: Callable[[list[str]], list[Holder]],
                 suggestions_of: Callable[[list[str]], dict[str, str]] = lambda ids: {}) -> dict:
    """One returned file: one ledger transaction, then the move to the archive.

    The file's name and every reason are stored and shown with resident ID numbers masked.
    """
    sha = file_sha256(path)
    shown = mask_personal_ids(path.name)
    target = archive_path(data_dir, source, run_date, sha, shown)
    earlier = ledger.handled_return(db, source, sha)
    if earlier and earlier["archived_as"] and not _archived(earlier, data_dir, source, sha):
        # processed, then the run stopped before the move (or the move failed, as it did for names too long
        # to archive before names were bounded): finish the move under the bounded name, nothing else
        _move(path, archive_path(data_dir, source, earlier["run_date"], sha, earlier["file_name"]))
        return {"source": source, "file": shown, "outcome": earlier["outcome"], "reason": earlier["reason"],
                **{k: earlier[k] for k in ("accepted", "rejected", "skipped")}}
    names = settings.source_names
    verdicts = pl.DataFrame(schema=VERDICT_SCHEMA)
    if earlier:
        outcome, reason = "duplicate", (f"与 {earlier['run_date']} 已处理的文件“{earlier['file_name']}”内容完全相同，"
                                        "本次未重复处理。处理结果见当日回执。")
    elif path.suffix.lower() not in SUPPORTED_SUFFIXES:
        outcome, reason = "rejected", (f"不支持的文件类型（{path.suffix or '无扩展名'}）。"
                                       "请用 Excel 另存为 .xlsx 或 .csv 后重新报送。")
    else:
        outcome, reason = "processed", None
        try:
            form = read_return(path)
        except ReturnFormError as exc:
            outcome, reason = "rejected", str(exc)
        else:
            if form.height == 0:
                outcome, reason = "rejected", f"{path.name} 中没有数据行。请填写下发的更正清单后重新报送。"
            else:
                known = ledger.known_findings(db, [i for i in form[KEY] if i])
                other = form_for_another(form, source, known)
                if other is not None:
                    outcome, reason = "rejected", (
                        f"这是{names.get(other, other)}的更正清单，不是{names.get(source, source)}的。"
                        f"请由{names.get(other, other)}报送，或放入其对应的报送目录。")
                else:
                    ours = suggestions_of(sorted(known))
                    codes = sorted(set(_typed_codes(form)) | set(ours.values()))
                    holders = holders_of(codes) + [Holder(c, s, r, n, pending=True)
                                                   for c, s, r, n in ledger.pending_codes(db, codes)]
                    verdicts = judge(form, source, known, holders, names, settings.allowlist,
                                     settings.city.name_prefixes, ours)
    reason = mask_personal_ids(reason)  # a reason may quote the file's name or its header cells
    returned = ledger.ReturnedFile(source, sha, shown, outcome, reason, str(target))
    ledger.apply_return(db, run_date, returned, verdicts)
    _move(path, target)
    counts = {v: n for v, n in verdicts.group_by("verdict").len().rows()} if verdicts.height else {}
    return {"source": source, "file": shown, "outcome": outcome, "reason": reason,
            "accepted": counts.get("accepted", 0), "rejected": counts.get("rejected", 0),
            "skipped": counts.get("skipped", 0)}


def _archived(earlier: dict, data_dir: Path, source: str, sha: str) -> bool:
    """The earlier processing's file is in the archive, where it was recorded or under its bounded name."""
    bounded = archive_path(data_dir, source, earlier["run_date"], sha, earlier["file_name"])
    return _exists(Path(earlier["archived_as"])) or _exists(bounded)


def _typed_codes(form: pl.DataFrame) -> list[str]:
    codes = {compact(c) for c in form[NEW_CODE] if c}
    return sorted(c for c in codes if len(c) == 18)


def _move(path: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(path), str(target))


__all__ = ["read_return", "judge", "process_returns", "process_file", "ReturnFormError", "Holder", "VERDICT_SCHEMA",
           "bounded_name"]
