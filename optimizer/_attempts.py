"""The solve attempts of a compiled problem: each solver's options, retries, warm path.

A solve tries its solvers in order (``PortfolioOptimizer.solvers``); a solver with
``RETRY_OPTIONS`` gets a second attempt with those slower, more robust settings before
the next solver. Each attempt carries the options it runs with, the solve's remaining
time limit included where the solver takes one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from optimizer._diagnose import TIME_LIMIT_OPTIONS
from optimizer._direct import WARM_CLARABEL
from optimizer._errors import SolverTimeLimitExceeded

SOLVER_OPTIONS: Mapping[str, Mapping[str, Any]] = {
    # Clarabel stops when the duality gap is below 1e-8 absolute or relative. With
    # daily inputs a variance is ~1e-4, so the absolute test alone would stop at a
    # relative error of 1e-4; a smaller absolute tolerance lets the relative one
    # decide (about one more iteration). Iterative refinement of each KKT solve
    # (up to 10 extra triangular solves, to 1e-13) took ~40% of a factor-model solve;
    # the stopping tests above are on the unregularised residuals, so without it a
    # "Solved" answer meets the same tolerances (utilities agree to ~1e-9), and when
    # it cannot, the solve is retried with refinement (RETRY_OPTIONS).
    "CLARABEL": {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-9, "iterative_refinement_enable": False},
    # SCS stops at 1e-4 by default, far looser than FEASIBILITY_TOLERANCE.
    "SCS": {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 100_000},
}
"""Options passed to each solver; others run with cvxpy's defaults."""

RETRY_OPTIONS: Mapping[str, Mapping[str, Any]] = {
    "CLARABEL": {"iterative_refinement_enable": True},
}
"""Options for a second attempt with the same solver, before the next solver: the
slower, more robust settings, for when the fast ones do not reach an optimal answer."""

WARM_METHODS: Mapping[str, str] = {"CLARABEL": WARM_CLARABEL}
"""Solvers re-solved through a warm path that skips cvxpy's per-solve work
(``optimizer._direct``); others through ``problem.solve``."""


@dataclass(frozen=True)
class Attempt:
    """One try of one solver: first with ``SOLVER_OPTIONS``, on retry with more."""

    solver: str
    retry: bool = False

    @property
    def label(self) -> str:
        """How error messages name the attempt."""
        if not self.retry:
            return self.solver
        return f"{self.solver} (retried with {_describe(RETRY_OPTIONS[self.solver])})"

    def options(self, remaining_seconds: float | None) -> dict[str, Any]:
        """The keyword arguments of ``problem.solve``, but the solver, for this attempt.

        ``remaining_seconds`` is what is left of the solve's time limit (None: no
        limit); a solver that takes a time limit gets it, at least 1 ns, so that the
        first solver always starts, even under an absurdly small limit.
        """
        options = dict(SOLVER_OPTIONS.get(self.solver, {}))
        if self.retry:
            options.update(RETRY_OPTIONS[self.solver])
        if self.solver in WARM_METHODS:
            options["method"] = WARM_METHODS[self.solver]
        if remaining_seconds is not None and self.solver in TIME_LIMIT_OPTIONS:
            options[TIME_LIMIT_OPTIONS[self.solver]] = max(remaining_seconds, 1e-9)
        return options


def solver_attempts(solvers: Sequence[str]) -> list[Attempt]:
    """The attempts in the order tried: a solver with ``RETRY_OPTIONS`` twice."""
    return [
        Attempt(solver, retry)
        for solver in solvers
        for retry in ((False, True) if solver in RETRY_OPTIONS else (False,))
    ]


def _describe(options: Mapping[str, Any]) -> str:
    return ", ".join(f"{name}={value}" for name, value in options.items())


def time_limit_exceeded(
    time_limit_seconds: float,
    attempts: Sequence[str],
    status: str | None,
    constraint_names: Sequence[str],
) -> SolverTimeLimitExceeded:
    """The error of a solve that ran out of its time limit, saying what to change."""
    tried = f" ({'; '.join(attempts)})" if attempts else ""
    return SolverTimeLimitExceeded(
        f"the solvers ran out of the {time_limit_seconds:g} s time limit before reaching "
        f"a solution{tried}. Ask for a smaller problem (fewer tickers or return "
        "scenarios, a pca_factor risk model) or raise the limit.",
        time_limit_seconds=time_limit_seconds,
        status=status,
        constraints=list(constraint_names),
    )
