"""Fixtures shared by the app's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.config import get_settings
from tests.postgres import PostgresCluster, running_cluster, unavailable_reason


@pytest.fixture
def data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Settings whose data and models folders are fresh under ``tmp_path`` (the CLI's)."""
    monkeypatch.setenv("QUANTSERVE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("QUANTSERVE_MODELS_DIR", str(tmp_path / "models"))
    get_settings.cache_clear()
    yield tmp_path / "data"
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A real PostgreSQL server for the run (``tests/postgres.py``); skips without one."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with running_cluster() as cluster:
        yield cluster
