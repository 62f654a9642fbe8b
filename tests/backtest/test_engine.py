"""The holdings arithmetic, recomputed here from shares and cash, independently of the engine."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from backtest import (
    BacktestSettings,
    Market,
    MarketView,
    Strategy,
    rebalance_rows,
    run_backtest,
    simulate,
)


def _random_prices(n_days: int = 80, n_assets: int = 3, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    returns = rng.normal(0.0005, 0.02, size=(n_days, n_assets))
    prices = 100.0 * np.cumprod(1.0 + returns, axis=0)
    dates = pd.bdate_range("2021-01-01", periods=n_days)
    return pd.DataFrame(prices, index=dates, columns=[f"A{i}" for i in range(n_assets)])


def _share_ledger(
    prices: np.ndarray, rebalances: list[int], targets: list[np.ndarray], cost_rate: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Daily gross, cost and net returns from a ledger of shares and cash (value 1 at start)."""
    n_days, n_assets = prices.shape
    shares = np.zeros(n_assets)
    cash = 1.0
    value_after = 1.0  # value after the previous day's trades
    gross, cost, net = [], [], []
    for day in range(rebalances[0], n_days):
        value_before = float(shares @ prices[day]) + cash
        day_cost = 0.0
        if day in rebalances:
            target = targets[rebalances.index(day)]
            drifted = shares * prices[day] / value_before
            day_cost = cost_rate * float(np.abs(target - drifted).sum())
            value = value_before * (1.0 - day_cost)
            shares = target * value / prices[day]
            cash = value - float(shares @ prices[day])
        value_now = float(shares @ prices[day]) + cash
        gross.append(value_before / value_after - 1.0)
        cost.append(day_cost)
        net.append(value_now / value_after - 1.0)
        value_after = value_now
    return np.array(gross), np.array(cost), np.array(net)


@pytest.mark.parametrize(
    ("targets", "label"),
    [
        ([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]], "fully invested"),
        ([[0.3, 0.2, 0.1], [0.0, 0.5, 0.0], [0.2, 0.2, 0.2]], "with cash"),
        ([[0.8, 0.5, -0.1], [1.2, 0.0, 0.3], [0.5, 0.5, 0.5]], "levered and short"),
    ],
)
def test_simulation_matches_a_share_ledger(targets: list[list[float]], label: str) -> None:
    prices = _random_prices()
    returns = (prices / prices.shift(1) - 1.0).to_numpy()
    rows = [5, 30, 61]
    target_arrays = [np.array(t) for t in targets]
    seen_drifted: list[np.ndarray] = []

    def decide(row: int, drifted: np.ndarray) -> np.ndarray:
        seen_drifted.append(drifted)
        return target_arrays[rows.index(row)]

    simulation = simulate(returns, np.array(rows), decide, np.full(3, 0.0010))
    gross, cost, net = _share_ledger(prices.to_numpy(), rows, target_arrays, 0.0010)
    np.testing.assert_allclose(simulation.gross_return, gross, rtol=0, atol=1e-12)
    np.testing.assert_allclose(simulation.cost, cost, rtol=0, atol=1e-15)
    np.testing.assert_allclose(simulation.net_return, net, rtol=0, atol=1e-12)
    # Costs are paid on the trade from the drifted weights, which the engine hands over.
    assert np.all(seen_drifted[0] == 0.0)  # built from cash
    np.testing.assert_allclose(
        simulation.turnover,
        [np.abs(t - d).sum() for t, d in zip(target_arrays, seen_drifted, strict=False)],
    )
    assert cost[0] == pytest.approx(0.0010 * np.abs(target_arrays[0]).sum())


def test_drifted_weights_follow_prices() -> None:
    prices = _random_prices(n_days=40)
    returns = (prices / prices.shift(1) - 1.0).to_numpy()
    start = np.array([0.5, 0.25, 0.25])
    seen: list[np.ndarray] = []

    def decide(row: int, drifted: np.ndarray) -> np.ndarray:
        seen.append(drifted)
        return start

    simulate(returns, np.array([2, 20]), decide, np.zeros(3))
    values = start * prices.iloc[20].to_numpy() / prices.iloc[2].to_numpy()
    np.testing.assert_allclose(seen[1], values / values.sum(), rtol=1e-12)


