"""Strategies: what to hold at each rebalance date, decided from a point-in-time view.

A strategy gets a :class:`~backtest.MarketView` that ends at the rebalance date's close
and the drifted weights it holds, and returns target weights by ticker. Weights may sum
to less than 1 (the rest is cash) or, with leverage, more.

- :class:`EqualWeight`: 1/N of the universe.
- :class:`BuyAndHold`: one asset bought at the start and held (the index).
- :class:`OptimizedStrategy`: any allocation of ``POST /v1/portfolios/optimize``, its
  objective and constraints as :mod:`optimizer` terms, re-solved at every rebalance on
  inputs estimated from the view (:class:`~backtest.StrategyInputs`).
- :class:`VolatilityTarget`: an overlay that scales any strategy's weights to a target
  annual volatility forecast by the model, holding the rest in cash, under a leverage cap.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from backtest._errors import InvalidBacktest
from backtest._inputs import StrategyInputs, _forecast_covariance
from backtest._market import MarketView
from optimizer import (
    Constraint,
    LedoitWolfCovariance,
    Objective,
    PortfolioOptimizer,
    ProblemData,
    Turnover,
)

_BUILDING_FROM_CASH = 1e-9
"""Holdings below this total are a portfolio not yet built (the first trade)."""


class Strategy(ABC):
    """A rule for target weights at each rebalance date.

    Attributes
    ----------
    name : str
        The strategy's name in outputs.
    lookback_days : int
        Trading days of history needed before the first rebalance.
    uses_forecasts : bool
        Whether the walk-forward forecasts are needed.
    """

    name: str
    lookback_days: int = 0
    uses_forecasts: bool = False

    def universe(self, tickers: Sequence[str], benchmark: str | None) -> list[str]:
        """The tickers this strategy allocates over, given the market's."""
        return list(tickers)

    def prepare(self, cost_rates: pd.Series, rebalances_per_year: float) -> None:
        """Learn the run's trading costs (per unit traded, by ticker) and schedule.

        Called once before the first rebalance; strategies that weigh costs keep them,
        the others ignore them.
        """
        return  # nothing to keep by default

    @abstractmethod
    def target_weights(self, view: MarketView, holdings: pd.Series) -> pd.Series:
        """Target weights by ticker at ``view.as_of``'s close.

        ``holdings`` are the drifted weights before trading, by ticker (all zero before
        the first trade).
        """

    @abstractmethod
    def describe(self) -> str:
        """One sentence on what the strategy holds, for reports."""


@dataclass
class EqualWeight(Strategy):
    """1/N: the same weight in every ticker of the universe, restored at each rebalance."""

    name: str = "equal_weight"

    def target_weights(self, view: MarketView, holdings: pd.Series) -> pd.Series:
        """``1 / N`` each."""
        return pd.Series(1.0 / len(view.tickers), index=view.tickers)

    def describe(self) -> str:
        """What it holds."""
        return "Equal weight (1/N) in every stock, restored at each rebalance."


@dataclass
class BuyAndHold(Strategy):
    """All in one asset (the index), bought at the first rebalance and never traded again."""

    ticker: str = "SP500"
    name: str = "index"

    def universe(self, tickers: Sequence[str], benchmark: str | None) -> list[str]:
        """Only the held asset."""
        return [self.ticker]

    def target_weights(self, view: MarketView, holdings: pd.Series) -> pd.Series:
        """Everything in the asset at first; afterwards, the holdings as they drifted."""
        if float(holdings.abs().sum()) > _BUILDING_FROM_CASH:
            return holdings
        return pd.Series(1.0, index=[self.ticker])

    def describe(self) -> str:
        """What it holds."""
        return f"Buy and hold {self.ticker}."


