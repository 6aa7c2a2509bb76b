"""Shared fixtures: settings, small synthetic data directories, Prefect in local mode."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

# Property tests judge answers, not speed: a loaded CI machine must not fail them on hypothesis's 200 ms deadline.
hypothesis_settings.register_profile("steward", deadline=None)
hypothesis_settings.load_profile("steward")

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).parent / "corpus"
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="session")
def settings():
    from checks.settings import load_settings

    return load_settings()


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """A 3,000-record synthetic data directory (with truth), generated once per session."""
    from synth import generate

    out = tmp_path_factory.mktemp("synth")
    generate(out, records=3000, seed=7)
    return out


@pytest.fixture
def sample_copy(tmp_path) -> Path:
    """A writable copy of sample_data/ (what `make run` starts from)."""
    target = tmp_path / "data"
    shutil.copytree(ROOT / "sample_data", target)
    return target


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def prefect_server():
    """One ephemeral Prefect server for the session, stopped before pytest closes its streams."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield
