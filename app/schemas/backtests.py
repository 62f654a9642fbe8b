"""Bodies of ``/v1/backtests``: a back-test's request, its job's status, the list of jobs.

A strategy is a name from the catalog (``min_variance``, ``forecast_mean_variance+vol_target``
...) or an optimize-style spec: the objective, constraints and risk model of
``POST /v1/portfolios/optimize`` (the same schema classes, so the same rules), with where
its inputs come from at each rebalance.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from app.schemas.forecasts import MAX_TICKERS, _listed, _unique_tickers
from app.schemas.portfolios import Constraints, Objective, ObjectiveChoice, RiskModel
from app.schemas.problems import Problem
from backtest import STRATEGY_NAMES, VOL_TARGET_SUFFIX

MAX_STRATEGIES = 20
"""Most strategies in one back-test (the 1/N and index references come on top)."""

RETURN_OBJECTIVES = frozenset(
    {
        Objective.MAX_SHARPE,
        Objective.MEAN_VARIANCE,
        Objective.EFFICIENT_RETURN,
        Objective.EFFICIENT_RISK,
    }
)
"""Objectives that read expected returns and pay trading costs; the others use risk only."""

BacktestStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class StrategyInputs(BaseModel):
    """Where an optimize-style strategy's inputs come from at each rebalance date."""

    model_config = ConfigDict(extra="forbid")

    expected_returns: Literal["none", "trailing_mean", "expanding_mean", "forecast"] = Field(
        "none",
        description="none for risk-only objectives; the trailing or expanding-window mean "
        "daily return times 252; or the model's walk-forward forecast.",
    )
    volatility: Literal["trailing", "forecast"] = Field(
        "trailing",
        description="trailing: the risk model's covariance of the trailing returns; "
        "forecast: the model's walk-forward volatilities with the risk model's correlation.",
    )
    lookback_days: int = Field(
        252, ge=21, le=2520, description="Trailing trading days behind the risk estimate."
    )

    @property
    def uses_forecasts(self) -> bool:
        """Whether the model's walk-forward forecasts are needed."""
        return self.expected_returns == "forecast" or self.volatility == "forecast"


class VolatilityTarget(BaseModel):
    """Scale the weights to a forecast annual volatility, the rest in cash."""

    model_config = ConfigDict(extra="forbid")

    target_volatility: float = Field(0.10, gt=0.0, le=2.0, description="Annual; 0.10 = 10%.")
    max_leverage: float = Field(1.0, gt=0.0, le=10.0, description="Cap on sum |w|.")


class StrategySpec(ObjectiveChoice):
    """An allocation of ``POST /v1/portfolios/optimize`` re-solved at every rebalance.

    The objective and its fields, ``constraints`` and ``risk_model`` are those of an
    optimize request. ``transaction_costs_bps`` makes the objective pay the back-test's
    trading costs (objectives that use expected returns only).
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "capped_mean_variance",
                    "objective": "mean_variance",
                    "risk_aversion": 10,
                    "constraints": {"long_only": True, "max_weight": 0.25, "max_turnover": 0.5},
                    "inputs": {"expected_returns": "trailing_mean", "lookback_days": 252},
                }
            ]
        },
    )

    name: str = Field(
        pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$",
        description="The strategy's name in the results (letters, digits, _ . -).",
    )
    constraints: Constraints = Constraints()
    risk_model: RiskModel = RiskModel()
    risk_free_rate: float | None = Field(
        None, ge=-1.0, le=1.0, description="max_sharpe: annual. Default from config."
    )
    transaction_costs_bps: float | None = Field(
        None,
        ge=0.0,
        le=1_000.0,
        description="Set to the back-test's cost_bps to make the objective pay the trading "
        "costs it will be charged (cost_bps plus half of spread_bps).",
    )
    inputs: StrategyInputs = StrategyInputs()
    vol_target: VolatilityTarget | None = Field(
        None, description="Run the strategy under the volatility-target overlay."
    )

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if value in STRATEGY_NAMES:
            raise ValueError(
                f"{value!r} is the name of a catalog strategy; give the spec another name, or "
                f"ask for the catalog's by its name alone"
            )
        return value

    @model_validator(mode="after")
    def _check_inputs_fit_objective(self) -> Self:
        uses_returns = self.objective in RETURN_OBJECTIVES
        if uses_returns and self.inputs.expected_returns == "none":
            raise ValueError(
                f"objective '{self.objective}' needs expected returns: set "
                "inputs.expected_returns to trailing_mean, expanding_mean or forecast"
            )
        if not uses_returns and self.inputs.expected_returns != "none":
            raise ValueError(
                f"objective '{self.objective}' uses no expected returns and would ignore "
                f"inputs.expected_returns='{self.inputs.expected_returns}': remove it, or "
                "choose an objective that uses them (max_sharpe, mean_variance, "
                "efficient_return, efficient_risk)"
            )
        if not uses_returns and self.transaction_costs_bps is not None:
            raise ValueError(
                f"objective '{self.objective}' does not weigh trading costs and would ignore "
                "transaction_costs_bps: remove it (the back-test charges cost_bps anyway)"
            )
        if self.objective is not Objective.MAX_SHARPE and self.risk_free_rate is not None:
            raise ValueError(
                f"risk_free_rate applies only to objective 'max_sharpe'; objective "
                f"'{self.objective}' would ignore it: remove it"
            )
        return self

    @property
    def result_name(self) -> str:
        """The name in the results: ``name``, with the overlay's suffix under ``vol_target``."""
        return f"{self.name}{VOL_TARGET_SUFFIX}" if self.vol_target is not None else self.name

    @property
    def uses_forecasts(self) -> bool:
        """Whether the model's walk-forward forecasts are needed."""
        return self.inputs.uses_forecasts or self.vol_target is not None

    def referenced_tickers(self) -> dict[str, list[str]]:
        """Tickers named by each field, to check against the back-test's universe."""
        named = self.constraints.referenced_tickers()
        if self.risk_budgets is not None:
            named["risk_budgets"] = list(self.risk_budgets)
        return named


