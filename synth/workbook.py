"""XLSX extracts as registries export them: the one writer of data workbooks (synthetic extracts, test files).

A cell is written as what its value is: a `str` as a text cell, never turned into a number, a
formula or a link (so `0123…`, `=1+1` and a code stay as typed); an `int` or `float` as a number
cell (a code Excel turned into a number); a `datetime.date` as a date cell. A row with nothing in
it is left blank, as clerks leave them. The correction forms sent to departments have their own
writer (`reports.forms`: formats, locked columns, a guide sheet).

>>> import tempfile, zipfile
>>> path = Path(tempfile.mkdtemp()) / "名录.xlsx"
>>> with ExtractBook(path) as book:
...     sheet = book.sheet("名录")
...     sheet.write_rows([["编号", "代码"], ["=1+1", 912304001234567890], [], ["B2", "x"]])
>>> xml = zipfile.ZipFile(path).read("xl/worksheets/sheet1.xml").decode()
>>> '<f>' in xml, '<c r="B2"><v>' in xml, '<row r="3"' in xml  # no formula, a number cell, a blank row
(False, True, False)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from pathlib import Path


class ExtractSheet:
    """One worksheet, written row after row (`write_row`) or a cell anywhere (`write_cell`)."""

    def __init__(self, book: ExtractBook, worksheet):
        self._book = book
        self._sheet = worksheet
        self.next_row = 0

    def write_row(self, values: Sequence) -> None:
        """Write `values` on the next row; a row of empty values stays blank."""
        if any(values):
            row = self.next_row
            for col, value in enumerate(values):
                self.write_cell(row, col, value)
        self.next_row += 1

    def write_rows(self, rows: Iterable[Sequence]) -> None:
        for values in rows:
            self.write_row(values)

    def write_cell(self, row: int, col: int, value) -> None:
        """One cell, zero-based: text, number or date as the value is (None is an empty text cell)."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            self._sheet.write_number(row, col, value)
        elif isinstance(value, dt.date):
            self._sheet.write_datetime(row, col, value, self._book.date_format())
        else:
            self._sheet.write_string(row, col, "" if value is None else str(value))


class ExtractBook:
    """An XLSX workbook of extract sheets.

    Args:
        path: the file to write (its folder is created).
        streaming: write each row as soon as the next begins (flat memory for a million rows;
            rows must then come in order, and a cell of an earlier row cannot be written).
    """

    def __init__(self, path: Path, *, streaming: bool = False):
        import xlsxwriter

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        options = {"constant_memory": True} if streaming else {}
        self._book = xlsxwriter.Workbook(str(path), {**options, "strings_to_numbers": False})
        self._date_format = None
        self.sheets: list[ExtractSheet] = []

    def sheet(self, name: str) -> ExtractSheet:
        """A new worksheet named `name`, after the others."""
        sheet = ExtractSheet(self, self._book.add_worksheet(name))
        self.sheets.append(sheet)
        return sheet

    def date_format(self):
        if self._date_format is None:  # made on first use: a book without dates has no date style
            self._date_format = self._book.add_format({"num_format": "yyyy-mm-dd"})
        return self._date_format

    def close(self) -> None:
        self._book.close()

    def __enter__(self) -> ExtractBook:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["ExtractBook", "ExtractSheet"]
