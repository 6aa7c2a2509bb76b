"""What a clerk reads for each finding, built over whole columns: the rows of a list page and the read-only
cells of a form.

A province's night has 10^5 findings on its lists and forms. Built a finding at a time (a jinja loop over
row objects, labels looked up and `related_detail` decoded per row) they took two thirds of the night; as
polars expressions they take a second. The page reads exactly as the template wrote it: the same markup,
the same escaping as jinja's autoescape (markupsafe's five entities), every value from data escaped. A
missing value shows as nothing (the template would have shown "None").
"""

from __future__ import annotations

from functools import lru_cache

import polars as pl

from checks.counties import UNKNOWN
from checks.form import FORMULA_RE, READ_ONLY
from reports.joined import joined_utf8
from validators.tables import CONFIDENCE_LABELS, KINDS, SEVERITY_LABELS, STATUS_LABELS

__all__ = ["RELATED", "FORM_READS", "list_rows", "row_pieces", "form_cells", "form_inputs", "neutralized", "with_ledger_columns"]

#: What `related_detail` holds for each related record (`checks.findings.to_frame`).
RELATED = pl.List(pl.Struct({"source": pl.String, "source_name": pl.String, "record_id": pl.String,
                             "name": pl.String, "code": pl.String}))
#: Finding kinds in the order lists and counts show them (the order of `validators.tables.KINDS`).
DISPLAY_ORDER = list(KINDS)
_MARKUP_CHARS = ["&", "<", ">", '"', "'"]
_ENTITIES = ["&amp;", "&lt;", "&gt;", "&#34;", "&#39;"]  # markupsafe's, as the templates escape


def _text(expr: pl.Expr) -> pl.Expr:
    return expr.cast(pl.String).fill_null("")


def _esc(expr: pl.Expr) -> pl.Expr:
    """A value from data as HTML text."""
    return _text(expr).str.replace_many(_MARKUP_CHARS, _ENTITIES)


def _given(name: str) -> pl.Expr:
    """Where a text column has a value (jinja's `{% if f.x %}`)."""
    return pl.col(name).is_not_null() & (pl.col(name).cast(pl.String) != "")


def _when(condition: pl.Expr, then: pl.Expr | str, otherwise: str = "") -> pl.Expr:
    then = pl.lit(then) if isinstance(then, str) else then
    return pl.when(condition).then(then).otherwise(pl.lit(otherwise))


def _cat(*parts: pl.Expr | str) -> pl.Expr:
    return pl.concat_str([pl.lit(p) if isinstance(p, str) else p for p in parts])


def with_ledger_columns(findings: pl.DataFrame) -> pl.DataFrame:
    """Findings with the ledger's columns, defaulted when they have not been through the ledger."""
    defaults = {"response": pl.lit(None, pl.String), "due_date": pl.lit(None, pl.String),
                "overdue": pl.lit(False), "owner": pl.col("source"), "county": pl.lit(UNKNOWN)}
    missing = {k: v for k, v in defaults.items() if k not in findings.columns}
    return findings.with_columns(**missing) if missing else findings


def _labels() -> dict[str, pl.Expr]:
    """The Chinese labels of a finding's codes, and its answer and due date as the form shows them."""
    return {
        "kind_label": pl.col("kind").replace_strict({k: v.label for k, v in KINDS.items()}, return_dtype=pl.String),
        "severity_label": pl.col("severity").replace_strict(SEVERITY_LABELS, return_dtype=pl.String),
        "confidence_label": pl.col("confidence").replace_strict(CONFIDENCE_LABELS, default="", return_dtype=pl.String)
        .fill_null(""),
        "status_label": pl.col("status").replace(STATUS_LABELS),
        "response_text": _text(pl.col("response")),
        "due_text": _text(pl.col("due_date")) + _when(pl.col("overdue").fill_null(False), "（已逾期）"),
    }


def _related() -> pl.Expr:
    return pl.col("related_detail").fill_null("[]").str.json_decode(RELATED)


