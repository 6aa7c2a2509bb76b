"""The golden register: one row per entity across all registries (issue 15, item 5).

The clean input the credit-sharing platform and the public credit evaluation need: which records of which registries
are one entity, the one code to trust for it (or none, where nobody can be presumed right), and the findings still
open on it.

Entities are recomputed from what detection decided, not decided again:

* records holding the same code are one entity unless a `duplicate_code` finding says they are different entities
  (its `related` lists the holders that are *not* the record's entity; on a code held by more than
  `checks.cross_record.CROWDED` records it lists only some, and each holder it marks is an entity apart from the
  other holders);
* every other finding's `related` names records of the same entity (`multiple_codes`, `name_mismatch`,
  `duplicate_record`, and the record a repair's evidence came from).

So the partitioned run and the single-process run give the same register, and the linking rules stay in
`checks.linking` alone. Every record is in exactly one entity.

Entity ids are stable across nights. An entity that holds a record of an entity of the previous night's register
keeps that entity's id (`carry_ids`: when an entity splits, the part with most of its records keeps it; when two
merge, the bigger one's id survives). Only an entity none of whose records was registered before gets a new id,
derived from its trusted code when it has one that no other entity trusts, else from its smallest (source,
record_id); `id_basis` says which, and is kept with the id.

Why this module is long: the register and the file that carries its ids to the next night (`state/entities.parquet`,
read, checked and written here) are one schema and one rule about ids; apart, each would reach into the other.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from validators.column import BIT
from checks.cross_record import CROWDED
from checks.linking import repeated
from checks.ledger import UNRESOLVED
from checks.settings import Settings

__all__ = ["entities", "golden_register", "register_slices", "ENTITIES_AT_ONCE", "entity_id", "carry_ids",
           "entity_keys", "ENTITY_KEYS", "previous_entities", "EntitiesWriter", "unreadable_entities",
           "EntitiesUnreadable", "REGISTER_READS"]

#: The findings' columns `register_slices` reads (a caller may hand it only these).
REGISTER_READS = ("source", "record_id", "kind", "related", "status", "finding_id")
#: What a night keeps of its register for the next night's ids: each record's entity.
ENTITY_KEYS = {"source": pl.String, "record_id": pl.String, "entity_id": pl.String, "id_basis": pl.String}

#: The finding kind whose `related` lists *other* entities (every other kind's lists the same entity).
OTHER_ENTITIES = "duplicate_code"


def entity_id(basis: str) -> str:
    """The stable id of an entity from its basis (`uscc:<code>` or `record:<source>:<record_id>`)."""
    return hashlib.sha1(basis.encode()).hexdigest()[:16]


def _components(nodes: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest node of each node's connected component, the graph given by its edges (a[i], b[i]).

    Vectorised union-find: each root of an edge's larger end is hooked under the smallest root it meets,
    then pointers jump until every node points at its root; a root is always its tree's smallest node.
    """
    root = nodes.copy()  # a node on no edge (most records: the entity of one record) is its own root
    if len(a) == 0:
        return root
    # only the nodes on some edge are worked on (a tenth of a province's records), sorted without repeats
    ends = np.sort(np.concatenate([a, b]))
    linked = ends[np.concatenate([[True], ends[1:] != ends[:-1]])]
    parent = np.arange(len(linked))
    a, b = np.searchsorted(linked, a), np.searchsorted(linked, b)
    while True:
        ra, rb = parent[a], parent[b]
        apart = ra != rb
        if not apart.any():
            root[np.searchsorted(nodes, linked)] = linked[parent]
            return root
        np.minimum.at(parent, np.maximum(ra, rb)[apart], np.minimum(ra, rb)[apart])
        while not np.array_equal(jumped := parent[parent], parent):
            parent = jumped


