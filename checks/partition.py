"""Detection split into partitions, for runs bigger than one machine (docs/running.md#scale).

The same findings as `checks.detect.detect`, computed in three steps that a
distributed engine can spread over workers (`flows.partitioned` runs them
through Prefect's Dask task runner):

1. **by region** (`split` → `scan_partition`): records are partitioned by the
   registering authority's region (positions 3–8 of the code; anything
   without one goes to `other`), regions packed into groups of about equal size. Everything about one record is decided
   there: the validator's findings, the in-context findings, the keys used
   for linking, and the codes one edit away from an invalid code.
2. **by key** (`link_bucket`): what crosses partitions — the same code, the
   same organization code, the same name, the same legal representative, a
   code one edit from a code held elsewhere — is found by a shuffle: bucket
   `b` takes every key whose hash falls in `b`, from every partition, so each
   block is whole in exactly one bucket.
3. **assembly** (`assemble`): the candidate pairs and shared codes of all
   buckets, with only the records involved, give the groups, the cross-record
   findings and the repairs, exactly as the single-process run does.

Indexes (`idx`) are given once for the whole run (`split`), so every step
speaks of the same records. Steps exchange parquet files in a folder that
every worker can read (a shared or network file system on a real cluster).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import polars as pl

from checks import frame_files, linking
from checks.cross_record import (
    ROW_COLUMNS,
    cross_from,
    neighbor_candidates,
    neighbor_pairs_from,
    shared_codes_frame,
)
from checks.detect import assemble as assemble_frame
from checks.findings import RecordFinding
from checks.repairs import READS_ROW
from checks.rules import context_level, prepare, record_level
from checks.settings import Settings
from validators.column import compact_expr

#: Prepared columns the buckets read (the link keys) and the assembly reads (evidence and findings).
KEY_COLUMNS = ("idx", "code", "org", "legacy_org", "valid", "name_norm", "name_core", "rep")
ASSEMBLY_COLUMNS = tuple(dict.fromkeys(ROW_COLUMNS + (
    "name_core", "rep", "established", "org", "weak", "legal_rep", "address", "uscc_numeric")))
OTHER = "other"


def partition_key_expr() -> pl.Expr:
    """The region of the registering authority (positions 3–8), or `other`."""
    region = compact_expr(pl.col("uscc_raw").fill_null("")).str.slice(2, 6)
    return pl.when(region.str.contains(r"^[0-9]{6}$")).then(region).otherwise(pl.lit(OTHER))


def split(records: pl.DataFrame, folder: Path, parts: int = 8) -> list[str]:
    """Write `part-<key>.parquet` per group of regions (with run-wide `idx`); return the keys.

    Regions are packed, largest first, into at most `parts` groups of about equal size, so a
    province's hundreds of counties do not become hundreds of tiny tasks. `regions.json`
    records which regions each group holds.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*"):
        old.unlink()
    keyed = records.with_columns(idx=pl.int_range(pl.len(), dtype=pl.Int64), _region=partition_key_expr())
    sizes = keyed.group_by("_region").len().sort(["len", "_region"], descending=[True, False]).rows()
    groups: list[list] = [[0, []] for _ in range(max(1, min(parts, len(sizes))))]
    for region, n in sizes:
        smallest = min(groups, key=lambda g: g[0])
        smallest[0] += n
        smallest[1].append(region)
    keys, manifest = [], {}
    for i, (_, regions) in enumerate(g for g in groups if g[1]):
        key = f"g{i}"
        keyed.filter(pl.col("_region").is_in(regions)).drop("_region").write_parquet(folder / f"part-{key}.parquet")
        keys.append(key)
        manifest[key] = sorted(regions)
    (folder / "regions.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    return keys


def regions_of(folder: Path) -> dict[str, list[str]]:
    """Which regions (positions 3–8) each partition holds."""
    return json.loads((folder / "regions.json").read_text("utf-8"))


def scan_partition(folder: Path, key: str, settings: Settings) -> dict:
    """Step 1 on one partition: prepared records, record findings, one-edit candidates (files)."""
    records = frame_files.read_parquet(folder / f"part-{key}.parquet")
    frame = prepare(records, settings)
    found = {"record": record_level(frame, settings.allowlist), "context": context_level(frame, settings)}
    (folder / f"findings-{key}.pickle").write_bytes(pickle.dumps(found))
    frame.select(tuple(dict.fromkeys(KEY_COLUMNS + ASSEMBLY_COLUMNS))).write_parquet(folder / f"prepared-{key}.parquet")
    neighbor_candidates(frame).write_parquet(folder / f"neighbors-{key}.parquet")
    return {"partition": key, "records": frame.height,
            "findings": sum(len(v) for v in found.values())}


def _in_bucket(column: str | pl.Expr, bucket: int, buckets: int) -> pl.Expr:
    expr = pl.col(column) if isinstance(column, str) else column
    return (expr.hash(seed=0) % buckets) == bucket


def link_bucket(folder: Path, keys: list[str], bucket: int, buckets: int) -> dict:
    """Step 2 on one bucket: candidate pairs and shared codes of the keys hashing to it."""
    prepared = pl.concat([frame_files.scan_parquet(folder / f"prepared-{k}.parquet").select(KEY_COLUMNS) for k in keys])
    rep_block = linking.rep_block_expr()
    mine = prepared.filter(_in_bucket("code", bucket, buckets).fill_null(False)
                           | _in_bucket("org", bucket, buckets).fill_null(False)
                           | _in_bucket("name_norm", bucket, buckets).fill_null(False)
                           | _in_bucket(rep_block, bucket, buckets).fill_null(False)
                           | _in_bucket("legacy_org", bucket, buckets).fill_null(False)).collect().sort("idx")

    def only(key: str | pl.Expr) -> pl.DataFrame:
        return mine.filter(_in_bucket(key, bucket, buckets).fill_null(False))

    pairs = linking.block_pairs(only, _neighbor_pairs(folder, keys, mine, only("legacy_org"), bucket, buckets))
    shared = shared_codes_frame(only("code"))
    pairs.write_parquet(folder / f"pairs-{bucket}.parquet")
    shared.write_parquet(folder / f"shared-{bucket}.parquet")
    return {"bucket": bucket, "records": mine.height, "pairs": pairs.height}


def _neighbor_pairs(folder: Path, keys: list[str], holders: pl.DataFrame, legacy: pl.DataFrame, bucket: int,
                    buckets: int) -> pl.DataFrame:
    """`checks.cross_record.neighbor_pairs` for the codes looked up that hash to this bucket: `holders` are the
    records whose code or organization code hashes here, `legacy` those whose legacy code does."""
    candidates = pl.concat([frame_files.scan_parquet(folder / f"neighbors-{k}.parquet") for k in keys]) \
        .filter(_in_bucket("candidate", bucket, buckets)).collect()
    return neighbor_pairs_from(candidates, holders, legacy)


def assemble(folder: Path, keys: list[str], buckets: int, settings: Settings) -> pl.DataFrame:
    """Step 3: the findings frame of the whole run."""
    found = [pickle.loads((folder / f"findings-{k}.pickle").read_bytes()) for k in keys]
    by_idx = lambda f: f.idx  # noqa: E731  (stable: keeps each record's kinds in rule order)
    record_findings: list[RecordFinding] = sorted((f for x in found for f in x["record"]), key=by_idx) + \
        sorted((f for x in found for f in x["context"]), key=by_idx)
    pairs = linking.merge_pairs(pl.concat([frame_files.read_parquet(folder / f"pairs-{b}.parquet") for b in range(buckets)]))
    shared = dict(pl.concat([frame_files.read_parquet(folder / f"shared-{b}.parquet") for b in range(buckets)]).iter_rows())
    involved = {f.idx for f in record_findings}
    wanted = involved | set(pairs["a"]) | set(pairs["b"]) | {i for ids in shared.values() for i in ids}
    rows = pl.concat([frame_files.scan_parquet(folder / f"prepared-{k}.parquet").select(ASSEMBLY_COLUMNS) for k in keys]) \
        .join(pl.LazyFrame({"idx": sorted(wanted)}, schema={"idx": pl.Int64}), on="idx", how="semi") \
        .collect().sort("idx")
    cross, ctx = cross_from(rows, settings, {f.idx for f in record_findings if f.kind in READS_ROW}, pairs, shared)
    return assemble_frame(record_findings, cross, ctx)


def detect_partitioned(records: pl.DataFrame, settings: Settings, folder: Path, buckets: int = 4,
                       parts: int = 8) -> pl.DataFrame:
    """All three steps in this process, one after another (what the Dask run spreads out)."""
    keys = split(records, folder, parts)
    for key in keys:
        scan_partition(folder, key, settings)
    for bucket in range(buckets):
        link_bucket(folder, keys, bucket, buckets)
    return assemble(folder, keys, buckets, settings)
