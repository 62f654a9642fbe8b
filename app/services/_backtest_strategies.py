"""A back-test request as the back-test library's objects: settings and strategies.

Used twice: by ``POST /v1/backtests`` to refuse a request that cannot run before it is
queued (unknown names, bad dates), and by the job's worker process to run it. An
optimize-style spec becomes an ``OptimizedStrategy`` whose objective and constraints are
the optimize endpoint's (``app.services.optimizer_terms``), built for the universe the
engine gives it: only then are the positions of per-ticker bounds, groups, tracking
weights and risk budgets known (tickers without a full price history over the period are
left out of it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from app.schemas.backtests import BacktestRequest, StrategySpec
from app.services.optimizer_terms import build_constraints, build_estimator, build_objective
from backtest import (
    BacktestSettings,
    InvalidBacktest,
    OptimizedStrategy,
    Strategy,
    StrategyInputs,
    VolatilityTarget,
    named_strategy,
)
from optimizer import PortfolioOptimizer


class JobParameters(BaseModel):
    """What a job reads besides its request, fixed when it is accepted (re-runs agree).

    ``predictions`` is the serving model version's walk-forward ``predictions.parquet``
    at the time (None when no version serves); ``prices_file`` None is the embedded set.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    prices_file: str | None
    benchmark: str | None
    min_history_days: int
    model_name: str
    model_version: int | None
    predictions: str | None
    risk_free_rate: float
    solver: str
    fallback_solvers: tuple[str, ...]
    solver_time_limit_seconds: float


def backtest_settings(request: BacktestRequest) -> BacktestSettings:
    """The period, schedule and costs; ``InvalidBacktest`` for ones that cannot run."""
    return BacktestSettings(
        start=request.start,
        end=request.end,
        rebalance=request.rebalance,
        cost_bps=request.cost_bps,
        spread_bps=request.spread_bps,
    )


def build_strategies(
    request: BacktestRequest,
    parameters: JobParameters,
    *,
    benchmark: str | None,
    optimizer: PortfolioOptimizer | None = None,
) -> list[Strategy]:
    """The strategies of ``request``, sharing ``optimizer`` (compiled problems are re-used).

    Raises ``InvalidBacktest`` for an unknown name (the message lists the choices).
    """
    optimizer = optimizer or PortfolioOptimizer(
        parameters.solver,
        parameters.fallback_solvers,
        time_limit_seconds=parameters.solver_time_limit_seconds,
    )
    strategies: list[Strategy] = []
    for choice in request.strategies:
        if isinstance(choice, str):
            strategies.append(
                named_strategy(
                    choice,
                    benchmark=benchmark,
                    optimizer=optimizer,
                    target_volatility=request.target_volatility,
                    max_leverage=request.max_leverage,
                )
            )
        else:
            strategies.append(_from_spec(choice, parameters, optimizer))
    return strategies


def _from_spec(
    spec: StrategySpec, parameters: JobParameters, optimizer: PortfolioOptimizer
) -> Strategy:
    risk_free_rate = (
        spec.risk_free_rate if spec.risk_free_rate is not None else parameters.risk_free_rate
    )
    strategy = SpecStrategy(
        spec.name,
        build_objective(spec, risk_free_rate, list(spec.risk_budgets or ())),
        (),
        StrategyInputs(
            expected_returns=spec.inputs.expected_returns,
            volatility=spec.inputs.volatility,
            risk_model=build_estimator(spec.risk_model),
            lookback_days=spec.inputs.lookback_days,
        ),
        optimizer,
        cost_aware=spec.transaction_costs_bps is not None,
        spec=spec,
        risk_free_rate=risk_free_rate,
    )
    if spec.vol_target is None:
        return strategy
    return VolatilityTarget(
        strategy, spec.vol_target.target_volatility, spec.vol_target.max_leverage
    )


@dataclass
class SpecStrategy(OptimizedStrategy):
    """An optimize-style spec: objective and constraints built for the engine's universe.

    The engine asks every strategy for its universe (``universe``) before its first
    rebalance; this one builds its objective and constraints over those tickers then.
    """

    spec: StrategySpec | None = None
    risk_free_rate: float = 0.0

    def universe(self, tickers: Sequence[str], benchmark: str | None) -> list[str]:
        """Every ticker with a full history; builds the objective and constraints over them."""
        universe = super().universe(tickers, benchmark)
        spec = self.spec
        if spec is None:  # pragma: no cover - always set by build_strategies
            raise InvalidBacktest(f"strategy {self.name!r} has no spec")
        for field, named in spec.referenced_tickers().items():
            outside = sorted(set(named) - set(universe))
            if outside:
                raise InvalidBacktest(
                    f"strategy {self.name!r}: {field} names {', '.join(outside)}, outside "
                    f"the back-test's universe ({', '.join(universe)}); a ticker without a "
                    "price on every day of the period and its look-back is left out. "
                    "Remove them, or choose a period they cover"
                )
        if spec.risk_budgets is not None:
            missing = sorted(set(universe) - set(spec.risk_budgets))
            if missing:
                raise InvalidBacktest(
                    f"strategy {self.name!r}: risk_budgets has no budget for "
                    f"{', '.join(missing)}; give every ticker a budget, or back-test the "
                    "budgeted ones only (tickers)"
                )
        self.objective = build_objective(spec, self.risk_free_rate, universe)
        self.constraints = build_constraints(spec.constraints, universe)
        return universe
