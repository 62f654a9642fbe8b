"""Request limits, each one hit: body size (413), tickers and frontier points (422), the
solver's time (422) and the per-key rate (429 with Retry-After), on real apps.

The chunked-body test also runs against a real uvicorn server over a socket, so the body
arrives in several ASGI messages and the 413 must come before the body ends.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from app.core.config import ApiKey, LimitSettings, Settings
from app.core.rate_limit import TokenBucket
from app.core.security import generate_key, hash_key
from app.main import create_app
from tests.app._problems import assert_problem
from tests.training.synthetic import build_model_store

PROBLEM = "application/problem+json"
BODY_LIMIT = 4096


def _settings(data_dir: Path, models_dir: Path, **limits: Any) -> Settings:
    return Settings(
        environment="test",
        data_dir=data_dir,
        models_dir=models_dir,
        dev_mode=True,
        api_keys=(),
        limits=LimitSettings(**({"rate_per_second": 0} | limits)),
    )


def _app(settings: Settings) -> FastAPI:
    return create_app(settings, registry=CollectorRegistry())


def _own_inputs(n_assets: int, seed: int = 5) -> dict[str, Any]:
    """Expected returns and a covariance for ``n_assets`` labels: no model needed."""
    rng = np.random.default_rng(seed)
    returns = rng.normal(0.0004, 0.01, size=(max(300, 2 * n_assets), n_assets))
    returns += 0.004 * rng.normal(size=(returns.shape[0], 1))  # a common factor
    tickers = [f"A{i:03d}" for i in range(n_assets)]
    return {
        "tickers": tickers,
        "expected_returns": dict(zip(tickers, returns.mean(axis=0) * 252, strict=True)),
        "covariance": np.round(np.cov(returns, rowvar=False) * 252, 10).tolist(),
    }


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny exported version of "forecaster" with its features (tickers T0..T2)."""
    return build_model_store(tmp_path_factory.mktemp("limits"), versions=1)


