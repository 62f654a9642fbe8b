"""Faults under load: quantserve as it runs in production, gunicorn with two uvicorn
workers on loopback, serving a tiny real model, while :mod:`tests.faults._load` sends
requests and a test breaks something.

Every test starts its own server (~15 s: each worker imports TensorFlow and loads the
model) so that a fault never leaks into the next test.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.harness import Server
from tests.faults._load import FAULT_SECONDS_ENV, Request
from tests.model_store import LOOKBACK, N_FEATURES, fresh_root, tiny_store

WORKERS = 2
TICKERS = ["T0", "T1", "T2"]  # the tiny store's tickers


def fault_seconds() -> float:
    """Seconds of load per phase: 3 in ``make test``, more with ``make faults``."""
    return float(os.environ.get(FAULT_SECONDS_ENV, "3"))


@dataclass(frozen=True)
class Keys:
    trader: str
    admin: str

    def settings_value(self) -> str:
        return json.dumps(
            [
                {"id": role, "role": role, "sha256": hashlib.sha256(key.encode()).hexdigest()}
                for role, key in (("trader", self.trader), ("admin", self.admin))
            ]
        )


@pytest.fixture
def keys() -> Keys:
    return Keys(trader=secrets.token_urlsafe(24), admin=secrets.token_urlsafe(24))


@pytest.fixture
def root(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    """Version 1 serves; version 2 waits in ``staged/`` (see :mod:`tests.model_store`)."""
    return fresh_root(tiny_store(tmp_path_factory), tmp_path)


@pytest.fixture(scope="session")
def xla_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One XLA executable cache for every server of the run, as a deployment's volume."""
    return tmp_path_factory.mktemp("xla-cache")


@pytest.fixture
def serve(
    root: Path, keys: Keys, tmp_path: Path, xla_cache: Path
) -> Callable[..., AbstractContextManager[Server]]:
    """``with serve(**env) as server``: gunicorn serving ``root``, two workers."""

    @contextmanager
    def start(ready_path: str = "/readyz", **env: str) -> Iterator[Server]:
        server_env = {
            "QUANTSERVE_ENVIRONMENT": "test",
            "QUANTSERVE_DATA_DIR": str(root / "data"),
            "QUANTSERVE_MODELS_DIR": str(root / "models"),
            "QUANTSERVE_API_KEYS": keys.settings_value(),
            "QUANTSERVE_LIMITS__RATE_PER_SECOND": "0",  # load, not the rate limit
            "QUANTSERVE_LIFECYCLE__POLL_INTERVAL_SECONDS": "0.5",
            "QUANTSERVE_TENSORFLOW_THREADS": "1",
            # The production path: each version is compiled with XLA before it serves.
            "QUANTSERVE_BATCHING__XLA": "true",
            "QUANTSERVE_BATCHING__ALLOWED_BATCH_SIZES": "[1, 16]",
            "QUANTSERVE_BATCHING__XLA_CACHE_DIR": str(xla_cache),
            "QUANTSERVE_LOG_LEVEL": "info",
            **env,
        }
        server = Server(
            "quantserve",
            "app.main:create_app()",
            workers=WORKERS,
            ready_path=ready_path,
            workdir=tmp_path / "server",
            env=server_env,
        )
        with server:
            yield server

    return start


_REPORT_KEY = pytest.StashKey[list[str]]()


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Callable[[str, object], None]:
    """``report(fault, tally)``: a line in the run's summary, the figures the README gives."""

    def add(fault: str, tally: object) -> None:
        request.config.stash.setdefault(_REPORT_KEY, []).append(f"{fault}: {tally}")

    return add


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = terminalreporter.config.stash.get(_REPORT_KEY, [])
    if lines:
        terminalreporter.section(f"faults under load ({fault_seconds():g} s per phase)")
        for line in lines:
            terminalreporter.write_line(line)


def headers(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def model_requests() -> list[Request]:
    """What a front-end and a quant send: forecasts, predictions, an allocation, readiness."""
    instances = np.random.default_rng(0).normal(size=(2, LOOKBACK, N_FEATURES)).tolist()
    return [
        Request("POST", "/v1/forecasts", {"tickers": TICKERS}),
        Request("POST", "/v1/models/forecaster:predict", {"instances": instances}),
        Request("POST", "/v1/portfolios/optimize", {"tickers": TICKERS}),
        Request("GET", "/readyz"),
    ]


def metric_samples(server: Server, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample of ``name`` in ``/metrics`` (the parser raises on a malformed page)."""
    text = httpx.get(server.url + "/metrics", timeout=10).text
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def metric_sum(server: Server, name: str, **labels: str) -> float:
    """The sum over the workers of ``name``'s samples with ``labels``."""
    return sum(
        value
        for sample_labels, value in metric_samples(server, name)
        if all(sample_labels.get(k) == v for k, v in labels.items())
    )


def eventually(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")
