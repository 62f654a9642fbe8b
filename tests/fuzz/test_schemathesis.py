"""Schemathesis fuzzes the whole API from its own ``/openapi.json``: no 5xx, nothing undocumented.

One real server, uvicorn on loopback inside this process, serves a copy of the pipeline's
model (5 tickers) with an admin key, no rate limit and back-tests that only queue. The
schemathesis engine then runs its phases against every operation of the schema, the
TensorFlow Serving ones included: the schema's examples, coverage (boundary and invalid
values of every parameter and field, unexpected methods), property-based fuzzing
(valid and invalid data), and stateful sequences along the schema's links (a
back-test's POST declares GET /v1/backtests/{id}, its report, its equity and DELETE)
and those it infers from responses (the list's ids, Location headers).

Checks, each on every response:

- ``not_a_server_error``: no 5xx;
- ``status_code_conformance``: the status is one the operation documents;
- ``content_type_conformance``: so is the Content-Type (problem+json for errors);
- ``response_schema_conformance``: the body validates against the documented schema;
- ``ignored_auth``: the operation refuses a request without the key or with a wrong one;
- ``unsupported_method``: a method the path does not document is a 405.

Left out, on purpose: ``positive_data_acceptance`` (schema-valid bodies are refused for
rules a JSON schema cannot state: covariance shape, tickers named in several fields,
the fields of one objective, unknown tickers), ``negative_data_rejection`` (pydantic's
lax mode accepts more than the schema states, e.g. a Unix time for a date-time),
``use_after_free`` (DELETE cancels a back-test, which stays readable), and
``allow_header_conformance`` (``/v1/models/{name}`` also matches ``x:predict``, so a 405
there cannot list only what the schema documents for ``{name}:predict``).

``QUANTSERVE_FUZZ_EXAMPLES`` sets the examples per operation of the fuzzing phase (10
here, 100 in ``make fuzz``); ``QUANTSERVE_FUZZ_SEED`` the seed. Whatever happens, the
figures go to ``test-artifacts/fuzz/summary.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import schemathesis
import uvicorn
from prometheus_client import CollectorRegistry
from schemathesis import engine
from schemathesis.engine import events
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.config import ApiKey, BacktestJobSettings, LifecycleSettings, LimitSettings, Settings
from app.core.security import generate_key, hash_key
from app.main import create_app

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("QUANTSERVE_FUZZ_EXAMPLES", "10"))
SEED = int(os.environ.get("QUANTSERVE_FUZZ_SEED", "20240611"))
MIN_REQUESTS = 1_000
ADMIN_EXAMPLES = max(2, EXAMPLES // 10)
"""Each admin action loads and verifies a model version (~1 s): fewer examples there."""
STATEFUL_EXAMPLES = 5 * EXAMPLES
"""Sequences of calls; a POST /v1/backtests seldom draws a valid body, so more of them."""
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "ignored_auth",
    "unsupported_method",
)
SUMMARY = Path(__file__).resolve().parents[2] / "test-artifacts" / "fuzz" / "summary.json"
BACKTEST = "/v1/backtests/{job_id}"


class _StatusCounter:
    """ASGI middleware counting the responses the app itself sends, by status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.statuses: Counter[int] = Counter()
        self.lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                with self.lock:
                    self.statuses[message["status"]] += 1
            await send(message)

        await self.app(scope, receive, counting_send)


@dataclass
class _Server:
    url: str
    key: str
    counter: _StatusCounter


@pytest.fixture(scope="module")
def server(pipeline_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Server]:
    """uvicorn on loopback over a copy of the pipeline's data and models (admin writes)."""
    root = tmp_path_factory.mktemp("fuzz") / "store"
    shutil.copytree(pipeline_dir, root)  # promote, rollback and audit write here
    key = generate_key()
    settings = Settings(
        environment="test",
        data_dir=root / "data",
        models_dir=root / "models",
        api_keys=(ApiKey(id="fuzz-admin", role="admin", sha256=hash_key(key)),),
        limits=LimitSettings(rate_per_second=0),
        # Queued only: no back-test job starts while the fuzzer submits hundreds.
        backtests=BacktestJobSettings(max_concurrent=0, max_queued=10_000),
        lifecycle=LifecycleSettings(poll_interval_seconds=0),
    )
    counter = _StatusCounter(create_app(settings, registry=CollectorRegistry()))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = int(listener.getsockname()[1])
    uvicorn_server = uvicorn.Server(
        uvicorn.Config(counter, log_config=None, access_log=False, lifespan="on", ws="none")
    )
    thread = threading.Thread(
        target=uvicorn_server.run, kwargs={"sockets": [listener]}, daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 120
    while not uvicorn_server.started:
        assert thread.is_alive(), "uvicorn stopped while starting"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield _Server(f"http://127.0.0.1:{port}", key, counter)
    uvicorn_server.should_exit = True
    thread.join(timeout=60)
    listener.close()


@dataclass
class _Run:
    """What the engine sent and found."""

    statuses: Counter[int] = field(default_factory=Counter)
    by_phase: Counter[str] = field(default_factory=Counter)
    by_operation: Counter[str] = field(default_factory=Counter)
    failures: dict[tuple[str, str, str], str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    followed_backtest_links: Counter[str] = field(default_factory=Counter)
    """GET /v1/backtests/{job_id} answered 200 after a link, by the operation linked from."""
    seconds: float = 0.0
    stop_reason: str = ""

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())


def _config(key: str) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "headers": {"X-API-Key": key},
            "workers": 1,
            # An admin promote loads and verifies a model: seconds when the machine is
            # shared, so a 10 s client timeout (the default) measured the machine.
            "request-timeout": 60.0,
            "generation": {"max-examples": EXAMPLES, "database": "none"},
            # Sequences are where a back-test's id is followed: they get more examples.
            "phases": {"stateful": {"generation": {"max-examples": STATEFUL_EXAMPLES}}},
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
            "operations": [
                {
                    "include-path-regex": "^/v1/admin/",
                    "generation": {"max-examples": ADMIN_EXAMPLES},
                }
            ],
        }
    )


