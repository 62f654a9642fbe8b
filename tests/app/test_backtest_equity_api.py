"""``GET /v1/backtests/{id}/equity``: a real app, real jobs, a real worker process.

As in ``test_backtests_api``, two servers share one data folder, one after the other: the
first only queues (its jobs are refused with 409 until they succeed; one is failed and
one cancelled), the second runs the queued back-test (the embedded S&P 500 set over
2018, monthly) to success. The curves are then checked against the job's own files:
``returns.parquet`` (the daily net returns) and ``metrics.json`` (the order, the total
return, the maximum drawdown). API keys are on, so the route's role is checked too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from app.core.config import ApiKey, BacktestJobSettings, LimitSettings, Settings
from app.core.security import generate_key, hash_key
from app.main import create_app
from app.services._backtest_store import BacktestStore, Owner
from backtest import METRICS_FILE, RETURNS_FILE, equity_curves, strategy_metrics
from tests.app._problems import assert_problem

PROBLEM = "application/problem+json"
BACKTESTS = "/v1/backtests"
# min_variance first: the answer's order is metrics.json's (1/N and the index are added
# after what was asked for), not alphabetical.
BODY: dict[str, Any] = {
    "strategies": ["min_variance", "equal_weight"],
    "start": "2018-01-01",
    "end": "2018-12-31",
    "rebalance": "monthly",
    "cost_bps": 10,
}
KEYS = {role: generate_key() for role in ("viewer", "trader")}
VIEWER = {"X-API-Key": KEYS["viewer"]}
TRADER = {"X-API-Key": KEYS["trader"]}


def _settings(root: Path, max_concurrent: int) -> Settings:
    return Settings(
        environment="test",
        data_dir=root / "data",
        models_dir=root / "models",
        dev_mode=False,
        api_keys=[
            ApiKey(id=f"{role}-key", role=role, sha256=hash_key(key)) for role, key in KEYS.items()
        ],
        limits=LimitSettings(rate_per_second=0),
        backtests=BacktestJobSettings(max_concurrent=max_concurrent, poll_interval_seconds=0.2),
    )


def _strict_json(text: str) -> Any:
    """JSON that refuses NaN and Infinity, which the standard module accepts."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in the answer")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data folder both servers share; no model is trained."""
    return tmp_path_factory.mktemp("equity")


@pytest.fixture(scope="module")
def before_run(root: Path) -> Iterator[dict[str, Any]]:
    """The queueing server: a failed job, the job to run (queued), a cancelled one."""
    with TestClient(create_app(_settings(root, 0), registry=CollectorRegistry())) as client:
        submit = {**BODY, "strategies": ["equal_weight"]}
        failed = client.post(BACKTESTS, json=submit, headers=TRADER).json()["id"]
        # Failed as a worker fails a job: claimed (the oldest queued), then its problem.
        store = BacktestStore.open(f"sqlite:///{root / 'data' / 'backtests.db'}")
        try:
            claim = store.claim_next(Owner("elsewhere", 1, "f" * 32))
            assert claim is not None
            assert claim.job.id == failed
            problem = {
                "type": "/problems/backtest-failed",
                "title": "The back-test failed",
                "status": 500,
                "detail": "a test failure",
            }
            assert store.fail(failed, claim.token, problem)
        finally:
            store.close()
        queued = client.post(BACKTESTS, json=BODY, headers=TRADER).json()["id"]
        cancelled = client.post(BACKTESTS, json=submit, headers=TRADER).json()["id"]
        assert client.delete(f"{BACKTESTS}/{cancelled}", headers=TRADER).status_code == 200
        yield {"client": client, "queued": queued, "failed": failed, "cancelled": cancelled}


@pytest.fixture(scope="module")
def succeeded(root: Path, before_run: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The queued job run to success by a server with one worker; its folder's files."""
    job_id = before_run["queued"]
    with TestClient(create_app(_settings(root, 1), registry=CollectorRegistry())) as client:
        deadline = time.monotonic() + 300
        while (job := client.get(f"{BACKTESTS}/{job_id}", headers=VIEWER).json())["status"] in (
            "queued",
            "running",
        ):
            assert time.monotonic() < deadline, job
            time.sleep(0.5)
        assert job["status"] == "succeeded", job["error"]
        folder = root / "data" / "backtests" / job_id
        returns = pd.read_parquet(folder / RETURNS_FILE)
        yield {
            "client": client,
            "id": job_id,
            "folder": folder,
            "metrics": json.loads((folder / METRICS_FILE).read_text())["strategies"],
            "returns": returns.pivot(index="date", columns="strategy", values="net_return"),
        }


