"""GB 32100 validators: pure functions, no I/O, no Prefect. See `validators.uscc`."""