def entities(prepared: pl.DataFrame, findings: pl.DataFrame) -> pl.DataFrame:
    """(idx, entity): the entity (smallest member idx) of every prepared record, in `prepared`'s order.

    Args:
        prepared: `checks.rules.prepare` of tonight's records (`idx, source, record_id, code`).
        findings: tonight's findings frame (`source, record_id, kind, related`).
    """
    index = prepared.select("idx", "source", "record_id").unique(["source", "record_id"], keep="last")
    said = findings.select(pl.col("source", "record_id", "kind", "related").cast(pl.String)) \
        .join(index, on=["source", "record_id"]).select(me="idx", kind="kind", key=pl.col("related").str.split(";"))
    named = said.explode("key").filter(pl.col("key").str.contains(":", literal=True)) \
        .select("me", "kind", key=pl.col("key").str.splitn(":", 2)) \
        .select("me", "kind", source=pl.col("key").struct.field("field_0"),
                record_id=pl.col("key").struct.field("field_1")) \
        .join(index, on=["source", "record_id"]).select("me", "kind", other="idx")
    # a duplicate_code holder → the holders that are other entities (marked even when it names none)
    apart = named.filter(pl.col("kind") == OTHER_ENTITIES).select("me", "other")
    marked = said.filter(pl.col("kind") == OTHER_ENTITIES)["me"].unique()
    same = named.filter(pl.col("kind") != OTHER_ENTITIES).select(a="me", b="other")
    holders = repeated(prepared.select("code", "idx"), "code") \
        .select("code", "idx", marked=pl.col("idx").is_in(marked.implode()), crowded=pl.len().over("code") > CROWDED)
    # the holders detection said nothing against (the registry presumed right) are one entity …
    presumed = holders.filter(~pl.col("marked")).select(a=pl.col("idx").min().over("code"), b="idx")
    # … and a marked holder is the entity of every holder of its code it did not name as another; a crowded code's
    # findings name only some of the others (`checks.cross_record.CROWDED`): each of its marked holders is apart
    kept = holders.filter(pl.col("marked") & ~pl.col("crowded")).select("code", a="idx") \
        .join(holders.select("code", b="idx"), on="code") \
        .filter(pl.col("a") != pl.col("b")) \
        .join(apart, left_on=["a", "b"], right_on=["me", "other"], how="anti").select("a", "b")
    edges = pl.concat([same, presumed, kept])
    idx = prepared["idx"].to_numpy()
    nodes = np.sort(idx)
    first = np.ones(len(nodes), dtype=bool)  # the sorted indexes without repeats (np.unique hashes: 50× slower)
    first[1:] = nodes[1:] != nodes[:-1]
    nodes = nodes[first]
    root = _components(nodes, edges["a"].to_numpy(), edges["b"].to_numpy())
    return pl.DataFrame({"idx": idx, "entity": root[np.searchsorted(nodes, idx)]},
                        schema={"idx": pl.Int64, "entity": pl.Int64})


def _derived(bases: pl.DataFrame) -> pl.DataFrame:
    """(entity, entity_id, id_basis): the id `entity_id` derives from each entity's basis."""
    # one comprehension over the bases' UTF-8 bytes (what `entity_id` hashes), `sha1` a local name: 1.1 s for
    # 10^6 entities on a first night, where calling `entity_id` on each text took 1.55 s (map_elements: twice that)
    sha1 = hashlib.sha1
    return bases.select("entity", entity_id=pl.Series(
        [None if basis is None else sha1(basis).hexdigest()[:16] for basis in bases["id_basis"].cast(pl.Binary)
         .to_list()], dtype=pl.String), id_basis="id_basis")


