"""Errors raised by the optimizer, each with a message that says how to fix the request.

::

    OptimizerError
     ├── InvalidProblem (also ValueError)   bad inputs, or constraints shown impossible
     │    │                                 before any solver runs
     │    └── NoPositiveExcessReturn        max Sharpe asked for, but no allowed portfolio
     │                                      earns more than the risk-free rate
     ├── ProgramInfeasible                  the solver proved no portfolio meets all
     │                                      constraints together
     ├── ProgramUnbounded                   the objective can improve without limit
     └── NumericalSolverError               every solver failed or returned an inaccurate
          │                                 or constraint-violating solution
          └── SolverTimeLimitExceeded       the solve ran out of its time limit first

Every error carries ``status`` (the last solver status, ``None`` when no solver ran)
and ``constraints`` (names of the constraints involved, possibly empty).
"""

from __future__ import annotations

from collections.abc import Sequence


class OptimizerError(Exception):
    """Base class of every error raised by ``optimizer``.

    Parameters
    ----------
    message : str
        What is wrong and how to fix it.
    status : str or None, optional
        The solver status that led to the error; ``None`` when no solver ran.
    constraints : sequence of str, optional
        Names of the constraints involved (e.g. ``["budget", "weight_bounds"]``).
    """

    def __init__(
        self,
        message: str,
        *,
        status: str | None = None,
        constraints: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.constraints: list[str] = list(constraints)


class InvalidProblem(OptimizerError, ValueError):
    """The inputs are malformed, or the constraints are impossible before solving.

    Raised for NaN or infinite inputs, shape mismatches, a covariance that is not
    symmetric positive semidefinite, bounds that cannot sum to the budget
    (``max_weight * n_assets < 1``, ``min_weight * n_assets > 1``,
    ``min_weight > max_weight``), group bounds that the members' bounds or the budget
    rule out, a turnover limit below the trading the budget or the bounds force, a
    return target above the best the bounds allow, and objectives missing what they
    need (scenarios for CVaR, one positive budget per asset).
    """


class NoPositiveExcessReturn(InvalidProblem):
    """Max Sharpe is undefined: no allowed portfolio beats the risk-free rate."""


class ProgramInfeasible(OptimizerError):
    """The solver proved that no portfolio satisfies all the constraints together."""


class ProgramUnbounded(OptimizerError):
    """The objective can improve without limit (typically missing weight bounds)."""


class NumericalSolverError(OptimizerError):
    """Every solver failed, or returned an inaccurate or constraint-violating answer."""


class SolverTimeLimitExceeded(NumericalSolverError):
    """The solvers used up the solve's time limit before reaching an accurate solution.

    ``time_limit_seconds`` is the limit (``PortfolioOptimizer(time_limit_seconds=...)``).
    A subclass of :class:`NumericalSolverError`: no solution came out, and a server that
    hits its limit often needs a higher limit, more CPU or smaller problems.
    """

    def __init__(
        self,
        message: str,
        *,
        time_limit_seconds: float,
        status: str | None = None,
        constraints: Sequence[str] = (),
    ) -> None:
        super().__init__(message, status=status, constraints=constraints)
        self.time_limit_seconds = time_limit_seconds
