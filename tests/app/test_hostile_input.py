"""Hostile input, on the real app: every one is a 4xx that says what was wrong, none a 500.

NaN and infinity, huge and empty arrays, impossible covariances, thousands of tickers,
path traversal, malformed, deeply nested and oversized JSON, and bodies that are not
JSON at all, on every endpoint that takes them. Quantserve's own routes answer RFC 9457
``application/problem+json``; the TensorFlow Serving routes answer its
``{"error": "..."}`` with 400 or 404, as their clients expect (``app.api.routes.tfserving``).

Defects these found, each fixed where it arose: 100,000 nested ``[`` on ``:predict`` was a
500; on the other routes it, and a body that is not UTF-8, were a bare 400 "There was an
error parsing the body" that the schema did not list; a body sent as text/plain, form
data or without a Content-Type was "Input should be a valid dictionary"; a JSON syntax
error named neither what nor where ("body.19: JSON decode error"); NaN against a bound
read "Input should be less than or equal to 1"; checking 10,000 tickers for repeats
took 4 s of the event loop; an error naming 100,000 unknown tickers had a 0.8 MB detail.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx2 as httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from starlette.types import Message, Scope

from app.core.config import BacktestJobSettings, LimitSettings, Settings
from app.main import create_app
from tests.training.synthetic import build_model_store
from training import schema
from training.registry import ModelRegistry

PROBLEM = "application/problem+json"
BODY_LIMIT = 4 * 1024 * 1024  # the default limits.max_body_bytes
LOOKBACK, N_FEATURES = 5, len(schema.FEATURE_COLUMNS)  # build_model_store's versions
OPTIMIZE, FRONTIER, FORECASTS, BACKTESTS = (
    "/v1/portfolios/optimize",
    "/v1/portfolios/frontier",
    "/v1/forecasts",
    "/v1/backtests",
)
PREDICTS = (
    "/v1/models/forecaster:predict",
    "/v1/models/forecaster/versions/1:predict",
    "/v1/models/forecaster/labels/production:predict",
)
JSON_POSTS = (OPTIMIZE, FRONTIER, FORECASTS, BACKTESTS)
TICKERS = ["A", "B", "C"]
EXPECTED = '{"A": 0.05, "B": 0.07, "C": 0.1}'
COVARIANCE = "[[0.04, 0.01, 0.0], [0.01, 0.09, 0.0], [0.0, 0.0, 0.16]]"
RETURNS = "[[0.01, 0.02, 0.0], [0.0, -0.01, 0.02], [0.02, 0.0, -0.01]]"


# Every file the app opens or lists while a traversal request runs (Python audit
# events); an audit hook cannot be removed, so it records only while a list is set.
_opened: list[str] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _opened is not None and event in {"open", "os.listdir", "os.scandir"} and args:
        path = args[0]
        if isinstance(path, str | bytes | Path):
            _opened.append(str(path if not isinstance(path, bytes) else path.decode()))


sys.addaudithook(_audit)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``store/``: one tiny version of "forecaster" (tickers T0..T2); ``secret/`` beside it."""
    base = tmp_path_factory.mktemp("hostile")
    build_model_store(base / "store", versions=1)
    registry = ModelRegistry(base / "store" / "models" / "forecaster")
    registry.register(1)
    registry.promote(1)  # so the production label resolves
    (base / "secret" / "1").mkdir(parents=True)
    (base / "secret" / "1" / "saved_model.pb").write_bytes(b"not for the API")
    return base


@pytest.fixture(scope="module")
def client(root: Path) -> Iterator[TestClient]:
    store = root / "store"
    settings = Settings(
        environment="test",
        data_dir=store / "data",
        models_dir=store / "models",
        dev_mode=True,
        api_keys=(),
        limits=LimitSettings(rate_per_second=0),
        backtests=BacktestJobSettings(max_concurrent=0),  # queue only: nothing runs
        lifecycle={"poll_interval_seconds": 0},
    )
    app = create_app(settings, registry=CollectorRegistry())
    with TestClient(app, raise_server_exceptions=False) as test_client:
        assert test_client.get("/readyz").status_code == 200
        yield test_client


