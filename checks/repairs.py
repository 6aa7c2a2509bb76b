"""Detection stage 4, repairs: the best suggestion each record-level or in-context finding can have,
with its reason and confidence.

Evidence from another registry (the same entity's trusted code) comes first; failing that, what
the record's own type or name calls for, or what the rules alone can fix (never above `medium`).
Missing, mangled, legacy and personal-ID cells never get an invented code.
"""

from __future__ import annotations

from collections import defaultdict

from checks.categories import expected_category
from checks.cross_record import Context, strong_link
from checks.findings import RecordFinding
from validators.tables import KINDS, TERMINAL_KINDS, VALUE
from validators.uscc import Suggestion, calc_check_char, formatting_fix, single_edit_neighbors

def attach_repairs(findings: list[RecordFinding], ctx: Context) -> None:
    """Give record-level and context findings the best suggestion there is, with its reason."""
    by_record: dict[int, list[RecordFinding]] = defaultdict(list)
    for f in findings:
        by_record[f.idx].append(f)
    cross_listed = _cross_listed(ctx)
    for idx, items in by_record.items():
        kinds = {f.kind for f in items}
        if "department_mismatch" in kinds and idx in cross_listed:
            items[:] = [f for f in items if f.kind != "department_mismatch"]
            kinds.discard("department_mismatch")
        if not kinds & _REPAIRABLE:
            continue
        evidence = _evidence_suggestion(ctx, idx)
        fallback: dict[bool, Suggestion | None] = {}  # by "is a department/category finding", computed once
        for f in items:
            if f.kind not in _REPAIRABLE or KINDS[f.kind].severity != "error" or f.suggestion:
                continue
            if evidence:
                f.suggestion, f.related = evidence[0], f.related or evidence[1]
                continue
            by_type = f.kind in ("department_mismatch", "category_mismatch")
            if by_type not in fallback:
                fallback[by_type] = (_expected_category_suggestion(ctx, idx) if by_type
                                     else _structural_suggestion(items, kinds))
            f.suggestion = fallback[by_type]
    findings[:] = [f for items in by_record.values() for f in items]


def attach_formatting_fixes(findings: list[RecordFinding], ctx: Context) -> None:
    """A `formatting` finding carries the clean code as its fix (`high`) when that code passes every
    rule and the record has no error of any other kind; otherwise the record's other findings say
    what the right code is, and one record never shows two different fixes."""
    wrong = {f.idx for f in findings if (f.severity or KINDS[f.kind].severity) == "error"}
    for f in findings:
        if f.kind == "formatting" and f.idx not in wrong and ctx.rows[f.idx]["valid"]:
            f.suggestion = formatting_fix(ctx.rows[f.idx]["uscc_raw"])


#: Kinds whose repair reads the record's own row (`Context.rows`) even when it is the same entity as no other
#: record: detection keeps rows for those records, and for every record in a pair or sharing a code.
READS_ROW = frozenset({"formatting", "department_mismatch", "category_mismatch"})

_REPAIRABLE = {"missing", "excel_mangled", "personal_id", "legacy_number", "bad_length", "bad_charset",
               "bad_department", "bad_category", "bad_region", "bad_org_check", "bad_check_char",
               "department_mismatch", "category_mismatch"}


def _cross_listed(ctx: Context) -> set[int]:
    """Records whose code's owning registry holds the same entity (docs/decisions.md#cross-listing: no department_mismatch)."""
    out = set()
    for members in set(ctx.groups.values()):
        for m in members:
            code = ctx.rows[m]["code"]
            owner = ctx.settings.owner_of_department(code[0]) if code else None
            if owner and any(ctx.rows[o]["source"] == owner for o in members if o != m):
                out.add(m)
    return out


def _evidence_suggestion(ctx: Context, idx: int) -> tuple[Suggestion, list[int]] | None:
    """The same entity's valid code elsewhere: high when one edit away or the org code matches."""
    members = ctx.groups.get(idx)
    if members:
        r = ctx.rows[idx]
        trusted = ctx.trusted_code([m for m in members if m != idx])
        if trusted and trusted[0] != r["code"]:
            m = trusted[1]
            other = ctx.rows[m]
            near = r["code"] is not None and any(c == other["code"] for c, _ in single_edit_neighbors(r["code"]))
            strong = strong_link(ctx, idx, m)
            why = "与本代码仅差一个字符" if near else ("组织机构代码相同" if strong else "名称等信息一致")
            confidence = "high" if (near or strong) else "medium"
            link = ctx.link(idx, m) or {}
            return Suggestion(other["code"], f"{ctx.settings.source_names[other['source']]}记录 {other['record_id']}"
                                             f"（{other['name']}）为同一主体，持有此代码，{why}。{link.get('reason', '')}",
                              confidence), [m]
    return None


def _expected_category_suggestion(ctx: Context, idx: int) -> Suggestion | None:
    """Positions 1–2 as the record's type or name calls for, check character recomputed (medium)."""
    r = ctx.rows[idx]
    expected = expected_category(r["entity_type"], r["name"])
    if not expected or not r["code"] or any(ch not in VALUE for ch in r["code"]):
        return None
    first17 = expected.dept_cat + r["code"][2:17]
    basis = (f"按主体类型“{r['entity_type']}”（{expected.label}）" if expected.by_type
             else f"按名称（{expected.label}）")
    return Suggestion(first17 + calc_check_char(first17),
                      f"{basis}，第 1–2 位应为“{expected.dept_cat}”，并重新计算校验码；"
                      "请以证照为准", "medium")


def _structural_suggestion(items: list[RecordFinding], kinds: set[str]) -> Suggestion | None:
    """No evidence elsewhere: what the rules alone can fix (the record-level findings' `medium` candidates,
    when there is exactly one), never above `medium`."""
    if kinds & set(TERMINAL_KINDS):
        return None  # never invent a code for a missing, mangled, legacy or personal-ID cell (docs/decisions.md#no-invented-codes)
    medium = next((f.medium for f in items if f.medium), ())
    if len(medium) == 1:
        return medium[0]
    return None
