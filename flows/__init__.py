"""Prefect flows and the command line; thin wiring over checks/ and reports/."""