def carry_ids(members: pl.DataFrame, bases: pl.DataFrame, previous: pl.DataFrame | None) -> pl.DataFrame:
    """(entity, entity_id, id_basis) for tonight's entities: the previous night's id where one of its records
    was registered, else the one derived from its basis (only those are hashed: on a night after the first, a few).

    Args:
        members: (source, record_id, entity) of tonight's records.
        bases: (entity, id_basis) of tonight's entities.
        previous: the previous night's `ENTITY_KEYS` rows, or None on the first night.
    """
    if previous is None or previous.height == 0:
        return _derived(bases)
    kinds = pl.Enum(sorted(set(members["source"].unique()) | set(previous["source"].unique())))
    previous = previous.with_columns(pl.col("source").cast(kinds))  # joined as an Enum, not text: 0.25 GB less at 10^7
    members = members.with_columns(pl.col("source").cast(kinds)).with_row_index("_member")
    # of each joined row what the votes read and its member (the keys beside, read for the contested ids: 0.6 GB)
    held = members.lazy().join(previous.lazy(), on=["source", "record_id"]).select(
        "entity", "entity_id", "id_basis", "_member").collect()
    del previous  # passed as the caller's only reference (`register_slices`), let go of here: 10^7 rows at a province
    # an entity holding the one registered record of its id keeps the id without a vote (most; the rest: splits…)
    alone = held.select((pl.len().over("entity") == 1) & (pl.len().over("entity_id") == 1)).to_series()
    settled, held = held.filter(alone).select("entity", "entity_id", "id_basis"), held.filter(~alone)
    votes = held.group_by("entity", "entity_id", "id_basis").agg(n=pl.len())
    # each earlier id goes to one entity (most of its records, then the smallest record key, for contested ids) …
    contested = votes.filter(pl.len().over("entity_id") > 1).select("entity", "entity_id")
    at = held.join(contested, on=["entity", "entity_id"], how="semi")
    key = members["source"].gather(at["_member"]).cast(pl.String) + ":" + members["record_id"].gather(at["_member"])
    keys = at.select("entity", "entity_id", key=key).group_by("entity", "entity_id").agg(pl.col("key").min())
    won = _first_of_each(votes.join(keys, on=["entity", "entity_id"], how="left"), "entity_id", ["n", "key"],
                         [True, False])
    # … and each entity keeps one earlier id (the one it holds most records of, then the smallest id)
    kept = pl.concat([settled, _first_of_each(won, "entity", ["n", "entity_id"], [True, False])
                      .select("entity", "entity_id", "id_basis")])
    fresh = _derived(bases.join(kept, on="entity", how="anti"))
    if fresh.height == 0 or (fresh["entity_id"].is_unique().all()
                             and fresh.join(kept, on="entity_id", how="semi").height == 0):
        return pl.concat([kept, fresh])  # no new id is taken: nothing to derive again (most nights)
    taken = set(kept["entity_id"].to_list())
    rows = []
    for entity, eid, basis in fresh.iter_rows():
        n = 1
        while eid in taken:  # an id an earlier entity still holds (a split): derive another
            n += 1
            eid = entity_id(f"{basis}#{n}")
        taken.add(eid)
        rows.append((entity, eid, basis))
    return pl.concat([kept, pl.DataFrame(rows, schema=fresh.schema, orient="row")])


def _first_of_each(frame: pl.DataFrame, by: str, order: list[str], descending: list[bool]) -> pl.DataFrame:
    """The first row of each `by` value in `order`: only the values with several rows are sorted (a night's few)."""
    frame = frame.with_columns(_rows=pl.len().over(by))
    first = frame.filter(pl.col("_rows") > 1).sort([by, *order], descending=[False, *descending]) \
        .unique(by, keep="first")
    return pl.concat([frame.filter(pl.col("_rows") == 1), first]).drop("_rows")


#: Why a code is trusted, by "issued by its own registry": `Context.trusted_code`'s reasons (tested to agree).
_WHY = {True: "该代码的登记管理部门", False: "唯一没有警告的有效代码"}


