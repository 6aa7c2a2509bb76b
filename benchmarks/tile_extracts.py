"""A bigger data directory from a smaller one: each CSV extract tiled N times (for the 10^7 night).

`uscc synth` at 10^7 records takes ~40 minutes; tiling its 10^6 output 10× takes a minute or two.
Tile 0 is the original; in tile t ≥ 1 every row is rewritten so that no two tiles share a record:

- the record id gets `T<t>` appended;
- the name, legal representative and address get a tile character in front (`甲`, `乙`, …), so
  no cross-tile name, representative or address block forms;
- an 18-character code has positions 9–10 (the start of the organization code) rotated through
  the alphabet by t; when the original code was fully valid, positions 17 and 18 are computed
  again so it stays valid (an invalid code stays invalid, up to chance); an all-digit cell (a
  resident ID, a legacy number) has its last-but-two digit rotated instead (the birth date stays).

So each tile holds the same mix of findings as the original, but tiles are not a truth set:
the numbers it gives are for time and memory, not recall. Only CSV extracts are tiled.

    python benchmarks/tile_extracts.py /work/bench-data/1e6 /work/bench-data/1e7 --times 10
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from checks.textfile import detect_encoding  # noqa: E402
from validators.tables import ALPHABET  # noqa: E402
from validators.uscc import calc_check_char, calc_org_check_char, is_valid  # noqa: E402

TILE_MARKS = "甲乙丙丁戊己庚辛壬癸子丑寅卯辰巳午未申酉"
ROTATE = {ch: i for i, ch in enumerate(ALPHABET)}


def tiled_code(code: str, t: int) -> str:
    if t == 0 or not code:
        return code
    if len(code) == 18 and all(ch in ROTATE for ch in code):
        valid = is_valid(code)
        middle = "".join(ALPHABET[(ROTATE[ch] + t) % len(ALPHABET)] for ch in code[8:10])
        new = code[:8] + middle + code[10:]
        if valid:
            body = new[8:16]
            first17 = new[:16] + calc_org_check_char(body)
            new = first17 + calc_check_char(first17)
        return new
    if code.isdigit() and len(code) >= 3:
        at = len(code) - 3
        return code[:at] + str((int(code[at]) + t) % 10) + code[at + 1:]
    return code


def tile_file(path: Path, dest: Path, columns: dict[str, list[str]], times: int) -> int:
    data = path.read_bytes()
    encoding, text = detect_encoding(data, path.name)
    text = text if text is not None else data.decode(encoding)
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header = [h.strip().lstrip("\ufeff") for h in rows[0]]
    at = {f: header.index(columns[f][0]) for f in ("record_id", "uscc", "name", "legal_rep", "address")
          if columns.get(f) and columns[f][0] in header}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(rows[0])
    written = 0
    for t in range(times):
        mark = TILE_MARKS[(t - 1) % len(TILE_MARKS)] if t else ""
        for row in rows[1:]:
            if t and any(cell.strip() for cell in row):
                row = list(row)
                if "record_id" in at and at["record_id"] < len(row) and row[at["record_id"]]:
                    row[at["record_id"]] += f"T{t}"
                if "uscc" in at and at["uscc"] < len(row):
                    row[at["uscc"]] = tiled_code(row[at["uscc"]], t)
                for f in ("name", "legal_rep", "address"):
                    if f in at and at[f] < len(row) and row[at[f]]:
                        row[at[f]] = mark + row[at[f]]
            writer.writerow(row)
            written += 1
    body = out.getvalue()
    dest.write_bytes(body.encode("utf-8-sig" if encoding == "utf-8-sig" else encoding))
    return written


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("source", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--times", type=int, default=10)
    parser.add_argument("--config", type=Path, default=ROOT / "config" / "steward.toml")
    args = parser.parse_args()
    config = tomllib.loads(args.config.read_text("utf-8"))
    for source in config["sources"]:
        folder = args.source / "extracts" / source["key"]
        files = sorted((p for p in folder.iterdir() if p.suffix.lower() == ".csv"),
                       key=lambda p: (p.stat().st_mtime, p.name)) if folder.is_dir() else []
        if not files:
            print(f"{source['key']}: no CSV extract, skipped")
            continue
        target = args.dest / "extracts" / source["key"]
        target.mkdir(parents=True, exist_ok=True)
        n = tile_file(files[-1], target / files[-1].name, source["columns"], args.times)
        print(f"{source['key']}: {n:,} rows → {target / files[-1].name}")
    (args.dest / "returns").mkdir(parents=True, exist_ok=True)


if __name__ == "__main__":
    main()