def _equity(state: dict[str, Any], **params: Any) -> dict[str, Any]:
    response = state["client"].get(
        f"{BACKTESTS}/{state['id']}/equity", params=params, headers=VIEWER
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = _strict_json(response.text)
    return body


# -- before the job succeeded --------------------------------------------------------


@pytest.mark.parametrize(
    ("job", "status", "fix"),
    [
        ("queued", "queued", "poll GET /v1/backtests/"),
        ("failed", "failed", "shows why: fix the request and submit it again"),
        ("cancelled", "cancelled", "submit it again (POST /v1/backtests)"),
    ],
)
def test_a_job_that_has_not_succeeded_is_409_saying_what_to_do(
    before_run: dict[str, Any], job: str, status: str, fix: str
) -> None:
    job_id = before_run[job]
    response = before_run["client"].get(f"{BACKTESTS}/{job_id}/equity", headers=VIEWER)
    problem = assert_problem(response, 409, "backtest-conflict")
    assert (problem["id"], problem["backtest_status"]) == (job_id, status)
    assert f"back-test {job_id}" in problem["detail"]
    assert "equity curves" in problem["detail"]
    assert fix in problem["detail"]


def test_an_unknown_id_is_404(before_run: dict[str, Any]) -> None:
    response = before_run["client"].get(f"{BACKTESTS}/0123abcd/equity", headers=VIEWER)
    problem = assert_problem(response, 404, "backtest-not-found")
    assert problem["id"] == "0123abcd"
    assert "GET /v1/backtests lists them" in problem["detail"]


@pytest.mark.parametrize("points", ["9", "20001", "0", "-5", "1606429250434622291968", "ten"])
def test_points_outside_10_to_20000_are_422(before_run: dict[str, Any], points: str) -> None:
    response = before_run["client"].get(
        f"{BACKTESTS}/{before_run['queued']}/equity", params={"points": points}, headers=VIEWER
    )
    problem = assert_problem(response, 422, "invalid-request")
    assert [error["location"] for error in problem["errors"]] == ["query.points"]


def test_the_viewer_role_is_needed(before_run: dict[str, Any]) -> None:
    path = f"{BACKTESTS}/{before_run['queued']}/equity"
    assert_problem(before_run["client"].get(path), 401, "unauthorized")
    assert_problem(
        before_run["client"].get(path, headers={"X-API-Key": "qs_nope"}), 401, "unauthorized"
    )
    # The viewer key reaches the route (which refuses the unfinished job on its own terms).
    assert_problem(before_run["client"].get(path, headers=VIEWER), 409, "backtest-conflict")


# -- once it succeeded ------------------------------------------------------------------


def test_every_day_is_a_point_when_there_are_fewer_days_than_points(
    succeeded: dict[str, Any],
) -> None:
    body = _equity(succeeded)  # points: 1000 by default, more than a year's days
    daily = succeeded["returns"]
    metrics = succeeded["metrics"]
    assert list(body) == ["id", "points", "days", "dates", "equity", "drawdown"]
    assert body["id"] == succeeded["id"]
    assert body["points"] == body["days"] == len(daily) == metrics["equal_weight"]["days"]
    assert body["dates"] == [d.date().isoformat() for d in daily.index]
    assert body["dates"][-1] == metrics["equal_weight"]["end"]
    # Strategies in metrics.json's order, each curve as long as the dates.
    assert list(body["equity"]) == list(body["drawdown"]) == list(metrics)
    assert list(metrics) == ["min_variance", "equal_weight", "index"]
    for name in metrics:
        equity = np.array(body["equity"][name])
        underwater = np.array(body["drawdown"][name])
        assert equity.shape == underwater.shape == (len(daily),)
        # Growth of 1 net of costs, and value / running peak - 1 with 1 as the first peak.
        expected = np.cumprod(1.0 + daily[name].to_numpy())
        np.testing.assert_allclose(equity, expected, rtol=1e-8)
        peak = np.maximum.accumulate(np.maximum(expected, 1.0))
        np.testing.assert_allclose(underwater, expected / peak - 1.0, rtol=1e-8, atol=1e-9)
        assert (underwater <= 0).all()


def test_the_curves_end_at_the_total_return_and_reach_the_max_drawdown(
    succeeded: dict[str, Any],
) -> None:
    for points in (1000, 10):
        body = _equity(succeeded, points=points)
        for name, metrics in succeeded["metrics"].items():
            assert body["equity"][name][-1] == pytest.approx(
                1.0 + metrics["total_return"], rel=1e-8
            )
            assert min(body["drawdown"][name]) == pytest.approx(metrics["max_drawdown"], abs=1e-9)
            assert metrics["max_drawdown"] < 0  # a year of stocks: a real drawdown


@pytest.mark.parametrize("points", [10, 37, 100])
def test_more_days_than_points_are_thinned_into_buckets(
    succeeded: dict[str, Any], points: int
) -> None:
    full = _equity(succeeded)
    body = _equity(succeeded, points=points)
    assert (body["points"], body["days"]) == (points, full["days"])
    assert len(body["dates"]) == points
    # Dates: the last day of each bucket, ascending, the back-test's last day included.
    dates = body["dates"]
    assert dates == sorted(set(dates))
    assert set(dates) <= set(full["dates"])
    assert dates[-1] == full["dates"][-1]
    position = [full["dates"].index(d) for d in dates]
    # Buckets of consecutive days, as even as can be.
    sizes = np.diff([-1, *position])
    assert sizes.max() - sizes.min() <= 1
    for name in full["equity"]:
        # Equity: the bucket's last day; drawdown: the bucket's lowest day.
        assert body["equity"][name] == [full["equity"][name][i] for i in position]
        lowest = [
            min(full["drawdown"][name][start + 1 : end + 1])
            for start, end in zip([-1, *position[:-1]], position, strict=True)
        ]
        assert body["drawdown"][name] == lowest


def test_values_are_rounded_to_9_significant_digits(succeeded: dict[str, Any]) -> None:
    body = _equity(succeeded)
    for name, values in body["equity"].items():
        for value in values + body["drawdown"][name]:
            assert value == float(f"{value:.9g}"), (name, value)
    assert any(v != round(v, 3) for v in body["equity"]["min_variance"])  # not over-rounded


def test_a_job_whose_returns_are_gone_is_409_saying_submit_again(
    succeeded: dict[str, Any],
) -> None:
    (succeeded["folder"] / RETURNS_FILE).unlink()
    response = succeeded["client"].get(f"{BACKTESTS}/{succeeded['id']}/equity", headers=VIEWER)
    problem = assert_problem(response, 409, "backtest-conflict")
    assert problem["backtest_status"] == "succeeded"
    assert "submit the back-test again" in problem["detail"]


# -- the computation, on returns with a known answer ------------------------------------


def _long(returns: dict[str, list[float]], start: str = "2020-01-01") -> pd.DataFrame:
    dates = pd.bdate_range(start, periods=len(next(iter(returns.values()))))
    return pd.concat(
        pd.DataFrame({"date": dates, "strategy": name, "net_return": values})
        for name, values in returns.items()
    )


def test_a_trough_inside_a_bucket_is_kept() -> None:
    # Down 50 % on day 2, back to 1 on day 3: the first bucket (days 1-3) ends at its
    # peak, and still shows the trough.
    curves = equity_curves(_long({"s": [0.0, -0.5, 1.0, 0.1, 0.0, 0.0]}), points=2)
    assert curves.dates == (date(2020, 1, 3), date(2020, 1, 8))
    np.testing.assert_allclose(curves.equity["s"], [1.0, 1.1])
    np.testing.assert_allclose(curves.drawdown["s"], [-0.5, 0.0])
    assert curves.days == 6


def test_a_loss_on_the_first_day_is_a_drawdown_as_in_the_metrics() -> None:
    rng = np.random.default_rng(7)
    returns = {"a": list(rng.normal(0, 0.02, 500)), "b": [-0.01, *rng.normal(0, 0.01, 499)]}
    long = _long(returns)
    curves = equity_curves(long, ["b", "a"], points=25)
    assert list(curves.equity) == ["b", "a"]
    for name, values in returns.items():
        series = pd.Series(values, index=pd.bdate_range("2020-01-01", periods=500))
        metrics = strategy_metrics(series, costs=series * 0, turnover=pd.Series(dtype=float))
        assert curves.drawdown[name].min() == pytest.approx(metrics["max_drawdown"], abs=1e-12)
        assert curves.equity[name][-1] == pytest.approx(1 + metrics["total_return"], rel=1e-12)


def test_strategies_on_different_dates_are_refused() -> None:
    long = pd.concat([_long({"a": [0.01] * 5}), _long({"b": [0.01] * 5}, start="2020-01-02")])
    with pytest.raises(ValueError, match="not on the same dates"):
        equity_curves(long)
    with pytest.raises(ValueError, match="no returns for strategies c"):
        equity_curves(_long({"a": [0.01] * 5}), ["a", "c"])