def trusted_codes(grouped: pl.DataFrame, frame: pl.DataFrame, settings: Settings) -> pl.DataFrame:
    """`trusted_code` and `trusted_why` of each entity (`grouped`: entity, idx list), by detection's rule
    (`Context.trusted_code`, tested to agree on every entity), over whole columns.

    The codes to trust are the valid ones without a region warning (`clean`); first those the record's own
    registry issued (`owned`). A pool whose members hold one code between them gives that code. A lone record
    (most entities) is that rule on one member, without a group.
    """
    own = pl.lit(False)
    for source in settings.sources:
        own = pl.when(pl.col("source") == source.key).then(pl.col("code").str.slice(0, 1).is_in(list(source.departments))) \
            .otherwise(own)
    clean = pl.col("valid") & pl.col("code").is_not_null() & ((pl.col("flags") & BIT["bad_region"]) == 0)
    owned = clean & own
    lone = grouped.filter(pl.col("idx").list.len() == 1).select("entity").join(frame, on="entity").select(
        "entity", trusted_code=pl.when(clean).then(pl.col("code")),
        trusted_why=pl.when(clean).then(pl.when(own).then(pl.lit(_WHY[True])).otherwise(pl.lit(_WHY[False]))))
    several = frame.join(grouped.filter(pl.col("idx").list.len() > 1).select("entity"), on="entity", how="semi") \
        .group_by("entity").agg(
            owned_codes=pl.col("code").filter(owned).n_unique(), owned_code=pl.col("code").filter(owned).first(),
            clean_codes=pl.col("code").filter(clean).n_unique(), clean_code=pl.col("code").filter(clean).first()) \
        .select("entity",
                trusted_code=pl.when(pl.col("owned_codes") == 1).then("owned_code")
                .when(pl.col("clean_codes") == 1).then("clean_code"),
                trusted_why=pl.when(pl.col("owned_codes") == 1).then(pl.lit(_WHY[True]))
                .when(pl.col("clean_codes") == 1).then(pl.lit(_WHY[False])))
    return grouped.join(pl.concat([lone, several]), on="entity", how="left")


#: The prepared columns (`checks.rules.prepare`) the register reads: detection keeps them for it.
PREPARED_COLUMNS = ("idx", "source", "record_id", "name", "code", "valid", "flags")


def _summary(frame: pl.DataFrame, settings: Settings) -> pl.DataFrame:
    """Per entity: `codes`, `records`, `sources`, and per source its `<key>_record_ids` and `<key>_names`.

    Most entities are one record: their lists are that record's, built column by column; only entities of
    several records pay for a unique and a sort per group.
    """
    empty = pl.lit([], pl.List(pl.String))
    frame = frame.with_columns(alone=pl.len().over("entity") == 1)
    several = frame.filter(~pl.col("alone")).group_by("entity").agg(
        codes=pl.col("code").drop_nulls().unique().sort(), records=pl.len().cast(pl.Int64),
        sources=pl.col("source").unique().sort(),
        **{f"{s.key}_record_ids": pl.col("record_id").filter(pl.col("source") == s.key) for s in settings.sources},
        **{f"{s.key}_names": pl.col("name").filter(pl.col("source") == s.key) for s in settings.sources})
    lone = frame.filter("alone").select(
        "entity", codes=pl.when(pl.col("code").is_not_null()).then(pl.concat_list("code")).otherwise(empty),
        records=pl.lit(1, pl.Int64), sources=pl.concat_list("source"),
        **{f"{s.key}_record_ids": pl.when(pl.col("source") == s.key).then(pl.concat_list("record_id"))
           .otherwise(empty) for s in settings.sources},
        **{f"{s.key}_names": pl.when(pl.col("source") == s.key).then(pl.concat_list("name")).otherwise(empty)
           for s in settings.sources})
    # one chunk (joined in order next: two chunks make that join 6× slower), copied a column at a time and each
    # let go of once copied: the whole copy at once held 0.5 GB more at 10^7
    columns = []
    for name in lone.columns:
        columns.append(pl.concat([several.get_column(name), lone.get_column(name)], rechunk=True))
        several, lone = several.drop(name), lone.drop(name)
    return pl.DataFrame(columns)


