"""The portfolio endpoints with the caller's own inputs: no model needed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from app.core.config import Settings
from app.main import create_app
from app.schemas.portfolios import OptimizeRequest
from tests.app._problems import assert_problem

PROBLEM = "application/problem+json"
TICKERS = ["ALPHA", "BETA", "GAMMA", "DELTA", "EPSILON", "ZETA"]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """An app whose data and model folders are empty: no model is loaded."""
    empty: Path = tmp_path_factory.mktemp("nothing")
    settings = Settings(environment="test", data_dir=empty, models_dir=empty)
    with TestClient(create_app(settings, registry=CollectorRegistry())) as test_client:
        assert test_client.get("/readyz").status_code == 503
        yield test_client


@pytest.fixture(scope="module")
def daily_returns() -> np.ndarray:
    rng = np.random.default_rng(8)
    mixing = np.eye(6) + 0.4 * rng.uniform(size=(6, 6))
    return rng.normal(0.0004, 0.008, size=(500, 6)) @ mixing


@pytest.fixture(scope="module")
def own_moments(daily_returns: np.ndarray) -> dict[str, Any]:
    return {
        "expected_returns": dict(zip(TICKERS, daily_returns.mean(axis=0) * 252, strict=True)),
        "covariance": (np.cov(daily_returns, rowvar=False) * 252).tolist(),
    }


def _weights(body: dict[str, Any]) -> np.ndarray:
    return np.array([body["weights"][t] for t in TICKERS])


def test_own_expected_returns_and_covariance(client: TestClient, own_moments: dict) -> None:
    response = client.post(
        "/v1/portfolios/optimize",
        json={"tickers": TICKERS, "objective": "max_sharpe", **own_moments},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    weights = _weights(body)
    assert weights.sum() == pytest.approx(1.0, abs=1e-9)
    assert weights.min() >= 0.0
    assert (body["inputs"], body["model"], body["as_of"]) == ("request", None, None)
    assert body["covariance"] == "given in the request"
    assert body["solver"]["name"] == "CLARABEL"
    assert body["solver"]["status"] == "optimal"
    assert sum(body["risk_contributions"].values()) == pytest.approx(body["volatility"])
    mu = np.array([own_moments["expected_returns"][t] for t in TICKERS])
    assert body["expected_return"] == pytest.approx(float(mu @ weights))
    assert body["cvar"] is None


@pytest.mark.parametrize(
    "risk_model",
    [
        {"method": "sample"},
        {"method": "ledoit_wolf"},
        {"method": "ewma", "half_life": 60},
        {"method": "pca_factor", "n_factors": 2},
    ],
    ids=lambda r: r["method"],
)
def test_own_returns_with_each_risk_model(
    client: TestClient, daily_returns: np.ndarray, risk_model: dict
) -> None:
    response = client.post(
        "/v1/portfolios/optimize",
        json={
            "tickers": TICKERS,
            "returns": daily_returns.tolist(),
            "periods_per_year": 252,
            "risk_model": risk_model,
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "500 periods of returns, times 252 periods a year" in body["covariance"]
    assert body["cvar_alpha"] == 0.95
    assert body["cvar"] > 0
    # Annualised: a daily volatility of ~1% becomes ~10-20% a year.
    assert 0.05 < body["volatility"] < 0.4


OBJECTIVES: list[dict[str, Any]] = [
    {"objective": "min_variance"},
    {"objective": "mean_variance", "risk_aversion": 3},
    {"objective": "max_sharpe", "risk_free_rate": 0.01},
    {"objective": "efficient_return", "target_return": 0.1},
    {"objective": "efficient_risk", "target_volatility": 0.2},
    {"objective": "risk_parity"},
    {
        "objective": "risk_budgeting",
        "risk_budgets": dict(zip(TICKERS, [1, 1, 2, 2, 3, 3], strict=True)),
    },
    {"objective": "max_diversification"},
    {"objective": "min_cvar", "cvar_alpha": 0.9},
]


@pytest.mark.parametrize("objective", OBJECTIVES, ids=lambda o: o["objective"])
def test_every_objective_under_every_constraint(
    client: TestClient, daily_returns: np.ndarray, objective: dict[str, Any]
) -> None:
    holdings = {"ALPHA": 0.3, "BETA": 0.3, "GAMMA": 0.4}
    request = {
        "tickers": TICKERS,
        "returns": daily_returns.tolist(),
        "periods_per_year": 252,
        **objective,
        "current_weights": holdings,
        "transaction_costs_bps": {"ALPHA": 5, "ZETA": 20},
        "constraints": {
            "long_only": True,
            "max_weight": 0.4,
            "asset_bounds": {"ZETA": {"max_weight": 0.1}},
            "groups": {"first_three": {"tickers": ["ALPHA", "BETA", "GAMMA"], "max_weight": 0.7}},
            "max_turnover": 1.2,
            "max_volatility": 0.3,
            "tracking_error": {
                "benchmark_weights": dict.fromkeys(TICKERS, 1 / 6),
                "max_tracking_error": 0.1,
            },
        },
    }
    response = client.post("/v1/portfolios/optimize", json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    weights = _weights(body)
    assert body["objective"] == objective["objective"]
    assert weights.sum() == pytest.approx(1.0, abs=1e-9)
    assert weights.min() >= 0.0
    assert weights.max() <= 0.4 + 1e-9
    assert weights[-1] <= 0.1 + 1e-9
    assert weights[:3].sum() <= 0.7 + 1e-7
    current = np.array([holdings.get(t, 0.0) for t in TICKERS])
    assert body["turnover"] == pytest.approx(np.abs(weights - current).sum())
    assert body["turnover"] <= 1.2 + 1e-7
    assert body["volatility"] <= 0.3 + 1e-7
    costs = np.array([5, 0, 0, 0, 0, 20]) / 1e4
    assert body["transaction_cost"] == pytest.approx(costs @ np.abs(weights - current))


def test_hrp(client: TestClient, own_moments: dict) -> None:
    response = client.post(
        "/v1/portfolios/optimize",
        json={"tickers": TICKERS, "objective": "hrp", "linkage": "ward", **own_moments},
    )
    assert response.status_code == 200, response.text
    assert response.json()["solver"]["name"] == "HRP"


def test_frontier(client: TestClient, own_moments: dict) -> None:
    response = client.post(
        "/v1/portfolios/frontier",
        json={"tickers": TICKERS, "n_points": 8, "constraints": {"max_weight": 0.5}, **own_moments},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    points = body["points"]
    assert len(points) == 8
    returns = [p["expected_return"] for p in points]
    assert returns == sorted(returns)
    for point in points:
        weights = np.array([point["weights"][t] for t in TICKERS])
        assert weights.sum() == pytest.approx(1.0, abs=1e-9)
        assert weights.max() <= 0.5 + 1e-9
    assert body["inputs"] == "request"
    assert body["solve_time_ms"] > 0


@pytest.mark.parametrize(
    ("request_body", "fragment"),
    [
        # The schema's hard ceilings; the configured limits are in test_limits.py.
        ({"n_points": 1001}, "less than or equal to 1000"),
        ({"tickers": [f"T{i}" for i in range(10_001)]}, "at most 10000 items"),
        ({"expected_returns": {"ALPHA": 0.1}}, "missing: BETA"),
        ({"covariance": [[0.04]]}, "covariance needs expected_returns"),
        ({"returns": [[0.01] * 6] * 3}, "returns need periods_per_year"),
        (
            {"returns": [[0.01] * 6] * 10_001, "periods_per_year": 252},
            "the limit is 10000",
        ),
        ({"constraints": {"groups": {"g": {"tickers": ["NOPE"]}}}}, "not in tickers: NOPE"),
        ({"risk_model": {"method": "ewma"}}, "needs half_life"),
    ],
    ids=[
        "too_many_points",
        "too_many_tickers",
        "expected_returns_keys",
        "covariance_alone",
        "returns_without_frequency",
        "too_many_rows",
        "unknown_group_member",
        "ewma_without_half_life",
    ],
)
def test_invalid_requests_name_the_field_and_limit(
    client: TestClient, own_moments: dict, request_body: dict, fragment: str
) -> None:
    body = {"tickers": TICKERS, **own_moments, **request_body}
    if "covariance" in request_body and "expected_returns" not in request_body:
        body.pop("expected_returns")
    if "returns" in request_body:
        body.pop("expected_returns")
        body.pop("covariance")
    response = client.post("/v1/portfolios/frontier", json=body)
    problem = assert_problem(response, 422, "invalid-request")
    assert fragment in problem["detail"], problem["detail"]


def test_optimizer_errors_are_problems_that_say_how_to_fix_them(
    client: TestClient, own_moments: dict
) -> None:
    cvar = client.post(
        "/v1/portfolios/optimize", json={"tickers": TICKERS, "objective": "min_cvar", **own_moments}
    )
    assert (
        "min_cvar needs scenario returns"
        in assert_problem(cvar, 422, "invalid-constraints")["detail"]
    )

    capped = client.post(
        "/v1/portfolios/optimize",
        json={"tickers": TICKERS, "constraints": {"max_volatility": 0.01}, **own_moments},
    )
    problem = assert_problem(capped, 422, "infeasible")
    assert problem["constraints"] == ["budget", "max_volatility"]
    assert "The lowest volatility the other constraints allow is" in problem["detail"]

    too_high = client.post(
        "/v1/portfolios/optimize",
        json={
            "tickers": TICKERS,
            "objective": "efficient_return",
            "target_return": 5,
            **own_moments,
        },
    )
    assert (
        "the highest expected return"
        in assert_problem(too_high, 422, "invalid-constraints")["detail"]
    )

    unbounded = client.post(
        "/v1/portfolios/frontier",
        json={"tickers": TICKERS, "constraints": {"long_only": False}, **own_moments},
    )
    assert "no top" in assert_problem(unbounded, 422, "unbounded")["detail"]


def test_no_positive_excess_return_names_the_best_ticker(
    client: TestClient, own_moments: dict
) -> None:
    # GAMMA, third in the request, has the highest expected return; the optimizer calls
    # it "asset 2", the client knows it as GAMMA.
    expected = dict(zip(TICKERS, [0.02, 0.03, 0.08, 0.01, 0.05, 0.04], strict=True))
    response = client.post(
        "/v1/portfolios/optimize",
        json={
            "tickers": TICKERS,
            "objective": "max_sharpe",
            "risk_free_rate": 0.1,
            "expected_returns": expected,
            "covariance": own_moments["covariance"],
        },
    )
    problem = assert_problem(response, 422, "no-positive-excess-return")
    assert "(the highest is 0.08, GAMMA)" in problem["detail"], problem["detail"]
    assert "asset 2" not in problem["detail"]
    assert "min_variance" in problem["detail"]
    assert problem["best_asset"] == "GAMMA"
    assert problem["tickers"] == ["GAMMA"]
    assert problem["best_expected_return"] == pytest.approx(0.08)
    assert problem["risk_free_rate"] == 0.1

    # When some ticker beats the rate but the bounds keep every portfolio below it, no
    # single ticker is to blame and none is named.
    capped = client.post(
        "/v1/portfolios/optimize",
        json={
            "tickers": TICKERS,
            "objective": "max_sharpe",
            "risk_free_rate": 0.07,
            "expected_returns": expected,
            "covariance": own_moments["covariance"],
            "constraints": {"max_weight": 0.2},
        },
    )
    problem = assert_problem(capped, 422, "no-positive-excess-return")
    assert "the best portfolio the weight bounds allow" in problem["detail"]
    assert "best_asset" not in problem
    assert "tickers" not in problem


# Requests the optimizer refuses because of one ticker, GAMMA, third in the request (the
# optimizer's "asset 2"): the endpoint, the body (over own_moments), and the detail.
ONE_TICKER_AT_FAULT: dict[str, tuple[str, dict[str, Any], str]] = {
    "min_weight_above_max_weight": (
        "optimize",
        {"constraints": {"asset_bounds": {"GAMMA": {"min_weight": 0.5, "max_weight": 0.3}}}},
        "GAMMA has min_weight 0.5 above max_weight 0.3",
    ),
    "per_ticker_floor_above_the_global_cap": (
        "frontier",
        {"constraints": {"max_weight": 0.3, "asset_bounds": {"GAMMA": {"min_weight": 0.5}}}},
        "GAMMA has min_weight 0.5 above max_weight 0.3",
    ),
    "bounds_that_leave_no_weight": (
        "optimize",
        {"constraints": {"asset_bounds": {"GAMMA": {"max_weight": -0.1}}}},
        "together leave no allowed weight for GAMMA (lower bound 0 above upper bound -0.1)",
    ),
    "risk_budgeting_without_room_to_hold_long": (
        "optimize",
        {
            "objective": "risk_budgeting",
            "constraints": {"asset_bounds": {"GAMMA": {"max_weight": 0.0}}},
        },
        "risk budgeting holds every asset long, but GAMMA has an upper bound of 0",
    ),
    "hrp_with_zero_variance": ("optimize", {"objective": "hrp"}, "GAMMA has zero variance"),
}


@pytest.mark.parametrize("case", list(ONE_TICKER_AT_FAULT))
def test_an_error_about_one_asset_names_its_ticker(
    client: TestClient, own_moments: dict, case: str
) -> None:
    endpoint, fields, fragment = ONE_TICKER_AT_FAULT[case]
    body = {"tickers": TICKERS, **own_moments, **fields}
    if case == "hrp_with_zero_variance":
        covariance = np.array(own_moments["covariance"])
        covariance[2, :] = covariance[:, 2] = 0.0
        body["covariance"] = covariance.tolist()
    response = client.post(f"/v1/portfolios/{endpoint}", json=body)
    problem = assert_problem(response, 422, "invalid-constraints")
    assert fragment in problem["detail"], problem["detail"]
    assert "asset 2" not in problem["detail"]
    assert problem["tickers"] == ["GAMMA"]


# Each objective's own field, its objective, and another objective that would ignore it.
MISPLACED: list[tuple[str, Any, str, str]] = [
    ("risk_aversion", 5.0, "mean_variance", "max_sharpe"),
    ("target_return", 0.1, "efficient_return", "min_variance"),
    ("target_volatility", 0.2, "efficient_risk", "max_sharpe"),
    (
        "risk_budgets",
        dict(zip(TICKERS, [1, 1, 2, 2, 3, 3], strict=True)),
        "risk_budgeting",
        "risk_parity",
    ),
    ("cvar_alpha", 0.9, "min_cvar", "min_variance"),
    ("linkage", "ward", "hrp", "risk_parity"),
]


@pytest.mark.parametrize(
    ("field", "value", "owner", "other"), MISPLACED, ids=[case[0] for case in MISPLACED]
)
def test_an_objectives_field_with_another_objective_is_refused(
    client: TestClient, daily_returns: np.ndarray, field: str, value: Any, owner: str, other: str
) -> None:
    inputs = {"tickers": TICKERS, "returns": daily_returns.tolist(), "periods_per_year": 252}
    refused = client.post(
        "/v1/portfolios/optimize", json={**inputs, "objective": other, field: value}
    )
    problem = assert_problem(refused, 422, "invalid-request")
    expected = (
        f"{field} applies only to objective '{owner}'; objective '{other}' would ignore it: "
        f"remove it, or set objective to '{owner}'"
    )
    assert [e["location"] for e in problem["errors"]] == ["body"]
    assert expected in problem["errors"][0]["message"]
    assert expected in problem["detail"]

    accepted = client.post(
        "/v1/portfolios/optimize", json={**inputs, "objective": owner, field: value}
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["objective"] == owner


def test_every_misplaced_field_is_named_at_once(client: TestClient, own_moments: dict) -> None:
    response = client.post(
        "/v1/portfolios/optimize",
        json={
            "tickers": TICKERS,
            **own_moments,
            "objective": "min_variance",
            "target_return": 0.1,
            "cvar_alpha": 0.99,
            "linkage": "ward",
        },
    )
    message = assert_problem(response, 422, "invalid-request")["errors"][0]["message"]
    assert (
        "target_return applies only to objective 'efficient_return', cvar_alpha only to "
        "'min_cvar' and linkage only to 'hrp'; objective 'min_variance' would ignore them"
    ) in message


def test_null_or_default_fields_of_other_objectives_are_accepted(
    client: TestClient, own_moments: dict
) -> None:
    """They ask for nothing: a client may send every field, as the audit trail records it."""
    first = client.post(
        "/v1/portfolios/optimize",
        json={"tickers": TICKERS, **own_moments, "objective": "max_sharpe"},
    )
    assert first.status_code == 200, first.text
    everything = OptimizeRequest.model_validate(
        {"tickers": TICKERS, **own_moments, "objective": "max_sharpe"}
    ).model_dump(mode="json")
    assert {"risk_aversion", "target_return", "cvar_alpha", "linkage"} <= set(everything)
    again = client.post("/v1/portfolios/optimize", json=everything)
    assert again.status_code == 200, again.text
    assert again.json()["weights"] == pytest.approx(first.json()["weights"], abs=1e-9)


def test_a_request_without_inputs_still_needs_the_model(client: TestClient) -> None:
    response = client.post("/v1/portfolios/frontier", json={"tickers": TICKERS})
    problem = assert_problem(response, 503, "model-not-loaded")
    assert "send expected_returns with covariance" in problem["detail"]


def test_openapi_documents_the_frontier(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/portfolios/optimize", "/v1/portfolios/frontier"} <= set(paths)


def test_outcomes_are_labelled_so_alerts_count_only_solver_and_server_errors(
    client: TestClient, own_moments: dict
) -> None:
    def solves(status: str) -> float:
        for line in client.get("/metrics").text.splitlines():
            if line.startswith("quantserve_optimizer_solves_total{") and (
                f'status="{status}"' in line and 'objective="min_variance"' in line
            ):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = {s: solves(s) for s in ("optimal", "invalid_request", "rejected")}
    ok = client.post("/v1/portfolios/optimize", json={"tickers": TICKERS, **own_moments})
    assert ok.status_code == 200
    impossible = client.post(
        "/v1/portfolios/optimize",
        json={"tickers": TICKERS, **own_moments, "constraints": {"max_weight": 0.1}},
    )
    assert impossible.status_code == 422
    no_model = client.post("/v1/portfolios/optimize", json={"tickers": TICKERS})
    assert no_model.status_code == 503
    assert solves("optimal") == before["optimal"] + 1
    assert solves("invalid_request") == before["invalid_request"] + 1
    assert solves("error") == 0.0


def test_hrp_refuses_a_constant_asset_whose_sample_variance_is_rounding_noise(
    client: TestClient,
) -> None:
    # A constant column's sample variance is not exactly 0 but ~1e-34; taken at face value
    # HRP put the whole portfolio in it with a Sharpe ratio of ~1e16.
    returns = np.random.default_rng(3).normal(0.0004, 0.01, size=(300, len(TICKERS)))
    returns[:, 2] = 0.0007
    body = {
        "tickers": TICKERS,
        "objective": "hrp",
        "returns": returns.tolist(),
        "periods_per_year": 252,
        "risk_model": {"method": "sample"},
    }
    problem = assert_problem(
        client.post("/v1/portfolios/optimize", json=body), 422, "invalid-constraints"
    )
    assert f"{TICKERS[2]} has zero variance" in problem["detail"], problem["detail"]
    assert problem["tickers"] == [TICKERS[2]]
