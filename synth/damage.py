"""Record-level damage: a code mistyped, mis-spaced, mangled by Excel, or not a code at all.

About 6 % of the records no cross-record problem touched get one; each is recorded in the
truth with the kinds the GB 32100 rules give the damaged code.
"""

from __future__ import annotations

import datetime as dt
import random

from synth.entities import DISTRICTS
from synth.records import Record, Truth
from validators.tables import ALPHABET, CONFUSABLES, DEPARTMENTS
from validators.uscc import check, personal_id_check_char

#: A digit as a clerk may type it: the letter that looks like it (`validators.tables.CONFUSABLES`, reversed).
LOOKALIKE_LETTER = {intended: typed for typed, intendeds in CONFUSABLES.items() for intended in intendeds
                    if intended.isdigit()}


def _substitute(code: str, rng: random.Random, positions: range) -> str:
    i = rng.choice(positions)
    new = rng.choice([ch for ch in ALPHABET if ch != code[i]])
    return code[:i] + new + code[i + 1:]


def _formatted(code: str, rng: random.Random) -> str:
    """A code as a clerk's spreadsheet may hold it: spaces, lower case, full width, hyphens, NBSP, zero width."""
    style = rng.choice(["space", "lower", "fullwidth", "hyphen", "nbsp", "zero_width", "tab", "mixed"])
    if style == "space":
        return f"{code[:6]} {code[6:12]} {code[12:]}"
    if style == "lower" and any(c.isalpha() for c in code):
        return code.lower()
    if style == "fullwidth":
        return "".join(chr(ord(c) + 0xFEE0) for c in code)
    if style == "nbsp":
        return code[:9] + "\u00a0" + code[9:]
    if style == "zero_width":
        return code[:4] + "\u200b" + code[4:]
    if style == "tab":
        return code[:8] + "\t" + code[8:]
    if style == "mixed":
        return "".join(chr(ord(c) + 0xFEE0) if i < 8 else c for i, c in enumerate(code)).lower() + "\u3000"
    return f"{code[:8]}-{code[8:17]}-{code[17]}"


def _personal_id(rng: random.Random, region: str) -> str:
    birth = dt.date(1960, 1, 1) + dt.timedelta(days=rng.randint(0, 15000))
    first17 = f"{region}{birth:%Y%m%d}{rng.randint(0, 999):03d}"
    return first17 + personal_id_check_char(first17)


