"""The synthetic data directory: entities chunk by chunk, problems planted, extracts and truth written."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from checks.settings import Settings, Source, load_settings
from synth.damage import plant_damage
from synth.entities import Entity, Generator
from synth.planting import plant_cross_record, plant_near_misses
from synth.records import Record, Truth
from synth.workbook import ExtractBook

#: Records generated (and planted) at a time: memory stays flat at 10^7 records.
CHUNK = 50_000
FILES = {"editorial": "编办_机构名录.csv", "market": "市场主体名录.xlsx", "justice": "司法行政机构名录.csv"}
MARKET_CSV = "市场主体名录.csv"
ENCODINGS = {"editorial": "gb18030", "market": "utf-8-sig", "justice": "utf-8-sig"}
#: Columns a registry exports that the steward does not read (values drawn per row, a formula-like one among them).
EXTRA_COLUMNS = {"editorial": ["备注"]}
ID_PREFIXES = {"editorial": "BB", "market": "SC", "justice": "SF"}


class _CsvSink:
    def __init__(self, path: Path, header: list[str], encoding: str):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(path, "w", encoding=encoding, newline="")
        self.writer = csv.writer(self.handle)
        self.writer.writerow(header)

    def write(self, rows):
        self.writer.writerows(rows)

    def close(self):
        self.handle.close()


class _XlsxSink:
    def __init__(self, path: Path, header: list[str]):
        self.book = ExtractBook(path, streaming=True)
        self.sheet = self.book.sheet("主体名录")
        self.sheet.write_row(header)

    def write(self, rows):
        self.sheet.write_rows(rows)

    def close(self):
        self.book.close()


def header_of(source: Source) -> list[str]:
    """The registry's column headers: the first accepted header of each configured field, in order."""
    return [headers[0] for headers in source.columns.values()] + EXTRA_COLUMNS.get(source.key, [])


def generate(out: Path, records: int = 3000, seed: int = 1, xlsx_max: int = 200_000,
             settings: Settings | None = None) -> Path:
    """Write a data directory of `records` records with planted problems; return the truth folder.

    Headers and the allowlisted code come from `settings` (default: `config/steward.toml`).
    """
    settings = settings or load_settings()
    out = Path(out)
    gen = Generator(seed)
    rng = gen.rng
    truth = Truth()
    n_market, n_editorial = int(records * 0.85), int(records * 0.10)
    n_justice = records - n_market - n_editorial
    market_as_xlsx = n_market <= xlsx_max
    (out / "returns").mkdir(parents=True, exist_ok=True)
    sources = {key: settings.source(key) for key in ID_PREFIXES}
    fields = {key: list(source.columns) for key, source in sources.items()}
    headers = {key: header_of(source) for key, source in sources.items()}
    sinks = {
        "editorial": _CsvSink(out / "extracts/editorial" / FILES["editorial"], headers["editorial"],
                              ENCODINGS["editorial"]),
        "justice": _CsvSink(out / "extracts/justice" / FILES["justice"], headers["justice"], ENCODINGS["justice"]),
        "market": (_XlsxSink(out / "extracts/market" / FILES["market"], headers["market"]) if market_as_xlsx
                   else _CsvSink(out / "extracts/market" / MARKET_CSV, headers["market"], ENCODINGS["market"])),
    }
    allowlisted = next(iter(settings.allowlist), None)
    counters = {"editorial": 0, "market": 0, "justice": 0}
    total_chunks = max(1, -(-records // CHUNK))
    targets = {"editorial": n_editorial, "market": n_market, "justice": n_justice}

    for chunk in range(total_chunks):
        batch: dict[str, list[Record]] = {k: [] for k in counters}

        def new_record(source: str, entity: Entity, code: str | None = None) -> Record:
            counters[source] += 1
            rid = f"{ID_PREFIXES[source]}{counters[source]:08d}"
            record = Record(source, rid, entity.code if code is None else code, entity,
                            in_xlsx=source == "market" and market_as_xlsx)
            batch[source].append(record)
            return record

        for source, make in (("editorial", gen.editorial_entity), ("market", gen.market_entity),
                             ("justice", gen.justice_entity)):
            want = targets[source] * (chunk + 1) // total_chunks - targets[source] * chunk // total_chunks
            for _ in range(want):
                new_record(source, make(gen.serial))
        plant_cross_record(batch, truth, gen, new_record, allowlisted)
        plant_near_misses(batch, truth, gen, new_record)
        for source, items in batch.items():
            plant_damage(items, truth, rng, source)
            rows = [[values[f] for f in fields[source]] for values in (r.values() for r in items)]
            if source == "editorial":
                rows = [row + [rng.choice(["", "", "已核实", "=1+1"])] for row in rows]
            if chunk == 0 and rows:  # a few blank rows, as exported sheets have
                rows.insert(min(5, len(rows)), [""] * len(rows[0]))
            sinks[source].write(rows)
    for sink in sinks.values():
        sink.close()

    truth_dir = out / "truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    _write_csv(truth_dir / "findings.csv", ["source", "record_id", "kind", "expected_code", "derivable"],
               truth.findings)
    _write_csv(truth_dir / "near_miss.csv", ["source_a", "record_a", "source_b", "record_b", "why"], truth.near_miss)
    return truth_dir


def _write_csv(path: Path, header: list[str], rows: list) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")


__all__ = ["generate", "header_of", "CHUNK"]
