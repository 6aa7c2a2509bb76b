#!/usr/bin/env python3
"""Point every citation of the old outside specification at the product's own docs/.

Code and documents once cited sections of a specification kept outside the repository
("SPEC §6", "SPEC.md §8", "SPEC §2, §8", "`../shared/SPEC.md`"). This script, run from the
root of a checkout, rewrites each such citation to the docs page and section that now
says the same thing ("docs/correction-loop.md", "docs/decisions.md#confusables"):

    python3 tools/cite.py                 rewrite, print every change
    python3 tools/cite.py --check         change nothing; exit 1 if anything would change
    python3 tools/cite.py --only .md      only files with these suffixes (comma-separated)
    python3 tools/cite.py PATH …          only these files or folders

Files: tracked and untracked-but-not-ignored files (`git ls-files`; a walk when this is no
git checkout) ending in .py, .pyi, .toml, .yaml, .yml, .md, .html, .htm, .j2, .jinja, .cfg,
.ini, .txt, or named Makefile; never .venv/ or other hidden folders, docs/ (the target,
which keeps its historical map of old sections on purpose) or this script.

A section maps to a page (`SECTIONS`); where the citing line says what it is about, a more
precise section of that page (`REFINE`, first match wins). In Markdown the citation becomes
a link relative to the citing file; elsewhere the path from the repository root.

Idempotent: a rewritten citation no longer matches. Exit status: 0 done (or nothing to do);
1 some citation could not be mapped (each is listed, and left as it was) or, with --check,
something would change; 2 not run from a checkout's root, or a target missing from docs/.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

#: Section of the old specification → (docs page, anchor or "").
SECTIONS: dict[int, tuple[str, str]] = {
    1: ("standard.md", ""),            # the code (GB 32100)
    2: ("findings.md", ""),            # what is wrong with a code: finding kinds
    3: ("findings.md", "suggestions"),  # repair suggestions
    4: ("data-dir.md", "extracts"),    # inputs
    5: ("data-dir.md", "reports"),     # outputs
    6: ("correction-loop.md", ""),     # the loop
    7: ("running.md", ""),             # running it
    8: ("decisions.md", ""),           # decisions on edge cases
}

#: Per section, (pattern on the citing line, page, anchor): a more precise target when the line says
#: what it cites. The first pattern that matches wins; none → `SECTIONS`.
REFINE: dict[int, list[tuple[str, str, str]]] = {
    1: [(r"allowlist|confirmed legitimate|白名单", "standard.md", "allowlist"),
        (r"[Rr]egion|GB/T 2260|Statuses|national|市辖区", "standard.md", "region-codes"),
        (r"check char|weights|mod-31", "standard.md", "check-characters")],
    2: [(r"[Oo]wnership|presumed right|trust|its own registry issued", "findings.md", "ownership")],
    4: [(r"[Cc]anonical fields|column", "data-dir.md", "columns"),
        (r"layout|data directory", "data-dir.md", "layout"),
        (r"row accounting|quarantin", "data-dir.md", "row-accounting")],
    5: [(r"[Rr]eceipt", "correction-loop.md", "receipts"),
        (r"findings\.csv", "data-dir.md", "findings-csv"),
        (r"summary\.json", "data-dir.md", "summary-json"),
        (r"处理结果|[Aa]nswers|correction form|the form", "correction-loop.md", "the-form")],
    6: [(r"may answer|must be open", "correction-loop.md", "judging-a-returned-row"),
        (r"[Rr]eturned (correction )?form|row by row|returned file", "correction-loop.md", "returned-files"),
        (r"list shows|not raised again|[Ll]ifecycle|[Ss]tatus", "correction-loop.md", "statuses")],
    7: [(r"[Pp]artition|Dask|bigger than one machine|cluster", "running.md", "scale"),
        (r"[Nn]ightly|Prefect|flow", "running.md", "orchestration")],
    8: [(r"[Cc]onfusable", "decisions.md", "confusables"),
        (r"[Pp]laceholder|\"no code\"|mean \"no code\"", "decisions.md", "placeholders"),
        (r"[Tt]rim|whitespace", "decisions.md", "trimming"),
        (r"jurisdiction|prefix", "decisions.md", "jurisdiction"),
        (r"GBK|GB18030", "decisions.md", "gb18030"),
        (r"cross-list|department_mismatch|cross-listing", "decisions.md", "cross-listing"),
        (r"never invent|invented|mangled, legacy", "decisions.md", "no-invented-codes"),
        (r"quarantin", "decisions.md", "missing-is-a-finding"),
        (r"[Oo]wnership|must change|presumed right", "decisions.md", "cross-record-ownership"),
        (r"newest file|tonight's extract", "decisions.md", "newest-extract"),
        (r"[Rr]ows read", "decisions.md", "row-accounting"),
        (r"[Cc]ancel|注销|吊销", "decisions.md", "cancelled-records")],
}

#: The specification file named without a section, and the city's plan beside it.
WHOLE_FILE = ("README.md", "")
PLAN = ("README.md", "origin")

SUFFIXES = (".py", ".pyi", ".toml", ".yaml", ".yml", ".md", ".html", ".htm", ".j2", ".jinja", ".cfg", ".ini", ".txt")
NAMES = ("Makefile",)
SKIP_DIRS = {"docs", "node_modules", "__pycache__"}  # plus every hidden folder (.venv, .git, …)
SELF = "tools/cite.py"

_SEC = r"§\s?\d+(?:\.\d+)*"
#: "SPEC §6", "SPEC.md §8", "../shared/SPEC.md", "SPEC §2, §8", "`../shared/SPEC.md`".
CITATION = re.compile(
    r"(?P<open>`?)(?P<path>(?:\.\./)*(?:shared/)?)SPEC(?P<md>\.md)?(?P<close>`?)"
    r"(?P<secs>\s*" + _SEC + r"(?:\s*(?:,|and|&|/|or)\s*" + _SEC + r")*)?")
#: The city's plan next to the old specification: "`../shared/seed/`".
SEED = re.compile(r"(?P<open>`?)(?:\.\./)+shared/seed/?(?:[\w.-]+)?(?P<close>`?)")
#: What is left of a citation after rewriting: anything that still names the specification.
LEFTOVER = re.compile(r"\bSPEC\b|SPEC\.md|\b[Ss]pec(?:ification)?\s*§")
#: Other paths out of the repository into the shared folder: reported, left alone.
OUTSIDE = re.compile(r"(?:\.\./)+shared/[^\s`)]*")
FENCE = re.compile(r"^\s*(```|~~~)")


def files_to_scan(root: Path, only: tuple[str, ...] | None, paths: list[str]) -> list[Path]:
    """The checkout's candidate files, relative to root, sorted."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                cwd=root, capture_output=True, check=True).stdout.decode("utf-8").split("\0")
        candidates = [Path(p) for p in listed if p]
    except (OSError, subprocess.CalledProcessError):
        candidates = [p.relative_to(root) for p in root.rglob("*") if p.is_file()]
    wanted = []
    for rel in sorted(set(candidates)):
        parts = rel.parts
        if any(part.startswith(".") or part in SKIP_DIRS for part in parts[:-1]):
            continue
        if rel.as_posix() == SELF:
            continue
        if not (rel.suffix in SUFFIXES or rel.name in NAMES):
            continue
        if only and rel.suffix not in only:
            continue
        if paths and not any(rel.as_posix() == p or rel.as_posix().startswith(p.rstrip("/") + "/") for p in paths):
            continue
        if (root / rel).is_file():
            wanted.append(rel)
    return wanted