def _record(run: _Run, event: events.ScenarioFinished) -> None:
    recorder = event.recorder
    for case_id, interaction in recorder.interactions.items():
        node = recorder.cases.get(case_id)
        label = node.value.operation.label if node is not None else str(event.label)
        run.by_phase[str(event.phase)] += 1
        run.by_operation[label] += 1
        run.statuses[interaction.response.status_code if interaction.response else 0] += 1
        # A link followed: this GET took a job's id from an earlier response (the POST's
        # body or Location, the list, or the job itself) and found the job.
        transition = node.transition if node is not None else None
        parent = recorder.cases.get(transition.parent_id) if transition is not None else None
        if (
            parent is not None
            and label == f"GET {BACKTEST}"
            and interaction.response is not None
            and interaction.response.status_code == 200
        ):
            run.followed_backtest_links[parent.value.operation.label] += 1
    for checks in recorder.checks.values():
        for check in checks:
            if check.failure_info is None:
                continue
            failure = check.failure_info.failure
            key = (str(event.label or ""), check.name, failure.title)
            run.failures.setdefault(key, f"{failure.message}\n{check.failure_info.code_sample}")


def _fuzz(server: _Server) -> _Run:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json", config=_config(server.key))
    run = _Run()
    for event in engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            _record(run, event)
        elif isinstance(event, events.NonFatalError | events.FatalError):
            run.errors.append(str(getattr(event, "info", None) or event.exception))  # type: ignore[attr-defined]
        elif isinstance(event, events.EngineFinished):
            run.seconds, run.stop_reason = event.running_time, str(event.stop_reason)
    return run


@pytest.fixture(scope="module")
def run(server: _Server) -> _Run:
    """One engine run; its figures go to test-artifacts/fuzz/summary.json, pass or fail."""
    result = _fuzz(server)
    SUMMARY.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "requests_sent": result.requests,
        "requests_answered_by_the_app": sum(server.counter.statuses.values()),
        "status_codes": dict(sorted((str(k), v) for k, v in result.statuses.items())),
        "status_codes_sent_by_the_app": dict(
            sorted((str(k), v) for k, v in server.counter.statuses.items())
        ),
        "requests_by_phase": dict(result.by_phase),
        "requests_by_operation": dict(sorted(result.by_operation.items())),
        "backtests_found_through_links_from": dict(result.followed_backtest_links),
        "engine_seconds": round(result.seconds, 1),
        "stop_reason": result.stop_reason,
        "examples_per_operation": EXAMPLES,
        "admin_examples_per_operation": ADMIN_EXAMPLES,
        "seed": SEED,
        "checks": list(CHECKS),
        "failures": [
            {"operation": op, "check": check, "title": title, "detail": detail}
            for (op, check, title), detail in result.failures.items()
        ],
        "errors": result.errors,
    }
    SUMMARY.write_text(json.dumps(summary, indent=2) + "\n")
    print(  # shown with -s; the summary file has it either way
        f"\nschemathesis: {result.requests} requests in {result.seconds:.0f} s, "
        f"status codes {summary['status_codes']}, {len(result.failures)} failures"
    )
    return result


def test_no_response_is_a_5xx_or_undocumented(run: _Run) -> None:
    report = "\n\n".join(
        f"{op} [{check}] {title}\n{detail}" for (op, check, title), detail in run.failures.items()
    )
    assert not run.failures, f"{len(run.failures)} distinct failures:\n\n{report}"
    assert not run.errors
    assert not [status for status in run.statuses if status >= 500 or status == 0]
    assert run.stop_reason == "completed"


def test_at_least_1000_requests_reached_the_app(run: _Run, server: _Server) -> None:
    assert run.requests >= MIN_REQUESTS, run.by_phase
    # Counted again where the app answers (a request too malformed for uvicorn's HTTP
    # parser is refused before it, so this may be lower than what was sent).
    assert sum(server.counter.statuses.values()) >= MIN_REQUESTS
    assert {"examples", "coverage", "fuzzing", "stateful"} <= set(run.by_phase)


def test_every_operation_of_the_schema_was_fuzzed(run: _Run, server: _Server) -> None:
    document = httpx.get(f"{server.url}/openapi.json").json()
    operations = {
        f"{method.upper()} {path}"
        for path, methods in document["paths"].items()
        for method in methods
    }
    assert len(operations) >= 25
    assert {"POST /v1/models/{name}:predict", f"DELETE {BACKTEST}"} <= operations
    starved = {op: run.by_operation[op] for op in operations if run.by_operation[op] < 5}
    assert not starved, f"operations with fewer than 5 requests: {starved}"


def test_stateful_sequences_followed_links_to_a_backtest(run: _Run) -> None:
    # From the POST itself only when the fuzzer drew a valid body there (a few percent
    # of its draws): how often varies from run to run, so any link counts here.
    assert sum(run.followed_backtest_links.values()) > 0, run.by_phase
