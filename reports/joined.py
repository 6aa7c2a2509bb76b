"""A text column's values one after another as UTF-8 bytes, read out of its Arrow buffers.

A list page's rows and a form's rows are built as one text per row over whole columns; the page or the sheet is
those texts one after another. Joined as text (`str.join`) and taken out as bytes, the join alone was 40 % of
making a form's 50,000 rows (60 MB of XML) and the texts were copied twice more. An Arrow string array keeps its
values one after another in one buffer already: the bytes between its first and last offsets are the join.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

__all__ = ["joined_utf8"]


def joined_utf8(column: pl.Series) -> bytes:
    """`column.str.join("")` as UTF-8 bytes (a null value adds nothing, as `str.join` leaves it out)."""
    if column.dtype != pl.String:  # a categorical column, say: its text, not its dictionary's codes
        column = column.cast(pl.String)
    if column.null_count():
        column = column.fill_null("")  # a null slot's bytes in the buffer are not its value
    array = column.to_arrow(compat_level=pl.CompatLevel.oldest())  # one chunk, `large_string`
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if len(array) == 0:
        return b""
    _, offsets, data = array.buffers()
    width = np.int64 if pa.types.is_large_string(array.type) else np.int32
    bounds = np.frombuffer(offsets, dtype=width)[[array.offset, array.offset + len(array)]]
    return memoryview(data)[int(bounds[0]):int(bounds[1])].tobytes() if data is not None else b""
