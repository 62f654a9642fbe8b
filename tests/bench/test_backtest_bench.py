"""The back-test benchmark's pieces on a tiny universe: both engines run, set valid
weights on the same dates, agree with each other, and report finite timings.

Timings are never compared with thresholds here (the machine is shared and noisy)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench import backtest as bench
from bench._backtest_cvxportfolio import rebalance_dates, run_cvxportfolio

N_ASSETS = 30
N_FACTORS = 3
# The look-back, then three weekly rebalances (the first date builds from cash).
N_DAYS = bench.LOOKBACK_DAYS + 1 + 15


@pytest.fixture(scope="module")
def universe() -> bench.Universe:
    return bench.synthetic_universe(N_ASSETS, N_FACTORS, N_DAYS, seed=3)


@pytest.fixture(scope="module")
def quantserve(universe: bench.Universe) -> tuple[bench.EngineRun, bench.TimedOptimizer]:
    return bench.run_quantserve(universe)


def _finite_breakdown(run: bench.EngineRun) -> None:
    assert run.timings.rebalances >= 3
    breakdown = run.timings.breakdown()
    assert all(
        math.isfinite(value) and value >= 0.0 for key, value in breakdown.items() if key != "other"
    )
    assert math.isfinite(run.timings.per_rebalance)
    assert run.timings.per_rebalance > 0.0


def test_the_synthetic_universe_is_seeded_and_positive(universe: bench.Universe) -> None:
    again = bench.synthetic_universe(N_ASSETS, N_FACTORS, N_DAYS, seed=3)
    assert universe.prices.equals(again.prices)
    assert universe.prices.shape == (N_DAYS, N_ASSETS)
    assert np.all(universe.prices.to_numpy() > 0.0)
    assert universe.prices.index.is_monotonic_increasing


def test_quantserve_sets_valid_weights_and_times_them(
    quantserve: tuple[bench.EngineRun, bench.TimedOptimizer],
) -> None:
    run, optimizer = quantserve
    assert run.timings.failed == 0
    facts = bench.check_weights(run.weights, "quantserve")
    assert facts["max_weight"] <= bench.MAX_WEIGHT + 1e-6
    assert list(run.weights.index) == list(
        rebalance_dates(bench.synthetic_universe(N_ASSETS, N_FACTORS, N_DAYS, seed=3))
    )
    _finite_breakdown(run)
    assert run.timings.estimation > 0.0
    assert run.timings.solve > 0.0
    baseline = bench.baseline_solve_seconds(optimizer, solves=2)
    assert math.isfinite(baseline)
    assert baseline > 0.0


def test_cvxportfolio_runs_offline_on_the_same_dates_and_agrees(
    universe: bench.Universe, quantserve: tuple[bench.EngineRun, bench.TimedOptimizer]
) -> None:
    pytest.importorskip("cvxportfolio", reason="cvxportfolio is a dev dependency")
    run = run_cvxportfolio(universe)
    bench.check_weights(run.weights, "cvxportfolio")
    _finite_breakdown(run)
    # cvxportfolio cannot trade on the last day (it has no return after it); every
    # other rebalance date is shared.
    quantserve_run, _ = quantserve
    assert set(run.weights.index) <= set(quantserve_run.weights.index)
    gaps = bench.weight_gaps(quantserve_run.weights, run.weights)
    assert gaps["dates_compared"] >= 2
    # The same problem from the same (all-cash) start: the same first weights.
    assert gaps["first"] < 1e-4


def test_the_table_reports_both_engines_against_the_baseline() -> None:
    breakdown = {
        "total": 0.02,
        "estimation": 0.005,
        "solve": 0.01,
        "solver": 0.008,
        "compile": 0.001,
        "other": 0.004,
    }
    row = {"rebalances": 4, "breakdown": breakdown}
    lines = bench.table({"quantserve": row, "cvxportfolio": row, "baseline_solve_seconds": 0.01})
    assert lines[0].startswith("| engine | s / rebalance | vs baseline |")
    assert lines[2].startswith("| quantserve | 0.0200 | 2.00 | 0.0050 | 0.0100 | 0.0080 |")
    assert lines[-1].startswith("| baseline")


def test_timings_add_up_to_the_total() -> None:
    timings = bench.Timings(total=1.0, estimation=0.2, solve=0.5, compile=0.1, rebalances=4)
    breakdown = timings.breakdown()
    parts = ("estimation", "solve", "compile", "other")
    assert sum(breakdown[p] for p in parts) == pytest.approx(breakdown["total"])
    assert breakdown["total"] == pytest.approx(0.25)
    assert math.isnan(bench.Timings().per_rebalance)
