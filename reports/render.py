"""Render one run's reports into `DATA_DIR/reports/<run date>/`, atomically.

Everything is written into a temporary folder beside the target and moved into
place at the end, so a steward never opens a half-written report. Templates
are jinja2 with autoescape on: every value from data is text, never markup.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from checks.counties import UNKNOWN, county_name
from checks.ledger import ANSWERABLE, OFF_LIST_REASONS, OFF_LIST_SCHEMA, UNRESOLVED
from reports import forms
from reports.chart import lines_svg, trend_svg
from reports.cells import DISPLAY_ORDER, form_cells, list_rows, row_pieces, with_ledger_columns
from reports.receipts import write_receipts
from validators.tables import KINDS, SEVERITY_LABELS, STATUS_LABELS

_ENV = Environment(loader=PackageLoader("reports", "templates"),
                   autoescape=select_autoescape(default=True, default_for_string=True), trim_blocks=False)
QUARANTINE_SHOWN = 200
#: Rows of a department list shown at once (the rest one click away; filters see all).
PAGE_SIZE = 200
#: Form rows from which the XLSX forms are written by a second process (starting one costs about a second).
FORMS_IN_A_PROCESS = 50_000
#: Processes writing the XLSX forms at once (one per core; the forms are the slowest files of a big night).
FORM_WRITERS = max(1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1,
                           4))  # the cores this process may use (a container's share, not the host's), at most 4
#: Where a list page's rows go (markup: no text from data, which is escaped, can be it).
ROWS_HERE = Markup("<!--rows-->")
#: Rows a list page carries at most (20,000 open in about a second); the forms always carry every row.
HTML_MAX_ROWS = 20_000
#: Columns of findings.csv (docs/data-dir.md#findings-csv plus what a machine needs to explain a finding).
FINDINGS_CSV_COLUMNS = (
    "finding_id", "source", "record_id", "uscc", "name", "kind", "severity", "message", "positions",
    "suggested_code", "confidence", "suggestion_reason", "related", "status", "group_size", "weakest_score",
    "evidence", "file", "row", "response", "due_date", "overdue", "owner", "county",
)


@dataclass
class RunView:
    """Everything a run's reports show; built by the flow, rendered here."""

    run_date: str
    city: str
    sources: list[dict]  # key, name, departments and the SourceReport fields
    findings: pl.DataFrame  # FINDING_COLUMNS with status
    quarantine: pl.DataFrame
    history: list[dict]
    changes: dict  # from the ledger: new, fixed, reopened, historical, open
    stage_seconds: dict[str, float]
    returns: list[dict] = field(default_factory=list)  # ledger.returns_of_night: tonight's returned files
    source_names: dict[str, str] = field(default_factory=dict)
    audit: pl.DataFrame | None = None  # ledger.audit_of_night: tonight's state changes (audit.csv)
    stray_returns: list[dict] = field(default_factory=list)  # files under returns/ no department folder holds
    unfinished: list[str] = field(default_factory=list)  # earlier nights whose runs all failed (not on the trend)
    reassignments: list[dict] = field(default_factory=list)  # ledger.reassignments_of_night
    unrecognized_types: list[dict] = field(default_factory=list)  # checks.categories.unrecognized_types
    register: tuple[Path, ...] = ()  # the register's files, written beforehand (`reports.register_files`): moved in
    off_list: pl.DataFrame | None = None  # ledger.OFF_LIST_SCHEMA: unresolved findings on no list tonight, and why

    def __post_init__(self):
        # overdue first: what a department must deal with before anything else
        self.findings = with_ledger_columns(self.findings).sort("overdue", descending=True, maintain_order=True)

    def of(self, key: str, statuses: tuple[str, ...]) -> pl.DataFrame:
        """The findings a department owns now (its records', and those the steward handed to it)."""
        return self.findings.filter((pl.col("owner") == key) & pl.col("status").is_in(statuses))


#: Findings a department list shows: the unresolved ones (a waived finding is not raised again, docs/correction-loop.md#statuses).
LISTED = UNRESOLVED
#: Findings the form asks about: those a department may answer.
ASKED = ANSWERABLE