#: Entities whose lists are built and written at once (a province's 10^7 built whole were the night's 10 GB peak).
ENTITIES_AT_ONCE = 1_000_000


def golden_register(prepared: pl.DataFrame, findings: pl.DataFrame, settings: Settings,
                    previous: pl.DataFrame | None = None) -> pl.DataFrame:
    """The whole register at once (`register_slices` concatenated; a night writes it a slice at a time)."""
    slices = register_slices(prepared, findings, settings, previous)
    del prepared, previous  # the slices' only references: let go of as `register_slices` says
    return pl.concat(list(slices))


def register_slices(prepared: pl.DataFrame, findings: pl.DataFrame, settings: Settings,
                    previous: pl.DataFrame | None = None, at_once: int | None = None) -> Iterator[pl.DataFrame]:
    """The register, one row per entity, in `entity_id` order, `at_once` entities a slice (`ENTITIES_AT_ONCE`
    unless given; one slice, perhaps empty, when there are none): `entity_id, id_basis, trusted_code, trusted_why,
    codes, records, sources`, per configured source `<key>_record_ids` and `<key>_names` (lists), and the open
    findings on it.

    Only a slice's lists are ever held: a caller that writes each slice before it asks for the next holds the
    records, each entity's id and the open findings, and one slice.

    Args:
        prepared: `checks.rules.prepare` of tonight's records (let go of once the records are sorted: passed as
            the caller's only reference, a province's 1.5 GB is not held through the joins).
        findings: tonight's findings with their ledger `status` (`findings.status.parquet`).
        previous: the previous night's record → entity rows (`ENTITY_KEYS`, from `entity_keys`), for stable ids
            (let go of once the ids are carried, when passed as the caller's only reference).
    """
    members = entities(prepared, findings)  # in `prepared`'s order: added beside it, not joined
    # sorted once: the entities' first records and every per-source list below are in (source, record_id) order
    frame = prepared.select(PREPARED_COLUMNS).with_columns(members["entity"]).sort("source", "record_id")
    del prepared, members  # a caller that passes its only reference (`flows.stages.register_of`) lets go of it here
    grouped = frame.group_by("entity", maintain_order=True).agg(
        pl.col("idx"), first_source=pl.col("source").first(), first_record=pl.col("record_id").first())
    grouped = trusted_codes(grouped, frame, settings).select(
        "entity", "trusted_code", "trusted_why",
        # a code two entities trust (a 重码 both registries may issue) identifies neither
        id_basis=pl.when(pl.col("trusted_code").is_not_null() & (pl.len().over("trusted_code") == 1))
        .then(pl.lit("uscc:") + pl.col("trusted_code"))
        .otherwise(pl.lit("record:") + pl.col("first_source") + pl.lit(":") + pl.col("first_record")))
    # only what the ids, open findings and lists read is kept beside the previous night's ids (with the members,
    # first records and validity as well, the register alone on a second night at 10^7 peaked 0.7 GB higher)
    frame = frame.select("entity", "source", "record_id", "name", "code")
    # 10^7 rows on a night after the first: `carry_ids` gets the only reference, and lets go of it once joined
    handed = [previous]
    del previous
    ids = carry_ids(frame.select("source", "record_id", "entity"), grouped.select("entity", "id_basis"), handed.pop())
    rows = grouped.select("entity", "trusted_code", "trusted_why").join(ids, on="entity")
    del grouped, ids  # not held beside the sorted copy
    # in the register's order already: the wide rows below are joined to it once, never sorted
    rows = _in_id_order(rows).select("entity", "entity_id", "id_basis", "trusted_code", "trusted_why")
    open_ = findings.filter(pl.col("status").is_in(UNRESOLVED)).select("source", "record_id", "kind", "finding_id") \
        .join(frame.select("source", "record_id", "entity"), on=["source", "record_id"]).drop("source", "record_id")
    at_once = at_once or ENTITIES_AT_ONCE
    for start in range(0, rows.height or 1, at_once):
        part = rows.slice(start, at_once)
        mine = pl.col("entity").is_in(part["entity"].implode())  # a filter keeps the (source, record_id) order
        summary = _summary(frame.filter(mine), settings)
        opened = open_.filter(mine).group_by("entity").agg(
            open_findings=pl.len().cast(pl.Int64), open_kinds=pl.col("kind").unique().sort(),
            open_finding_ids=pl.col("finding_id").sort())
        register = part.join(summary, on="entity", maintain_order="left") \
            .join(opened, on="entity", how="left", maintain_order="left").drop("entity")
        del summary, opened
        register = register.with_columns(pl.col("open_findings").fill_null(0),
                                         pl.col("open_kinds").fill_null(pl.lit([], pl.List(pl.String))),
                                         pl.col("open_finding_ids").fill_null(pl.lit([], pl.List(pl.String))))
        yield register
        del register  # not held while the next slice's lists are built


