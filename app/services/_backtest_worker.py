"""The job function: one back-test, run in a worker process of the dispatcher's pool.

:func:`run_job` is module-level and takes only plain values (:class:`JobSpec`), so a
``spawn`` worker process can import and run it. It writes to the jobs' database itself:
progress (at most ~4 writes a second), then the outcome; every write is conditional on
the run's claim token, so a run that was cancelled or re-queued cannot change the row.

The order that keeps a job from being lost or half-written: the output folder is
written beside its place and renamed into it whole (``backtest.write_outputs``), and only
then is the row marked succeeded, with the ``metrics.json`` just written.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from threadpoolctl import threadpool_limits

from app.schemas.backtests import BacktestRequest
from app.services._backtest_problems import failure_problem
from app.services._backtest_store import BacktestStore
from app.services._backtest_strategies import (
    JobParameters,
    backtest_settings,
    build_strategies,
)
from backtest import (
    METRICS_FILE,
    BacktestCancelled,
    InvalidBacktest,
    Market,
    MissingForecasts,
    WalkForwardForecasts,
    run_backtest,
    write_outputs,
)

logger = logging.getLogger("app.services.backtests")

PROGRESS_INTERVAL_SECONDS: Final = 0.25
"""Least time between two progress writes (the last rebalance is always written)."""
STOP_CHECK_INTERVAL_SECONDS: Final = 0.5
"""Least time between two reads of whether the run still holds its job."""


@dataclass(frozen=True)
class JobSpec:
    """Everything a worker process needs to run one job (plain, picklable values)."""

    job_id: str
    token: str
    database_url: str
    request: dict[str, Any]
    parameters: dict[str, Any]
    output_dir: str


def initialize_worker() -> None:
    """In each new worker process: leave Ctrl-C to the server, which re-queues the jobs.

    BLAS and LAPACK get one thread. A back-test's matrices are small (a 252-day window
    of at most a few hundred assets), and on a machine whose cores the server shares,
    threaded BLAS pools spin while they wait for a core: ``make bench-backtest``
    measured eigen-decompositions 10-40x slower under load, and one thread nearly
    halved the time per rebalance even on a quiet machine (docs/benchmarks.md).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threadpool_limits(limits=1, user_api="blas")


def run_job(spec: JobSpec) -> str:
    """Run the job of ``spec`` to its outcome and record it; returns the status written.

    A cancelled or re-queued run stops at its next rebalance and writes nothing.
    Failures are recorded as problem documents; only a failure to record raises.
    """
    store = BacktestStore.open(spec.database_url)
    instance = f"/v1/backtests/{spec.job_id}"
    try:
        reporter = _Reporter(store, spec.job_id, spec.token)
        try:
            metrics = _run(spec, reporter)
        except BacktestCancelled:
            logger.info("back-test %s stopped: cancelled or re-queued", spec.job_id)
            return "stopped"
        except Exception as exc:
            if not reporter.holds():
                return "stopped"
            logger.warning("back-test %s failed: %s", spec.job_id, exc, exc_info=True)
            store.fail(spec.job_id, spec.token, failure_problem(exc, instance))
            return "failed"
        if not store.succeed(spec.job_id, spec.token, metrics):
            logger.info("back-test %s finished after it was cancelled", spec.job_id)
            return "stopped"
        return "succeeded"
    finally:
        store.close()


def _run(spec: JobSpec, reporter: _Reporter) -> dict[str, Any]:
    """The back-test of ``spec``: load, run, write the folder; its metrics.json."""
    request = BacktestRequest.model_validate(spec.request)
    parameters = JobParameters.model_validate(spec.parameters)
    output_dir = Path(spec.output_dir)
    _remove_leftovers(output_dir)
    settings = backtest_settings(request)
    market = _market(parameters, request.tickers)
    strategies = build_strategies(request, parameters, benchmark=market.benchmark)
    if any(s.uses_forecasts for s in strategies):
        market = replace(market, forecasts=_forecasts(parameters))
    result = run_backtest(
        market,
        strategies,
        settings,
        progress=reporter.progress,
        should_stop=reporter.should_stop,
    )
    if reporter.should_stop(force=True):
        raise BacktestCancelled("the back-test was cancelled")
    write_outputs(result, output_dir)
    metrics: dict[str, Any] = json.loads((output_dir / METRICS_FILE).read_text())
    return metrics


_MARKETS: dict[tuple[Any, ...], Market] = {}
"""The last market this worker process loaded (loading and validating takes seconds)."""


def _market(parameters: JobParameters, tickers: list[str] | None) -> Market:
    """The validated prices, restricted to ``tickers`` (and the benchmark) when given."""
    path = None if parameters.prices_file is None else Path(parameters.prices_file)
    stamp = None if path is None or not path.exists() else path.stat().st_mtime_ns
    key = (parameters.prices_file, stamp, parameters.benchmark, parameters.min_history_days)
    market = _MARKETS.get(key)
    if market is None:
        market = Market.load(path, parameters.benchmark, None, parameters.min_history_days)
        _MARKETS.clear()
        _MARKETS[key] = market
    if tickers is None:
        return market
    unknown = sorted(set(tickers) - set(market.tickers))
    if unknown:
        raise InvalidBacktest(
            f"the prices hold no valid history of {', '.join(unknown)}; they hold "
            f"{', '.join(market.tickers)}"
        )
    chosen = [t for t in market.tickers if t in set(tickers)]
    columns = [*chosen, *([market.benchmark] if market.benchmark else [])]
    return replace(market, prices=market.prices[columns], tickers=chosen)


def _forecasts(parameters: JobParameters) -> WalkForwardForecasts:
    """The serving version's walk-forward forecasts; MissingForecasts says how to make them."""
    if parameters.predictions is None:
        raise MissingForecasts(
            f"no version of model {parameters.model_name} was serving when the back-test "
            "was accepted, so there are no walk-forward forecasts to use: train one "
            "(`quantserve train`), then run `quantserve evaluate`"
        )
    return WalkForwardForecasts.read(Path(parameters.predictions))


def _remove_leftovers(output_dir: Path) -> None:
    """Folders a run that died left beside ``output_dir`` while writing it (never read)."""
    parent = output_dir.parent
    if not parent.is_dir():
        return
    for pattern in (f".{output_dir.name}.tmp-*", f".{output_dir.name}.old-*"):
        for leftover in parent.glob(pattern):
            shutil.rmtree(leftover, ignore_errors=True)


class _Reporter:
    """Progress writes and stop checks of one run, throttled."""

    def __init__(self, store: BacktestStore, job_id: str, token: str) -> None:
        self.store = store
        self.job_id = job_id
        self.token = token
        self._lost = False
        self._last_write = float("-inf")
        self._last_check = time.monotonic()

    def progress(self, done: int, total: int) -> None:
        """Record ``done`` of ``total``; the first, the last and then at most ~4 a second."""
        now = time.monotonic()
        if done in (1, total) or now - self._last_write >= PROGRESS_INTERVAL_SECONDS:
            self._last_write = now
            if not self.store.progress(self.job_id, self.token, done, total):
                self._lost = True

    def should_stop(self, force: bool = False) -> bool:
        """Whether the run lost its job (cancelled, or re-queued as dead)."""
        now = time.monotonic()
        if not self._lost and (force or now - self._last_check >= STOP_CHECK_INTERVAL_SECONDS):
            self._last_check = now
            self._lost = not self.store.holds(self.job_id, self.token)
        return self._lost

    def holds(self) -> bool:
        """Whether the run still holds its job, read now."""
        return not self.should_stop(force=True)
