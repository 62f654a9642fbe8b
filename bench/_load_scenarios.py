"""What the load benchmark sends, and the serving targets each scenario is held to.

Each scenario is one endpoint with one request body, its check of a correct answer
(run once before the load, so a benchmark of errors is refused) and the targets of the
serving issue, relative to the bare endpoint measured in the same run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.harness import TICKERS_20, WrkResult

TICKERS_5 = ("AAPL", "JNJ", "JPM", "XOM", "WMT")
BARE = "bare"
"""The app of the bare endpoint every ratio is taken against."""


@dataclass(frozen=True)
class Target:
    """One of the issue's targets; a scenario meets it or not."""

    description: str
    check: Callable[[WrkResult, WrkResult], bool]
    """(scenario, bare baseline) -> met."""


def at_least_of_bare(fraction: float) -> Target:
    """Throughput at least ``fraction`` of the bare endpoint's."""
    return Target(f"req/s >= {fraction:.0%} of bare", lambda r, bare: r.rps >= fraction * bare.rps)


def p99_at_most_times_bare(factor: float) -> Target:
    """p99 at most ``factor`` times the bare endpoint's."""
    return Target(f"p99 <= {factor:g}x bare", lambda r, bare: r.p99_ms <= factor * bare.p99_ms)


def at_least_rps(rps: float) -> Target:
    """An absolute throughput."""
    return Target(f"req/s >= {rps:g}", lambda r, bare: r.rps >= rps)


@dataclass(frozen=True)
class Scenario:
    """One request, sent over and over."""

    name: str
    server: str
    """``bare`` or ``quantserve``."""
    path: str
    body: dict[str, Any]
    targets: tuple[Target, ...] = ()
    expect: Callable[[Any], bool] = field(default=lambda answer: True)
    """What a correct answer looks like: the preflight checks it once before loading."""

    @property
    def body_bytes(self) -> bytes:
        """The body as sent: compact JSON."""
        return json.dumps(self.body, separators=(",", ":")).encode()


def scenarios(instances: list[Any]) -> list[Scenario]:
    """The issue's scenarios; ``instances`` are model inputs for ``:predict``."""
    forecast_targets = (at_least_of_bare(0.60), p99_at_most_times_bare(1.5))
    optimize_targets = (at_least_rps(150),)
    optimize = "/v1/portfolios/optimize"
    predict = "/v1/models/forecaster:predict"

    def weights_sum_to_one(answer: Any) -> bool:
        return bool(abs(sum(answer["weights"].values()) - 1) < 1e-6)

    return [
        Scenario(
            "bare POST /echo (5 tickers)",
            BARE,
            "/echo",
            {"tickers": list(TICKERS_5)},
            expect=lambda a: a["tickers"] == list(TICKERS_5),
        ),
        Scenario(
            "POST /v1/forecasts (5 tickers)",
            "quantserve",
            "/v1/forecasts",
            {"tickers": list(TICKERS_5)},
            forecast_targets,
            expect=lambda a: [f["ticker"] for f in a["forecasts"]] == list(TICKERS_5),
        ),
        Scenario(
            "POST /v1/forecasts (all tickers)",
            "quantserve",
            "/v1/forecasts",
            {},
            forecast_targets,
            expect=lambda a: len(a["forecasts"]) >= 20,
        ),
        Scenario(
            ":predict, 1 instance",
            "quantserve",
            predict,
            {"instances": instances[:1]},
            (at_least_of_bare(0.40),),
            expect=lambda a: len(a["predictions"]) == 1,
        ),
        Scenario(
            ":predict, 64 instances",
            "quantserve",
            predict,
            {"instances": instances[:64]},
            expect=lambda a: len(a["predictions"]) == 64,
        ),
        Scenario(
            "optimize min_variance (20 tickers)",
            "quantserve",
            optimize,
            {"tickers": list(TICKERS_20), "objective": "min_variance"},
            optimize_targets,
            expect=weights_sum_to_one,
        ),
        Scenario(
            "optimize max_sharpe, 10% cap (20 tickers)",
            "quantserve",
            optimize,
            {
                "tickers": list(TICKERS_20),
                "objective": "max_sharpe",
                "constraints": {"long_only": True, "max_weight": 0.1},
            },
            optimize_targets,
            expect=weights_sum_to_one,
        ),
    ]