def summary(view: RunView) -> dict:
    """summary.json (docs/data-dir.md#summary-json)."""
    f = view.findings
    return {
        "run_date": view.run_date,
        "sources": {s["key"]: {k: s[k] for k in ("status", "reason", "file", "rows_read", "rows_checked",
                                                 "rows_quarantined", "rows_blank")} for s in view.sources},
        "findings_by_kind": {k: n for k, n in f.group_by("kind").len().sort("kind").rows()},
        "findings_by_status": {k: n for k, n in f.group_by("status").len().sort("status").rows()},
        "findings_by_severity": {k: n for k, n in f.group_by("severity").len().sort("severity").rows()},
        "changes": {k: view.changes.get(k, 0) for k in ("new", "fixed", "reopened", "carried")},
        "open": view.changes.get("open"),
        "off_list_by_reason": {} if view.off_list is None else
        {k: n for k, n in view.off_list.group_by("reason").len().sort("reason").rows()},
        "returns": [{k: r[k] for k in ("source", "file_name", "outcome", "reason", "rows_total", "accepted", "rejected",
                                       "skipped")} for r in view.returns],
        "stage_seconds": {k: round(v, 3) for k, v in view.stage_seconds.items()},
    }


def _by_kind(findings: pl.DataFrame) -> list[dict]:
    counts = dict(findings.group_by("kind").len().rows())
    return [{"key": k, "label": KINDS[k].label, "count": counts[k], "advice": KINDS[k].advice}
            for k in DISPLAY_ORDER if k in counts]


def shown_in_html(findings: pl.DataFrame, limit: int) -> pl.DataFrame:
    """The findings a list page carries when there are more than a browser can hold:
    errors first, then warnings and notes, each by kind and record."""
    if findings.height <= limit:
        return findings
    rank = {sev: i for i, sev in enumerate(SEVERITY_LABELS)}
    kinds = {k: i for i, k in enumerate(DISPLAY_ORDER)}
    return findings.sort(~pl.col("overdue"), pl.col("severity").replace_strict(rank, default=len(rank)),
                         pl.col("kind").replace_strict(kinds, default=len(kinds)), "record_id", maintain_order=True) \
        .head(limit)


def render_department(view: RunView, source: dict, findings: pl.DataFrame, receipts: list[dict] = (),
                      county: str | None = None, counties: list[dict] = (), built: pl.DataFrame | None = None) -> bytes:
    """A department's list (`county` None), or one of its county lists (`<source>/<region>.html`), in UTF-8.

    The table's rows (`list_rows`, bytes) go into the page where the template leaves `ROWS_HERE`: the rest of
    the page is a few kilobytes, the rows up to 10 MB. `built`: `row_pieces` of the rows another page shows too
    (the department page's, for it and its county pages)."""
    findings = with_ledger_columns(findings)
    by_severity = dict(findings.group_by("severity").len().rows())
    waiting = findings.filter(pl.col("status") == "responded").height
    shown = shown_in_html(findings, HTML_MAX_ROWS)
    page = _ENV.get_template("department.html.j2").render(
        source=source["key"], source_name=source["name"], run_date=view.run_date, city=view.city,
        file=source.get("file"), total=findings.height, by_severity=by_severity, severity_labels=SEVERITY_LABELS,
        by_kind=_by_kind(findings), rows=ROWS_HERE, page_size=PAGE_SIZE, waiting=waiting,
        receipts=receipts, shown=shown.height, overdue=int(findings["overdue"].sum()),
        county=county_name(county) if county else None, stem=county or source["key"], up="../" if county else "",
        counties=counties)
    if findings.height == 0:  # the page says so, with no table
        return page.encode("utf-8")
    head, tail = page.split(ROWS_HERE)  # one place: anything from data is escaped, its `<` included
    return head.encode("utf-8") + list_rows(shown, PAGE_SIZE, built) + tail.encode("utf-8")


def trend_by_source(history: list[dict], sources: list[dict]) -> tuple[list[str], dict[str, list[int]]]:
    """Unresolved errors and warnings per department and night, from the runs' `counts` (`source|severity`)."""
    labels = [h["run_date"] for h in history]
    series = {s["name"]: [sum(n for key, n in h.get("counts", {}).items()
                              if key.split("|")[0] == s["key"] and key.split("|")[-1] != "info") for h in history]
              for s in sources}
    return labels, series