def plant_record_level(record: Record, truth: Truth, rng: random.Random, has_evidence: bool) -> None:
    """Damage one record's code the ways registries do; record what must be found."""
    good = record.entity.code
    kind = rng.choice(["missing", "legacy", "bad_length", "charset", "check_char", "typo", "transpose",
                       "department", "category", "region", "formatting", "excel", "personal_id",
                       "formatted_broken", "zeroed_text"])
    if good.isdigit() and rng.random() < 0.15:
        kind = "zeroed_text"  # only all-digit codes can look zeroed: give them a fair share
    if kind == "personal_id":
        if record.entity.cat != "2":  # operators of individual businesses type their ID number
            return plant_record_level(record, truth, rng, has_evidence)
        record.code = _personal_id(rng, record.entity.region if record.entity.region in DISTRICTS else "230402")
        truth.add(record, "personal_id", good, has_evidence)
    elif kind == "missing":
        record.code = rng.choice(["", "无", "/", "-", "000000000000000000"])
        truth.add(record, "missing", good, has_evidence)
    elif kind == "legacy":
        if record.source == "market":
            record.code = "230400" + f"{rng.randint(0, 999_999_999):09d}"
        else:
            record.code = f"{good[8:16]}-{good[16]}"
        truth.add(record, "legacy_number", good, has_evidence)
    elif kind == "bad_length":
        record.code = good[:-1] if rng.random() < 0.5 else good + rng.choice("0123456789")
        truth.add_record_kinds(record, good, has_evidence)
    elif kind == "charset":
        swaps = [(i, LOOKALIKE_LETTER[ch]) for i, ch in enumerate(good) if ch in LOOKALIKE_LETTER]
        if not swaps:
            return plant_record_level(record, truth, rng, has_evidence)
        i, ch = rng.choice(swaps)
        record.code = good[:i] + ch + good[i + 1:]
        truth.add_record_kinds(record, good, True)
    elif kind == "check_char":
        record.code = good[:17] + rng.choice([c for c in ALPHABET if c != good[17]])
        truth.add_record_kinds(record, good, True)
    elif kind == "typo":
        record.code = _substitute(good, rng, range(8, 16))
        truth.add_record_kinds(record, good, has_evidence)
    elif kind == "transpose":
        i = rng.randrange(8, 16)
        if good[i] == good[i + 1]:
            return plant_record_level(record, truth, rng, has_evidence)
        record.code = good[:i] + good[i + 1] + good[i] + good[i + 2:]
        truth.add_record_kinds(record, good, has_evidence)
    elif kind == "department":
        record.code = rng.choice("BCDEFG") + good[1:]
        truth.add_record_kinds(record, good, has_evidence)
    elif kind == "category":
        dept = good[0]
        wrong = [c for c in "45678" if c not in DEPARTMENTS[dept][1]]
        record.code = good[0] + rng.choice(wrong) + good[2:]
        truth.add_record_kinds(record, good, has_evidence)
    elif kind == "region":
        record.code = good[:2] + rng.choice(["239900", "990000", "230499"]) + good[8:]
        truth.add_record_kinds(record, good, has_evidence)
    elif kind == "formatting":
        # the clean code is the fix, and a sure one (the normalization is exact)
        record.code = _formatted(good, rng)
        truth.add(record, "formatting", good, True)
    elif kind == "formatted_broken":
        # spaced or lower-case AND mistyped: the rules' findings carry the fix, formatting none
        broken = good[:17] + rng.choice([c for c in ALPHABET if c != good[17]])
        record.code = _formatted(broken, rng)
        truth.add_record_kinds(record, good, True)
    elif kind == "zeroed_text":
        # typed as text with a wrong region and ending in 000: not Excel damage in an XLSX text cell,
        # but it may be in a CSV (Excel writes numbers there as it shows them)
        if not good.isdigit():
            return plant_record_level(record, truth, rng, has_evidence)
        record.code = good[:2] + rng.choice(["230431", "230499", "239901"]) + good[8:15] + "000"
        text_cell = record.in_xlsx
        truth.add_record_kinds(record, good, has_evidence and text_cell, text=text_cell)
    elif kind == "excel":
        if record.in_xlsx and good.isdigit():
            record.numeric = True  # the XLSX writer stores it as a number
            truth.add(record, "excel_mangled", good, False)
        else:
            zeroed = good[:15] + "000"
            if not good.isdigit():
                record.code = ""
            elif rng.random() < 0.5 or check(zeroed, suggest=False).valid:
                record.code = f"{good[0]}.{good[1:6]}E+17"
            else:
                record.code = zeroed
            truth.add(record, "excel_mangled" if record.code else "missing", good, False)



def still_valid_with_twin(record: Record, truth: Truth) -> None:
    """A damaged code that still passes every error rule (a region typo the check
    character happens to accept) beside a twin holding the right code: one entity, two
    valid codes. The twin's clean code is the one to trust."""
    twin = record.twin
    if twin is None:
        return
    report = check(record.code, suggest=False)
    if report.valid and report.code != twin.code and len(report.code) == 18:
        truth.add(record, "multiple_codes", twin.code, True)


def plant_damage(items: list[Record], truth: Truth, rng: random.Random, source: str) -> None:
    """Record-level damage on about 6 % of the untouched records of a source."""
    for record in items:
        if record.code != record.entity.code or record.planted or record.numeric:
            continue
        if rng.random() < 0.06:
            evidence = record.twin is not None
            plant_record_level(record, truth, rng, evidence)
            still_valid_with_twin(record, truth)
            record.planted = True
            if evidence:  # keep the twin intact: it is the evidence
                record.twin.planted = True



__all__ = ["plant_damage", "plant_record_level", "LOOKALIKE_LETTER"]
