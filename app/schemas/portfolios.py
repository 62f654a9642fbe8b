"""Bodies of ``POST /v1/portfolios/optimize`` and ``POST /v1/portfolios/frontier``.

The requests are defined here; the responses live in ``_portfolio_responses`` and the
``Objective`` both name in ``_portfolio_objective``, and are re-exported from here.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.core.config import FRONTIER_POINTS_CEILING
from app.schemas._portfolio_objective import Objective
from app.schemas._portfolio_responses import (
    FrontierPoint,
    FrontierResponse,
    OptimizeResponse,
    SolverReport,
)
from app.schemas.forecasts import MAX_TICKERS, _listed, _unique_tickers

__all__ = [
    "MAX_FRONTIER_POINTS",
    "MAX_RETURN_ROWS",
    "MAX_RETURN_VALUES",
    "OBJECTIVE_FIELDS",
    "AssetBound",
    "Constraints",
    "FrontierPoint",
    "FrontierRequest",
    "FrontierResponse",
    "Group",
    "Objective",
    "ObjectiveChoice",
    "OptimizeRequest",
    "OptimizeResponse",
    "PortfolioInputs",
    "RiskModel",
    "RiskModelMethod",
    "SolverReport",
    "TrackingErrorLimit",
]

MAX_FRONTIER_POINTS = FRONTIER_POINTS_CEILING
"""A hard ceiling on frontier points; ``limits.max_frontier_points`` (422) governs."""

MAX_RETURN_ROWS = 10_000
"""Most periods of ``returns`` in one request (40 years of daily returns)."""

MAX_RETURN_VALUES = 1_000_000
"""Most numbers in ``returns`` (rows x tickers) in one request."""


class RiskModelMethod(StrEnum):
    """How the covariance is estimated from returns."""

    SAMPLE = "sample"
    LEDOIT_WOLF = "ledoit_wolf"
    EWMA = "ewma"
    PCA_FACTOR = "pca_factor"


class RiskModel(BaseModel):
    """The covariance estimator (from ``returns``, or the correlation behind the model's)."""

    model_config = ConfigDict(extra="forbid")

    method: RiskModelMethod = RiskModelMethod.LEDOIT_WOLF
    half_life: float | None = Field(
        None, gt=0.0, le=100_000, description="ewma: periods after which a weight halves."
    )
    n_factors: int | None = Field(
        None, ge=1, le=100, description="pca_factor: number of statistical factors."
    )

    @model_validator(mode="after")
    def _check_method_parameters(self) -> Self:
        if self.method is RiskModelMethod.EWMA and self.half_life is None:
            raise ValueError("risk_model.method 'ewma' needs half_life (e.g. 63 periods)")
        if self.method is RiskModelMethod.PCA_FACTOR and self.n_factors is None:
            raise ValueError("risk_model.method 'pca_factor' needs n_factors (e.g. 5)")
        return self


class AssetBound(BaseModel):
    """Bounds of one asset's weight."""

    model_config = ConfigDict(extra="forbid")

    min_weight: float | None = Field(None, ge=-1.0, le=1.0)
    max_weight: float | None = Field(None, ge=-1.0, le=1.0)


class Group(BaseModel):
    """A group of tickers (a sector) with bounds on its total weight."""

    model_config = ConfigDict(extra="forbid")

    tickers: list[str] = Field(min_length=1, max_length=MAX_TICKERS)
    min_weight: float | None = Field(None, ge=-1.0, le=1.0)
    max_weight: float | None = Field(None, ge=-1.0, le=1.0)


class TrackingErrorLimit(BaseModel):
    """A cap on the volatility of the weights minus the benchmark's."""

    model_config = ConfigDict(extra="forbid")

    benchmark_weights: dict[str, float] = Field(
        description="Benchmark weight per ticker; tickers left out weigh 0."
    )
    max_tracking_error: float = Field(gt=0.0, le=5.0, description="In volatility units.")


class Constraints(BaseModel):
    """Constraints on the weights; the weights always sum to 1 (fully invested)."""

    model_config = ConfigDict(extra="forbid")

    long_only: bool = Field(True, description="No short positions (every weight >= 0).")
    min_weight: float | None = Field(None, ge=-1.0, le=1.0, description="Lower bound per asset.")
    max_weight: float | None = Field(None, gt=0.0, le=1.0, description="Upper bound per asset.")
    asset_bounds: dict[str, AssetBound] | None = Field(
        None, description="Per-ticker bounds; they replace min_weight/max_weight for that ticker."
    )
    max_gross_leverage: float | None = Field(
        None, ge=1.0, le=10.0, description="Cap on sum |w| (1.6 allows 130/30)."
    )
    groups: dict[str, Group] | None = Field(
        None, description="Named groups (sectors) with bounds on their total weight."
    )
    max_turnover: float | None = Field(
        None, ge=0.0, le=20.0, description="Cap on sum |w - current_weights|."
    )
    max_volatility: float | None = Field(
        None, gt=0.0, le=5.0, description="Cap on the volatility, in the units of the inputs."
    )
    tracking_error: TrackingErrorLimit | None = None

    def referenced_tickers(self) -> dict[str, list[str]]:
        """Tickers named by each field, to check against the request's tickers."""
        named: dict[str, list[str]] = {}
        if self.asset_bounds:
            named["constraints.asset_bounds"] = list(self.asset_bounds)
        for name, group in (self.groups or {}).items():
            named[f"constraints.groups.{name}"] = group.tickers
        if self.tracking_error is not None:
            named["constraints.tracking_error.benchmark_weights"] = list(
                self.tracking_error.benchmark_weights
            )
        return named


class PortfolioInputs(BaseModel):
    """Tickers, inputs and constraints shared by the optimize and frontier requests.

    Without ``expected_returns``, ``covariance`` or ``returns`` the loaded model's
    forecasts are used and the tickers must be served by it. With them, the tickers
    are free labels and no model is needed.
    """

    model_config = ConfigDict(extra="forbid")

    tickers: list[str] = Field(
        min_length=2,
        max_length=MAX_TICKERS,
        description="Distinct tickers; at most limits.max_tickers (500 by default).",
    )
    expected_returns: dict[str, float] | None = Field(
        None, description="Expected return per ticker (every ticker), in your units."
    )
    covariance: list[list[float]] | None = Field(
        None, description="Covariance, rows and columns in the order of tickers."
    )
    returns: list[list[float]] | None = Field(
        None,
        description="Returns, one row per period, columns in the order of tickers; they "
        "give the covariance (risk_model) and expected returns when those are absent, and "
        "the scenarios of min_cvar and the reported CVaR.",
    )
    periods_per_year: float | None = Field(
        None, gt=0.0, le=100_000, description="Periods of returns per year (252 for daily)."
    )
    risk_model: RiskModel = RiskModel()
    risk_free_rate: float | None = Field(
        None,
        ge=-1.0,
        le=1.0,
        description="In the units of the expected returns (annualised for the model's); "
        "used by max_sharpe and for the Sharpe ratio. Default from config.",
    )
    current_weights: dict[str, float] | None = Field(
        None, description="Current holdings per ticker (left out: 0), for turnover and costs."
    )
    transaction_costs_bps: float | dict[str, float] | None = Field(
        None,
        description="Linear cost in basis points of the value traded: one number for "
        "every ticker, or one per ticker (left out: 0).",
    )
    constraints: Constraints = Constraints()

    @field_validator("tickers")
    @classmethod
    def _check_tickers(cls, value: list[str]) -> list[str]:
        return _unique_tickers(value)

    @property
    def has_own_inputs(self) -> bool:
        """Whether the request brings its own expected returns, covariance or returns."""
        return any(x is not None for x in (self.expected_returns, self.covariance, self.returns))

    @model_validator(mode="after")
    def _check_inputs(self) -> Self:
        n = len(self.tickers)
        if self.covariance is not None:
            if self.expected_returns is None:
                raise ValueError("covariance needs expected_returns for the same tickers")
            if len(self.covariance) != n or any(len(row) != n for row in self.covariance):
                raise ValueError(f"covariance must be {n} x {n}, in the order of tickers")
        if self.returns is not None:
            if self.periods_per_year is None:
                raise ValueError("returns need periods_per_year (252 for daily, 12 for monthly)")
            if len(self.returns) > MAX_RETURN_ROWS:
                raise ValueError(
                    f"returns have {len(self.returns)} rows; the limit is {MAX_RETURN_ROWS}"
                )
            if len(self.returns) * n > MAX_RETURN_VALUES:
                raise ValueError(
                    f"returns hold {len(self.returns) * n} values; the limit is {MAX_RETURN_VALUES}"
                )
            if len(self.returns) < 2 or any(len(row) != n for row in self.returns):
                raise ValueError(f"returns need at least 2 rows of {n} values (one per ticker)")
        elif self.expected_returns is not None and self.covariance is None:
            raise ValueError("expected_returns need a covariance, or returns to estimate one")
        if self.expected_returns is not None and set(self.expected_returns) != set(self.tickers):
            raise ValueError(_mismatch("expected_returns", self.expected_returns, self.tickers))
        named = self.constraints.referenced_tickers()
        if self.current_weights is not None:
            named["current_weights"] = list(self.current_weights)
        if isinstance(self.transaction_costs_bps, dict):
            named["transaction_costs_bps"] = list(self.transaction_costs_bps)
        known = set(self.tickers)
        for field, tickers in named.items():
            unknown = sorted(set(tickers) - known)
            if unknown:
                raise ValueError(f"{field} names tickers not in tickers: {_listed(unknown)}")
        return self


def _mismatch(field: str, given: dict[str, float], tickers: list[str]) -> str:
    missing, extra = sorted(set(tickers) - set(given)), sorted(set(given) - set(tickers))
    return (
        f"{field} must have one value per ticker; missing: {_listed(missing)}; "
        f"not in tickers: {_listed(extra)}"
    )


OBJECTIVE_FIELDS: dict[str, Objective] = {
    "risk_aversion": Objective.MEAN_VARIANCE,
    "target_return": Objective.EFFICIENT_RETURN,
    "target_volatility": Objective.EFFICIENT_RISK,
    "risk_budgets": Objective.RISK_BUDGETING,
    "cvar_alpha": Objective.MIN_CVAR,
    "linkage": Objective.HRP,
}
"""The fields of ``OptimizeRequest`` that one objective alone reads, and that objective."""


class ObjectiveChoice(BaseModel):
    """An objective and the fields that only it reads.

    Shared by ``OptimizeRequest`` and the optimize-style strategies of a back-test. The
    fields of one objective (risk_aversion, target_return, target_volatility,
    risk_budgets, cvar_alpha, linkage) sent with another objective are refused (422)
    rather than ignored, unless null or their default: a client that sends them expects
    a result it would not get.
    """

    model_config = ConfigDict(extra="forbid")

    objective: Objective = Objective.MIN_VARIANCE
    risk_aversion: float = Field(
        2.0,
        gt=0.0,
        le=1e6,
        description="mean_variance maximises mu'w - cost - (risk_aversion/2) w'Sigma w.",
    )
    target_return: float | None = Field(
        None, ge=-10.0, le=10.0, description="efficient_return: the return to reach."
    )
    target_volatility: float | None = Field(
        None, gt=0.0, le=10.0, description="efficient_risk: the volatility not to exceed."
    )
    risk_budgets: dict[str, float] | None = Field(
        None, description="risk_budgeting: positive budget per ticker (default: equal)."
    )
    cvar_alpha: float = Field(
        0.95, gt=0.0, lt=1.0, description="min_cvar: the confidence level of the CVaR."
    )
    linkage: Literal["single", "complete", "average", "weighted", "ward"] = Field(
        "single", description="hrp: scipy's hierarchical clustering linkage."
    )

    @model_validator(mode="after")
    def _check_objective(self) -> Self:
        misplaced = self._fields_of_other_objectives()
        if misplaced:
            raise ValueError(_misplaced(misplaced, self.objective))
        if self.objective is Objective.EFFICIENT_RETURN and self.target_return is None:
            raise ValueError("objective 'efficient_return' needs target_return")
        if self.objective is Objective.EFFICIENT_RISK and self.target_volatility is None:
            raise ValueError("objective 'efficient_risk' needs target_volatility")
        return self

    def _fields_of_other_objectives(self) -> list[str]:
        """Fields sent for an objective other than ``objective``, which would ignore them.

        ``null`` and a field's default count as not sent: they ask for nothing, and a
        request echoed back in full (the audit trail records every field, defaults
        included) must still validate.
        """
        fields = type(self).model_fields
        return [
            name
            for name, objective in OBJECTIVE_FIELDS.items()
            if objective is not self.objective
            and getattr(self, name) not in (None, fields[name].default)
        ]


# ObjectiveChoice first: its fields follow PortfolioInputs' in the schema, as they did.
class OptimizeRequest(ObjectiveChoice, PortfolioInputs):
    """An allocation over ``tickers``, from the model's forecasts or your own inputs.

    The fields of one objective (risk_aversion, target_return, target_volatility,
    risk_budgets, cvar_alpha, linkage) sent with another objective are refused (422)
    rather than ignored, unless null or their default: a client that sends them expects
    a result it would not get.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "tickers": ["AAPL", "JNJ", "JPM", "XOM", "WMT"],
                    "objective": "max_sharpe",
                    "constraints": {"long_only": True, "max_weight": 0.4},
                }
            ]
        },
    )

    @model_validator(mode="after")
    def _check_risk_budgets(self) -> Self:
        if self.risk_budgets is not None and set(self.risk_budgets) != set(self.tickers):
            raise ValueError(_mismatch("risk_budgets", self.risk_budgets, self.tickers))
        return self


def _misplaced(fields: list[str], objective: Objective) -> str:
    """Which objective each field belongs to, and how to fix the request."""
    first, *others = fields
    parts = [f"{first} applies only to objective '{OBJECTIVE_FIELDS[first]}'"]
    parts += [f"{field} only to '{OBJECTIVE_FIELDS[field]}'" for field in others]
    listed = parts[0] if not others else f"{', '.join(parts[:-1])} and {parts[-1]}"
    if others:
        return (
            f"{listed}; objective '{objective}' would ignore them: remove them, or set "
            "objective to the one you meant"
        )
    return (
        f"{listed}; objective '{objective}' would ignore it: remove it, or set objective "
        f"to '{OBJECTIVE_FIELDS[first]}'"
    )


class FrontierRequest(PortfolioInputs):
    """Points of the efficient frontier over ``tickers``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"tickers": ["AAPL", "JNJ", "JPM", "XOM", "WMT"], "n_points": 10}]
        },
    )

    n_points: int = Field(
        20,
        ge=2,
        le=MAX_FRONTIER_POINTS,
        description="Points to return; at most limits.max_frontier_points (50 by default).",
    )