@dataclass
class OptimizedStrategy(Strategy):
    """An optimizer allocation re-solved at every rebalance on point-in-time inputs.

    Parameters
    ----------
    name : str
    objective : optimizer.Objective
        E.g. ``MinVariance()``, ``MaxSharpe()``, ``MeanVariance(10)``, ``RiskParity()``.
    constraints : sequence of optimizer.Constraint
        E.g. ``[LongOnly(), WeightBounds(max_weight=0.25), Turnover(0.5)]``. A
        ``Turnover`` limit does not bind the first trade, which builds the portfolio
        from cash.
    inputs : StrategyInputs
        Where expected returns and risk come from.
    optimizer : PortfolioOptimizer
        Shared, so the compiled problem is re-used across rebalances.
    cost_aware : bool
        Whether the objective pays the trading costs (for objectives that take costs:
        ``mean_variance``, ``max_sharpe``). Costs then enter in annual units: the cost
        rate times the rebalances per year, since each trade's cost is set against a
        year of expected return.
    description : str
        What the strategy is, for reports (default: built from the parts).
    """

    name: str
    objective: Objective
    constraints: Sequence[Constraint]
    inputs: StrategyInputs = field(default_factory=StrategyInputs)
    optimizer: PortfolioOptimizer = field(default_factory=PortfolioOptimizer)
    cost_aware: bool = False
    description: str = ""
    cost_rates: pd.Series | None = None
    """Cost per unit traded by ticker, from :meth:`prepare`."""
    rebalances_per_year: float = 12.0
    """From :meth:`prepare`: the schedule's."""

    def __post_init__(self) -> None:
        self.lookback_days = self.inputs.lookback_days
        self.uses_forecasts = self.inputs.uses_forecasts

    def prepare(self, cost_rates: pd.Series, rebalances_per_year: float) -> None:
        """Keep the run's costs and schedule, for a cost-aware objective."""
        self.cost_rates = cost_rates
        self.rebalances_per_year = rebalances_per_year

    def target_weights(self, view: MarketView, holdings: pd.Series) -> pd.Series:
        """Solve the allocation on inputs estimated from ``view``."""
        expected, covariance, returns = self.inputs.estimate(view)
        current = holdings.reindex(view.tickers, fill_value=0.0).to_numpy(dtype=np.float64)
        constraints = list(self.constraints)
        if float(np.abs(current).sum()) <= _BUILDING_FROM_CASH:
            constraints = [c for c in constraints if not isinstance(c, Turnover)]
        costs = None
        if self.cost_aware and self.cost_rates is not None:
            rates = self.cost_rates.reindex(view.tickers, fill_value=0.0).to_numpy()
            costs = rates * self.rebalances_per_year
        data = ProblemData.from_arrays(
            expected,
            covariance,
            returns=returns if self.objective.name == "min_cvar" else None,
            current_weights=current,
            transaction_costs=costs,
        )
        result = self.optimizer.solve(self.objective, constraints, data)
        return pd.Series(result.weights, index=view.tickers)

    def describe(self) -> str:
        """The objective, constraints and inputs."""
        if self.description:
            return self.description
        names = ", ".join(c.name for c in self.constraints) or "fully invested"
        costs = "; pays trading costs" if self.cost_aware else ""
        return f"{self.objective.name} ({names}) on {self.inputs.describe()}{costs}."


@dataclass
class VolatilityTarget(Strategy):
    """Scale another strategy's weights to a target annual volatility; the rest in cash.

    The portfolio's volatility is forecast as ``sqrt(w' D C D w)``: ``D`` the model's
    walk-forward volatility forecasts, ``C`` the Ledoit-Wolf correlation of the trailing
    ``correlation_lookback_days`` daily log returns. The weights are multiplied by
    ``min(target / forecast, max_leverage / gross)``: below the target they are levered
    up (borrowing at the cash rate, 0), never past ``max_leverage`` times the value.

    Parameters
    ----------
    inner : Strategy
    target_volatility : float
        Annual volatility to aim for (0.10 = 10%).
    max_leverage : float
        Cap on the gross exposure ``sum |w|`` (1 = no borrowing).
    """

    inner: Strategy
    target_volatility: float = 0.10
    max_leverage: float = 1.0
    correlation_lookback_days: int = 252
    name: str = ""

    def __post_init__(self) -> None:
        if not (0.0 < self.target_volatility <= 2.0):
            raise InvalidBacktest(
                f"target_volatility={self.target_volatility} must be in (0, 2] (0.10 = 10%)"
            )
        if not (0.0 < self.max_leverage <= 10.0):
            raise InvalidBacktest(f"max_leverage={self.max_leverage} must be in (0, 10]")
        self.name = self.name or f"{self.inner.name}+vol_target"
        self.lookback_days = max(self.inner.lookback_days, self.correlation_lookback_days)
        self.uses_forecasts = True

    def universe(self, tickers: Sequence[str], benchmark: str | None) -> list[str]:
        """The inner strategy's."""
        return self.inner.universe(tickers, benchmark)

    def prepare(self, cost_rates: pd.Series, rebalances_per_year: float) -> None:
        """Pass the costs and schedule on to the inner strategy."""
        self.inner.prepare(cost_rates, rebalances_per_year)

    def target_weights(self, view: MarketView, holdings: pd.Series) -> pd.Series:
        """The inner weights, scaled to the target volatility under the leverage cap."""
        invested = float(holdings.sum())
        # The inner strategy sees its own, unscaled weights (a turnover limit then means
        # what it says); before the first trade it builds from cash.
        inner_holdings = holdings / invested if abs(invested) > _BUILDING_FROM_CASH else holdings
        weights = self.inner.target_weights(view, inner_holdings).reindex(
            view.tickers, fill_value=0.0
        )
        _, volatility = view.forecasts()
        returns = view.returns(self.correlation_lookback_days).to_numpy(dtype=np.float64)
        covariance = _forecast_covariance(LedoitWolfCovariance(), returns, volatility)
        assert isinstance(covariance, np.ndarray)
        w = weights.to_numpy(dtype=np.float64)
        forecast = float(np.sqrt(max(w @ covariance @ w, 0.0)))
        gross = float(np.abs(w).sum())
        if forecast <= 0.0 or gross <= 0.0:
            return weights
        scale = min(self.target_volatility / forecast, self.max_leverage / gross)
        return weights * scale

    def describe(self) -> str:
        """The inner strategy and the overlay."""
        return (
            f"{self.inner.describe()} Scaled to a forecast {self.target_volatility:.0%} "
            f"annual volatility, gross exposure at most {self.max_leverage:g}x, rest in cash."
        )