def _post(client: TestClient, path: str, body: str | bytes, content_type: str | None = None):
    headers = {"content-type": content_type} if content_type else {}
    return client.post(path, content=body, headers=headers)


def _problem(response: httpx.Response, *words: str) -> dict[str, Any]:
    """A 4xx problem whose detail holds every one of ``words`` (case-insensitive)."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    assert response.headers["content-type"] == PROBLEM, response.text[:500]
    problem: dict[str, Any] = response.json()
    assert problem["status"] == response.status_code
    detail = problem["detail"].lower()
    for word in words:
        assert word.lower() in detail, (word, problem["detail"][:1000])
    return problem


def _tf_error(response: httpx.Response, *words: str) -> str:
    """TensorFlow Serving's error: 400 or 404 ``{"error": ...}`` holding ``words``."""
    assert response.status_code in (400, 404), (response.status_code, response.text[:500])
    error = response.json()["error"]
    assert isinstance(error, str)
    for word in words:
        assert word.lower() in error.lower(), (word, error[:1000])
    return error


def _own(**fields: str) -> str:
    """An optimize body over A, B, C with its own inputs, ``fields`` as raw JSON text."""
    parts = {"tickers": json.dumps(TICKERS), "expected_returns": EXPECTED}
    parts |= {"covariance": COVARIANCE} | fields
    return "{" + ", ".join(f'"{k}": {v}' for k, v in parts.items()) + "}"


def _instances(value: str) -> str:
    """A well-shaped :predict body whose first number is ``value`` (raw JSON text)."""
    rows = np.zeros((1, LOOKBACK, N_FEATURES)).tolist()
    return json.dumps({"instances": rows}).replace("0.0", value, 1)


# -- NaN and infinity -----------------------------------------------------------------

NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e400"]


@pytest.mark.parametrize("value", NON_FINITE)
@pytest.mark.parametrize(
    ("field", "body"),
    [
        ("expected_returns", lambda v: _own(expected_returns=f'{{"A": {v}, "B": 0.1, "C": 0.1}}')),
        ("covariance", lambda v: _own(covariance=COVARIANCE.replace("0.04", v))),
        (
            "returns",
            lambda v: _own(
                expected_returns="null",
                covariance="null",
                returns=RETURNS.replace("0.01", v, 1),
                periods_per_year="252",
            ),
        ),
        ("current_weights", lambda v: _own(current_weights=f'{{"A": {v}}}')),
        (
            "benchmark_weights",
            lambda v: _own(
                constraints=f'{{"tracking_error": {{"benchmark_weights": {{"A": {v}}}, '
                '"max_tracking_error": 0.1}}'
            ),
        ),
        ("transaction_costs_bps", lambda v: _own(transaction_costs_bps=v)),
        ("risk_free_rate", lambda v: _own(risk_free_rate=v)),
    ],
)
@pytest.mark.parametrize("path", [OPTIMIZE, FRONTIER])
def test_non_finite_numbers_in_portfolio_inputs(
    client: TestClient, path: str, field: str, body: Any, value: str
) -> None:
    response = _post(client, path, body(value), "application/json")
    problem = _problem(response)
    assert response.status_code == 422
    detail = problem["detail"].lower()
    assert any(word in detail for word in ("nan", "finite", "infinite")), problem["detail"]
    assert field.split("_")[0] in detail or "risk_free_rate" in detail or field in detail


@pytest.mark.parametrize("value", NON_FINITE)
def test_non_finite_weights_of_a_risk_budget_and_a_bound(client: TestClient, value: str) -> None:
    budgets = _own(objective='"risk_budgeting"', risk_budgets=f'{{"A": {value}, "B": 1, "C": 1}}')
    _problem(_post(client, OPTIMIZE, budgets, "application/json"), "finite")
    bound = _own(constraints=f'{{"asset_bounds": {{"A": {{"max_weight": {value}}}}}}}')
    _problem(_post(client, OPTIMIZE, bound, "application/json"), "max_weight", "finite")


@pytest.mark.parametrize("value", NON_FINITE)
def test_non_finite_numbers_in_a_backtest(client: TestClient, value: str) -> None:
    body = f'{{"strategies": ["equal_weight"], "cost_bps": {value}}}'
    _problem(_post(client, BACKTESTS, body, "application/json"), "cost_bps", "finite")