def _marked_codes(findings: pl.DataFrame) -> pl.Series:
    """The code of each finding as its list page shows it: each wrong position (1-based, one of the values of
    `positions`, comma-separated) of an 18-character code in its own `<mark>`, every character escaped.

    The wrong positions are runs (the region's 3–8, the organization code's 9–17, the check digit): the code is
    cut at the runs' ends and each piece escaped whole (escaping goes character by character), a run's characters
    then marked one by one. A mark and an escape for each of the 18 characters, on every row, were half of
    building a page's rows (95 of 181 ms for 15,097 rows on one thread; this takes 51).
    """
    code, two = pl.col("uscc"), pl.lit(2, pl.Int64)
    listed = pl.lit(",") + pl.col("positions").fill_null("") + pl.lit(",")
    wrong = pl.sum_horizontal(listed.str.contains(f",{i + 1},", literal=True).cast(pl.Int64) * (1 << i)
                              for i in range(18))  # bit i: position i + 1 is wrong
    left = findings.select("uscc", left=pl.when(code.str.len_chars() == 18).then(wrong).otherwise(0),
                           done=pl.lit(0, pl.Int64))  # `left`: the wrong positions not yet marked
    runs = left.select((pl.col("left") & ~(pl.col("left") * 2)).bitwise_count_ones().max()).item() or 0
    pieces, some = [], pl.col("left") != 0
    for j in range(runs):
        # the next run: its first wrong character (0-based) and the character after its last
        first = pl.col("left").bitwise_trailing_zeros().cast(pl.Int64)
        after = first + (pl.col("left") // two.pow(first)).bitwise_trailing_ones().cast(pl.Int64)
        marked = _cat("<mark>", code.str.slice(first, after - first).str.split("").list.eval(_esc(pl.element()))
                      .list.join("</mark><mark>"), "</mark>")
        left = left.with_columns(
            _when(some, _cat(_esc(code.str.slice(pl.col("done"), first - pl.col("done"))), marked)).alias(f"{j}"),
            left=pl.when(some).then(pl.col("left") - two.pow(after) + two.pow(first)).otherwise(pl.col("left")),
            done=pl.when(some).then(after).otherwise(pl.col("done")))
        pieces.append(pl.col(f"{j}"))
    return left.select(pl.concat_str([*pieces, _esc(code.str.slice(pl.col("done")))]).alias("code_html")).to_series()


def _scores(weakest: pl.Series) -> pl.Series:
    """The weakest name similarity as the page prints it (Python's "%.0f": the same rounding as before)."""
    return pl.Series([None if x is None else "%.0f" % x for x in weakest.to_list()], dtype=pl.String)


def list_rows(findings: pl.DataFrame, page_size: int, built: pl.DataFrame | None = None) -> bytes:
    """The `<tr>` rows of a list page's table in UTF-8, in the findings' order; rows after `page_size` are
    `later` (shown one click away). Bytes, as the page is written: a department's rows are 10 MB of text, which
    as a Python string took longer to make (and to encode again) than to build.

    Args:
        built: `row_pieces` of findings another page shows too (a county page's rows are on its department's
            page as well): those rows are taken from it, only the rest are built.
    """
    if findings.height == 0:
        return b""
    if built is None or built.height == 0:
        pieces = row_pieces(findings)
    else:
        # one row per finding in `built` (a finding id twice would repeat a row): checked, not assumed
        pieces = findings.select("finding_id").join(built, on="finding_id", how="left", maintain_order="left",
                                                    validate="m:1")
        missing = pieces["head"].is_null().arg_true()
        if len(missing):
            fresh = row_pieces(findings[missing])
            pieces = pieces.with_columns(pieces["head"].scatter(missing, fresh["head"]),
                                         pieces["body"].scatter(missing, fresh["body"]))
    number = pl.int_range(1, pl.len() + 1)
    row = _cat(pl.col("head"), _when(number > page_size, ' class="later"'), '>\n  <td class="num">',
               number.cast(pl.String), pl.col("body"))
    return joined_utf8(pieces.select(row).to_series())


def row_pieces(findings: pl.DataFrame) -> pl.DataFrame:
    """`finding_id`, `head` and `body` of each finding's row on a list page, in the findings' order: the row but
    what depends on the page (its `later` class and its number), which go between the two."""
    framed = with_ledger_columns(findings).with_columns(score_text=_scores(findings["weakest_score"]),
                                                        code_html=_marked_codes(findings), **_labels())
    head, body = _row_html()
    return framed.select("finding_id", head=head, body=body)


@lru_cache(maxsize=1)
def _row_html() -> tuple[pl.Expr, pl.Expr]:
    """A list page's row as two expressions around its `later` class and number (built once: a night writes a
    page per department and county, and building them cost more than a small county's rows)."""
    li = _cat("<li>", _esc(pl.element().struct.field("source_name")), " ",
              _esc(pl.element().struct.field("record_id")), " ", _esc(pl.element().struct.field("name")),
              ' <span class="code">', _esc(pl.element().struct.field("code")), "</span></li>")
    related = _related()
    group = _when(pl.col("group_size").fill_null(0) != 0, _cat(
        '<div class="small">同组 ', _text(pl.col("group_size")), " 条",
        _when(pl.col("score_text").is_not_null(), _cat("，最弱名称相似度 ", pl.col("score_text"))),
        _when(_given("evidence"), _cat("；", _esc(pl.col("evidence")))), "</div>"))
    suggestion = _when(_given("suggested_code"), _cat(
        '<span class="code">', _esc(pl.col("suggested_code")), '</span> <span class="conf-',
        _esc(pl.col("confidence")), '">', _esc(pl.col("confidence_label")), '</span><div class="small">',
        _esc(pl.col("suggestion_reason")), "</div>"), '<span class="small">—</span>')
    status = _cat(_esc(pl.col("status_label")),
                  _when(pl.col("overdue").fill_null(False), ' <span class="badge sev-error">已逾期</span>'),
                  _when(_given("due_date"), _cat('<div class="small">期限 ', _esc(pl.col("due_date")), "</div>")),
                  _when(_given("response_text"), _cat('<div class="small">', _esc(pl.col("response_text")),
                                                      "</div>")))
    head = _cat('<tr data-kind="', _esc(pl.col("kind")), '" data-sev="', _esc(pl.col("severity")), '"')
    body = _cat(
        "</td>\n",
        '  <td class="code">', _esc(pl.col("record_id")), "</td>\n",
        "  <td>", _esc(pl.col("name")), "</td>\n",
        '  <td class="code">', pl.col("code_html"), "</td>\n",
        '  <td data-key="', pl.col("kind").replace_strict({k: f"{i:02d}" for i, k in enumerate(DISPLAY_ORDER)},
                                                         return_dtype=pl.String),
        '"><span class="badge sev-', _esc(pl.col("severity")), '">', _esc(pl.col("severity_label")), "</span> ",
        _esc(pl.col("kind_label")), "</td>\n",
        "  <td>", _esc(pl.col("message")), group, "</td>\n",
        "  <td>", suggestion, "</td>\n",
        "  <td>", _when(related.list.len() > 0, _cat('<ul class="related">', related.list.eval(li).list.join(""),
                                                    "</ul>")), "</td>\n",
        "  <td>", status, "</td>\n",
        '  <td class="num">', _text(pl.col("row")), "</td>\n",
        "</tr>\n")
    return head, body


def neutralized(text: pl.Expr) -> pl.Expr:
    """`checks.form.neutralize` over a text column: formula-like text gets one leading `'` (a null stays null)."""
    return pl.when(text.str.contains(FORMULA_RE)).then(pl.lit("'") + text).otherwise(text)


#: The columns of a finding `form_cells` reads (`with_ledger_columns` defaults the ledger's when missing).
FORM_READS = ("finding_id", "source", "record_id", "name", "uscc", "kind", "severity", "message", "suggested_code",
              "confidence", "suggestion_reason", "related_detail", "status", "response", "due_date", "overdue",
              "owner", "county")


def form_inputs(findings: pl.DataFrame) -> pl.DataFrame:
    """Only what `form_cells` reads of the findings: what a form writer process is sent (the evidence, the
    file's path and the rest are on the list pages and in findings.csv, not on the form)."""
    return findings.select(c for c in FORM_READS if c in findings.columns)


def form_cells(findings: pl.DataFrame) -> pl.DataFrame:
    """The read-only part of the form: one text column per `READ_ONLY` header, in order, already neutralized
    (an empty cell is "")."""
    item = pl.element().struct.field
    related_text = _related().list.eval(_cat(_text(item("source_name")), " ", _text(item("record_id")), " ",
                                             _text(item("name")), " ", _text(item("code")))).list.join("；")
    labelled = with_ledger_columns(findings).with_columns(related_text=related_text, **_labels())
    return labelled.select(neutralized(_text(pl.col(column))).alias(header) for header, column in READ_ONLY)
