"""The golden register's two files, `register.parquet` and `register.csv`, written a slice of entities at a time.

A province's register is 10^7 entities with per-source lists: built and written whole it was the night's peak
(10.2–10.9 GB at 10^7). `checks.register.register_slices` builds it a slice at a time; each slice is written
to both files and let go of before the next is built. The parquet file is written on a second thread while the
CSV is made of the same slice: both let go of Python's lock while they work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from checks.beside import Beside
from reports.forms import neutralized_frame


def write_register(slices: Iterable[pl.DataFrame], parquet: Path, csv: Path,
                   each: Callable[[pl.DataFrame], None] | None = None) -> int:
    """Write every slice to `parquet` (its lists as lists) and `csv` (its lists joined by `;`, text neutralized
    as every CSV a person may open); return the number of rows.

    The files are new ones: an older file at either path is removed first, never rewritten in place. The CSV is
    byte for byte what writing the whole register at once wrote (`reports.forms.write_neutralized_csv`).

    Args:
        each: called with every slice before it is written to `parquet`, on the same thread (the night keeps its
            record → entity rows).
    """
    for path in (parquet, csv):
        Path(path).unlink(missing_ok=True)
    groups, rows, header = _ParquetSlices(parquet, each), 0, True
    try:
        with open(csv, "wb") as out:
            # no `enumerate`: its tuple, kept for reuse, would hold the slice written while the next one is built
            for part in slices:
                # the parquet file and the night's ids (pyarrow) beside the CSV (polars): at 10^7, 21 s and 26 s of
                # the register's 92 one after the other; a failed CSV waits for that thread, so the parquet writer
                # is closed only once nothing writes to it
                with Beside(groups.write, part, name="register-parquet") as beside:
                    neutralized_frame(register_csv_frame(part)).collect().write_csv(out, include_header=header)
                    beside.result()
                rows, header = rows + part.height, False
                del part  # written: not held while the next slice is built
    finally:
        groups.close()
    return rows


class _ParquetSlices:
    """register.parquet written a slice at a time, a row group each; its columns are the first slice's."""

    def __init__(self, path: Path, each: Callable[[pl.DataFrame], None] | None):
        self.path, self.each, self.writer = path, each, None

    def write(self, part: pl.DataFrame) -> None:
        if self.each is not None:
            self.each(part)
        # the oldest Arrow types (large_string, not polars' string views): read back, the same types and rows as
        # polars' own writer gave
        table = part.to_arrow(compat_level=pl.CompatLevel.oldest())
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema, compression="zstd")
        self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def register_csv_frame(register: pl.DataFrame) -> pl.DataFrame:
    """The register with its list columns joined by `;` (register.csv; the parquet keeps the lists)."""
    return register.with_columns(
        _joined(register.get_column(c)) if t == pl.List(pl.String) else pl.col(c).list.join(";")
        for c, t in register.schema.items() if isinstance(t, pl.List))


def _joined(lists: pl.Series) -> pl.Series:
    """`lists.list.join(";")` of lists of text, joined only where a list holds several values: most of a register's
    lists hold one or none (at 10^7, 10 of a slice's columns in 0.3 s instead of 0.7 s)."""
    several = (lists.list.len() > 1).arg_true()
    text = lists.list.first().fill_null("")  # a null value joins as nothing, as `list.join` leaves it out
    if lists.null_count():
        text = pl.select(pl.when(lists.is_null()).then(None).otherwise(text)).to_series()
    if len(several):
        text = text.scatter(several, lists.gather(several).list.join(";"))
    return text.alias(lists.name)