@pytest.mark.parametrize("value", NON_FINITE)
@pytest.mark.parametrize("path", PREDICTS)
def test_non_finite_numbers_in_predict_instances(client: TestClient, path: str, value: str) -> None:
    well_shaped = client.post(path, content=_instances("0.5"))
    assert well_shaped.status_code == 200, well_shaped.text
    _tf_error(client.post(path, content=_instances(value)), "not finite")


# -- huge and empty arrays ------------------------------------------------------------

HUGE = 100_000


@pytest.mark.parametrize(
    ("path", "body", "words"),
    [
        (OPTIMIZE, {"tickers": []}, ["tickers", "at least 2"]),
        (FRONTIER, {"tickers": []}, ["tickers", "at least 2"]),
        (FORECASTS, {"tickers": []}, ["tickers", "at least 1"]),
        (BACKTESTS, {"strategies": []}, ["strategies", "at least 1"]),
        (OPTIMIZE, {"tickers": [f"T{i}" for i in range(HUGE)]}, ["tickers", "at most 10000"]),
        (FORECASTS, {"tickers": [f"T{i}" for i in range(HUGE)]}, ["tickers", "at most 10000"]),
        (
            BACKTESTS,
            {"strategies": ["equal_weight"], "tickers": [f"T{i}" for i in range(HUGE)]},
            ["tickers", "at most 10000"],
        ),
        (
            OPTIMIZE,
            {"tickers": TICKERS, "returns": [[0.0] * 3] * HUGE, "periods_per_year": 252},
            ["returns have 100000 rows", "limit is 10000"],
        ),
        (
            OPTIMIZE,
            {
                "tickers": TICKERS,
                "expected_returns": {f"T{i}": 0.0 for i in range(HUGE)},
                "covariance": json.loads(COVARIANCE),
            },
            ["expected_returns must have one value per ticker", "and 99,990 more"],
        ),
        (
            OPTIMIZE,
            {
                "tickers": TICKERS,
                **json.loads(_own()),
                "current_weights": {f"T{i}": 0.0 for i in range(HUGE)},
            },
            ["current_weights names tickers not in tickers", "and 99,990 more"],
        ),
        (FORECASTS, {"tickers": ["A", "B"] * 5_000}, ["tickers must be unique", "repeated"]),
        (
            OPTIMIZE,
            {"tickers": TICKERS, "expected_returns": json.loads(EXPECTED), "covariance": [[]] * 3},
            ["covariance must be 3 x 3"],
        ),
        (
            FRONTIER,
            {"tickers": TICKERS, "expected_returns": json.loads(EXPECTED), "covariance": []},
            ["covariance must be 3 x 3"],
        ),
    ],
    ids=[
        "optimize-no-tickers",
        "frontier-no-tickers",
        "forecasts-no-tickers",
        "backtests-no-strategies",
        "optimize-1e5-tickers",
        "forecasts-1e5-tickers",
        "backtests-1e5-tickers",
        "optimize-1e5-return-rows",
        "optimize-1e5-expected-returns",
        "optimize-1e5-current-weights",
        "forecasts-1e4-repeated-tickers",
        "optimize-empty-covariance-rows",
        "frontier-empty-covariance",
    ],
)
def test_huge_and_empty_arrays(
    client: TestClient, path: str, body: dict[str, Any], words: list[str]
) -> None:
    started = time.monotonic()
    response = client.post(path, json=body)
    problem = _problem(response, *words)
    assert response.status_code == 422
    assert len(problem["detail"]) < 2_000, "a detail that repeats the input is no help"
    assert time.monotonic() - started < 20


@pytest.mark.parametrize("path", PREDICTS)
def test_huge_and_empty_predict_batches(client: TestClient, path: str) -> None:
    _tf_error(client.post(path, json={"instances": []}), "non-empty list")
    _tf_error(client.post(path, json={"instances": [[]] * HUGE}), "100000 instances", "1024")
    _tf_error(client.post(path, json={"inputs": {"features": []}}), "non-empty list")


# -- impossible covariances -----------------------------------------------------------


