"""The load benchmark's harness: wrk's numbers read right, failed requests never reported
as throughput, targets judged against the bare endpoint."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench._load_scenarios import (
    Scenario,
    at_least_of_bare,
    at_least_rps,
    p99_at_most_times_bare,
)
from bench.harness import Server, WrkResult, parse_wrk_output, run_wrk, wrk_script
from bench.load import baseline, judge, table


def _result(rps: float, p99_ms: float, non_2xx: int = 0) -> WrkResult:
    return WrkResult(
        requests=int(rps * 10),
        seconds=10.0,
        non_2xx=non_2xx,
        socket_errors=0,
        p50_ms=p99_ms / 4,
        p90_ms=p99_ms / 2,
        p99_ms=p99_ms,
        max_ms=p99_ms * 2,
        mean_ms=p99_ms / 3,
    )


BARE = _result(2000, 20.0)
FORECASTS = Scenario(
    "forecasts",
    "quantserve",
    "/v1/forecasts",
    {},
    (at_least_of_bare(0.60), p99_at_most_times_bare(1.5)),
)


def test_targets_are_judged_against_the_bare_endpoint() -> None:
    assert judge(FORECASTS, _result(1300, 29.0), BARE).verdict == "PASS"
    slow = judge(FORECASTS, _result(1100, 29.0), BARE)  # 55% of bare
    assert slow.verdict == "FAIL"
    assert slow.targets == {"req/s >= 60% of bare": False, "p99 <= 1.5x bare": True}
    assert judge(FORECASTS, _result(1300, 31.0), BARE).verdict == "FAIL"  # p99 1.55x
    optimize = Scenario("optimize", "quantserve", "/", {}, (at_least_rps(150),))
    assert judge(optimize, _result(151, 90.0), BARE).verdict == "PASS"
    assert judge(optimize, _result(149, 90.0), BARE).verdict == "FAIL"


def test_a_run_with_failed_requests_is_invalid_not_throughput() -> None:
    fast_but_failing = judge(FORECASTS, _result(5000, 1.0, non_2xx=3), BARE)
    assert fast_but_failing.verdict == "INVALID"
    assert set(fast_but_failing.targets.values()) == {None}
    (row,) = table([fast_but_failing], BARE)[2:]
    assert "INVALID" in row
    assert "5,000" not in row  # no throughput figure for it
    assert "3 of 50,000" in row


def test_the_baseline_merges_the_first_and_last_bare_runs() -> None:
    merged = baseline(_result(2000, 20.0), _result(1000, 30.0))
    assert merged.rps == pytest.approx(1500)
    assert merged.p99_ms == pytest.approx(25.0)
    assert merged.valid


def test_the_lua_done_hook_output_is_parsed() -> None:
    output = (
        "Running 1s test @ http://127.0.0.1:1/\n"
        'WRK_RESULT {"requests": 1234, "duration_us": 2000000, "non_2xx": 5, '
        '"socket_errors": 1, "p50_us": 1500, "p90_us": 2500, "p99_us": 9000, '
        '"max_us": 12000, "mean_us": 1800.5}\n'
    )
    result = parse_wrk_output(output)
    assert result.rps == pytest.approx(617)
    assert (result.non_2xx, result.socket_errors) == (5, 1)
    assert (result.p50_ms, result.p99_ms, result.max_ms) == (1.5, 9.0, 12.0)
    assert not result.valid


def test_a_body_that_would_close_the_lua_string_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\]==\]"):
        wrk_script("POST", b'{"x": "]==]"}', {})


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The bare app under gunicorn, as the benchmark starts it."""
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (apt-get install -y wrk)")
    workdir: Path = tmp_path_factory.mktemp("bench")
    with Server(
        "bare", "bench.bare_app:app", workers=1, ready_path="/openapi.json", workdir=workdir
    ) as server:
        yield server


def test_wrk_counts_answers_and_failures_on_a_real_server(bare: Server) -> None:
    headers = {"Content-Type": "application/json"}
    good = run_wrk(
        bare.url + "/echo",
        body=b'{"tickers":["AAPL"]}',
        headers=headers,
        connections=2,
        threads=1,
        seconds=1,
    )
    assert good.valid
    assert good.requests > 10
    assert 0 < good.p50_ms <= good.p99_ms <= good.max_ms
    bad = run_wrk(
        bare.url + "/echo",
        body=b'{"tickers": 3}',
        headers=headers,
        connections=2,
        threads=1,
        seconds=1,
    )  # 422 from the bare app: every request fails
    assert not bad.valid
    assert bad.non_2xx == bad.requests > 10
