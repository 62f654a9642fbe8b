"""Performance metrics against closed forms and their definitions."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from backtest._metrics import PERIODS_PER_YEAR, drawdown, rolling_sharpe, strategy_metrics
from backtest._sharpe import (
    jobson_korkie_memmel_test,
    ledoit_wolf_sharpe_test,
    sharpe_confidence_interval,
)


def series(values, start: str = "2024-01-01") -> pd.Series:
    """Daily values on consecutive business days."""
    values = np.asarray(values, dtype=float)
    return pd.Series(values, index=pd.bdate_range(start, periods=values.size))


def zeros_like(returns: pd.Series) -> pd.Series:
    return pd.Series(0.0, index=returns.index)


def no_turnover() -> pd.Series:
    return pd.Series([], index=pd.DatetimeIndex([]), dtype=float)


def metrics(returns: pd.Series, **kwargs):
    kwargs.setdefault("costs", zeros_like(returns))
    kwargs.setdefault("turnover", no_turnover())
    return strategy_metrics(returns, **kwargs)


@pytest.fixture(scope="module")
def market() -> dict[str, pd.Series]:
    """Two years of a strategy with beta 1.3 to a benchmark, and a 1/N reference."""
    rng = np.random.default_rng(20240620)
    benchmark = series(0.0003 + 0.01 * rng.standard_normal(504))
    noise = 0.004 * rng.standard_normal(504)
    strategy = 0.0002 + 1.3 * benchmark + noise
    reference = 0.0002 + benchmark + 0.003 * rng.standard_normal(504)
    return {"strategy": strategy, "benchmark": benchmark, "reference": reference}


def test_constant_daily_return_has_zero_volatility_and_no_sharpe() -> None:
    result = metrics(series(np.full(504, 0.001)))
    assert result["volatility"] == 0.0
    assert result["sharpe"] is None
    assert result["sharpe_ci"] is None
    assert result["sortino"] is None  # no day below the (zero) target
    assert result["total_return"] == pytest.approx(1.001**504 - 1, rel=1e-12)
    assert result["years"] == 2.0
    assert result["cagr"] == pytest.approx(1.001**252 - 1, rel=1e-12)
    assert result["max_drawdown"] == 0.0
    assert result["max_drawdown_start"] is None
    assert result["max_drawdown_end"] is None
    assert result["calmar"] is None
    assert result["hit_rate"] == 1.0


def test_hand_built_path_max_drawdown_dates_and_cagr() -> None:
    # Values 1.1, 0.88, 0.924, 0.693, 1.0395, 1.14345, 1.0862775: the deepest fall is
    # from 1.1 (Mon 1 Jan) to 0.693 (Thu 4 Jan), 0.693 / 1.1 - 1 = -0.37.
    returns = series([0.10, -0.20, 0.05, -0.25, 0.50, 0.10, -0.05])
    result = metrics(returns, periods_per_year=7)
    assert result["max_drawdown"] == pytest.approx(-0.37, rel=1e-12)
    assert result["max_drawdown_start"] == "2024-01-01"
    assert result["max_drawdown_end"] == "2024-01-04"
    assert (result["start"], result["end"], result["days"]) == ("2024-01-01", "2024-01-09", 7)
    assert result["total_return"] == pytest.approx(0.0862775, rel=1e-12)
    assert result["cagr"] == pytest.approx(0.0862775, rel=1e-12)  # one year of 7 days
    assert result["calmar"] == pytest.approx(0.0862775 / 0.37, rel=1e-12)
    assert result["hit_rate"] == pytest.approx(4 / 7)
    half_a_year = metrics(returns, periods_per_year=14)
    assert half_a_year["cagr"] == pytest.approx(1.0862775**2 - 1, rel=1e-12)
    expected = [0, -0.2, -0.16, -0.37, -0.055, 0, -0.05]
    np.testing.assert_allclose(drawdown(returns).to_numpy(), expected, atol=1e-12)


def test_a_first_day_loss_is_a_drawdown_from_the_initial_capital() -> None:
    result = metrics(series([-0.1, 0.05, 0.2, -0.01]))
    assert result["max_drawdown"] == pytest.approx(-0.1)
    assert result["max_drawdown_start"] == result["max_drawdown_end"] == "2024-01-01"
    assert drawdown(series([-0.1, 0.05])).iloc[-1] == pytest.approx(0.945 - 1)


def test_annualisation_factors(market) -> None:
    returns = market["strategy"]
    daily = returns.to_numpy()
    result = metrics(returns)
    assert result["volatility"] == pytest.approx(daily.std(ddof=1) * math.sqrt(252))
    assert result["sharpe"] == pytest.approx(daily.mean() / daily.std(ddof=1) * math.sqrt(252))
    assert result["sharpe_ci"] == pytest.approx(list(sharpe_confidence_interval(daily)))
    with_cash_rate = metrics(returns, risk_free_rate=0.03)
    excess = daily - (1.03 ** (1 / 252) - 1)
    assert with_cash_rate["sharpe"] == pytest.approx(
        excess.mean() / excess.std(ddof=1) * math.sqrt(252)
    )
    assert with_cash_rate["sharpe"] < result["sharpe"]
    assert with_cash_rate["volatility"] == result["volatility"]
    weekly = metrics(returns, periods_per_year=52)
    assert weekly["sharpe"] == pytest.approx(result["sharpe"] * math.sqrt(52 / 252))


def test_turnover_and_costs_are_annualised_totals() -> None:
    returns = series(np.full(504, 0.0004))
    costs = zeros_like(returns)
    rebalances = returns.index[::126]  # 4 rebalances over 2 years
    costs[rebalances] = 0.0005
    turnover = pd.Series(0.5, index=rebalances)
    result = metrics(returns, costs=costs, turnover=turnover)
    assert result["turnover"] == pytest.approx(4 * 0.5 / 2)
    assert result["costs"] == pytest.approx(4 * 0.0005 / 2)


def test_sortino_uses_the_root_mean_square_of_negative_excess_returns_over_all_days(
    market,
) -> None:
    daily = market["strategy"].to_numpy()
    excess = daily - (1.02 ** (1 / 252) - 1)
    downside = math.sqrt(np.sum(np.minimum(excess, 0) ** 2) / excess.size)
    result = metrics(market["strategy"], risk_free_rate=0.02)
    assert result["sortino"] == pytest.approx(excess.mean() / downside * math.sqrt(252))


def test_hit_rate_ignores_days_without_a_return() -> None:
    result = metrics(series([0.01, 0.0, -0.02, 0.0, 0.03, 0.0]))
    assert result["hit_rate"] == pytest.approx(2 / 3)
    assert metrics(series([0.0, 0.0]))["hit_rate"] is None


def test_alpha_and_beta_match_least_squares_and_tracking_error_its_definition(market) -> None:
    returns, benchmark = market["strategy"], market["benchmark"]
    rf_daily = 1.01 ** (1 / 252) - 1
    result = metrics(returns, benchmark_returns=benchmark, risk_free_rate=0.01)
    design = np.column_stack([np.ones(504), benchmark.to_numpy() - rf_daily])
    coefficients, *_ = np.linalg.lstsq(design, returns.to_numpy() - rf_daily, rcond=None)
    assert result["alpha"] == pytest.approx(coefficients[0] * 252, rel=1e-9)
    assert result["beta"] == pytest.approx(coefficients[1], rel=1e-9)
    assert result["beta"] == pytest.approx(1.3, abs=0.05)
    active = (returns - benchmark).to_numpy()
    assert result["tracking_error"] == pytest.approx(active.std(ddof=1) * math.sqrt(252))
    assert result["information_ratio"] == pytest.approx(
        active.mean() / active.std(ddof=1) * math.sqrt(252)
    )
    # Newey-West by hand: Bartlett weights over floor(4 (T / 100)^(2/9)) = 5 lags.
    residuals = returns.to_numpy() - rf_daily - design @ coefficients
    scores = design * residuals[:, None]
    lags = 5
    meat = scores.T @ scores
    for lag in range(1, lags + 1):
        gamma = scores[lag:].T @ scores[:-lag]
        meat += (1 - lag / (lags + 1)) * (gamma + gamma.T)
    bread = np.linalg.inv(design.T @ design)
    covariance = bread @ meat @ bread * 504 / 502
    assert result["alpha_t_stat"] == pytest.approx(
        coefficients[0] / math.sqrt(covariance[0, 0]), rel=1e-9
    )


def test_benchmark_metrics_are_none_without_a_benchmark(market) -> None:
    result = metrics(market["strategy"])
    for key in ("tracking_error", "information_ratio", "alpha", "beta", "alpha_t_stat"):
        assert key in result
        assert result[key] is None


def test_versus_equal_weight_reports_the_ledoit_wolf_test(market) -> None:
    returns, reference = market["strategy"], market["reference"]
    result = metrics(returns, reference_returns=reference, risk_free_rate=0.02)
    comparison = result["vs_equal_weight"]
    rf_daily = 1.02 ** (1 / 252) - 1
    robust = ledoit_wolf_sharpe_test(returns - rf_daily, reference - rf_daily)
    classic = jobson_korkie_memmel_test(returns - rf_daily, reference - rf_daily)
    assert comparison["method"] == "ledoit_wolf_2008_hac"
    assert comparison["sharpe_difference"] == pytest.approx(robust.difference)
    assert comparison["statistic"] == pytest.approx(robust.statistic)
    assert comparison["p_value"] == pytest.approx(robust.p_value)
    assert comparison["jobson_korkie_memmel_p_value"] == pytest.approx(classic.p_value)
    reference_sharpe = metrics(reference, risk_free_rate=0.02)["sharpe"]
    assert comparison["sharpe_difference"] == pytest.approx(result["sharpe"] - reference_sharpe)
    assert metrics(returns)["vs_equal_weight"] is None


def test_rolling_sharpe_is_the_annualised_sharpe_of_each_trailing_window(market) -> None:
    returns = market["strategy"]
    rolling = rolling_sharpe(returns, window=60)
    assert rolling.iloc[:59].isna().all()
    last = returns.to_numpy()[-60:]
    assert rolling.iloc[-1] == pytest.approx(last.mean() / last.std(ddof=1) * math.sqrt(252))
    assert rolling.index.equals(returns.index)
    flat = rolling_sharpe(series(np.full(30, 0.001)), window=10)
    assert flat.isna().all()  # undefined, not inf


@pytest.mark.parametrize(
    "case",
    ["one_day", "all_zero", "29_days", "total_loss", "identical_reference", "flat_benchmark"],
)
def test_result_is_strict_json_on_degenerate_inputs(case) -> None:
    values = {
        "one_day": [0.01],
        "all_zero": np.zeros(300),
        "29_days": np.linspace(-0.01, 0.012, 29),
        "total_loss": [0.01, -1.0, 0.0, 0.0],
        "identical_reference": np.tile([0.01, -0.005, 0.002], 40),
        "flat_benchmark": np.tile([0.01, -0.005, 0.002], 40),
    }[case]
    returns = series(values)
    benchmark = zeros_like(returns) if case != "identical_reference" else returns
    result = metrics(returns, benchmark_returns=benchmark, reference_returns=returns.copy())
    text = json.dumps(result, allow_nan=False)
    assert json.loads(text)["days"] == len(values)
    comparison = result["vs_equal_weight"]
    assert comparison["p_value"] is None
    assert comparison["statistic"] is None
    if case in ("one_day", "all_zero"):
        assert result["volatility"] in (None, 0.0)
        assert result["sharpe"] is None
    if case == "total_loss":
        assert result["cagr"] == -1.0
        assert result["max_drawdown"] == pytest.approx(-1.0)
    if case in ("flat_benchmark", "all_zero"):
        assert result["beta"] is None
        assert result["alpha_t_stat"] is None
    if case == "identical_reference":
        assert result["tracking_error"] == 0.0
        assert result["information_ratio"] is None
        assert result["beta"] == pytest.approx(1.0)
        assert result["alpha_t_stat"] is None


def test_misaligned_or_invalid_inputs_raise_value_error(market) -> None:
    returns = market["strategy"]
    with pytest.raises(ValueError, match="costs is not aligned"):
        metrics(returns, costs=zeros_like(returns).iloc[1:])
    with pytest.raises(ValueError, match="benchmark_returns is not aligned"):
        metrics(returns, benchmark_returns=market["benchmark"].shift(1, freq="B"))
    with pytest.raises(ValueError, match="reference_returns is not aligned"):
        metrics(returns, reference_returns=market["reference"].iloc[::-1])
    with pytest.raises(ValueError, match="non-finite"):
        metrics(returns.where(returns.index != returns.index[3]))
    with pytest.raises(ValueError, match="empty"):
        metrics(returns.iloc[:0])
    with pytest.raises(ValueError, match="sorted"):
        metrics(returns.iloc[::-1])
    with pytest.raises(ValueError, match="DatetimeIndex"):
        metrics(returns.reset_index(drop=True))
    with pytest.raises(ValueError, match="turnover"):
        metrics(returns, turnover=pd.Series([-0.1], index=returns.index[:1]))
    with pytest.raises(ValueError, match="risk_free_rate"):
        metrics(returns, risk_free_rate=float("nan"))
    with pytest.raises(ValueError, match="confidence"):
        metrics(returns, confidence=95)
    assert PERIODS_PER_YEAR == 252