@pytest.mark.parametrize(
    ("covariance", "words"),
    [
        ([[0.04, 0.02, 0.0], [0.0, 0.09, 0.0], [0.0, 0.0, 0.16]], ["not symmetric"]),
        ([[0.04, 0.0, 0.0], [0.0, -0.09, 0.0], [0.0, 0.0, 0.16]], ["positive semidefinite"]),
        ([[1.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 1.0]], ["positive semidefinite"]),
        ([[0.04, 0.0], [0.0, 0.09]], ["covariance must be 3 x 3"]),
        ([[0.04, 0.0, 0.0], [0.0, 0.09, 0.0]], ["covariance must be 3 x 3"]),
        ([[0.04, 0.0, 0.0], [0.0, 0.09], [0.0, 0.0, 0.16]], ["covariance must be 3 x 3"]),
        ([[0.04, 0.0, 0.0, 1.0], [0.0, 0.09, 0.0], [0.0, 0.0, 0.16]], ["must be 3 x 3"]),
    ],
    ids=["asymmetric", "negative-variance", "indefinite", "2x2", "2x3", "ragged", "row-of-4"],
)
@pytest.mark.parametrize("path", [OPTIMIZE, FRONTIER])
def test_impossible_covariances(
    client: TestClient, path: str, covariance: list[list[float]], words: list[str]
) -> None:
    body = {"tickers": TICKERS, "expected_returns": json.loads(EXPECTED), "covariance": covariance}
    response = client.post(path, json=body)
    _problem(response, "covariance", *words)
    assert response.status_code == 422


# -- thousands of tickers -------------------------------------------------------------


@pytest.mark.parametrize("count", [2_000, 10_000])  # 10,000: the schema's own ceiling
@pytest.mark.parametrize("path", [OPTIMIZE, FRONTIER, FORECASTS])
def test_thousands_of_tickers_are_over_the_limit(client: TestClient, path: str, count: int) -> None:
    tickers = [f"T{i}" for i in range(count)]  # limits.max_tickers is 500
    started = time.monotonic()
    response = client.post(path, json={"tickers": tickers})
    # Checking 10,000 tickers for repeats took 4 s (list.count per ticker), on the event loop.
    assert time.monotonic() - started < 2
    problem = _problem(response, f"{count} tickers requested")
    assert (problem["limit"], problem["value"], problem["requested"]) == (
        "limits.max_tickers",
        500,
        count,
    )


def test_thousands_of_tickers_in_a_backtest_are_checked_quickly(client: TestClient) -> None:
    body = {"strategies": ["equal_weight"], "tickers": [f"T{i}" for i in range(10_000)]}
    started = time.monotonic()
    response = client.post(BACKTESTS, json=body)
    assert time.monotonic() - started < 2
    _problem(response, "T0")  # none of them is in the data set


# -- path traversal -------------------------------------------------------------------

TRAVERSALS = [
    ("GET", "/v1/models/%2e%2e"),
    ("GET", "/v1/models/%2e%2e/metadata"),
    ("GET", "/v1/models/%2e%2e/versions/1"),
    ("GET", "/v1/models/%2e%2e%2fsecret/versions/1/metadata"),
    ("GET", "/v1/models/..%2Fsecret/versions/1"),
    ("GET", "/v1/models/%2Fetc/versions/1"),
    ("GET", "/v1/models/forecaster/versions/%2e%2e"),
    ("GET", "/v1/models/forecaster/versions/1%2F..%2F..%2Fsecret%2F1"),
    ("GET", "/v1/models/forecaster/labels/%2e%2e"),
    ("GET", "/v1/models/forecaster/labels/%2e%2e/metadata"),
    ("GET", "/v1/models/forecaster/labels/..%2F..%2F..%2Fsecret"),
    ("GET", "/v1/models/forecaster/labels/%2Fetc%2Fpasswd"),
    ("GET", "/v1/models/%2e%2e/versions/1/evaluation"),
    ("GET", "/v1/models/%2E/versions/1/evaluation"),
    ("GET", "/v1/models/..%2Fsecret/versions/1/evaluation"),
    ("POST", "/v1/models/%2e%2e:predict"),
    ("POST", "/v1/models/..%2Fsecret:predict"),
    ("POST", "/v1/models/forecaster/versions/%2e%2e:predict"),
    ("POST", "/v1/models/forecaster/labels/%2e%2e:predict"),
    ("POST", "/v1/models/forecaster/labels/%2Fetc%2Fpasswd:predict"),
    ("GET", "/v1/backtests/%2e%2e"),
    ("GET", "/v1/backtests/%2e%2e/report"),
    ("GET", "/v1/backtests/%2e%2e/equity"),
    ("GET", "/v1/backtests/..%2F..%2Fsecret/report"),
    ("GET", "/v1/backtests/%2Fetc%2Fpasswd/report"),
    ("DELETE", "/v1/backtests/%2e%2e"),
    ("POST", "/v1/admin/models/%2e%2e/versions/1/promote"),
    ("POST", "/v1/admin/models/..%2Fsecret/versions/1/promote"),
    ("POST", "/v1/admin/models/%2e%2e/rollback"),
    ("GET", "/model_card/..%2F..%2Fsecret%2F1%2Fsaved_model.pb"),
    ("GET", "/assets/..%2F..%2Fsecret"),
]