def target_of(section: int, line: str) -> tuple[str, str] | None:
    for pattern, page, anchor in REFINE.get(section, ()):
        if re.search(pattern, line):
            return page, anchor
    return SECTIONS.get(section)


def render(target: tuple[str, str], rel: Path, markdown: bool) -> str:
    page, anchor = target
    shown = f"docs/{page}" + (f"#{anchor}" if anchor else "")
    if not markdown:
        return shown
    href = os.path.relpath(Path("docs") / page, rel.parent).replace(os.sep, "/") + (f"#{anchor}" if anchor else "")
    return f"[{shown}]({href})"


def rewrite_line(line: str, rel: Path, markdown: bool) -> tuple[str, list[tuple[str, str]], list[str]]:
    """The line with its citations rewritten; (old, new) per citation; unmappable citations."""
    changes: list[tuple[str, str]] = []
    unmapped: list[str] = []

    def cite(m: re.Match) -> str:
        old = m.group(0)
        if m.group("secs"):
            numbers = [int(n) for n in re.findall(r"§\s?(\d+)", m.group("secs"))]
            targets = [target_of(n, line) for n in numbers]
            if any(t is None for t in targets):
                unmapped.append(old.strip())
                return old
            unique = list(dict.fromkeys(targets))
            new = ", ".join(render(t, rel, markdown) for t in unique)
        elif m.group("md") or m.group("path"):
            new = render(WHOLE_FILE, rel, markdown)
        else:
            unmapped.append(old.strip())  # the bare word: what does it cite?
            return old
        if m.group("open") and not m.group("close"):
            new = m.group("open") + new
        elif m.group("close") and not m.group("open"):
            new = new + m.group("close")
        changes.append((old.strip(), new))
        return new

    def seed(m: re.Match) -> str:
        new = render(PLAN, rel, markdown)
        if bool(m.group("open")) != bool(m.group("close")):
            new = m.group("open") + new + m.group("close")
        changes.append((m.group(0), new))
        return new

    out = CITATION.sub(cite, line)
    out = SEED.sub(seed, out)
    return out, changes, unmapped


