"""Run strategies through one market and schedule; collect returns, weights and metrics."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from backtest._engine import simulate
from backtest._errors import (
    BacktestCancelled,
    BacktestError,
    InvalidBacktest,
    LookAheadError,
    MissingForecasts,
)
from backtest._forecasts import HOW_TO_PRODUCE
from backtest._market import Market
from backtest._metrics import strategy_metrics
from backtest._schedule import REBALANCES_PER_YEAR, Rebalance, rebalance_rows
from backtest._strategies import BuyAndHold, EqualWeight, Strategy
from optimizer import OptimizerError

ProgressCallback = Callable[[int, int], None]
"""``(rebalances_done, rebalances_total)``, called after every rebalance of every strategy."""
StopCheck = Callable[[], bool]

REFERENCE = "equal_weight"
TIMING = (
    "On each rebalance date a strategy sees data up to that day's close and trades at "
    "that close from its drifted weights to its targets; the cost, cost_bps/1e4 x "
    "sum|target - drifted| (plus half the spread), is charged in that day's return; the "
    "next day earns the targets. Cash earns 0."
)


@dataclass(frozen=True)
class BacktestSettings:
    """The period, schedule and costs of a back-test.

    Parameters
    ----------
    start, end : date or None
        First and last day (default: the first day every strategy has its look-back
        history for, and the last price).
    rebalance : {"weekly", "monthly", "quarterly"}
        Trade on the first day, then on the last trading day of each period.
    cost_bps : float
        Linear cost in basis points of the value traded.
    spread_bps : mapping of str to float, optional
        Bid-ask spread per ticker in basis points; half of it is paid per unit traded,
        on top of ``cost_bps``.
    """

    start: date | None = None
    end: date | None = None
    rebalance: Rebalance = "monthly"
    cost_bps: float = 10.0
    spread_bps: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        if not (0.0 <= self.cost_bps <= 1_000.0):
            raise InvalidBacktest(f"cost_bps={self.cost_bps} must be between 0 and 1000")
        if self.start and self.end and self.start >= self.end:
            raise InvalidBacktest(f"start {self.start} must be before end {self.end}")
        if self.rebalance not in REBALANCES_PER_YEAR:
            raise InvalidBacktest(
                f"rebalance={self.rebalance!r} is not one of {sorted(REBALANCES_PER_YEAR)}"
            )
        for ticker, spread in (self.spread_bps or {}).items():
            if not (0.0 <= spread <= 10_000.0):
                raise InvalidBacktest(f"spread_bps[{ticker!r}]={spread} must be in [0, 10000]")

    def cost_rates(self, tickers: Sequence[str]) -> np.ndarray:
        """Cost per unit of weight traded, by ticker (return units: 10 bps = 0.001)."""
        spreads = self.spread_bps or {}
        return np.array([(self.cost_bps + 0.5 * spreads.get(t, 0.0)) / 1e4 for t in tickers])


@dataclass(frozen=True)
class StrategyRun:
    """One strategy's back-test.

    Attributes
    ----------
    returns : pd.DataFrame
        Indexed by date: ``gross_return``, ``cost``, ``net_return`` (daily, simple).
    weights : pd.DataFrame
        Dates (rebalances) by tickers: the weights set at each rebalance.
    turnover : pd.Series
        ``sum |target - drifted|`` at each rebalance.
    failed_rebalances : list of dict
        Rebalances where the strategy could not decide (``date``, ``reason``): it kept
        its drifted weights.
    """

    name: str
    description: str
    returns: pd.DataFrame
    weights: pd.DataFrame
    turnover: pd.Series
    failed_rebalances: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class BacktestResult:
    """Every strategy's run, their metrics and the settings, as the outputs hold them."""

    runs: dict[str, StrategyRun]
    metrics: dict[str, dict[str, Any]]
    settings: dict[str, Any]
    market: Market

    def returns_frame(self) -> pd.DataFrame:
        """Long: ``date, strategy, gross_return, cost, net_return``."""
        parts = [
            run.returns.rename_axis("date").reset_index().assign(strategy=name)
            for name, run in self.runs.items()
        ]
        frame = pd.concat(parts, ignore_index=True)
        return frame[["date", "strategy", "gross_return", "cost", "net_return"]]

    def weights_frame(self) -> pd.DataFrame:
        """Long: ``date, strategy, ticker, weight`` (the targets set at each rebalance)."""
        parts = []
        for name, run in self.runs.items():
            long = run.weights.rename_axis(index="date").reset_index()
            long = long.melt(id_vars="date", var_name="ticker", value_name="weight")
            parts.append(long.sort_values(["date", "ticker"]).assign(strategy=name))
        frame = pd.concat(parts, ignore_index=True)
        return frame[["date", "strategy", "ticker", "weight"]]

    def turnover_frame(self) -> pd.DataFrame:
        """Long: ``date, strategy, turnover``."""
        parts = [
            run.turnover.rename("turnover").rename_axis("date").reset_index().assign(strategy=name)
            for name, run in self.runs.items()
        ]
        return pd.concat(parts, ignore_index=True)[["date", "strategy", "turnover"]]

    def metrics_document(self) -> dict[str, Any]:
        """``{"strategies": {name: metrics}, "settings": {...}}`` (metrics.json)."""
        return {"strategies": self.metrics, "settings": self.settings}