def _send_raw(client: TestClient, method: str, raw_path: str, body: bytes) -> tuple[int, bytes]:
    """``raw_path`` to the app exactly as uvicorn passes it: percent-decoded, dots kept.

    HTTP clients remove ``.`` and ``..`` segments before sending (httpx does); a raw
    socket does not, and uvicorn hands the app the decoded path as it came.
    """
    messages: list[Message] = []
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode("ascii"),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        messages.append(message)

    async def call() -> None:
        await client.app(scope, receive, send)

    assert client.portal is not None
    client.portal.call(call)
    status = next(m["status"] for m in messages if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return status, content


@pytest.mark.parametrize(
    ("method", "path"),
    [
        *TRAVERSALS,
        ("GET", "/v1/models/../secret/versions/1"),
        ("GET", "/v1/models/forecaster/labels/../../../secret"),
        ("GET", "/v1/models/../../secret/versions/1/evaluation"),
        ("POST", "/v1/models/forecaster/versions/../../../secret/1:predict"),
        ("GET", "/v1/backtests/../../secret/report"),
        ("GET", "/v1/backtests/..//etc/passwd/equity"),
        ("POST", "/v1/admin/models/../secret/versions/1/promote"),
        ("GET", "/model_card/../../secret/1/saved_model.pb"),
    ],
)
def test_path_traversal_never_reads_outside_the_store(
    client: TestClient, root: Path, method: str, path: str
) -> None:
    global _opened
    _opened = []
    try:
        body = _instances("0.5").encode() if path.endswith(":predict") else b""
        status, content = _send_raw(client, method, path, body)
    finally:
        opened, _opened = _opened, None
    assert status in (400, 404), (status, content[:500])
    answer = json.loads(content)
    assert answer.get("detail") or answer.get("error"), answer
    assert b"not for the api" not in content.lower()
    store = (root / "store").resolve()
    touched = [Path(p).resolve() for p in opened]
    beside = [p for p in touched if p.is_relative_to(root.resolve())]
    outside = [p for p in beside if not p.is_relative_to(store)]
    assert not outside, f"read outside the store: {outside}"
    assert not [p for p in touched if p.is_relative_to("/etc")]


def test_the_file_watch_sees_what_a_legitimate_request_reads(
    client: TestClient, root: Path
) -> None:
    global _opened
    _opened = []
    try:
        status, _ = _send_raw(client, "GET", "/v1/models/forecaster", b"")  # lists versions
    finally:
        opened, _opened = _opened, None
    assert status == 200
    store = (root / "store").resolve()
    assert [p for p in opened if Path(p).resolve().is_relative_to(store)], opened


# -- malformed, deeply nested and oversized JSON --------------------------------------

MALFORMED = [
    ('{"tickers": ["A", "B"', "Expecting"),
    ('{"tickers": ["A", "B"],}', "Expecting property name"),
    ("{'tickers': ['A', 'B']}", "Expecting property name"),
    ('{"tickers": undefined}', "Expecting value"),
    ("\x00\x01", "Expecting value"),
]


@pytest.mark.parametrize(("body", "reason"), MALFORMED)
@pytest.mark.parametrize("path", JSON_POSTS)
def test_malformed_json_says_what_and_where(
    client: TestClient, path: str, body: str, reason: str
) -> None:
    problem = _problem(_post(client, path, body, "application/json"), "not valid JSON", reason)
    assert "at character" in problem["detail"]
    assert problem["errors"][0]["location"] == "body"


@pytest.mark.parametrize(("body", "reason"), MALFORMED)
@pytest.mark.parametrize("path", PREDICTS)
def test_malformed_json_on_predict(client: TestClient, path: str, body: str, reason: str) -> None:
    _tf_error(_post(client, path, body, "application/json"), "JSON Parse error", reason)


@pytest.mark.parametrize("path", JSON_POSTS)
def test_a_body_that_is_not_utf8(client: TestClient, path: str) -> None:
    _problem(_post(client, path, b'{"tickers": ["\xff\xfe"]}', "application/json"), "not UTF-8")


NESTED = ["[" * 100_000, '{"a": ' * 100_000, "[" * 100_000 + "]" * 100_000]


@pytest.mark.parametrize("body", NESTED, ids=["open-lists", "open-objects", "closed-lists"])
@pytest.mark.parametrize("path", [*JSON_POSTS, *PREDICTS])
def test_deeply_nested_json_is_refused_quickly(client: TestClient, path: str, body: str) -> None:
    started = time.monotonic()
    response = _post(client, path, body, "application/json")
    if path in PREDICTS:
        _tf_error(response, "too deeply")
    else:
        _problem(response, "nests arrays or objects too deeply")
        assert response.status_code == 422
    assert time.monotonic() - started < 10


POSTS = [*JSON_POSTS, *PREDICTS, "/v1/admin/reload"]


@pytest.mark.parametrize("path", POSTS)
def test_oversized_json_is_413_with_or_without_content_length(
    client: TestClient, path: str
) -> None:
    body = b'{"tickers": ["' + b"x" * BODY_LIMIT + b'"]}'
    declared = _post(client, path, body, "application/json")
    problem = _problem(declared, "limits.max_body_bytes", f"declares {len(body)} bytes")
    assert declared.status_code == 413
    assert problem["value"] == BODY_LIMIT

    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
        yield b'{"tickers": ["'
        yield from (b"x" * 1024 * 1024 for _ in range(5))

    if path.startswith("/v1/admin/"):
        return  # takes no body: one that streams in is never read, so never counted
    streamed = client.post(path, content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in streamed.request.headers
    _problem(streamed, "limits.max_body_bytes", "while streaming")
    assert streamed.status_code == 413


# -- wrong content types --------------------------------------------------------------

CONTENT_TYPES = ["text/plain", "application/x-www-form-urlencoded", None]


@pytest.mark.parametrize("content_type", CONTENT_TYPES, ids=["text", "form", "none"])
@pytest.mark.parametrize("path", JSON_POSTS)
def test_a_body_not_sent_as_json_is_refused_saying_so(
    client: TestClient, path: str, content_type: str | None
) -> None:
    body = json.dumps({"tickers": TICKERS, "strategies": ["equal_weight"]})
    problem = _problem(
        _post(client, path, body, content_type), "must be a JSON object", "Content-Type"
    )
    assert (content_type or "no Content-Type") in problem["detail"]
    form = _problem(_post(client, path, "tickers=A&tickers=B", content_type), "Content-Type")
    assert form["status"] == 422


@pytest.mark.parametrize("content_type", CONTENT_TYPES, ids=["text", "form", "none"])
@pytest.mark.parametrize("path", PREDICTS)
def test_predict_reads_json_whatever_the_content_type(
    client: TestClient, path: str, content_type: str | None
) -> None:
    # TensorFlow Serving parses the body as JSON whatever the header says; so do these.
    assert _post(client, path, _instances("0.5"), content_type).status_code == 200
    _tf_error(_post(client, path, "instances=1", content_type), "JSON Parse error")


@pytest.mark.parametrize("content_type", CONTENT_TYPES, ids=["text", "form", "none"])
def test_admin_actions_take_no_body_and_ignore_one(
    client: TestClient, content_type: str | None
) -> None:
    response = _post(client, "/v1/admin/reload", "garbage=1", content_type)
    assert response.status_code == 200, response.text
    assert response.json()["action"] == "reload"