def _strategy_kind(value: Any) -> str:
    return "name" if isinstance(value, str) else "spec"


StrategyChoice = Annotated[
    Annotated[str, Field(min_length=1, max_length=80), Tag("name")]
    | Annotated[StrategySpec, Tag("spec")],
    Discriminator(_strategy_kind),
]
"""A catalog name (optionally with ``+vol_target``) or an optimize-style spec."""


class BacktestRequest(BaseModel):
    """A walk-forward back-test of strategies over one period, net of trading costs.

    1/N (``equal_weight``) and the index (``index``) are always run, as references.
    ``target_volatility`` and ``max_leverage`` set the overlay of the ``<name>+vol_target``
    strategies; a spec's ``vol_target`` sets its own.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "strategies": [
                        "min_variance",
                        {
                            "name": "capped_max_sharpe",
                            "objective": "max_sharpe",
                            "constraints": {"max_weight": 0.2},
                            "inputs": {"expected_returns": "expanding_mean"},
                        },
                    ],
                    "start": "2015-01-01",
                    "end": "2022-12-28",
                    "rebalance": "monthly",
                    "cost_bps": 10,
                }
            ]
        },
    )

    strategies: list[StrategyChoice] = Field(
        min_length=1,
        max_length=MAX_STRATEGIES,
        description="Names (equal_weight, index, min_variance, max_sharpe, risk_parity, "
        "hrp, forecast_min_variance, forecast_mean_variance; each also as "
        "<name>+vol_target) or optimize-style specs.",
    )
    start: date | None = Field(
        None, description="First day; default the first with every look-back's history."
    )
    end: date | None = Field(None, description="Last day; default the last price.")
    rebalance: Literal["weekly", "monthly", "quarterly"] = Field(
        "monthly", description="Trade on the first day and the last trading day of each period."
    )
    cost_bps: float = Field(
        10.0, ge=0.0, le=1_000.0, description="Linear cost in basis points of the value traded."
    )
    spread_bps: dict[str, Annotated[float, Field(ge=0.0, le=10_000.0)]] | None = Field(
        None, description="Bid-ask spread per ticker in bps; half is paid on top of cost_bps."
    )
    tickers: list[str] | None = Field(
        None,
        min_length=2,
        max_length=MAX_TICKERS,
        description="Back-test these tickers of the data set only (default: all of them).",
    )
    target_volatility: float = Field(
        0.10, gt=0.0, le=2.0, description="+vol_target names: annual volatility to aim for."
    )
    max_leverage: float = Field(
        1.0, gt=0.0, le=10.0, description="+vol_target names: cap on the gross exposure."
    )

    @field_validator("tickers")
    @classmethod
    def _check_tickers(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _unique_tickers(value)

    @model_validator(mode="after")
    def _check_strategies(self) -> Self:
        names = self.result_names()
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"strategy names must be unique; repeated: {', '.join(repeated)}")
        overlay = any(isinstance(s, str) and s.endswith(VOL_TARGET_SUFFIX) for s in self.strategies)
        fields = type(self).model_fields
        unused = [
            name
            for name in ("target_volatility", "max_leverage")
            if getattr(self, name) != fields[name].default
        ]
        if unused and not overlay:
            raise ValueError(
                f"{' and '.join(unused)} set the overlay of <name>{VOL_TARGET_SUFFIX} "
                "strategies, and none is asked for: remove them, or add such a strategy "
                "(a spec takes its own vol_target)"
            )
        for spec in self.specs():
            costs = spec.transaction_costs_bps
            if costs is not None and costs != self.cost_bps:
                raise ValueError(
                    f"strategy {spec.name!r}: transaction_costs_bps={costs:g} differs from "
                    f"cost_bps={self.cost_bps:g}; the objective pays the costs the back-test "
                    f"charges, so set it to {self.cost_bps:g} (or leave it out)"
                )
        if self.tickers is not None:
            known = set(self.tickers)
            for field, tickers in self.named_tickers().items():
                unknown = sorted(set(tickers) - known)
                if unknown:
                    raise ValueError(f"{field} names tickers not in tickers: {_listed(unknown)}")
        return self

    def specs(self) -> list[StrategySpec]:
        """The optimize-style strategies."""
        return [s for s in self.strategies if isinstance(s, StrategySpec)]

    def result_names(self) -> list[str]:
        """Every strategy's name in the results, in the order asked."""
        return [s if isinstance(s, str) else s.result_name for s in self.strategies]

    def named_tickers(self) -> dict[str, list[str]]:
        """Tickers named by each field (spreads, the specs' constraints and risk budgets)."""
        named: dict[str, list[str]] = {}
        if self.spread_bps:
            named["spread_bps"] = list(self.spread_bps)
        for position, strategy in enumerate(self.strategies):
            if isinstance(strategy, StrategySpec):
                for field, tickers in strategy.referenced_tickers().items():
                    named[f"strategies.{position}.{field}"] = tickers
        return named


