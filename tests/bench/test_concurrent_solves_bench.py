"""`make bench-concurrency` runs: a tiny version measures what it says (no timings asserted)."""

from __future__ import annotations

from bench.concurrent_solves import run
from bench.optimizer import synthetic_inputs


def test_the_concurrency_benchmark_counts_every_solve() -> None:
    inputs = synthetic_inputs(20)
    row = run(inputs, copies=2, threads=2, requests=3)
    assert row["solves"] == 2 * 3  # every thread's every request, none lost
    assert row["solves_per_second"] > 0
    assert 0 < row["p50_ms"] <= row["p95_ms"]