#: An id as `entity_id` makes it: 16 lowercase hexadecimal digits.
_DERIVED_ID = r"^[0-9a-f]{16}$"


def _in_id_order(rows: pl.DataFrame) -> pl.DataFrame:
    """`rows` sorted by `entity_id` as text. When every id is one `entity_id` made, the sort is on the number its
    digits spell, which orders them as their text does: 0.8 s for 10^7 entities where the text took 5 s. An id a
    hand-edited `state/entities.parquet` carried may be any text: then the text is sorted."""
    ids = pl.col("entity_id")
    if not rows["entity_id"].str.contains(_DERIVED_ID).all():
        return rows.sort(ids)
    half = [ids.str.slice(at, 8).str.to_integer(base=16).cast(pl.UInt64) for at in (0, 8)]
    return rows.sort(half[0] * (1 << 32) + half[1])


def previous_entities(path: Path) -> pl.DataFrame | None:
    """The newest night's record → entity rows (`ENTITY_KEYS`, `state/entities.parquet`), None before the first
    night; raises `EntitiesUnreadable` when the file is damaged (its pages carry checksums, `_ENTITIES_PARQUET`)."""
    problem = _not_a_file(path)
    if problem:
        raise EntitiesUnreadable(path, problem)
    if not path.exists():
        return None
    try:
        table = pq.read_table(path, page_checksum_verification=True)
    except (pa.ArrowException, OSError) as exc:
        raise EntitiesUnreadable(path, exc) from None
    found = pl.from_arrow(table)
    del table  # copied into polars' text: pyarrow's pool is asked to give its 0.7 GB back at 10^7 (it kept them)
    pa.default_memory_pool().release_unused()
    found = found.with_columns(pl.col(c).cast(pl.String) for c, t in found.schema.items()
                               if isinstance(t, (pl.Categorical, pl.Enum)))  # dictionary-encoded text
    if dict(found.schema) != ENTITY_KEYS:
        raise EntitiesUnreadable(path, "列与类型为 " + "、".join(f"{c}（{t}）" for c, t in found.schema.items()) +
                                 "，应为 " + "、".join(f"{c}（{t}）" for c, t in ENTITY_KEYS.items()))
    empty = [c for c in ("source", "record_id", "entity_id") if found[c].null_count()]
    if empty:
        raise EntitiesUnreadable(path, f"{'、'.join(empty)} 列有空值")
    # a night writes each record once (ingest quarantines a repeated record id): twice is an edit by hand, and
    # which of its two ids the record's entity would keep is nobody's decision
    # only the rows whose key hashes like another's are compared as text (the whole key column: 1.2 GB more at 10^7)
    suspects = found.select(pl.struct("source", "record_id").hash(seed=0).is_duplicated()).to_series()
    twice = found.filter(suspects).filter(pl.struct("source", "record_id").is_duplicated())
    if twice.height:
        first = twice.row(0, named=True)
        raise EntitiesUnreadable(path, f"{twice.select('source', 'record_id').n_unique()} 条记录出现不止一次，"
                                       f"如 {first['source']}:{first['record_id']}")
    return found