def off_list_rows(view: RunView) -> list[dict]:
    """The overview's table of unresolved findings that are on no list tonight: per department and reason."""
    if view.off_list is None or view.off_list.height == 0:
        return []
    names = {s["key"]: s["name"] for s in view.sources} | view.source_names
    counted = pl.col("severity") != "info"
    grouped = off_list_csv_frame(view.off_list).group_by("owner", "reason", "reason_text") \
        .agg(counted=counted.sum(), total=pl.len()).sort("owner", "reason", "reason_text")
    return [{"source_name": names.get(o, o), "reason": text, "counted": c, "total": t}
            for o, _, text, c, t in grouped.rows()]


def off_list_csv_frame(off_list: pl.DataFrame) -> pl.DataFrame:
    """off_list.csv: every unresolved finding on no list tonight, with the reason in words."""
    text = pl.col("reason").replace_strict(OFF_LIST_REASONS, default=pl.col("reason"), return_dtype=pl.String)
    return off_list.select(*OFF_LIST_SCHEMA, reason_text=text.str.replace_all("{source}", pl.col("source"), literal=True)
                           .str.replace_all("{owner}", pl.col("owner"), literal=True))


def render_index(view: RunView, receipts: list[dict] = ()) -> str:
    f = view.findings
    off_list = off_list_rows(view)
    keys = [s["key"] for s in view.sources]
    cells = dict(((k, s), n) for k, s, n in f.group_by("kind", "owner").len().rows())
    matrix = []
    for kind in DISPLAY_ORDER:
        counts = [cells.get((kind, key), 0) for key in keys]
        if sum(counts):
            severity = f.filter(pl.col("kind") == kind)["severity"].mode().sort()[0]
            matrix.append({"kind": kind, "label": KINDS[kind].label, "severity": severity,
                           "severity_label": SEVERITY_LABELS[severity], "counts": counts, "total": sum(counts)})
    per_source = {}
    for key, sev, n in f.group_by("owner", "severity").len().rows():
        per_source.setdefault(key, {})[sev] = n
    overdue = dict(f.filter(pl.col("overdue")).group_by("owner").len().rows())
    sources = [{**s, "counts": per_source.get(s["key"], {}), "overdue": overdue.get(s["key"], 0)}
               for s in view.sources]
    names = {s["key"]: s["name"] for s in view.sources}
    notes = [{**n, "source_name": s["name"]} for s in view.sources for n in s.get("notes", [])]
    return _ENV.get_template("index.html.j2").render(
        city=view.city, run_date=view.run_date,
        generated_at=dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        unresolved=view.changes["open"], by_severity=dict(f.group_by("severity").len().rows()), changes=view.changes,
        by_status=dict(f.group_by("status").len().rows()), status_labels=STATUS_LABELS,
        chart=trend_svg(view.history), chart_by_source=lines_svg(*trend_by_source(view.history, view.sources)),
        sources=sources, matrix=matrix,
        quarantine=view.quarantine.head(QUARANTINE_SHOWN).to_dicts(), quarantine_total=view.quarantine.height,
        source_names=names, notes=notes, stage_seconds=view.stage_seconds, receipts=receipts,
        audit_rows=None if view.audit is None else view.audit.height, stray_returns=view.stray_returns,
        unfinished=view.unfinished, overdue=sum(overdue.values()),
        reassignments=[{**r, "from_name": names.get(r["from_source"], r["from_source"]),
                        "to_name": names.get(r["to_source"], r["to_source"])} for r in view.reassignments],
        unrecognized_types=view.unrecognized_types, off_list=off_list,
        off_list_counted=sum(r["counted"] for r in off_list))


def _county_lists(listed: pl.DataFrame, asked: pl.DataFrame) -> list[dict]:
    """A department's findings split by county (`checks.counties`): each county's list and form rows.

    Every listed finding is in exactly one county, so the counties' counts add up to the department's.
    """
    if "county" not in listed.columns or listed.height == 0:
        return []
    out = []
    for (region,), part in sorted(listed.partition_by("county", as_dict=True).items(),
                                  key=lambda kv: (kv[0][0] == UNKNOWN, kv[0][0])):
        out.append({"region": region, "name": county_name(region), "listed_frame": part,
                    "asked_frame": asked.filter(pl.col("county") == region)})
    return out


