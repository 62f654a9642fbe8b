"""What a quantserve server exposes at ``/metrics``, for checking rules and dashboards."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from app.core.config import Settings
from app.main import create_app


def sample_names(metrics_text: str) -> set[str]:
    """Every sample name a ``/metrics`` text can carry, read from its ``# TYPE`` lines."""
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", metrics_text, flags=re.MULTILINE):
        names.add(name)
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    return names


@pytest.fixture(scope="session")
def exposed_sample_names(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The sample names of a server's ``/metrics``; every family is declared before use."""
    root: Path = tmp_path_factory.mktemp("exposed")
    settings = Settings(environment="test", data_dir=root / "data", models_dir=root / "models")
    with TestClient(create_app(settings, registry=CollectorRegistry())) as client:
        return sample_names(client.get("/metrics").text)
