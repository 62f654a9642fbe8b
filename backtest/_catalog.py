"""The strategies that ship by name (``quantserve backtest --strategies a,b``)."""

from __future__ import annotations

from collections.abc import Callable

from backtest._errors import InvalidBacktest
from backtest._inputs import StrategyInputs
from backtest._strategies import (
    BuyAndHold,
    EqualWeight,
    OptimizedStrategy,
    Strategy,
    VolatilityTarget,
)
from optimizer import (
    HierarchicalRiskParity,
    LedoitWolfCovariance,
    LongOnly,
    MaxSharpe,
    MeanVariance,
    MinVariance,
    PortfolioOptimizer,
    RiskParity,
    SampleCovariance,
    Turnover,
    WeightBounds,
)

VOL_TARGET_SUFFIX = "+vol_target"
"""``<name>+vol_target``: the named strategy under the volatility-target overlay."""

FORECAST_RISK_AVERSION = 10.0
"""Risk aversion of ``forecast_mean_variance``, on annual returns and variances."""
FORECAST_MAX_TURNOVER = 0.5
"""Its cap on ``sum |w - w_drifted|`` per rebalance."""
FORECAST_MAX_WEIGHT = 0.25


def _named(
    optimizer: PortfolioOptimizer, benchmark: str | None
) -> dict[str, Callable[[], Strategy]]:
    trailing = StrategyInputs(risk_model=LedoitWolfCovariance())
    forecast_risk = StrategyInputs(volatility="forecast")
    return {
        "equal_weight": EqualWeight,
        "index": lambda: BuyAndHold(ticker=benchmark or "SP500"),
        "min_variance": lambda: OptimizedStrategy(
            "min_variance",
            MinVariance(),
            [LongOnly()],
            trailing,
            optimizer,
            description="Minimum variance, long only, on the Ledoit-Wolf covariance of the "
            "trailing 252 days.",
        ),
        "max_sharpe": lambda: OptimizedStrategy(
            "max_sharpe",
            MaxSharpe(risk_free_rate=0.0),
            [LongOnly()],
            StrategyInputs(expected_returns="expanding_mean", risk_model=LedoitWolfCovariance()),
            optimizer,
            description="Maximum Sharpe ratio, long only: expanding-window mean returns, "
            "Ledoit-Wolf covariance of the trailing 252 days.",
        ),
        "risk_parity": lambda: OptimizedStrategy(
            "risk_parity",
            RiskParity(),
            [LongOnly()],
            trailing,
            optimizer,
            description="Equal risk contributions on the Ledoit-Wolf covariance of the "
            "trailing 252 days.",
        ),
        "hrp": lambda: OptimizedStrategy(
            "hrp",
            HierarchicalRiskParity(linkage="single"),
            [LongOnly()],
            StrategyInputs(risk_model=SampleCovariance()),
            optimizer,
            description="Hierarchical risk parity (single linkage) on the sample covariance "
            "of the trailing 252 days.",
        ),
        "forecast_min_variance": lambda: OptimizedStrategy(
            "forecast_min_variance",
            MinVariance(),
            [LongOnly()],
            forecast_risk,
            optimizer,
            description="Minimum variance, long only, on the model's walk-forward volatility "
            "forecasts with the Ledoit-Wolf correlation of the trailing 252 days.",
        ),
        "forecast_mean_variance": lambda: OptimizedStrategy(
            "forecast_mean_variance",
            MeanVariance(risk_aversion=FORECAST_RISK_AVERSION),
            [
                LongOnly(),
                WeightBounds(max_weight=FORECAST_MAX_WEIGHT),
                Turnover(FORECAST_MAX_TURNOVER),
            ],
            StrategyInputs(expected_returns="forecast", volatility="forecast"),
            optimizer,
            cost_aware=True,
            description=(
                f"Mean-variance (risk aversion {FORECAST_RISK_AVERSION:g}) on the model's "
                "walk-forward return and volatility forecasts with the Ledoit-Wolf "
                f"correlation; long only, at most {FORECAST_MAX_WEIGHT:.0%} a stock, "
                f"turnover at most {FORECAST_MAX_TURNOVER:g} a rebalance, trading costs "
                "in the objective."
            ),
        ),
    }


STRATEGY_NAMES: tuple[str, ...] = tuple(_named(PortfolioOptimizer(), None))
"""Every named strategy; each also runs as ``<name>+vol_target``."""


def named_strategy(
    name: str,
    *,
    benchmark: str | None = None,
    optimizer: PortfolioOptimizer | None = None,
    target_volatility: float = 0.10,
    max_leverage: float = 1.0,
) -> Strategy:
    """A fresh instance of the strategy called ``name``.

    ``<name>+vol_target`` wraps it in :class:`VolatilityTarget` with
    ``target_volatility`` and ``max_leverage``.

    Raises
    ------
    InvalidBacktest
        For an unknown name.
    """
    base = name.removesuffix(VOL_TARGET_SUFFIX)
    factories = _named(optimizer or PortfolioOptimizer(), benchmark)
    if base not in factories:
        raise InvalidBacktest(
            f"unknown strategy {name!r}; choose among {', '.join(STRATEGY_NAMES)}, each "
            f"optionally with the suffix {VOL_TARGET_SUFFIX!r}"
        )
    strategy = factories[base]()
    if name.endswith(VOL_TARGET_SUFFIX):
        return VolatilityTarget(strategy, target_volatility, max_leverage)
    return strategy
