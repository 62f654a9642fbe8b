"""Concurrent same-shape optimizes: one compiled copy (queued) against a pool of copies.

The service answers ``POST /v1/portfolios/optimize`` from a thread pool, and most
requests share one structure (one universe, one constraint set), so they share one
compiled cvxpy problem. With one copy, each solve waited for the one before it; with
``instances_per_problem`` copies that many solve at once (Clarabel's solve releases
the GIL; cvxpy's parameter update does not).

For n = 20, 200 and 500 assets (the benchmark market of ``bench/optimizer.py``: a
factor covariance, long-only mean-variance with a 10% cap and 10 bps costs), ``THREADS``
threads each send ``REQUESTS`` solves with freshly perturbed expected returns through
one ``PortfolioOptimizer``, as the service's threads do. Copies per structure: 1 (the
baseline: what the service did before), 2 (the default) and 4. Reported: throughput
(solves a second), median and p95 latency of one call, each against the baseline
measured in the same run. The machine is noisy and has 2 cores: compare ratios.
The last line is one JSON object.

Run: ``make bench-concurrency``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from typing import Any

from bench.optimizer import COST, MAX_WEIGHT, RISK_AVERSION, Inputs, synthetic_inputs
from optimizer import LongOnly, MeanVariance, PortfolioOptimizer, WeightBounds

SIZES = (20, 200, 500)
COPIES = (1, 2, 4)
THREADS = 4
REQUESTS = {20: 60, 200: 25, 500: 10}
"""Solves per thread, by number of assets (fewer where one solve is slow)."""


def run(inputs: Inputs, copies: int, threads: int, requests: int) -> dict[str, float]:
    """Throughput and latency of ``threads`` x ``requests`` solves over one optimizer."""
    optimizer = PortfolioOptimizer(instances_per_problem=copies)
    objective, constraints = MeanVariance(RISK_AVERSION), [LongOnly(), WeightBounds(0, MAX_WEIGHT)]

    def solve(repetition: int) -> float:
        started = time.perf_counter()
        optimizer.optimize(
            objective,
            constraints,
            inputs.perturbed(repetition),
            inputs.model,
            current_weights=inputs.current_weights,
            transaction_costs=COST,
        )
        return time.perf_counter() - started

    for copy in range(copies):  # compile every copy first: this measures the warm path
        solve(copy)
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def worker(index: int) -> None:
        barrier.wait()
        mine = [solve(index * requests + r) for r in range(requests)]
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "solves": len(latencies),
        "solves_per_second": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--threads", type=int, default=THREADS)
    args = parser.parse_args()
    results: dict[str, Any] = {"cpu_count": os.cpu_count(), "threads": args.threads}
    print(f"{args.threads} threads over one optimizer, {os.cpu_count()} CPUs")
    print(
        f"{'assets':>6} {'copies':>6} {'solves/s':>9} {'x base':>7} {'p50 ms':>8} "
        f"{'p95 ms':>8} {'p95 x base':>10}"
    )
    for n_assets in args.sizes:
        inputs = synthetic_inputs(n_assets)
        rows = {c: run(inputs, c, args.threads, REQUESTS.get(n_assets, 10)) for c in COPIES}
        base = rows[1]
        for copies, row in rows.items():
            row["throughput_vs_one_copy"] = row["solves_per_second"] / base["solves_per_second"]
            row["p95_vs_one_copy"] = row["p95_ms"] / base["p95_ms"]
            print(
                f"{n_assets:>6} {copies:>6} {row['solves_per_second']:>9.1f} "
                f"{row['throughput_vs_one_copy']:>7.2f} {row['p50_ms']:>8.1f} "
                f"{row['p95_ms']:>8.1f} {row['p95_vs_one_copy']:>10.2f}"
            )
        results[str(n_assets)] = {str(c): r for c, r in rows.items()}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
