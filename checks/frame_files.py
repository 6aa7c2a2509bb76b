"""Reading the frames the tool writes (parquet, Arrow IPC) by path, the path taken literally.

polars reads a path holding `*`, `?` or `[` as a glob pattern unless told not to: a data directory named
`/srv/信用[正式]` made every night stop with a traceback at its first read-back. Every read of a file by
path goes through here (tests/test_architecture.py keeps it so); `checks.extract_file` passes `glob=False` to
`pl.read_csv` itself.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

__all__ = ["read_parquet", "scan_parquet", "read_ipc"]


def read_parquet(path: Path, **options) -> pl.DataFrame:
    """`pl.read_parquet` of exactly `path`."""
    return pl.read_parquet(path, glob=False, **options)


def scan_parquet(path: Path, **options) -> pl.LazyFrame:
    """`pl.scan_parquet` of exactly `path`."""
    return pl.scan_parquet(path, glob=False, **options)


def read_ipc(path: Path) -> pl.DataFrame:
    """`pl.read_ipc` of exactly `path` (it has no `glob` option; the scan took the same time and memory on a
    286 MB file)."""
    return pl.scan_ipc(path, glob=False).collect()