def run_backtest(
    market: Market,
    strategies: Sequence[Strategy],
    settings: BacktestSettings,
    *,
    progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> BacktestResult:
    """Back-test ``strategies`` on ``market`` under ``settings``.

    1/N (``equal_weight``) is always run, as the reference of every Sharpe test, and so is
    the index (``index``) when the market has one; they are added when not asked for.

    Raises
    ------
    InvalidBacktest
        Bad settings, names or a period without enough history.
    MissingForecasts
        A forecast-driven strategy without walk-forward predictions covering the start.
    LookAheadError
        A strategy asked for data after its rebalance date.
    BacktestCancelled
        ``should_stop`` returned True.
    """
    started = time.perf_counter()
    strategies, added = _with_references(market, strategies)
    first, last = _period(market, strategies, settings)
    available = _complete_tickers(market, first - max(s.lookback_days for s in strategies), last)
    excluded = sorted(set(market.tickers) - set(available))
    rows = rebalance_rows(market.dates, first, last, settings.rebalance)
    returns = market.returns.iloc[: last + 1]
    benchmark = market.benchmark
    total = len(rows) * len(strategies)
    done = 0

    def tick() -> None:
        nonlocal done
        if should_stop is not None and should_stop():
            raise BacktestCancelled("the back-test was cancelled")
        done += 1
        if progress is not None:
            progress(done, total)

    runs: dict[str, StrategyRun] = {}
    for strategy in strategies:
        universe = strategy.universe(available, benchmark)
        strategy.prepare(
            pd.Series(settings.cost_rates(universe), index=universe),
            REBALANCES_PER_YEAR[settings.rebalance],
        )
        runs[strategy.name] = _run_one(market, strategy, universe, returns, rows, settings, tick)
    dates = market.dates[first : last + 1]
    index_returns = None if benchmark is None else market.returns[benchmark].iloc[first : last + 1]
    reference = runs[REFERENCE].returns["net_return"]
    metrics = {}
    for name, run in runs.items():
        metrics[name] = strategy_metrics(
            run.returns["net_return"],
            costs=run.returns["cost"],
            turnover=run.turnover,
            benchmark_returns=index_returns,
            reference_returns=None if name == REFERENCE else reference,
        )
        metrics[name]["description"] = run.description
        metrics[name]["failed_rebalances"] = len(run.failed_rebalances)
        metrics[name]["failed_rebalance_examples"] = run.failed_rebalances[:5]
    described = {
        "start": dates[0].date().isoformat(),
        "end": dates[-1].date().isoformat(),
        "rebalance": settings.rebalance,
        "rebalances": len(rows),
        "cost_bps": settings.cost_bps,
        "spread_bps": dict(settings.spread_bps or {}),
        **market.describe(),
        "tickers": available,
        "excluded_tickers": excluded,
        "references_added": added,
        "forecasts": None
        if market.forecasts is None or not any(s.uses_forecasts for s in strategies)
        else market.forecasts.describe(),
        "timing": TIMING,
        "periods_per_year": 252,
        "risk_free_rate": 0.0,
        "seconds": round(time.perf_counter() - started, 3),
    }
    return BacktestResult(runs, metrics, described, market)


def _run_one(
    market: Market,
    strategy: Strategy,
    universe: list[str],
    returns: pd.DataFrame,
    rows: np.ndarray,
    settings: BacktestSettings,
    tick: Callable[[], None],
) -> StrategyRun:
    asset_returns = returns[universe].to_numpy(dtype=np.float64)
    failures: list[dict[str, str]] = []

    def decide(row: int, drifted: np.ndarray) -> np.ndarray:
        view = market.view(row, universe)
        holdings = pd.Series(drifted, index=universe)
        try:
            weights = strategy.target_weights(view, holdings)
        except LookAheadError:
            raise
        except (BacktestError, OptimizerError) as exc:
            failures.append({"date": view.as_of.date().isoformat(), "reason": str(exc)})
            tick()
            return drifted
        unknown = sorted(set(map(str, weights.index)) - set(universe))
        if unknown:
            raise InvalidBacktest(
                f"strategy {strategy.name!r} set weights on {unknown}, outside its universe"
            )
        target = weights.reindex(universe, fill_value=0.0).to_numpy(dtype=np.float64)
        if not np.all(np.isfinite(target)):
            raise InvalidBacktest(f"strategy {strategy.name!r} set non-finite weights")
        tick()
        return target

    simulation = simulate(asset_returns, rows, decide, settings.cost_rates(universe))
    dates = market.dates[simulation.rows]
    daily = pd.DataFrame(
        {
            "gross_return": simulation.gross_return,
            "cost": simulation.cost,
            "net_return": simulation.net_return,
        },
        index=dates,
    )
    rebalance_dates = market.dates[simulation.rebalance_rows]
    return StrategyRun(
        name=strategy.name,
        description=strategy.describe(),
        returns=daily,
        weights=pd.DataFrame(simulation.targets, index=rebalance_dates, columns=universe),
        turnover=pd.Series(simulation.turnover, index=rebalance_dates),
        failed_rebalances=failures,
    )


def _with_references(
    market: Market, strategies: Sequence[Strategy]
) -> tuple[list[Strategy], list[str]]:
    if not strategies:
        raise InvalidBacktest("no strategies to back-test; name at least one")
    names = [s.name for s in strategies]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidBacktest(f"strategy names must be unique; repeated: {duplicates}")
    chosen = list(strategies)
    added = []
    if REFERENCE not in names:
        chosen.insert(0, EqualWeight())
        added.append(REFERENCE)
    if market.benchmark is not None and "index" not in names:
        chosen.append(BuyAndHold(ticker=market.benchmark))
        added.append("index")
    needs = [s.name for s in chosen if s.uses_forecasts]
    if needs and market.forecasts is None:
        raise MissingForecasts(
            f"{', '.join(needs)} {'needs' if len(needs) == 1 else 'need'} the model's "
            "walk-forward forecasts, and none were "
            f"found: {HOW_TO_PRODUCE}."
        )
    return chosen, added


def _period(
    market: Market, strategies: Sequence[Strategy], settings: BacktestSettings
) -> tuple[int, int]:
    """Rows of the first and last day."""
    dates = market.dates
    lookback = max(s.lookback_days for s in strategies)
    earliest = lookback + 1  # row 0 has no return
    if earliest >= len(dates) - 1:
        raise InvalidBacktest(
            f"the prices hold {len(dates)} days, too few for a {lookback}-day look-back"
        )
    if settings.start is None:
        first = earliest
    else:
        first = int(dates.searchsorted(pd.Timestamp(settings.start)))
        if first < earliest:
            raise InvalidBacktest(
                f"start {settings.start} leaves less than the {lookback} trading days of "
                f"history the strategies need; start on or after "
                f"{dates[earliest].date()}"
            )
    last = len(dates) - 1 if settings.end is None else market.position(pd.Timestamp(settings.end))
    if first >= len(dates) or last <= first:
        raise InvalidBacktest(
            f"no trading days between {settings.start} and {settings.end}: the prices run "
            f"from {dates[0].date()} to {dates[-1].date()}"
        )
    forecasts = market.forecasts
    needs_forecasts = any(s.uses_forecasts for s in strategies)
    if forecasts is not None and needs_forecasts and dates[first] < forecasts.first_date:
        raise MissingForecasts(
            f"the walk-forward forecasts start on {forecasts.first_date.date()}, after "
            f"the start {dates[first].date()}; start on or after that date, or "
            f"{HOW_TO_PRODUCE} with an earlier --first-year"
        )
    return first, last


def _complete_tickers(market: Market, first: int, last: int) -> list[str]:
    """Tickers with a price on every day of ``first..last`` (others cannot be held)."""
    window = market.prices[market.tickers].iloc[max(0, first) : last + 1]
    complete = window.notna().all(axis=0)
    tickers = [str(t) for t in complete[complete].index]
    if not tickers:
        raise InvalidBacktest(
            "no ticker has a price on every day of the period and its look-back; "
            "shorten the period or fill the gaps"
        )
    return tickers
