"""The findings ledger: lifecycle of every finding across nightly runs (docs/correction-loop.md#statuses).

SQLite by default (`DATA_DIR/state/steward.sqlite3`, or `[state] database` in
the configuration). Tables:
    runs          one row per run date: counts for the trend
    findings      one row per finding id: owner, record, status, first/last seen,
                  the department's last accepted answer
    return_files  every returned file seen, by content hash: outcome and counts
    responses     every row of every returned file, accepted or rejected, and why
    audit         every status change, and every refused attempt, with actor and note
    extracts      each night's verdict on each source's extract (ok | held | rejected), with its hash
    accepted_extracts   the last extract accepted per source: the plausibility guard's baseline
    extract_acceptances the steward's deliberate acceptances of held extracts (by content hash)
    reassignments the steward's hand-overs of findings to another department (stamped with the next night)

Statuses: open → responded → fixed | rejected-response | waived; a fixed
finding that comes back is reopened; a finding whose record left while the same problem appeared on
another record of its code is superseded by that record's finding, and the steward withdraws the
findings of a registry no longer configured (both leave the road to zero without counting as fixed). Each step is one transaction: a crash
leaves the ledger as it was before the step. Rerunning the same night
changes nothing that did not change in the data; rerunning an older night
only rewrites that night's report, with the count it took (statuses move forward in time only).

The schema is versioned (`PRAGMA user_version`); `MIGRATIONS` upgrades an
older file in place, one transaction per version.

The ledger's jobs live in their own modules; this one is where callers import them from:
    checks.ledger_schema    the schema and its migrations, statuses, connections, transactions
    checks.ledger_night     the nightly update (`record_run`) and the night's timeline
    checks.ledger_closing   why a finding no longer found closes, hands over or stays (and the off-list ones)
    checks.ledger_returns   returned forms: the findings a row is judged against, applying a file
    checks.ledger_steward   the steward's reopenings, reassignments, withdrawals and acceptances; extract verdicts
    checks.ledger_history   the road to zero, the audit log, the month's replay input
"""

from __future__ import annotations

from checks.guard import Extract
from checks.ledger_history import (AUDIT_COLUMNS, LIFECYCLE_AUDIT, LIFECYCLE_FINDINGS, audit_log, audit_of_night,
                                   history, lifecycle, statuses)
from checks.ledger_closing import GONE_NOTES, OFF_LIST_REASONS, OFF_LIST_SCHEMA, Tonight
from checks.ledger_night import finish_run, latest_run, ran_on, record_run, response_text_expr, unfinished_nights
from checks.ledger_returns import (Known, ReturnedFile, apply_return, handled_return, known_findings,
                                   known_return_prefixes, pending_codes, return_counts_of_night, returns_of_night)
from checks.ledger_schema import (ANSWERABLE, CLOCK_RUNS, CLOSED, DEFAULT_DUE_DAYS, MIGRATIONS, RETIRED, SCHEMA_VERSION,
                                  PENDING_NIGHT, SUPERSEDED, UNRESOLVED, WITHDRAWN, LedgerError, connect,
                                  holds_no_night, migrate, unreadable)
from checks.ledger_steward import (accepted_extract, extract_verdicts, extracts_of_night, finding_detail,
                                   reassignments_of_night, recent_losses, steward_accept_extract, steward_acceptance,
                                   steward_reassign, steward_reopen, steward_withdraw, untracked_sources)


__all__ = [
    "Extract", "Tonight", "Known", "ReturnedFile", "LedgerError", "GONE_NOTES", "OFF_LIST_REASONS", "OFF_LIST_SCHEMA",
    "MIGRATIONS", "SCHEMA_VERSION", "PENDING_NIGHT", "UNRESOLVED", "CLOSED", "RETIRED", "SUPERSEDED", "WITHDRAWN",
    "ANSWERABLE",
    "CLOCK_RUNS", "DEFAULT_DUE_DAYS",
    "connect", "migrate", "unreadable", "holds_no_night",
    "record_run", "response_text_expr", "latest_run", "ran_on", "finish_run", "unfinished_nights",
    "known_findings", "known_return_prefixes", "pending_codes", "handled_return", "apply_return",
    "return_counts_of_night", "returns_of_night",
    "accepted_extract", "recent_losses", "steward_acceptance", "extract_verdicts", "extracts_of_night",
    "steward_accept_extract", "finding_detail",
    "steward_reopen", "steward_reassign", "steward_withdraw", "untracked_sources", "reassignments_of_night",
    "history", "audit_log", "AUDIT_COLUMNS", "audit_of_night", "LIFECYCLE_FINDINGS", "LIFECYCLE_AUDIT", "lifecycle",
    "statuses",
]