class BacktestAccepted(BaseModel):
    """A back-test queued: poll ``location`` for its progress and results."""

    id: str = Field(description="The job's id.")
    status: BacktestStatus
    location: str = Field(description="GET it for the status, progress and metrics.")


class BacktestProgress(BaseModel):
    """Rebalances done of every strategy, of all of them."""

    done: int = Field(description="Rebalances decided so far, over every strategy.")
    total: int | None = Field(description="Rebalances to decide; null until the run starts.")
    fraction: float | None = Field(description="done / total, 0 to 1; 1 once succeeded.")


class BacktestJob(BaseModel):
    """A back-test job: its state, the request, and its metrics once it succeeded."""

    id: str
    status: BacktestStatus = Field(
        description="queued, running, succeeded, failed or cancelled; the last three are final."
    )
    created_at: datetime = Field(description="When it was accepted (UTC).")
    started_at: datetime | None = Field(description="When its last attempt started.")
    finished_at: datetime | None = Field(description="When it succeeded, failed or was cancelled.")
    attempts: int = Field(description="Starts so far; a job re-runs when its server died.")
    progress: BacktestProgress
    location: str
    report: str | None = Field(description="The HTML report's URL, once succeeded.")
    request: BacktestRequest = Field(description="The request as accepted, defaults filled in.")
    error: Problem | None = Field(description="Why it failed (RFC 9457), when it failed.")
    metrics: dict[str, Any] | None = Field(
        description='metrics.json, once succeeded: {"strategies": {name: metrics}, '
        '"settings": {...}}.'
    )


class BacktestSummary(BaseModel):
    """One job in the list."""

    id: str
    status: BacktestStatus
    created_at: datetime
    finished_at: datetime | None
    strategies: list[str] = Field(description="The strategies asked for, by result name.")
    progress: BacktestProgress
    location: str


class BacktestPage(BaseModel):
    """Back-test jobs, newest first."""

    backtests: list[BacktestSummary]
    next_cursor: int | None = Field(
        description="Pass as cursor for the next (older) page; null on the last page."
    )
