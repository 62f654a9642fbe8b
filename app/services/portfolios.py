"""Allocations and frontiers: builds the optimizer's inputs and calls it.

Inputs come from one of two places.

- **The model** (no ``expected_returns``, ``covariance`` or ``returns`` in the request),
  annualised with 252 trading days:

  - expected returns: the model's 5-day log-return forecast scaled to a year, plus half
    the forecast annual variance (arithmetic mean of a lognormal return);
  - covariance ``Sigma = D C D``: ``D`` the model's forward volatility forecasts, ``C``
    the correlation of the trailing daily log returns (``correlation_lookback_days``,
    252 by default) from the request's risk model, Ledoit-Wolf shrinkage by default.
    Volatilities move fast and the model forecasts them; correlations are slower and
    noisier to estimate per asset pair, so a shrunk trailing estimate is the robust
    choice. A ``pca_factor`` risk model keeps ``Sigma`` in factor form;
  - scenarios (for CVaR): the trailing daily simple returns.

- **The request**: ``expected_returns`` with ``covariance``, or ``returns`` with
  ``periods_per_year`` (expected returns: the mean return times ``periods_per_year``
  unless given; covariance: the risk model's estimate times ``periods_per_year``).
  Tickers are free labels then, and no model is needed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Literal

import numpy as np
import numpy.typing as npt

from app.core.config import LimitSettings
from app.schemas.portfolios import (
    FrontierRequest,
    OptimizeRequest,
    PortfolioInputs,
    RiskModel,
    RiskModelMethod,
)
from app.services.errors import ModelNotLoaded
from app.services.forecasts import ForecastService
from app.services.limits import check_frontier_points, check_tickers
from app.services.optimizer_terms import build_constraints, build_estimator, build_objective
from optimizer import (
    FactorModel,
    OptimizerError,
    PCAFactorModel,
    PortfolioOptimizer,
    PortfolioResult,
    ProblemData,
    check_returns,
    covariance_from_volatility,
    efficient_frontier,
    ledoit_wolf_correlation,
)

FloatArray = npt.NDArray[np.float64]

COVARIANCE_METHOD = (
    "model volatility forecasts (21-day, annualised) with the {method} correlation of "
    "the trailing {days} daily log returns"
)

_METHOD_NAMES = {
    RiskModelMethod.SAMPLE: "sample",
    RiskModelMethod.LEDOIT_WOLF: "Ledoit-Wolf",
    RiskModelMethod.EWMA: "EWMA (half-life {half_life:g})",
    RiskModelMethod.PCA_FACTOR: "PCA {n_factors}-factor",
}


@dataclass(frozen=True)
class MarketInputs:
    """The optimizer's inputs for one request, and where they came from."""

    data: ProblemData
    inputs: Literal["model", "request"]
    covariance_method: str
    model_name: str | None = None
    model_version: int | None = None
    as_of: date | None = None


@dataclass(frozen=True)
class Allocation:
    """An optimizer result with the inputs it came from."""

    result: PortfolioResult
    market: MarketInputs


@dataclass(frozen=True)
class Frontier:
    """Efficient-frontier portfolios with the inputs they came from."""

    points: list[PortfolioResult]
    market: MarketInputs


