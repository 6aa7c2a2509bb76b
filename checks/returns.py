"""Reading a returned correction form (CSV or XLSX, often re-saved by Excel in GBK).

Only the reading lives here so far: the form as the department left it, as
text, with what our writer added undone (the tab that keeps codes as text in
CSV, the `'` that neutralizes formula-like cells).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import polars as pl

from checks import xlsx
from checks.textfile import TextFileError, decode
from reports.forms import ANSWER_COLUMNS, READ_ONLY

FORM_HEADERS = tuple(h for h, _ in READ_ONLY) + ANSWER_COLUMNS
_KEY = READ_ONLY[0][0]  # 问题编号


class ReturnFormError(ValueError):
    """The returned file is not a correction form we can read; the message says why."""


def clean_cell(value: object) -> str:
    """A cell as the department meant it: no padding, no tab, no neutralizing apostrophe."""
    text = "" if value is None else str(value)
    text = text.strip(" \t\r\n\u3000\u00a0")
    if text.startswith("'") and text[1:2] in ("=", "+", "-", "@"):
        text = text[1:]
    return text


def read_return(path: Path) -> pl.DataFrame:
    """The form's rows as strings under the form's headers (extra columns dropped)."""
    path = Path(path)
    if path.suffix.lower() == ".xlsx":
        names = xlsx.sheet_names(path)
        for sheet in names:
            frame = xlsx.read_rows(path, sheet)
            if frame.height and _KEY in [clean_cell(v) for v in frame.row(0)]:
                header = [clean_cell(v) for v in frame.row(0)]
                rows = [list(r) for r in frame.slice(1).iter_rows()]
                return _to_frame(path, header, rows)
        raise ReturnFormError(f"{path.name} 中找不到含“{_KEY}”列的工作表，请使用下发的更正清单填写后报送。")
    try:
        text, _ = decode(path.read_bytes(), path.name)
    except TextFileError as exc:
        raise ReturnFormError(str(exc)) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [clean_cell(h).lstrip("\ufeff") for h in next(reader, [])]
    return _to_frame(path, header, list(reader))


def _to_frame(path: Path, header: list[str], rows: list[list]) -> pl.DataFrame:
    missing = [h for h in (_KEY,) + ANSWER_COLUMNS if h not in header]
    if missing:
        raise ReturnFormError(f"{path.name} 缺少列：{'、'.join(missing)}。请使用下发的更正清单填写后报送。")
    positions = {h: header.index(h) for h in FORM_HEADERS if h in header}
    data = {h: [clean_cell(r[i]) if i < len(r) else "" for r in rows if any(clean_cell(c) for c in r)]
            for h, i in positions.items()}
    return pl.DataFrame(data, schema={h: pl.String for h in positions})
