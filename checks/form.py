"""The correction form's contract, shared by the writer (`reports.forms`) and the reader (`checks.returns`).

Its columns: what we found (read-only) and the three answer columns; the four answers a department may
give (docs/correction-loop.md#the-form); and the formula guard every CSV a person may open carries, with the rule that undoes it.
"""

from __future__ import annotations

import re

#: Answers a department may give in 处理结果 (docs/correction-loop.md#the-form), by what each means.
CORRECTED, CONFIRMED, CANCELLED, NOT_OURS = ANSWERS = ("已更正", "确认无误", "已注销", "非本单位")
#: (header, finding column or callable) of the read-only part, in order.
READ_ONLY = (
    ("问题编号", "finding_id"),
    ("记录编号", "record_id"),
    ("名称", "name"),
    ("当前代码", "uscc"),
    ("问题类型", "kind_label"),
    ("严重程度", "severity_label"),
    ("问题说明", "message"),
    ("建议代码", "suggested_code"),
    ("建议可信度", "confidence_label"),
    ("建议依据", "suggestion_reason"),
    ("相关记录", "related_text"),
    ("状态", "status_label"),
    ("处理期限", "due_text"),
    ("上次答复", "response_text"),
)
ANSWER_COLUMNS = ("处理结果", "更正后代码", "处理说明")
#: Columns holding codes or ids: kept as text in both forms.
TEXT_COLUMNS = {"问题编号", "记录编号", "当前代码", "建议代码", "更正后代码"}
#: A cell a spreadsheet would run as a formula (OWASP CSV injection: `=`, `+`, `-`, `@`, tab, CR at the start),
#: also behind apostrophes already there: such a cell gets one more leading `'`, so removing exactly one `'`
#: from a cell that matches `RECOVERABLE` gives the value back (`'=x` is written `''=x`).
FORMULA_RE = r"^'*[=+\-@\t\r]"
RECOVERABLE = re.compile(r"^'+[=+\-@\t\r]")
_FORMULA = re.compile(FORMULA_RE)


def neutralize(value: object) -> str:
    """A cell value no spreadsheet will execute (OWASP CSV-injection advice); `recover` undoes it.

    >>> [neutralize(v) for v in ("=1+1", "-", "'=x", "'abc", "鹤岗")]
    ["'=1+1", "'-", "''=x", "'abc", '鹤岗']
    """
    text = "" if value is None else str(value)
    return "'" + text if _FORMULA.match(text) else text


def recover(text: str) -> str:
    """The value `neutralize` was given (what a machine reading our CSV files does to each text cell).

    >>> [recover(neutralize(v)) for v in ("=1+1", "-", "'=x", "''@y", "'abc")]
    ['=1+1', '-', "'=x", "''@y", "'abc"]
    """
    return text[1:] if RECOVERABLE.match(text) else text


__all__ = ["ANSWERS", "READ_ONLY", "ANSWER_COLUMNS", "TEXT_COLUMNS", "FORMULA_RE", "RECOVERABLE", "neutralize",
           "recover"]