def staging_folder(root: Path, name: str) -> Path:
    """A fresh temporary folder beside `root/name`, where a report is written before it is moved into place
    (a dead run's is removed by the next run, `flows.stages.clear_leftovers`)."""
    tmp = root / f".{name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    return tmp


def publish_folder(tmp: Path, final: Path) -> None:
    """Move a written report folder into place, replacing the previous one: a reader never sees half of either."""
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    if old.exists():
        shutil.rmtree(old)


def write_run(reports_root: Path, view: RunView) -> Path:
    """Write every file of the run into `reports_root/<run_date>/`; return that folder."""
    reports_root.mkdir(parents=True, exist_ok=True)
    final = reports_root / view.run_date
    tmp = staging_folder(reports_root, view.run_date)
    writers = []
    try:
        receipts = write_receipts(tmp, _ENV, view.returns, view.source_names, view.city, view.run_date)
        asked = {s["key"]: view.of(s["key"], ASKED) for s in view.sources}
        listed = {s["key"]: view.of(s["key"], LISTED) for s in view.sources}
        counties = {s["key"]: _county_lists(listed[s["key"]], asked[s["key"]]) for s in view.sources}
        jobs = [(tmp / f"{s['key']}.xlsx", asked[s["key"]], s["name"], view.run_date) for s in view.sources]
        jobs += [(tmp / s["key"] / f"{c['region']}.xlsx", c["asked_frame"], f"{s['name']} {c['name']}", view.run_date)
                 for s in view.sources for c in counties[s["key"]]]
        for s in view.sources:
            if counties[s["key"]]:
                (tmp / s["key"]).mkdir()
        workbooks = sorted(jobs, key=lambda job: -job[1].height)
        if sum(job[1].height for job in workbooks) >= FORMS_IN_A_PROCESS:
            # the XLSX forms are the slowest files: other processes write them while this one does the rest
            writers = forms.start_xlsx_writers(tmp, workbooks, FORM_WRITERS)
        else:
            for job in workbooks:
                forms.write_xlsx(*job)
        for source in view.sources:
            key = source["key"]
            mine = [r for r in receipts if r["source"] == key]
            links = [{"name": c["name"], "href": f"{key}/{c['region']}", "listed": c["listed_frame"].height,
                      "asked": c["asked_frame"].height} for c in counties[key]]
            # the department page's rows are on its county pages too: built once for all of them
            built = row_pieces(shown_in_html(with_ledger_columns(listed[key]), HTML_MAX_ROWS)) \
                if counties[key] and listed[key].height else None
            (tmp / f"{key}.html").write_bytes(render_department(view, source, listed[key], mine, counties=links,
                                                                built=built))
            cells = form_cells(asked[key])
            forms.write_csv(tmp / f"{key}.csv", asked[key], cells)
            for c in counties[key]:
                (tmp / key / f"{c['region']}.html").write_bytes(
                    render_department(view, source, c["listed_frame"], mine, county=c["region"], built=built))
                # a county's form rows are its department's, in the same order (`_county_lists` filters)
                forms.write_csv(tmp / key / f"{c['region']}.csv", c["asked_frame"],
                                cells.filter(asked[key]["county"] == c["region"]))
            del built
        # opened in spreadsheets too: formula-like text gets one leading ' (README: how a machine undoes it)
        forms.write_neutralized_csv(view.findings.select(FINDINGS_CSV_COLUMNS), tmp / "findings.csv")
        if view.audit is not None:
            forms.write_neutralized_csv(view.audit, tmp / "audit.csv")
        if view.off_list is not None:
            forms.write_neutralized_csv(off_list_csv_frame(view.off_list), tmp / "off_list.csv")
        for written in view.register:
            shutil.move(written, tmp / Path(written).name)
        (tmp / "summary.json").write_text(json.dumps(summary(view), ensure_ascii=False, indent=2), encoding="utf-8")
        (tmp / "index.html").write_text(render_index(view, receipts), encoding="utf-8")
        forms.wait_xlsx_writers(writers)  # raises if a form could not be written
        writers = []
        publish_folder(tmp, final)
    except BaseException:
        forms.stop_xlsx_writers(writers)  # stop the form writers before removing the folder they write into
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