class PortfolioService:
    """Allocations with one shared optimizer (compiled-problem cache).

    Parameters
    ----------
    forecasts : ForecastService or None
        The loaded model's forecasts; ``None`` when no model is loaded (requests with
        their own inputs still work).
    optimizer : PortfolioOptimizer
    correlation_lookback_days : int
        Trailing daily returns behind the model path's correlation.
    not_ready_reason : str or None, optional
        Why no model is loaded, for the error of a request that needs one.
    """

    def __init__(
        self,
        forecasts: ForecastService | None,
        optimizer: PortfolioOptimizer,
        correlation_lookback_days: int,
        not_ready_reason: str | None = None,
    ) -> None:
        self.forecasts = forecasts
        self.optimizer = optimizer
        self.correlation_lookback_days = correlation_lookback_days
        self.not_ready_reason = not_ready_reason
        self._trailing = lru_cache(maxsize=128)(self._compute_trailing)

    def optimize(self, request: OptimizeRequest, risk_free_rate: float) -> Allocation:
        """Solve ``request``; ``risk_free_rate`` is in the units of the expected returns."""
        with _assets_named_by(request.tickers):
            market = self.market_inputs(request)
            result = self.optimizer.solve(
                build_objective(request, risk_free_rate, request.tickers),
                build_constraints(request.constraints, request.tickers),
                market.data,
                risk_free_rate=risk_free_rate,
            )
        return Allocation(result, market)

    def frontier(self, request: FrontierRequest, risk_free_rate: float) -> Frontier:
        """``request.n_points`` portfolios along the efficient frontier."""
        with _assets_named_by(request.tickers):
            market = self.market_inputs(request)
            points = efficient_frontier(
                self.optimizer,
                build_constraints(request.constraints, request.tickers),
                market.data,
                n_points=request.n_points,
                risk_free_rate=risk_free_rate,
            )
        return Frontier(points, market)

    def market_inputs(self, request: PortfolioInputs) -> MarketInputs:
        """Expected returns, risk, scenarios and trading inputs for ``request``."""
        if request.has_own_inputs:
            return _request_inputs(request)
        return self._model_inputs(request)

    def _model_inputs(self, request: PortfolioInputs) -> MarketInputs:
        if self.forecasts is None:
            raise ModelNotLoaded(
                f"{self.not_ready_reason or 'no model is loaded yet'}. To optimize without "
                "a model, send expected_returns with covariance, or returns with "
                "periods_per_year."
            )
        tickers = tuple(request.tickers)
        expected_returns, volatilities = self.forecasts.annualized(tickers)
        risk_model = request.risk_model
        structure, scenarios = self._trailing_in_order(
            tickers, risk_model.method, risk_model.half_life, risk_model.n_factors
        )
        covariance: FloatArray | FactorModel = (
            structure.with_volatility(volatilities)
            if isinstance(structure, FactorModel)
            else covariance_from_volatility(volatilities, structure)
        )
        data = ProblemData.from_arrays(
            expected_returns,
            covariance,
            returns=scenarios,
            current_weights=_per_ticker(request.current_weights, request.tickers),
            transaction_costs=_costs(request),
        )
        model = self.forecasts.model
        method = _METHOD_NAMES[request.risk_model.method].format(**request.risk_model.model_dump())
        return MarketInputs(
            data=data,
            inputs="model",
            covariance_method=COVARIANCE_METHOD.format(
                method=method, days=self.correlation_lookback_days
            ),
            model_name=model.name,
            model_version=model.version,
            as_of=max(f.as_of for f in self.forecasts.get(tickers)),
        )

    def _trailing_in_order(
        self,
        tickers: tuple[str, ...],
        method: RiskModelMethod,
        half_life: float | None,
        n_factors: int | None,
    ) -> tuple[FloatArray | FactorModel, FloatArray]:
        """The trailing estimate for ``tickers``, in their order.

        Estimated once per set of tickers: the cache holds them sorted, and each request
        gets rows and columns permuted into its own order (the estimators are
        permutation-equivariant), so clients that list the same tickers in another order
        do not pay for a new estimate.
        """
        canonical = tuple(sorted(tickers))
        # The estimate's columns are in sorted order, so its errors' positions are too.
        with _assets_named_by(canonical):
            structure, scenarios = self._trailing(canonical, method, half_life, n_factors)
        if canonical == tickers:
            return structure, scenarios
        position = {ticker: i for i, ticker in enumerate(canonical)}
        order = np.array([position[t] for t in tickers])
        if isinstance(structure, FactorModel):
            permuted: FloatArray | FactorModel = FactorModel(
                loadings=structure.loadings[order],
                factor_covariance=structure.factor_covariance,
                specific_variance=structure.specific_variance[order],
            )
        else:
            permuted = structure[np.ix_(order, order)]
        return permuted, scenarios[:, order]

    def _compute_trailing(
        self,
        tickers: tuple[str, ...],
        method: RiskModelMethod,
        half_life: float | None,
        n_factors: int | None,
    ) -> tuple[FloatArray | FactorModel, FloatArray]:
        """Correlation (dense, or a unit-volatility factor model) and simple returns."""
        assert self.forecasts is not None
        risk_model = RiskModel(method=method, half_life=half_life, n_factors=n_factors)
        log_returns = np.asarray(
            self.forecasts.store.trailing_log_returns(
                list(tickers), self.correlation_lookback_days
            ),
            dtype=np.float64,
        )
        scenarios = np.expm1(log_returns)
        if risk_model.method is RiskModelMethod.LEDOIT_WOLF:
            return ledoit_wolf_correlation(log_returns), scenarios
        estimator = build_estimator(risk_model).fit(log_returns)
        if isinstance(estimator, PCAFactorModel):
            return estimator.factor_model_.with_volatility(np.ones(len(tickers))), scenarios
        volatility = np.sqrt(np.diag(estimator.covariance_))
        correlation = estimator.covariance_ / np.outer(volatility, volatility)
        np.fill_diagonal(correlation, 1.0)
        return correlation, scenarios


