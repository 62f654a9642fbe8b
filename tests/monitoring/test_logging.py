"""Structured logs: JSON lines, request ids in and out, nothing secret written."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from app.core.config import Settings
from app.core.logging import JsonFormatter, request_id_var
from app.main import create_app

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def access_log() -> Iterator[io.StringIO]:
    """What the access logger writes, formatted as in production."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("app.access")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(previous)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        environment="test", data_dir=tmp_path / "data", models_dir=tmp_path / "models"
    )
    with TestClient(create_app(settings, registry=CollectorRegistry())) as test_client:
        yield test_client


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_request_id_is_taken_from_the_request_and_returned(
    client: TestClient, access_log: io.StringIO
) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "trace-42.a:b_c"})
    assert response.headers["x-request-id"] == "trace-42.a:b_c"
    (line,) = _lines(access_log)
    assert line["request_id"] == "trace-42.a:b_c"
    assert (line["method"], line["path"], line["status"]) == ("GET", "/healthz", 200)
    assert line["level"] == "debug"  # probes and scrapes are quiet
    assert line["logger"] == "app.access"


def test_a_missing_or_implausible_request_id_is_replaced_by_a_new_one(
    client: TestClient,
) -> None:
    made = {client.get("/healthz").headers["x-request-id"] for _ in range(2)}
    assert len(made) == 2
    assert all(len(rid) == 32 and int(rid, 16) >= 0 for rid in made)
    for bad in ("has spaces", "x" * 129, 'quote"s', "semi;colon"):
        returned = client.get("/healthz", headers={"X-Request-ID": bad}).headers["x-request-id"]
        assert returned != bad
        assert len(returned) == 32


def test_error_responses_carry_the_id_and_no_body_or_header_is_logged(
    client: TestClient, access_log: io.StringIO
) -> None:
    response = client.post(
        "/v1/forecasts?token=query-secret",
        json={"tickers": ["BODY-SECRET", "AAPL"]},
        headers={"X-Request-ID": "req-503", "Authorization": "Bearer header-secret"},
    )
    assert response.status_code == 503
    assert response.headers["x-request-id"] == "req-503"
    (line,) = _lines(access_log)
    assert (line["path"], line["status"], line["level"]) == ("/v1/forecasts", 503, "info")
    assert isinstance(line["duration_ms"], float)
    written = access_log.getvalue()
    for secret in ("BODY-SECRET", "header-secret", "query-secret", "Authorization"):
        assert secret not in written


def test_the_formatter_writes_extras_exceptions_and_the_current_request_id() -> None:
    record = logging.LogRecord("app.x", logging.ERROR, __file__, 1, "failed %s", ("twice",), None)
    record.load_failure = "error"
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    token = request_id_var.set("rid-1")
    try:
        entry = json.loads(JsonFormatter().format(record))
    finally:
        request_id_var.reset(token)
    assert entry["message"] == "failed twice"
    assert entry["level"] == "error"
    assert entry["request_id"] == "rid-1"
    assert entry["load_failure"] == "error"
    assert "ValueError: boom" in entry["exception"]
    assert entry["timestamp"].endswith("+00:00")
    assert "request_id" not in json.loads(JsonFormatter().format(record))


def test_the_logging_config_turns_every_logger_into_json() -> None:
    script = (
        "import logging; from app.core.logging import configure_logging; "
        "configure_logging('info'); "
        "logging.getLogger('uvicorn.error').info('server up'); "
        "logging.getLogger('app.services').warning('not ready'); "
        "logging.getLogger('uvicorn.access').info('an access line the middleware repeats'); "
        "logging.getLogger('app.services').debug('hidden at info')"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert [(e["logger"], e["message"]) for e in lines] == [
        ("uvicorn.error", "server up"),
        ("app.services", "not ready"),
    ]