def test_cash_earns_nothing() -> None:
    prices = _random_prices(n_days=30)
    returns = (prices / prices.shift(1) - 1.0).to_numpy()
    half = simulate(returns, np.array([1]), lambda r, d: np.array([0.5, 0.0, 0.0]), np.zeros(3))
    growth = prices["A0"].iloc[-1] / prices["A0"].iloc[1]
    assert np.prod(1.0 + half.net_return) == pytest.approx(0.5 * growth + 0.5, rel=1e-12)


@dataclass
class _Fixed(Strategy):
    """Fixed weights, for arithmetic through the whole run."""

    weights: dict[str, float]
    name: str = "fixed"

    def target_weights(self, view: MarketView, holdings: pd.Series) -> pd.Series:
        return pd.Series(self.weights)

    def describe(self) -> str:
        return "fixed"


def test_run_backtest_daily_returns_recomputed_from_prices() -> None:
    prices = _random_prices(n_days=300, n_assets=3, seed=11)
    market = Market.from_prices(prices)
    strategy = _Fixed({"A0": 0.6, "A1": 0.3})
    result = run_backtest(market, [strategy], BacktestSettings(rebalance="monthly", cost_bps=25))
    run = result.runs["fixed"]
    rows = [market.dates.get_loc(d) for d in run.weights.index]
    targets = [np.array([0.6, 0.3, 0.0])] * len(rows)
    gross, cost, net = _share_ledger(prices.to_numpy(), rows, targets, 0.0025)
    np.testing.assert_allclose(run.returns["net_return"].to_numpy(), net, atol=1e-12)
    np.testing.assert_allclose(run.returns["cost"].to_numpy(), cost, atol=1e-15)
    np.testing.assert_allclose(run.returns["gross_return"].to_numpy(), gross, atol=1e-12)
    # The long outputs carry the same numbers.
    frame = result.returns_frame()
    assert list(frame.columns) == ["date", "strategy", "gross_return", "cost", "net_return"]
    weights = result.weights_frame()
    assert list(weights.columns) == ["date", "strategy", "ticker", "weight"]
    fixed = weights[weights["strategy"] == "fixed"].pivot(
        index="date", columns="ticker", values="weight"
    )
    np.testing.assert_allclose(fixed[["A0", "A1", "A2"]].to_numpy(), np.array(targets))


def test_monthly_schedule_trades_first_day_then_each_month_end() -> None:
    dates = pd.bdate_range("2021-01-04", "2021-06-30")
    rows = rebalance_rows(dates, 3, len(dates) - 1, "monthly")
    chosen = dates[rows]
    assert chosen[0] == dates[3]
    assert list(chosen[1:].strftime("%Y-%m-%d")) == [
        "2021-01-29",
        "2021-02-26",
        "2021-03-31",
        "2021-04-30",
        "2021-05-31",
        "2021-06-30",
    ]
    quarterly = dates[rebalance_rows(dates, 0, len(dates) - 1, "quarterly")]
    assert list(quarterly.strftime("%Y-%m-%d")) == ["2021-01-04", "2021-03-31", "2021-06-30"]


def test_half_the_spread_is_paid_on_top_of_the_linear_cost() -> None:
    settings = BacktestSettings(cost_bps=10.0, spread_bps={"A0": 8.0})
    np.testing.assert_allclose(settings.cost_rates(["A0", "A1"]), [0.0014, 0.0010])
    prices = _random_prices(n_days=60)
    market = Market.from_prices(prices)
    result = run_backtest(market, [_Fixed({"A0": 0.5, "A1": 0.5})], settings)
    first_day_cost = result.runs["fixed"].returns["cost"].iloc[0]
    assert first_day_cost == pytest.approx(0.5 * 0.0014 + 0.5 * 0.0010)