@contextmanager
def _assets_named_by(tickers: Sequence[str]) -> Iterator[None]:
    """Re-raise an optimizer error about particular assets naming them by ticker.

    The optimizer knows assets by position (``asset 2``); the client knows them by
    ticker. ``tickers`` must be in the order of the problem's assets. An error already
    named (by an inner block that knew a different order) passes through unchanged.
    """
    try:
        yield
    except OptimizerError as exc:
        named = exc.with_asset_names(tickers)
        if named is exc:
            raise
        raise named from exc


def check_limits(request: PortfolioInputs, limits: LimitSettings) -> None:
    """Refuse a request over the configured limits: tickers, and a frontier's points.

    Raises :class:`~app.services.errors.LimitExceeded` (422) before any input is built
    or any solver runs; the solve's time limit is the optimizer's.
    """
    check_tickers(len(request.tickers), limits)
    if isinstance(request, FrontierRequest):
        check_frontier_points(request.n_points, limits)


def _request_inputs(request: PortfolioInputs) -> MarketInputs:
    tickers = request.tickers
    returns = None if request.returns is None else check_returns(request.returns)
    covariance: FloatArray | FactorModel
    if request.covariance is not None:
        covariance = np.asarray(request.covariance, dtype=np.float64)
        method = "given in the request"
    else:
        assert returns is not None
        assert request.periods_per_year is not None
        periods = request.periods_per_year
        estimator = build_estimator(request.risk_model).fit(returns)
        covariance = (
            estimator.factor_model_.scaled(periods)
            if isinstance(estimator, PCAFactorModel)
            else estimator.covariance_ * periods
        )
        name = _METHOD_NAMES[request.risk_model.method].format(**request.risk_model.model_dump())
        method = (
            f"{name} estimate from the request's {returns.shape[0]} periods of returns, "
            f"times {periods:g} periods a year"
        )
    if request.expected_returns is not None:
        expected_returns = np.array([request.expected_returns[t] for t in tickers])
    else:
        assert returns is not None
        assert request.periods_per_year is not None
        expected_returns = returns.mean(axis=0) * request.periods_per_year
    data = ProblemData.from_arrays(
        expected_returns,
        covariance,
        returns=returns,
        current_weights=_per_ticker(request.current_weights, tickers),
        transaction_costs=_costs(request),
    )
    return MarketInputs(data=data, inputs="request", covariance_method=method)


def _per_ticker(values: dict[str, float] | None, tickers: Sequence[str]) -> FloatArray | None:
    """A per-ticker mapping as a vector in ticker order (left-out tickers: 0)."""
    if values is None:
        return None
    return np.array([values.get(t, 0.0) for t in tickers])


def _costs(request: PortfolioInputs) -> FloatArray | None:
    """Transaction costs in return units (basis points / 10,000)."""
    bps = request.transaction_costs_bps
    if bps is None:
        return None
    if isinstance(bps, dict):
        per_ticker = _per_ticker(bps, request.tickers)
        assert per_ticker is not None
        return per_ticker / 1e4
    return np.full(len(request.tickers), bps / 1e4)