@pytest.fixture(scope="module")
def empty(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nothing")


@pytest.fixture(scope="module")
def limited(root: Path) -> Iterator[TestClient]:
    """A served model, at most 2 tickers, 5 frontier points and 4 KiB bodies."""
    settings = _settings(
        root / "data",
        root / "models",
        max_tickers=2,
        max_frontier_points=5,
        max_body_bytes=BODY_LIMIT,
    )
    with TestClient(_app(settings)) as client:
        assert client.get("/readyz").status_code == 200
        yield client


# -- body size --------------------------------------------------------------------------


def _padded_body(size: int) -> bytes:
    """A JSON optimize body of exactly ``size`` bytes."""
    body = json.dumps({"tickers": ["A", "B"], "pad": ""}).encode()
    return body.replace(b'"pad": ""', b'"pad": "' + b"x" * (size - len(body)) + b'"')


def test_413_by_content_length_names_the_limit(limited: TestClient) -> None:
    body = _padded_body(BODY_LIMIT + 1)
    response = limited.post(
        "/v1/portfolios/optimize", content=body, headers={"content-type": "application/json"}
    )
    problem = assert_problem(response, 413, "body-too-large")
    assert f"declares {BODY_LIMIT + 1} bytes" in problem["detail"]
    assert f"limits.max_body_bytes = {BODY_LIMIT} bytes" in problem["detail"]
    assert (problem["limit"], problem["value"]) == ("limits.max_body_bytes", BODY_LIMIT)
    # One byte less reaches the route (and its validation: "pad" is not a field).
    smaller = limited.post(
        "/v1/portfolios/optimize",
        content=_padded_body(BODY_LIMIT),
        headers={"content-type": "application/json"},
    )
    assert_problem(smaller, 422, "invalid-request")


@pytest.mark.parametrize(
    "path", ["/v1/portfolios/optimize", "/v1/forecasts", "/v1/models/forecaster:predict"]
)
def test_413_for_a_chunked_body_on_every_route(
    limited: TestClient, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: httpx sends it chunked
        yield from (b" " * 1024 for _ in range(5))

    response = limited.post(path, content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers
    problem = assert_problem(response, 413, "body-too-large")
    assert f"passed {BODY_LIMIT} bytes while streaming" in problem["detail"]
    assert problem["value"] == BODY_LIMIT
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # not a crash


@pytest.fixture(scope="module")
def live_server(empty: Path) -> Iterator[int]:
    """A real uvicorn on loopback serving an app with a 1 KiB body limit; yields its port."""
    app = _app(_settings(empty, empty, max_body_bytes=1024))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = int(listener.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", ws="none")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(timeout=30)
    listener.close()


def test_413_arrives_while_a_chunked_body_is_still_streaming(live_server: int) -> None:
    with socket.create_connection(("127.0.0.1", live_server), timeout=20) as connection:
        connection.sendall(
            b"POST /v1/portfolios/optimize HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        for _ in range(3):  # 1,536 bytes in three chunks, and no final chunk
            connection.sendall(b"200\r\n" + b" " * 512 + b"\r\n")
            time.sleep(0.05)
        received = b""
        while b"\r\n\r\n" not in received:
            data = connection.recv(65536)
            assert data, "the server closed without answering"
            received += data
        head, _, rest = received.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        length = int(headers["content-length"])
        while len(rest) < length:
            rest += connection.recv(65536)
    assert lines[0].startswith("HTTP/1.1 413")
    assert headers["content-type"] == PROBLEM
    problem = json.loads(rest[:length])
    assert problem["type"] == "/problems/body-too-large"
    assert "passed 1024 bytes while streaming" in problem["detail"]
    assert problem["value"] == 1024


# -- tickers and frontier points --------------------------------------------------------


def test_forecasts_over_max_tickers_are_422_with_the_limit(limited: TestClient) -> None:
    problem = assert_problem(
        limited.post("/v1/forecasts", json={"tickers": ["T0", "T1", "T2"]}),
        422,
        "limit-exceeded",
    )
    assert problem["detail"].startswith("3 tickers requested; limits.max_tickers is 2: request")
    assert (problem["limit"], problem["value"], problem["requested"]) == (
        "limits.max_tickers",
        2,
        3,
    )
    within = limited.post("/v1/forecasts", json={"tickers": ["T0", "T2"]})
    assert within.status_code == 200, within.text
    assert [f["ticker"] for f in within.json()["forecasts"]] == ["T0", "T2"]


@pytest.mark.parametrize("route", ["optimize", "frontier"])
def test_portfolios_over_max_tickers_are_422_with_the_limit(
    limited: TestClient, route: str
) -> None:
    problem = assert_problem(
        limited.post(f"/v1/portfolios/{route}", json=_own_inputs(3)), 422, "limit-exceeded"
    )
    assert "3 tickers requested; limits.max_tickers is 2" in problem["detail"]
    assert (problem["limit"], problem["value"]) == ("limits.max_tickers", 2)
    within = _own_inputs(2) | ({"n_points": 5} if route == "frontier" else {})
    assert limited.post(f"/v1/portfolios/{route}", json=within).status_code == 200


def test_frontier_points_over_the_limit_are_422_with_the_limit(limited: TestClient) -> None:
    inputs = _own_inputs(2)
    problem = assert_problem(
        limited.post("/v1/portfolios/frontier", json=inputs | {"n_points": 6}),
        422,
        "limit-exceeded",
    )
    assert problem["detail"].startswith(
        "6 frontier points requested; limits.max_frontier_points is 5"
    )
    assert (problem["limit"], problem["value"], problem["requested"]) == (
        "limits.max_frontier_points",
        5,
        6,
    )
    within = limited.post("/v1/portfolios/frontier", json=inputs | {"n_points": 5})
    assert within.status_code == 200, within.text
    assert len(within.json()["points"]) == 5


# -- solver time ------------------------------------------------------------------------


def test_a_solve_that_runs_out_of_time_is_422_with_the_limit(empty: Path) -> None:
    body = _own_inputs(150) | {"objective": "min_variance"}
    with TestClient(_app(_settings(empty, empty))) as roomy:
        solved = roomy.post("/v1/portfolios/optimize", json=body)
        assert solved.status_code == 200, solved.text  # solvable with the default 10 s
        assert solved.json()["solver"]["status"] == "optimal"

    with TestClient(_app(_settings(empty, empty, solver_time_limit_seconds=1e-6))) as tight:
        response = tight.post("/v1/portfolios/optimize", json=body)
        problem = assert_problem(response, 422, "solver-time-limit")
        assert (problem["limit"], problem["value"]) == ("limits.solver_time_limit_seconds", 1e-6)
        # Clarabel itself stopped on its time limit (MaxTime, cvxpy's user_limit); the
        # fallback was not started, the budget being spent.
        assert problem["solver_status"] == "user_limit"
        assert "CLARABEL returned status 'user_limit'" in problem["detail"]
        assert "SCS" not in problem["detail"]
        assert "limits.solver_time_limit_seconds = 1e-06 s" in problem["detail"]
        metrics = tight.get("/metrics").text
        assert (
            'quantserve_optimizer_solves_total{objective="min_variance",status="solver_error"} 1.0'
            in metrics
        )


# -- rate limit -------------------------------------------------------------------------


def test_429_with_retry_after_once_the_burst_is_spent_then_recovery(empty: Path) -> None:
    keys = {name: generate_key() for name in ("alice", "bob")}
    settings = _settings(empty, empty, rate_per_second=1, burst=2).model_copy(
        update={
            "dev_mode": False,
            "api_keys": tuple(
                ApiKey(id=name, role="viewer", sha256=hash_key(key)) for name, key in keys.items()
            ),
        }
    )
    alice, bob = ({"X-API-Key": keys[name]} for name in ("alice", "bob"))
    with TestClient(_app(settings)) as client:
        assert [client.get("/v1/models", headers=alice).status_code for _ in range(2)] == [
            200,
            200,
        ]
        refused = client.get("/v1/models", headers=alice)
        problem = assert_problem(refused, 429, "rate-limited")
        assert refused.headers["Retry-After"] == "1"
        assert "limits.rate_per_second = 1" in problem["detail"]
        assert "limits.burst = 2" in problem["detail"]
        assert (problem["limit"], problem["value"], problem["burst"]) == (
            "limits.rate_per_second",
            1,
            2,
        )
        assert problem["key_id"] == "alice"
        assert client.get("/v1/models", headers=bob).status_code == 200  # per key
        assert client.get("/healthz").status_code == 200  # probes are not limited
        time.sleep(float(refused.headers["Retry-After"]))
        assert client.get("/v1/models", headers=alice).status_code == 200


def test_dev_mode_is_rate_limited_too(empty: Path) -> None:
    with TestClient(_app(_settings(empty, empty, rate_per_second=0.5, burst=1))) as client:
        assert client.get("/v1/models").status_code == 200
        refused = client.get("/v1/models")
        problem = assert_problem(refused, 429, "rate-limited")
        assert problem["key_id"] == "dev"
        assert refused.headers["Retry-After"] == "2"


def test_the_token_bucket_hands_out_exactly_its_capacity_across_threads() -> None:
    bucket = TokenBucket(rate=1e-9, capacity=100)  # no refill within the test

    def take_many(_: int) -> int:
        return sum(bucket.take() == 0.0 for _ in range(50))

    with ThreadPoolExecutor(max_workers=8) as pool:
        granted = sum(pool.map(take_many, range(8)))
    assert granted == 100
    assert bucket.take() == pytest.approx(1e9, rel=1e-3)  # one token's refill time
