"""Back-tests over HTTP: accept, queue, track, cancel; the jobs run in worker processes.

``POST /v1/backtests`` is refused at once (422) when it cannot run: an unknown strategy,
bad dates or costs, tickers the data set does not hold, or forecast-driven strategies
without walk-forward forecasts. Otherwise the job is queued in the ``backtest_jobs``
table (``app.services._backtest_store``) and answered 202; a dispatcher in each server
process (``app.services._backtest_dispatcher``) claims queued jobs and runs them in a
pool of ``spawn`` worker processes (``app.services._backtest_worker``), which write the
job's folder, ``<backtests.output_dir>/<id>/``, and then mark it succeeded.

Jobs survive restarts: queued ones stay queued; running ones whose server died are
queued again at the next start (or failed after ``backtests.max_attempts`` starts), and
re-run from scratch, their folder replaced whole.
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path

import pandas as pd
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from app.core.config import Settings
from app.schemas.backtests import BacktestRequest
from app.services._backtest_dispatcher import JobDispatcher
from app.services._backtest_store import (
    BacktestStore,
    JobPage,
    JobRecord,
    JobStatus,
)
from app.services._backtest_strategies import (
    JobParameters,
    backtest_settings,
    build_strategies,
)
from app.services.errors import BacktestConflict, BacktestNotFound, UnknownTicker
from app.services.model_registry import serving_version
from backtest import (
    HOW_TO_PRODUCE,
    METRICS_FILE,
    PREDICTIONS_FILE,
    REPORT_FILE,
    RETURNS_FILE,
    EquityCurves,
    InvalidBacktest,
    MissingForecasts,
    equity_curves,
)
from optimizer import PortfolioOptimizer
from training.errors import PipelineError
from training.sources import EMBEDDED_BENCHMARK, embedded_dataset_files, read_price_file

logger = logging.getLogger(__name__)

__all__ = ["BacktestService", "JobPage", "JobRecord", "JobStatus"]


class BacktestService:
    """The back-test jobs of one server process: its store and its dispatcher.

    Parameters
    ----------
    store
        The jobs' database.
    settings
        ``backtests.*``, where prices, models and outputs are, the optimizer's settings.
    dispatcher
        Runs the jobs; None when this server only queues them (``max_concurrent: 0``).
    """

    def __init__(
        self, store: BacktestStore, settings: Settings, dispatcher: JobDispatcher | None
    ) -> None:
        self.store = store
        self.settings = settings
        self.dispatcher = dispatcher
        self._optimizer = PortfolioOptimizer(
            settings.optimizer.solver, settings.optimizer.fallback_solvers
        )

    @classmethod
    def open(cls, settings: Settings) -> BacktestService:
        """Open the jobs' database, recover jobs of dead servers, start the dispatcher.

        Blocking: call in a thread. Raises ``RuntimeError`` (the message hides any
        password) when the database cannot be opened.
        """
        url = settings.backtests_url
        try:
            store = BacktestStore.open(url)
        except (ImportError, OSError, SQLAlchemyError, ValueError) as exc:
            shown = make_url(url).render_as_string(hide_password=True)
            raise RuntimeError(
                f"cannot open the back-test jobs database {shown}: {exc}. Make the location "
                "writable, or point backtests.url (QUANTSERVE_BACKTESTS__URL) elsewhere."
            ) from exc
        dispatcher = JobDispatcher(store, url, settings.backtests)
        dispatcher.recover()
        if settings.backtests.max_concurrent == 0:
            return cls(store, settings, None)
        dispatcher.start()
        return cls(store, settings, dispatcher)

    def close(self) -> None:
        """Stop the dispatcher (its running jobs are queued again) and close the database."""
        if self.dispatcher is not None:
            self.dispatcher.stop()
        self.store.close()

    def submit(self, request: BacktestRequest, key_id: str) -> JobRecord:
        """Check that ``request`` can run, then queue it (blocking: call in a thread).

        Raises
        ------
        backtest.InvalidBacktest
            An unknown strategy, bad dates or costs, tickers outside the data set.
        backtest.MissingForecasts
            Forecast-driven strategies, and no walk-forward forecasts to drive them.
        UnknownTicker
            ``tickers`` names some the data set does not hold.
        BacktestQueueFull
            ``backtests.max_queued`` jobs are waiting.
        """
        parameters = self._parameters()
        backtest_settings(request)
        strategies = build_strategies(
            request, parameters, benchmark=None, optimizer=self._optimizer
        )
        self._check_tickers(request)
        needs = [s.name for s in strategies if s.uses_forecasts]
        if needs and parameters.predictions is None:
            raise MissingForecasts(
                f"{', '.join(needs)} {'needs' if len(needs) == 1 else 'need'} the walk-forward "
                f"forecasts of model "
                f"{parameters.model_name} version "
                f"{parameters.model_version if parameters.model_version is not None else '-'}"
                f", and none were found: {HOW_TO_PRODUCE}. Or leave them out."
            )
        job = self.store.add(
            key_id=key_id,
            request=request.model_dump(mode="json"),
            params=parameters.model_dump(mode="json"),
            output_root=self.settings.backtests_dir,
            max_queued=self.settings.backtests.max_queued,
        )
        if self.dispatcher is not None:
            self.dispatcher.wake()
        return job

    def get(self, job_id: str) -> JobRecord:
        """The job; BacktestNotFound when there is none."""
        job = self.store.get(job_id)
        if job is None:
            raise BacktestNotFound(job_id)
        return job

    def page(self, limit: int, before: int | None = None) -> JobPage:
        """Jobs newest first, ``limit`` at most, older than the cursor ``before``."""
        return self.store.page(limit, before)

    def cancel(self, job_id: str) -> tuple[JobRecord, JobStatus]:
        """Cancel a queued or running job; the job after, and its status before.

        Raises BacktestNotFound, or BacktestConflict for a job that has finished.
        """
        outcome = self.store.cancel(job_id)
        if outcome is None:
            raise BacktestNotFound(job_id)
        job, before = outcome
        if before in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED):
            raise BacktestConflict(
                job_id,
                before.value,
                f"back-test {job_id} has already {_ended(before)}; only a queued or running "
                "back-test can be cancelled",
            )
        if self.dispatcher is not None:
            self.dispatcher.wake()
        return job, before

    def report(self, job_id: str) -> Path:
        """The HTML report of a succeeded job; BacktestConflict before it succeeded."""
        job = self._succeeded(job_id, "report")
        path = job.output_dir / REPORT_FILE
        if not path.is_file():
            raise BacktestConflict(
                job_id,
                job.status.value,
                f"the report of back-test {job_id} is gone from {job.output_dir}; "
                "submit the back-test again",
            )
        return path

    def equity(self, job_id: str, points: int) -> EquityCurves:
        """A succeeded job's equity and drawdown curves, at most ``points`` long.

        Strategies in ``metrics.json``'s order; see ``backtest.equity_curves``. Blocking
        (reads the job's folder): call in a thread. BacktestConflict before it succeeded,
        or when its files are gone or unreadable.
        """
        job = self._succeeded(job_id, "equity curves")
        try:
            metrics = json.loads((job.output_dir / METRICS_FILE).read_text())
            returns = pd.read_parquet(
                job.output_dir / RETURNS_FILE, columns=["date", "strategy", "net_return"]
            )
            return equity_curves(returns, list(metrics["strategies"]), points)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # ValueError covers bad JSON and pyarrow's ArrowInvalid too.
            logger.warning("back-test %s: cannot read its returns: %s", job_id, exc)
            raise BacktestConflict(
                job_id,
                job.status.value,
                f"the returns of back-test {job_id} are gone from {job.output_dir} or "
                "unreadable; submit the back-test again",
            ) from exc

    def _succeeded(self, job_id: str, what: str) -> JobRecord:
        """The job, if it succeeded; else BacktestConflict saying when ``what`` exists."""
        job = self.get(job_id)
        status = job.status
        if status is JobStatus.SUCCEEDED:
            return job
        if status in (JobStatus.QUEUED, JobStatus.RUNNING):
            message = (
                f"back-test {job_id} is {status.value}: its {what} can be read once it has "
                f"succeeded; poll GET /v1/backtests/{job_id}"
            )
        elif status is JobStatus.FAILED:
            message = (
                f"back-test {job_id} has failed, so it has no {what}; GET /v1/backtests/"
                f"{job_id} shows why: fix the request and submit it again (POST /v1/backtests)"
            )
        else:
            message = (
                f"back-test {job_id} has {_ended(status)}, so it has no {what}; submit it "
                "again (POST /v1/backtests)"
            )
        raise BacktestConflict(job_id, status.value, message)

    # -- checks before queueing ---------------------------------------------------------

    def _parameters(self) -> JobParameters:
        """What the job reads besides its request, as it is now."""
        settings = self.settings
        version = _serving_version(settings)
        predictions = None
        if version is not None:
            path = settings.models_dir / settings.model_name / str(version) / "evaluation"
            if (path / PREDICTIONS_FILE).is_file():
                predictions = str((path / PREDICTIONS_FILE).resolve())
        prices_file = settings.backtests.prices_file
        return JobParameters(
            prices_file=None if prices_file is None else str(prices_file.resolve()),
            benchmark=settings.backtests.benchmark,
            min_history_days=settings.ingest.min_history_days,
            model_name=settings.model_name,
            model_version=version,
            predictions=predictions,
            risk_free_rate=settings.optimizer.risk_free_rate,
            solver=settings.optimizer.solver,
            fallback_solvers=settings.optimizer.fallback_solvers,
            solver_time_limit_seconds=settings.limits.solver_time_limit_seconds,
        )

    def _check_tickers(self, request: BacktestRequest) -> None:
        """Tickers the request names must be in the data set (read only when it names some)."""
        named = request.named_tickers()
        if request.tickers is None and not named:
            return
        prices_file = self.settings.backtests.prices_file
        stamp = prices_file.stat().st_mtime_ns if prices_file and prices_file.exists() else None
        available = _dataset_tickers(prices_file, self.settings.backtests.benchmark, stamp)
        if request.tickers is not None:
            unknown = [t for t in request.tickers if t not in available]
            if unknown:
                raise UnknownTicker(unknown, sorted(available))
            return  # the schema checked the named ones against tickers
        for field, tickers in named.items():
            outside = sorted(set(tickers) - available)
            if outside:
                raise InvalidBacktest(
                    f"{field} names {', '.join(outside)}, not in the data set, which holds "
                    f"{', '.join(sorted(available))}; remove or correct them"
                )


def _serving_version(settings: Settings) -> int | None:
    try:
        return serving_version(settings.models_dir, settings.model_name)
    except (PipelineError, OSError, ValueError):
        return None


@lru_cache(maxsize=4)
def _dataset_tickers(
    prices_file: Path | None, benchmark: str | None, stamp: int | None
) -> frozenset[str]:
    """The tickers (not the benchmark) of the back-tests' prices; ``stamp`` keys the cache.

    The embedded set is read from its header only; a file is read whole, once per change.
    """
    if prices_file is None:
        stocks, _ = embedded_dataset_files()
        columns = pd.read_csv(stocks, nrows=0).columns
        return frozenset(str(c) for c in columns if str(c).strip().lower() != "date") - {
            EMBEDDED_BENCHMARK
        }
    raw = read_price_file(prices_file, benchmark)
    tickers = set(map(str, raw.rows["ticker"].unique()))
    return frozenset(tickers - {benchmark or raw.benchmark or ""})


def _ended(status: JobStatus) -> str:
    return {
        JobStatus.SUCCEEDED: "succeeded",
        JobStatus.FAILED: "failed",
        JobStatus.CANCELLED: "been cancelled",
    }.get(status, status.value)