#: How `state/entities.parquet` is written: every page with a CRC, so that damage in the file is found when it is
#: read, where zstd alone let about half of random one-byte damage through as other ids.
_ENTITIES_PARQUET = {"compression": "zstd", "write_page_checksum": True}


class EntitiesWriter:
    """`state/entities.parquet` written a register slice at a time (call it with each) in a `with` block: staged
    beside `path`, and put in its place only when the block ends without an exception."""

    def __init__(self, path: Path, sources: list[str]):
        self.path, self.sources = Path(path), sources
        self.staged = self.path.with_name(f".{self.path.name}.tmp")

    def __enter__(self) -> EntitiesWriter:
        schema = pl.DataFrame(schema=ENTITY_KEYS).to_arrow(compat_level=pl.CompatLevel.oldest()).schema
        self.writer = pq.ParquetWriter(self.staged, schema, **_ENTITIES_PARQUET)  # without a slice: no row
        return self

    def __call__(self, register: pl.DataFrame) -> None:
        self.writer.write_table(entity_keys(register, self.sources).to_arrow(compat_level=pl.CompatLevel.oldest()))

    def __exit__(self, failed, *_) -> None:
        self.writer.close()
        if failed is None:
            os.replace(self.staged, self.path)
        else:  # a failed night leaves no partial copy of the ids (200 MB at 10^7) beside the last night's
            self.staged.unlink(missing_ok=True)


def _not_a_file(path: Path) -> str | None:
    """Why `path` is no file to read (a link, a directory, a FIFO that would block the night), or None."""
    if path.is_symlink():
        return "是符号链接，不是普通文件"
    if path.exists() and not path.is_file():
        return "不是普通文件"
    return None


#: What the refusal before a night says it did.
_NOTHING_DONE = "本次运行未做任何改动。"


def unreadable_entities(path: Path) -> str | None:
    """Why `state/entities.parquet` cannot be used, judged from its footer (a night checks this before it writes
    anything; damage inside the file is found when the register reads it), or None."""
    problem = _not_a_file(path)
    if problem:
        return str(EntitiesUnreadable(path, problem, _NOTHING_DONE))
    if not path.exists():
        return None
    try:
        names = pq.read_schema(path).names
    except (pa.ArrowException, OSError) as exc:
        return str(EntitiesUnreadable(path, exc, _NOTHING_DONE))
    return None if sorted(names) == sorted(ENTITY_KEYS) else \
        str(EntitiesUnreadable(path, f"列为 {'、'.join(names)}，应为 {'、'.join(ENTITY_KEYS)}", _NOTHING_DONE))


class EntitiesUnreadable(ValueError):
    """`state/entities.parquet` is damaged: the register cannot carry its entity ids (a Chinese sentence)."""

    def __init__(self, path: Path, why: object, done: str = "本次运行已停止，报告未生成。"):
        super().__init__(
            f"实体编号文件 {path} 已损坏，无法读取（{str(why)[:300]}）。{done}该文件保存每条记录所属实体的编号，使总名册"
            "（register）中的实体编号逐夜不变；台账、问题和各部门清单不依赖它。请从备份恢复该文件；无法恢复时，删除该文件后"
            "重新运行：实体编号将按首夜的规则重新生成（同一实体的编号可能改变）。")


def entity_keys(register: pl.DataFrame, sources: list[str]) -> pl.DataFrame:
    """The register as record → entity rows (`ENTITY_KEYS`): what the next night's `carry_ids` reads."""
    frames = [register.select("entity_id", "id_basis", record_id=f"{s}_record_ids").explode("record_id")
              .filter(pl.col("record_id").is_not_null()).with_columns(source=pl.lit(s)) for s in sources]
    return pl.concat(frames).select(list(ENTITY_KEYS)) if frames else pl.DataFrame(schema=ENTITY_KEYS)