def process(root: Path, rel: Path, write: bool) -> tuple[list[str], list[str], list[str]]:
    """(changes, unmapped, outside references) of one file, rewritten in place when `write`."""
    path = root / rel
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            text = handle.read()
    except UnicodeDecodeError:
        return [], [], []
    markdown = rel.suffix == ".md"
    fenced = False
    lines = text.splitlines(keepends=True)
    changed, unmapped, outside = [], [], []
    for number, line in enumerate(lines, 1):
        if markdown and FENCE.match(line):
            fenced = not fenced
        if "SPEC" not in line and "shared/" not in line and not LEFTOVER.search(line):
            continue
        new, changes, bad = rewrite_line(line, rel, markdown and not fenced)
        for old, replacement in changes:
            changed.append(f"{rel.as_posix()}:{number}: {old} -> {replacement}")
        unmapped += [f"{rel.as_posix()}:{number}: {b}" for b in bad]
        rest = CITATION.sub("", SEED.sub("", new)) if bad else new
        if not bad and LEFTOVER.search(rest):
            unmapped.append(f"{rel.as_posix()}:{number}: {LEFTOVER.search(rest).group(0)} (in: {line.strip()[:120]})")
        for m in OUTSIDE.finditer(new):
            outside.append(f"{rel.as_posix()}:{number}: {m.group(0)}")
        lines[number - 1] = new
    if changed and write:
        with open(path, "w", encoding="utf-8", newline="") as handle:
            handle.write("".join(lines))
    return changed, unmapped, outside


def check_targets(root: Path) -> list[str]:
    """Targets missing from this checkout's docs/ (empty when there is no docs/ to check against)."""
    docs = root / "docs"
    if not docs.is_dir():
        return []
    targets = set(SECTIONS.values()) | {t[1:] for rules in REFINE.values() for t in rules} | {WHOLE_FILE, PLAN}
    missing = []
    for page, anchor in sorted(targets):
        file = docs / page
        if not file.is_file():
            missing.append(f"docs/{page}")
        elif anchor and f'<a id="{anchor}"></a>' not in file.read_text(encoding="utf-8"):
            missing.append(f"docs/{page}#{anchor}")
    return missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", help="only these files or folders (relative to the root)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if something would change")
    parser.add_argument("--only", help="comma-separated suffixes, e.g. .md")
    parser.add_argument("--root", default=".", help="the checkout's root (default: the current directory)")
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    if not (root / "validators" / "uscc.py").is_file():
        print(f"cite.py: {root} is not the root of a USCC Steward checkout (no validators/uscc.py)", file=sys.stderr)
        return 2
    missing = check_targets(root)
    if missing:
        print("cite.py: targets missing from docs/: " + ", ".join(missing), file=sys.stderr)
        return 2
    if not (root / "docs").is_dir():
        print("note: this checkout has no docs/; the rewritten citations point at the docs pages to come")
    only = tuple(s if s.startswith(".") else "." + s for s in args.only.split(",")) if args.only else None
    changed, unmapped, outside, files = [], [], [], 0
    for rel in files_to_scan(root, only, args.paths):
        c, u, o = process(root, rel, write=not args.check)
        changed += c
        unmapped += u
        outside += o
        files += bool(c)
    for line in changed:
        print(("would rewrite " if args.check else "rewrote ") + line)
    for line in outside:
        print(f"kept (a path outside the repository, no citation of the specification): {line}")
    verb = "would be rewritten" if args.check else "rewritten"
    print(f"{len(changed)} citation(s) {verb} in {files} file(s); {len(unmapped)} unmapped")
    if unmapped:
        print("unmapped (left as they are):", file=sys.stderr)
        for line in unmapped:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
