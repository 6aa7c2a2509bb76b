"""A bigger data directory from a smaller one: each CSV extract tiled N times (for the 10^7 night).

`uscc synth` at 10^7 records takes ~40 minutes; tiling its 10^6 output 10× takes a minute or two.
Tile 0 is the original; in tile t ≥ 1 every row is rewritten so that no two tiles share a record:

- the record id gets `T<t>` appended;
- the legal representative and address get a tile character in front (`甲`, `乙`, …), the name gets it in its
  middle, so no cross-tile name, representative or address block forms and the blocks inside a tile are the
  original's;
- a code has positions 9–10 (the start of the organization code) rotated through the alphabet
  by t, as `compact` reads the cell, in the cell's own formatting (full-width, lower case,
  spaces kept); when the original code was valid, positions 17 and 18 are computed again so it
  stays valid, and an invalid code's check characters that were right are computed again too (an invalid code
  stays invalid, up to chance); an all-digit cell that is not a code (a legacy number, a resident ID number, a
  code Excel zeroed) has one digit rotated instead, the ID's check digit computed again when it was right.

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
from validators.uscc import calc_check_char, calc_org_check_char, compact, is_valid, looks_like_personal_id, \
    personal_id_check_char, personal_id_checksum_ok  # noqa: E402

TILE_MARKS = "甲乙丙丁戊己庚辛壬癸子丑寅卯辰巳午未申酉"
ROTATE = {ch: i for i, ch in enumerate(ALPHABET)}


def _styled(new: str, like: str) -> str:
    """`new` (one code character) written as `like` was: full-width, lower-case or plain."""
    if "\uff01" <= like <= "\uff5e":
        new = chr(ord(new) + 0xFEE0)
    return new.lower() if like.islower() else new


def tiled_code(code: str, t: int) -> str:
    """The code of tile `t`: two characters of the organization code rotated, its check characters computed
    again when it was valid, in the cell's own formatting (full-width, lower case, spaces and hyphens kept).

    A code is rotated as `compact` reads it, so a messy cell of tile 0 (`９１２３…`, `9123 0405…`,
    `…ma4e9fll2w`) is not the same code in every tile: that made groups of ten holders of one code, 21×
    the duplicate-code pairs of the 10^6 data instead of 10×.
    """
    if t == 0 or not code:
        return code
    kept = [i for i, ch in enumerate(code) if compact(ch)]
    norm = compact(code)
    if len(kept) != len(norm):  # a character NFKC expands: rotate the cell as it is
        kept, norm = list(range(len(code))), code
    digits = norm[:-1] if norm.endswith("X") else norm  # an ID number or an organization code may end in X
    if len(set(norm)) == 1:  # `000…`, a placeholder: the same in every tile
        return code
    not_a_code = (len(norm) != 18 or looks_like_personal_id(norm) or norm.endswith("000")) and not is_valid(norm)
    if "E+" in norm and norm.index("E+") >= 1 and norm[norm.index("E+") - 1].isdigit():
        at = norm.index("E+") - 1  # Excel's scientific form (`9.12304E+17`): the mantissa's last digit
        wanted = norm[:at] + str((int(norm[at]) + t) % 10) + norm[at + 1:]
    elif digits.isdigit() and len(norm) >= 3 and not_a_code and len(norm) != 9:
        # a legacy number, a resident ID number or a code Excel zeroed: a digit stays a digit (its last-but-two; in
        # 18 digits the fourth from the end, so an ID keeps its birth date and a zeroed code its zeros)
        at = len(norm) - (4 if len(norm) == 18 else 3)
        wanted = norm[:at] + str((int(norm[at]) + t) % 10) + norm[at + 1:]
        if looks_like_personal_id(norm) and personal_id_checksum_ok(norm):
            wanted = wanted[:17] + personal_id_check_char(wanted)
    elif len(norm) == 9 and all(ch in ROTATE for ch in norm):  # an organization code: its 7th character
        wanted = norm[:6] + ALPHABET[(ROTATE[norm[6]] + t) % len(ALPHABET)] + norm[7:]
        if norm[8] == calc_org_check_char(norm[:8]):
            wanted = wanted[:8] + calc_org_check_char(wanted[:8])
    else:
        spots = [k for k in (8, 9) if k < len(norm) and norm[k] in ROTATE] or \
            [k for k in range(len(norm) - 1, -1, -1) if norm[k] in ROTATE][:1]
        if not spots:
            return code
        chars = list(norm)
        for k in spots:
            chars[k] = ALPHABET[(ROTATE[norm[k]] + t) % len(ALPHABET)]
        wanted = "".join(chars)
        # a check character that was right stays right (a wrong one stays wrong, up to chance): rotating broke
        # the organization code's check of a third of the invalid codes, 35× the bad_org_check of the original
        if len(norm) == 18 and all(ch in ROTATE for ch in norm[8:17]) and \
                norm[16] == calc_org_check_char(norm[8:16]):
            wanted = wanted[:16] + calc_org_check_char(wanted[8:16]) + wanted[17]
        if len(norm) == 18 and all(ch in ROTATE for ch in norm) and norm[17] == calc_check_char(norm[:17]):
            wanted = wanted[:17] + calc_check_char(wanted[:17])
    cell = list(code)
    for k, (was, now) in enumerate(zip(norm, wanted)):
        if was != now:
            cell[kept[k]] = _styled(now, code[kept[k]])
    return "".join(cell)


def _marked(text: str, mark: str, middle: bool) -> str:
    """`text` with the tile's mark: in front, or in the middle of a name. A mark in front of a name made its first
    two characters (the legal-representative block's key, `checks.linking`) `甲萝` for every `萝…` name: 29× the
    10^6 data's representative pairs instead of 10×."""
    if not middle:
        return mark + text
    at = len(text) // 2
    return text[:at] + mark + text[at:]


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
                        row[at[f]] = _marked(row[at[f]], mark, middle=f == "name")
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
