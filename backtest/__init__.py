"""Walk-forward back-tests of allocation strategies, net of trading costs.

A plain library beside :mod:`optimizer` (which it uses) that knows nothing of the web
service. A :class:`Market` holds prices, the benchmark index and the model's
walk-forward forecasts; strategies see it only through a point-in-time
:class:`MarketView` at each rebalance date; :func:`run_backtest` simulates holdings
(drift, trades, costs, cash) and computes each strategy's metrics, with a test of its
Sharpe ratio against 1/N's; :func:`write_outputs` writes metrics, daily returns,
weights and a self-contained HTML report; :func:`equity_curves` turns the daily returns
into equity and drawdown curves thinned for charting.

Examples
--------
>>> from backtest import BacktestSettings, Market, named_strategy, run_backtest
>>> market = Market.load()  # the embedded S&P 500 set  # doctest: +SKIP
>>> result = run_backtest(
...     market, [named_strategy("min_variance")], BacktestSettings(rebalance="monthly")
... )  # doctest: +SKIP
"""

from backtest._catalog import STRATEGY_NAMES, VOL_TARGET_SUFFIX, named_strategy
from backtest._engine import Simulation, simulate
from backtest._equity import EquityCurves, equity_curves, significant_digits
from backtest._errors import (
    BacktestCancelled,
    BacktestError,
    InvalidBacktest,
    LookAheadError,
    MissingForecasts,
)
from backtest._forecasts import HOW_TO_PRODUCE, PREDICTIONS_FILE, WalkForwardForecasts
from backtest._inputs import StrategyInputs
from backtest._market import Market, MarketView
from backtest._metrics import drawdown, rolling_sharpe, strategy_metrics
from backtest._outputs import (
    METRICS_FILE,
    REPORT_FILE,
    RETURNS_FILE,
    WEIGHTS_FILE,
    write_outputs,
)
from backtest._run import (
    TIMING,
    BacktestResult,
    BacktestSettings,
    ProgressCallback,
    StrategyRun,
    run_backtest,
)
from backtest._schedule import REBALANCES_PER_YEAR, Rebalance, rebalance_rows
from backtest._sharpe import (
    SharpeDifferenceTest,
    jobson_korkie_memmel_test,
    ledoit_wolf_sharpe_test,
    sharpe_confidence_interval,
)
from backtest._strategies import (
    BuyAndHold,
    EqualWeight,
    OptimizedStrategy,
    Strategy,
    VolatilityTarget,
)

__all__ = [
    "HOW_TO_PRODUCE",
    "METRICS_FILE",
    "PREDICTIONS_FILE",
    "REBALANCES_PER_YEAR",
    "REPORT_FILE",
    "RETURNS_FILE",
    "STRATEGY_NAMES",
    "TIMING",
    "VOL_TARGET_SUFFIX",
    "WEIGHTS_FILE",
    "BacktestCancelled",
    "BacktestError",
    "BacktestResult",
    "BacktestSettings",
    "BuyAndHold",
    "EqualWeight",
    "EquityCurves",
    "InvalidBacktest",
    "LookAheadError",
    "Market",
    "MarketView",
    "MissingForecasts",
    "OptimizedStrategy",
    "ProgressCallback",
    "Rebalance",
    "SharpeDifferenceTest",
    "Simulation",
    "Strategy",
    "StrategyInputs",
    "StrategyRun",
    "VolatilityTarget",
    "WalkForwardForecasts",
    "drawdown",
    "equity_curves",
    "jobson_korkie_memmel_test",
    "ledoit_wolf_sharpe_test",
    "named_strategy",
    "rebalance_rows",
    "rolling_sharpe",
    "run_backtest",
    "sharpe_confidence_interval",
    "significant_digits",
    "simulate",
    "strategy_metrics",
    "write_outputs",
]
