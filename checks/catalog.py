"""Where a data directory keeps what the nightly job writes: one home for its file names.

    DATA_DIR/
      extracts/<source>/…           the registries' extracts (read by `checks.ingest`)
      returns/<source>/…            returned forms (read by `checks.returns`)
      reports/<night>/…, months/    what people read (written by `reports.render`, `reports.month`)
      state/steward.sqlite3         the ledger (`[state] database`, or $USCC_DATABASE)
      state/nightly.lock            one night at a time (`checks.lock`)
      state/accepted/<source>.parquet   each source's last accepted extract (the guard's baseline)
      state/entities.parquet        each record's entity in the newest golden register
      state/work/<night>/           the night's work folder (`WorkFolder`), removed when the night completes

Stages exchange files in the work folder, never big frames, so each stage can be a Prefect task,
retried or rerun alone; `WorkFolder` names every one of those files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from checks.settings import Settings

WORK_ROOT = "state/work"
#: The last accepted extract of each source (`<key>.parquet`): the guard's baseline, and what a held or
#: rejected source takes part with. It holds the extract's raw values, like extracts/ itself.
ACCEPTED_ROOT = "state/accepted"
#: Each record's entity in the newest night's register: the next night keeps those entity ids.
ENTITIES = "state/entities.parquet"
LOCK_FILE = "state/nightly.lock"
REPORTS = "reports"


def ledger_path(data_dir: Path, settings: Settings) -> Path:
    """The ledger file: $USCC_DATABASE, else `[state] database` (relative to the data directory)."""
    configured = os.environ.get("USCC_DATABASE") or settings.database
    return Path(data_dir) / configured  # an absolute configured path wins over data_dir


def traces_of_earlier_nights(data_dir: Path) -> list[str]:
    """What completed nights leave besides the ledger (report folders, accepted extracts, the entity file),
    newest report first: a data directory holding any of them has had a ledger."""
    root = Path(data_dir)
    traces = [f"{REPORTS}/{n}/" for n in sorted(_report_nights(root), reverse=True)]
    accepted = root / ACCEPTED_ROOT
    if accepted.is_dir():
        traces += sorted(f"{ACCEPTED_ROOT}/{p.name}" for p in accepted.glob("*.parquet"))
    if (root / ENTITIES).exists():
        traces.append(ENTITIES)
    return traces


def traces_after(data_dir: Path, night: str, knows_return: Callable[[str, str], bool]) -> list[str]:
    """Report folders of nights after `night`, and folders of returned files archived after it that the ledger
    does not know (`knows_return(source, first 12 characters of the file's hash)`, as archived names begin),
    newest first: a ledger whose newest night is `night` is older than the data directory (restored from an
    older backup, or another ledger). A night killed after it applied its returns and before its ledger step
    leaves archived files the ledger knows: no trace."""
    root = Path(data_dir)
    found = [(n, f"{REPORTS}/{n}/") for n in _report_nights(root) if n > night]
    archive = root / "archive" / "returns"
    for folder in (archive.glob("*/*") if archive.is_dir() else ()):
        if folder.is_dir() and _is_night(folder.name) and folder.name > night and any(
                not knows_return(folder.parent.name, f.name[:12]) for f in folder.iterdir() if f.is_file()):
            found.append((folder.name, f"{folder.relative_to(root).as_posix()}/"))
    return [shown for _, shown in sorted(found, reverse=True)]


def _report_nights(root: Path) -> list[str]:
    """The nights a data directory has report folders of."""
    reports = root / REPORTS
    return [p.name for p in reports.iterdir() if p.is_dir() and _is_night(p.name)] if reports.is_dir() else []


def _is_night(name: str) -> bool:
    return len(name) == 10 and name[4] == name[7] == "-" and name.replace("-", "").isdigit()


def accepted_path(data_dir: Path, key: str) -> Path:
    """The copy of a source's last accepted extract."""
    return Path(data_dir) / ACCEPTED_ROOT / f"{key}.parquet"


@dataclass(frozen=True)
class WorkFolder:
    """The files one night's stages exchange (`DATA_DIR/state/work/<night>/`)."""

    path: Path

    @classmethod
    def of(cls, data_dir: Path, run_date: str) -> WorkFolder:
        """The night's work folder, created when missing."""
        path = Path(data_dir) / WORK_ROOT / run_date
        path.mkdir(parents=True, exist_ok=True)
        return cls(path)

    @property
    def night(self) -> str:
        """The night (YYYY-MM-DD) this folder is for."""
        return self.path.name

    def records(self, key: str) -> Path:
        """A source's records taking part tonight (tonight's, or its last accepted extract's)."""
        return self.path / f"{key}.records.parquet"

    def quarantine(self, key: str) -> Path:
        """A source's rows that could not be checked tonight."""
        return self.path / f"{key}.quarantine.parquet"

    def source_result(self, key: str) -> Path:
        """What reading and judging a source's extract gave (JSON)."""
        return self.path / f"{key}.source.json"

    @property
    def findings(self) -> Path:
        """Tonight's detection (`checks.findings.FINDING_SCHEMA`)."""
        return self.path / "findings.parquet"

    @property
    def findings_status(self) -> Path:
        """Tonight's findings with their ledger status, owner and county: what the reports show."""
        return self.path / "findings.status.parquet"

    @property
    def returns_seen(self) -> Path:
        """The returned files waiting as the night began (`checks.return_file.waiting_state`, JSON)."""
        return self.path / "returns.seen.json"

    @property
    def returns_deferred(self) -> Path:
        """The returned files left for the next night, still arriving when they were to be judged (JSON)."""
        return self.path / "returns.deferred.json"

    @property
    def off_list(self) -> Path:
        """Unresolved findings tonight's findings do not show, and why (`checks.ledger.OFF_LIST_SCHEMA`)."""
        return self.path / "off_list.parquet"

    @property
    def prepared(self) -> Path:
        """Tonight's records as detection prepared them (`checks.register.PREPARED_COLUMNS`), in `idx` order."""
        return self.path / "prepared.parquet"

    @property
    def register_parquet(self) -> Path:
        """The golden register (`flows.stages.register_of`), moved into the night's report folder by the render."""
        return self.path / "register.parquet"

    @property
    def register_csv(self) -> Path:
        """The golden register as CSV, like `register_parquet`."""
        return self.path / "register.csv"

    @property
    def partitions(self) -> Path:
        """The partitioned detection's exchange folder (`checks.partition`)."""
        return self.path / "partitions"
