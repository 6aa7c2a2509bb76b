"""Returned correction forms (docs/correction-loop.md#returned-files): read, judge row by row, apply, archive.

A department returns the form we sent (`DATA_DIR/returns/<source>/*.csv|xlsx`,
often re-saved by Excel in GBK). Each row is judged (`checks.return_judge`: the
finding is the department's and answerable, the answer complete and its code valid and
free, the record's identity columns as we sent them, the answers to one record in
agreement); resident ID numbers in anything a clerk typed (and in the file's name) are
masked before a verdict is stored or shown.

`judge` is pure (frames and dicts in, a verdict frame out). `apply_waiting_returns`
does the I/O around it: one ledger transaction per file, then the file moves
to `DATA_DIR/archive/returns/<source>/<run date>/`, named with its content
hash and a bounded, safe form of its name; the same content dropped again is
not processed twice.

The jobs, one module each: `checks.return_file` reads a returned file safely,
`checks.return_match` compares a row with the record we sent, `checks.return_judge`
judges each answer; this module applies the verdicts and archives the file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import unicodedata
from pathlib import Path
from typing import Callable

import polars as pl

from checks import ledger
from checks.catalog import WorkFolder
from checks.ingest import file_sha256
from checks.return_file import (KEY, NEW_CODE, STILL_ARRIVING, SUPPORTED_SUFFIXES, ReturnFormError,
                                arrived_during_the_night, clean_cell, pending_files, read_return, stray_files,
                                waiting_state)
from checks.return_judge import VERDICT_SCHEMA, Holder, form_for_another, judge
from checks.return_match import MARK_CLOSE, MARK_OPEN, marked_pair
from checks.textfile import quote
from validators.uscc import compact, mask_personal_ids

#: UTF-8 bytes of a returned file's own name kept in archive and receipt names (a file system allows 255
#: per name; the rest holds the hash, a dash and the suffix).
NAME_BYTES = 120
#: Characters of a file name kept as they are: letters, digits (any script) and these; the rest becomes `_`
#: (path separators, `#`, `?`, `%`, quotes, spaces and control characters break links or paths).
_NAME_KEEP = frozenset("-_.()（）[]【】《》·、，")
_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


def bounded_name(sha256: str, name: str) -> str:
    """`<sha256[:12]>-<name>`, safe in a path and a link and at most ~150 bytes, whatever name a file had.

    The hash keeps files apart; the shortened name is only there for a person to recognise the file.

    >>> bounded_name("ab" * 32, "反馈 #1?.csv")
    'abababababab-反馈_1_.csv'
    >>> len(bounded_name("ab" * 32, "表" * 80 + ".xlsx").encode())
    138
    """
    name = unicodedata.normalize("NFC", Path(name).name or "")
    suffix = Path(name).suffix
    if not _SUFFIX.match(suffix):
        suffix = ""
    stem = name[: len(name) - len(suffix)] if suffix else name
    safe = "".join(ch if ch in _NAME_KEEP or unicodedata.category(ch)[0] in "LN" else "_" for ch in stem)
    safe = re.sub(r"_{2,}", "_", safe).lstrip("._-")
    cut = safe.encode("utf-8")[:NAME_BYTES].decode("utf-8", errors="ignore")
    return f"{sha256[:12]}-{cut or 'file'}{suffix.lower()}"


def archive_path(data_dir: Path, source: str, run_date: str, sha256: str, name: str) -> Path:
    return Path(data_dir) / "archive" / "returns" / source / run_date / bounded_name(sha256, name)


def _exists(path: Path) -> bool:
    """Whether a path exists; False for a path the file system cannot even look up (a name too long)."""
    try:
        return path.exists()
    except OSError:
        return False


def apply_waiting_returns(data_dir: Path, db: Path, run_date: str, settings,
                          holders_of: Callable[[list[str]], list[Holder]],
                          suggestions_of: Callable[[list[str]], dict[str, str]] = lambda ids: {},
                          seen: dict[str, list[int]] | None = None) -> list[dict]:
    """Judge and apply every waiting returned file of every configured source that was there, as it is now, when
    the night began; a file still arriving is left where it is for the next night.

    Args:
        holders_of: tonight's records holding any of the given codes (the collision check).
        suggestions_of: the code tonight's detection suggests for each of the given finding ids that has one.
        seen: `waiting_state` as the night began (None: every waiting file is judged).

    Returns:
        One dict per file: source, file, outcome (`deferred` for a file still arriving: nothing read or
        written), reason, accepted, rejected, skipped.
    """
    done = []
    for source in settings.sources:
        for path in pending_files(Path(data_dir) / "returns" / source.key):
            if arrived_during_the_night(path, source.key, seen):
                done.append({"source": source.key, "file": mask_personal_ids(path.name), "outcome": "deferred",
                             "reason": STILL_ARRIVING, "accepted": 0, "rejected": 0, "skipped": 0})
                continue
            done.append(apply_returned_file(path, source.key, data_dir, db, run_date, settings, holders_of,
                                            suggestions_of))
    return done


def note_waiting(work: WorkFolder, data_dir: Path, source_keys: list[str]) -> None:
    """Keep, in the night's work folder, the returned files waiting as the night begins, as they are
    (`waiting_state`)."""
    work.returns_seen.write_text(json.dumps(waiting_state(data_dir, source_keys)), "utf-8")


def seen_at_start(work: WorkFolder) -> dict[str, list[int]] | None:
    """What `note_waiting` kept (None: not kept, as by a caller that judges returned files alone)."""
    return json.loads(work.returns_seen.read_text("utf-8")) if work.returns_seen.exists() else None


def note_deferred(work: WorkFolder, handled: list[dict]) -> None:
    """Keep the files `apply_waiting_returns` left for the next night, for the overview (`deferred_files`)."""
    work.returns_deferred.write_text(json.dumps([h for h in handled if h["outcome"] == "deferred"],
                                                ensure_ascii=False), "utf-8")


def deferred_files(work: WorkFolder) -> list[dict]:
    """The files tonight left for the next night, as the overview lists files left where they are (`stray_files`)."""
    if not work.returns_deferred.exists():
        return []
    return [{"file": f"{h['source']}/{quote(h['file'], 120)}", "reason": h["reason"]}
            for h in json.loads(work.returns_deferred.read_text("utf-8"))]


def apply_returned_file(path: Path, source: str, data_dir: Path, db: Path, run_date: str, settings,
                        holders_of: Callable[[list[str]], list[Holder]],
                        suggestions_of: Callable[[list[str]], dict[str, str]] = lambda ids: {}) -> dict:
    """One returned file: one ledger transaction, then the move to the archive.

    The file's name and every reason are stored and shown with resident ID numbers masked.
    """
    sha = file_sha256(path)
    shown = mask_personal_ids(path.name)
    target = archive_path(data_dir, source, run_date, sha, shown)
    earlier = ledger.handled_return(db, source, sha)
    if earlier and earlier["archived_as"] and not _archived(earlier, data_dir, source, sha):
        # processed, then the run stopped before the move (or the move failed, as it did for names too long
        # to archive before names were bounded): finish the move under the bounded name, nothing else
        _move(path, archive_path(data_dir, source, earlier["run_date"], sha, earlier["file_name"]))
        return {"source": source, "file": shown, "outcome": earlier["outcome"], "reason": earlier["reason"],
                **{k: earlier[k] for k in ("accepted", "rejected", "skipped")}}
    names = settings.source_names
    verdicts = pl.DataFrame(schema=VERDICT_SCHEMA)
    if earlier:
        outcome, reason = "duplicate", (f"与 {earlier['run_date']} 已处理的文件“{earlier['file_name']}”内容完全相同，"
                                        "本次未重复处理。处理结果见当日回执。")
    elif path.suffix.lower() not in SUPPORTED_SUFFIXES:
        outcome, reason = "rejected", (f"不支持的文件类型（{path.suffix or '无扩展名'}）。"
                                       "请用 Excel 另存为 .xlsx 或 .csv 后重新报送。")
    elif os.lstat(path).st_nlink > 1:  # a file a clerk saves has one name; another may lie outside the data dir
        outcome, reason = "rejected", (f"{quote(path.name, 120)} 是硬链接（同一文件还有其他名称，可能在数据目录之外），"
                                       "为安全起见不读取。请把更正清单另存一份后重新报送。")
    else:
        outcome, reason = "processed", None
        try:
            form = read_return(path, settings.limits)
        except ReturnFormError as exc:
            outcome, reason = "rejected", str(exc)
        else:
            if form.height == 0:
                outcome, reason = "rejected", f"{path.name} 中没有数据行。请填写下发的更正清单后重新报送。"
            else:
                known = ledger.known_findings(db, [i for i in form[KEY] if i])
                other = form_for_another(form, source, known)
                if other is not None:
                    outcome, reason = "rejected", (
                        f"这是{names.get(other, other)}的更正清单，不是{names.get(source, source)}的。"
                        f"请由{names.get(other, other)}报送，或放入其对应的报送目录。")
                    # each answered row is still an attempt on another department's finding: logged, none moves
                    verdicts = judge(form, source, known, [], names)
                else:
                    ours = suggestions_of(sorted(known))
                    codes = sorted(set(_typed_codes(form)) | set(ours.values()))
                    holders = holders_of(codes) + [Holder(c, s, r, n, pending=True)
                                                   for c, s, r, n in ledger.pending_codes(db, codes)]
                    verdicts = judge(form, source, known, holders, names, settings.allowlist,
                                     settings.city.name_prefixes, ours, settings.departments)
    reason = mask_personal_ids(reason)  # a reason may quote the file's name or its header cells
    returned = ledger.ReturnedFile(source, sha, shown, outcome, reason, str(target))
    ledger.apply_return(db, run_date, returned, verdicts)
    _move(path, target)
    counts = {v: n for v, n in verdicts.group_by("verdict").len().rows()} if verdicts.height else {}
    return {"source": source, "file": shown, "outcome": outcome, "reason": reason,
            "accepted": counts.get("accepted", 0), "rejected": counts.get("rejected", 0),
            "skipped": counts.get("skipped", 0)}


def _archived(earlier: dict, data_dir: Path, source: str, sha: str) -> bool:
    """The earlier processing's file is in the archive, where it was recorded or under its bounded name."""
    bounded = archive_path(data_dir, source, earlier["run_date"], sha, earlier["file_name"])
    return _exists(Path(earlier["archived_as"])) or _exists(bounded)


def _typed_codes(form: pl.DataFrame) -> list[str]:
    codes = {compact(c) for c in form[NEW_CODE] if c}
    return sorted(c for c in codes if len(c) == 18)


def _move(path: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(path), str(target))


__all__ = ["apply_waiting_returns", "note_waiting", "seen_at_start", "note_deferred", "deferred_files",
           "apply_returned_file", "archive_path", "bounded_name", "read_return", "pending_files", "stray_files",
           "clean_cell", "judge", "Holder", "ReturnFormError", "VERDICT_SCHEMA", "marked_pair",
           "MARK_OPEN", "MARK_CLOSE", "file_sha256"]
