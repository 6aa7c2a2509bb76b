"""A synthetic record as a registry holds it, and the ground truth planted into the records."""

from __future__ import annotations

from dataclasses import dataclass, field

from synth.entities import Entity
from validators.uscc import check


@dataclass
class Record:
    """One row of an extract: the entity it describes and what its registry wrote for it.

    The planting flags are fields: `in_xlsx` (the record is written to an XLSX sheet, where a
    number cell exists and text cells keep what was typed), `numeric` (its code is written as a
    number cell), `planted` (a problem was planted on it or it is another one's evidence: no
    other problem goes on it) and `twin` (the same entity's record in the other registry).
    """

    source: str
    record_id: str
    code: str
    entity: Entity
    name: str | None = None
    numeric: bool = False
    in_xlsx: bool = False
    planted: bool = field(default=False, compare=False)
    twin: Record | None = field(default=None, compare=False, repr=False)

    def values(self) -> dict[str, str | int]:
        """The record's cells by canonical field (`checks.settings.FIELDS`); a numeric code as a number."""
        e = self.entity
        return {"record_id": self.record_id, "uscc": int(self.code) if self.numeric else self.code,
                "name": self.name or e.name, "entity_type": e.entity_type, "legal_rep": e.legal_rep,
                "established": e.established, "status": e.status, "address": e.address}


def mark(*records: Record) -> None:
    """Take records out of the pools: a problem is planted on them (or they are its evidence)."""
    for r in records:
        r.planted = True


class Truth:
    """What a perfect run finds (`truth/findings.csv`) and the pairs it must not link (`truth/near_miss.csv`)."""

    def __init__(self):
        self.findings: list[tuple] = []
        self.near_miss: list[tuple] = []

    def add(self, record: Record, kind: str, expected: str = "", derivable: bool = False):
        self.findings.append((record.source, record.record_id, kind, expected, "1" if derivable else "0"))

    def add_record_kinds(self, record: Record, expected: str = "", derivable: bool = False, numeric=False,
                         text=False):
        """Record-level kinds of a damaged code, as the GB 32100 rules name them."""
        for finding in check(record.code, numeric=numeric, text=text, suggest=False).findings:
            if finding.severity != "info" or finding.kind == "formatting":
                is_error = finding.severity == "error"
                self.add(record, finding.kind, expected if is_error else "", derivable and is_error)


__all__ = ["Record", "Truth", "mark"]
