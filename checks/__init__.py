"""Whole datasets: ingest, schemas, linking, detection, ledger."""
