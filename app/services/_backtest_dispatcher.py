"""The dispatcher: claims queued back-test jobs and runs them in a pool of processes.

One per server process, started and stopped by the app's lifespan. A thread (its work is
blocking database calls) loops every ``backtests.poll_interval_seconds``, or at once when
a job is submitted or one ends:

1. settles the jobs whose run ended (a worker process that died: the job is queued again,
   or failed after ``max_attempts`` starts);
2. refreshes the heartbeat of its running jobs, and now and then re-queues the jobs of
   servers that died (``BacktestStore.recover``);
3. claims queued jobs while it has free workers, and hands each to the pool.

The pool is a ``ProcessPoolExecutor`` with the ``spawn`` context and
``backtests.max_concurrent`` workers: a back-test's CPU (solves, plots) and memory stay
out of the serving process, its event loop and its thread pool, and ``spawn`` starts
each worker clean (no copy of the server's TensorFlow, threads or sockets). Workers
live on between jobs, so only the first job of a worker pays for its imports.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context
from typing import Any

from app.core.config import BacktestJobSettings
from app.services._backtest_problems import exhausted_problem, failure_problem
from app.services._backtest_store import BacktestStore, Claim, Owner, Recovery
from app.services._backtest_worker import JobSpec, initialize_worker, run_job

logger = logging.getLogger("app.services.backtests")


class JobDispatcher:
    """Runs the queued jobs of ``store``, ``settings.max_concurrent`` at a time.

    Parameters
    ----------
    store
        The jobs' database, shared with the other server processes.
    database_url
        Its URL, for the worker processes to open it themselves.
    settings
        ``max_concurrent``, ``max_attempts``, ``poll_interval_seconds`` and
        ``stale_after_seconds``.
    """

    def __init__(
        self, store: BacktestStore, database_url: str, settings: BacktestJobSettings
    ) -> None:
        self.store = store
        self.database_url = database_url
        self.settings = settings
        self.owner = Owner(socket.gethostname(), os.getpid(), uuid.uuid4().hex)
        self._pool: ProcessPoolExecutor | None = None
        self._running: dict[str, tuple[str, Future[str]]] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        stale = settings.stale_after_seconds
        self._heartbeat_every = min(5.0, stale / 4)
        self._recover_every = max(1.0, min(30.0, stale / 2))
        self._next_heartbeat = 0.0
        self._next_recovery = time.monotonic() + self._recover_every

    def recover(self) -> Recovery:
        """Queue again (or fail, after ``max_attempts``) the jobs of dead servers."""
        recovery = self.store.recover(
            self.owner,
            is_dead=self._is_dead,
            stale_before=datetime.now(UTC) - timedelta(seconds=self.settings.stale_after_seconds),
            max_attempts=self.settings.max_attempts,
            exhausted=_exhausted,
        )
        if recovery.requeued or recovery.failed:
            logger.warning(
                "back-tests left running by a stopped server: queued again %s, failed after "
                "%d starts %s",
                recovery.requeued,
                self.settings.max_attempts,
                recovery.failed,
            )
        return recovery

    def start(self) -> None:
        """Start claiming and running jobs (a daemon thread)."""
        self._thread = threading.Thread(target=self._loop, name="backtest-dispatcher", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Look for queued jobs now rather than at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        """Stop claiming, queue this server's running jobs again, and stop the workers.

        A worker notices at its next rebalance that its job was taken back and stops
        without writing; the next server to start (or another one running) re-runs it.
        The interrupted start does not count against ``max_attempts``.
        """
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        try:
            released = self.store.release(self.owner)
        except Exception:  # the database is down: the jobs go stale and are recovered
            logger.exception("could not queue this server's running back-tests again")
        else:
            if released:
                logger.info("back-tests queued again as the server stops: %s", released)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    # -- the loop ---------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self._step()
            except Exception:  # the database is down, say: try again at the next poll
                logger.exception("the back-test dispatcher failed a step; retrying")
            self._wake.wait(self.settings.poll_interval_seconds)

    def _step(self) -> None:
        self._settle()
        now = time.monotonic()
        if self._running and now >= self._next_heartbeat:
            self.store.heartbeat(self.owner)
            self._next_heartbeat = now + self._heartbeat_every
        if now >= self._next_recovery:
            self.recover()
            self._next_recovery = now + self._recover_every
        while len(self._running) < self.settings.max_concurrent and not self._stop.is_set():
            claim = self.store.claim_next(self.owner)
            if claim is None:
                break
            self._submit(claim)

    def _submit(self, claim: Claim) -> None:
        job = claim.job
        spec = JobSpec(
            job_id=job.id,
            token=claim.token,
            database_url=self.database_url,
            request=job.request,
            parameters=job.params,
            output_dir=str(job.output_dir),
        )
        logger.info("back-test %s started (attempt %d)", job.id, job.attempts)
        future: Future[str]
        try:
            future = self._executor().submit(run_job, spec)
        except (BrokenProcessPool, RuntimeError) as exc:  # a pool broken since: a new one
            self._pool = None
            future = Future()
            future.set_exception(exc)
        future.add_done_callback(lambda _: self._wake.set())
        self._running[job.id] = (claim.token, future)

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.settings.max_concurrent,
                mp_context=get_context("spawn"),
                initializer=initialize_worker,
            )
        return self._pool

    def _settle(self) -> None:
        """Record the outcome of runs that ended without recording one themselves."""
        for job_id, (token, future) in list(self._running.items()):
            if not future.done():
                continue
            exc = future.exception()
            instance = f"/v1/backtests/{job_id}"
            if isinstance(exc, BrokenProcessPool):
                # The worker process died (killed, out of memory): every job of the pool
                # fails this way; each goes back to the queue, its start counted.
                if self._pool is not None:
                    self._pool.shutdown(wait=False, cancel_futures=True)
                    self._pool = None
                logger.error("the worker process of back-test %s died: %s", job_id, exc)
                self.store.requeue(
                    job_id,
                    token,
                    max_attempts=self.settings.max_attempts,
                    exhausted=_exhausted,
                )
            elif exc is not None:
                logger.error("back-test %s could not record its outcome", job_id, exc_info=exc)
                self.store.fail(job_id, token, failure_problem(exc, instance))
            elif self.store.holds(job_id, token):
                self.store.fail(job_id, token, _no_outcome(future.result(), instance))
            del self._running[job_id]  # only once settled: a failed write is retried

    def _is_dead(self, host: str | None, pid: int | None, owner: str | None) -> bool:
        """Whether the server process that ran a job is gone (known only on this host)."""
        if host is None or pid is None or owner is None:
            return True
        if host != self.owner.host or owner == self.owner.token or pid == self.owner.pid:
            return False  # another host, or an app of this process: its heartbeat tells
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            return False
        return False


def _exhausted(job_id: str, attempts: int) -> dict[str, Any]:
    return exhausted_problem(attempts, f"/v1/backtests/{job_id}")


def _no_outcome(returned: str, instance: str) -> dict[str, Any]:
    return {
        "type": "/problems/backtest-failed",
        "title": "The back-test failed",
        "status": 500,
        "detail": f"the worker ended ({returned}) without recording an outcome; submit it again",
        "instance": instance,
    }
