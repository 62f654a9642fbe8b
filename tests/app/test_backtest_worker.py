"""The back-test worker processes: one BLAS thread each (docs/benchmarks.md says why)."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from threadpoolctl import threadpool_info

from app.services._backtest_worker import initialize_worker


def blas_threads() -> list[int]:
    """The thread counts of every BLAS library loaded in this process."""
    import numpy  # noqa: F401  (loads its BLAS)
    import scipy.linalg  # noqa: F401

    return [int(pool["num_threads"]) for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_worker_processes_run_blas_on_one_thread() -> None:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context, initializer=initialize_worker) as pool:
        threads = pool.submit(blas_threads).result(timeout=120)
    assert threads, "no BLAS library was found in the worker"
    assert set(threads) == {1}
