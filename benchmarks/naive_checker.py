"""The named baseline of `bench_night.py`: the checker anyone would write in an afternoon.

Pure Python, one process: read each registry's newest extract (CSV in UTF-8,
UTF-8 with BOM or GB18030; XLSX through the standard
library's zip and XML parsers), apply the
GB 32100-2015 record-level rules to every code — charset, length, the
position-18 check character (mod 31), the registration-authority/type pair,
the region code (GB/T 2260, positions 3–8) — and group exact duplicate codes.
No fuzzy names, no ledger, no reports: a count per kind and the duplicate
groups, written as one JSON line.

    python benchmarks/naive_checker.py DATA_DIR [--config config/steward.toml]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import tomllib
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
VALUE = {ch: i for i, ch in enumerate(ALPHABET)}
WEIGHTS = [pow(3, i, 31) for i in range(17)]
#: GB 32100-2015 Table 1 and 2: registration authority → its organization types.
TYPES = {"1": "1239", "2": "19", "3": "123459", "4": "19", "5": "1239", "6": "129", "7": "129", "8": "19",
         "9": "123", "A": "19", "N": "1239", "Y": "1"}


def load_regions() -> tuple[set[str], set[str]]:
    """Every GB/T 2260 code ever listed, and the provinces (first two digits)."""
    codes, provinces = {"100000"}, set()
    with open(ROOT / "validators" / "data" / "gb2260" / "regions.csv", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            codes.add(row["code"])
            if row["level"] == "prefecture":
                codes.add(row["code"][:4] + "01")  # 市辖区
            provinces.add(row["code"][:2])
    return codes, provinces


def check(code: str, regions: set[str], provinces: set[str]) -> str | None:
    """The first rule a code breaks, or None."""
    if not code:
        return "missing"
    if len(code) != 18:
        return "bad_length"
    if any(ch not in VALUE for ch in code):
        return "bad_charset"
    if code[1] not in TYPES.get(code[0], ""):
        return "bad_department" if code[0] not in TYPES else "bad_category"
    region = code[2:8]
    if not region.isdigit() or region[:2] not in provinces:
        return "bad_region"
    if sum(VALUE[ch] * w for ch, w in zip(code, WEIGHTS)) % 31 != (31 - VALUE[code[17]]) % 31:
        return "bad_check_char"
    if region not in regions:
        return "region_unknown"  # a warning: the code still counts as valid
    return None


def _column(ref: str) -> int:
    number = 0
    for ch in ref:
        if ch.isdigit():
            break
        number = number * 26 + ord(ch) - 64
    return number - 1


def xlsx_rows(path: Path) -> list[list[str]]:
    """The first sheet's cells, with the standard library's XML parser (openpyxl is ~10× slower)."""
    import zipfile
    from xml.etree.ElementTree import iterparse

    ns = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
    with zipfile.ZipFile(path) as zf:
        shared: list[str] = []
        if "xl/sharedStrings.xml" in zf.namelist():
            for _, el in iterparse(zf.open("xl/sharedStrings.xml")):
                if el.tag == ns + "si":
                    shared.append("".join(t.text or "" for t in el.iter(ns + "t")))
                    el.clear()
        sheet = sorted(n for n in zf.namelist() if n.startswith("xl/worksheets/sheet"))[0]
        rows: list[list[str]] = []
        for _, el in iterparse(zf.open(sheet)):
            if el.tag != ns + "row":
                continue
            row: list[str] = []
            for c in el.iter(ns + "c"):
                kind, at = c.get("t"), _column(c.get("r", ""))
                if kind == "inlineStr":
                    value = "".join(t.text or "" for t in c.iter(ns + "t"))
                else:
                    v = c.find(ns + "v")
                    value = "" if v is None or v.text is None else (shared[int(v.text)] if kind == "s" else v.text)
                row.extend([""] * (at - len(row)))
                row.append(value)
            rows.append(row)
            el.clear()
    return rows


def rows_of(path: Path) -> list[list[str]]:
    if path.suffix.lower() == ".xlsx":
        return xlsx_rows(path)
    data = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    return list(csv.reader(io.StringIO(text, newline="")))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--config", type=Path, default=ROOT / "config" / "steward.toml")
    args = parser.parse_args()
    config = tomllib.loads(args.config.read_text("utf-8"))
    regions, provinces = load_regions()
    kinds: Counter = Counter()
    holders: dict[str, list[tuple[str, str]]] = defaultdict(list)
    records = 0
    for source in config["sources"]:
        folder = args.data_dir / "extracts" / source["key"]
        files = sorted((p for p in folder.iterdir() if p.suffix.lower() in (".csv", ".xlsx")),
                       key=lambda p: (p.stat().st_mtime, p.name))
        if not files:
            continue
        rows = rows_of(files[-1])
        header = [h.strip().lstrip("\ufeff") for h in rows[0]]
        at_id = header.index(source["columns"]["record_id"][0])
        at_code = header.index(source["columns"]["uscc"][0])
        for row in rows[1:]:
            if not any(cell.strip() for cell in row):
                continue
            records += 1
            code = row[at_code].strip().upper() if at_code < len(row) else ""
            problem = check(code, regions, provinces)
            if problem:
                kinds[problem] += 1
            if code:
                holders[code].append((source["key"], row[at_id] if at_id < len(row) else ""))
    duplicates = {code: held for code, held in holders.items() if len(held) > 1}
    kinds["duplicate_code_groups"] = len(duplicates)
    kinds["duplicate_code_records"] = sum(len(h) for h in duplicates.values())
    print(json.dumps({"records": records, "kinds": dict(sorted(kinds.items()))}, ensure_ascii=False))


if __name__ == "__main__":
    sys.exit(main())
