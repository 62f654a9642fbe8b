"""The entry point: validate a request, fetch or compile its problem, solve, report."""

from __future__ import annotations

import math
from collections.abc import Sequence

import cvxpy as cp
import numpy as np
import numpy.typing as npt

from optimizer._cache import CacheInfo, LRUCache
from optimizer._constraints import Constraint, check_jointly_feasible, implied_weight_bounds
from optimizer._data import ProblemData
from optimizer._errors import InvalidProblem
from optimizer._objectives import Objective
from optimizer._problem import (
    CompiledProblem,
    CompileKey,
    canonical_constraints,
    compile_key,
)
from optimizer._result import PortfolioResult, portfolio_statistics


class PortfolioOptimizer:
    """Long-only or bounded portfolio optimization with cached, compiled problems.

    Problems are compiled once per ``(n_assets, objective class, constraint
    structure)`` and kept in an LRU cache; each request only sets parameter values
    (expected returns, risk factor, bounds, risk aversion, risk-free rate) and
    re-solves. Safe to share between threads: the cache has a lock, and each compiled
    problem serialises its own solves.

    Parameters
    ----------
    solver : str, optional
        cvxpy solver tried first. Default ``"CLARABEL"`` (interior point, accurate).
    fallback_solvers : sequence of str, optional
        Solvers tried in order when the previous one errors, is inaccurate or returns
        a constraint-violating solution. Default ``("SCS",)``.
    cache_size : int, optional
        Number of compiled problems kept. Default 128.

    Raises
    ------
    ValueError
        If a solver is not installed or ``cache_size < 1``.
    """

    def __init__(
        self,
        solver: str = "CLARABEL",
        fallback_solvers: Sequence[str] = ("SCS",),
        cache_size: int = 128,
    ) -> None:
        self.solver = solver.upper()
        self.fallback_solvers = tuple(name.upper() for name in fallback_solvers)
        installed = set(cp.installed_solvers())  # type: ignore[no-untyped-call]
        missing = [s for s in (self.solver, *self.fallback_solvers) if s not in installed]
        if missing:
            raise ValueError(
                f"solvers {missing} are not installed; choose among {sorted(installed)}"
            )
        self.cache_size = cache_size
        self._cache: LRUCache[CompileKey, CompiledProblem] = LRUCache(cache_size)

    @property
    def solvers(self) -> tuple[str, ...]:
        """The solvers in the order they are tried, without duplicates."""
        return tuple(dict.fromkeys((self.solver, *self.fallback_solvers)))

    def cache_info(self) -> CacheInfo:
        """Cache hits, misses, size and maximum size."""
        return self._cache.info()

    def compile(
        self, objective: Objective, constraints: Sequence[Constraint], n_assets: int
    ) -> tuple[CompiledProblem, bool]:
        """The compiled problem for this structure, from the cache or newly built.

        ``Budget`` is always added. Values in ``objective`` and ``constraints`` are
        ignored: only their structure matters.

        Returns
        -------
        tuple of (CompiledProblem, bool)
            The problem and whether it came from the cache.
        """
        canonical = canonical_constraints(constraints)
        key = compile_key(n_assets, objective, canonical)
        return self._cache.get_or_create(
            key, lambda: CompiledProblem(n_assets, objective, canonical)
        )

    def optimize(
        self,
        objective: Objective,
        constraints: Sequence[Constraint],
        expected_returns: npt.ArrayLike,
        covariance: npt.ArrayLike,
        *,
        risk_free_rate: float | None = None,
    ) -> PortfolioResult:
        """Optimal fully invested weights for ``objective`` under ``constraints``.

        Parameters
        ----------
        objective : Objective
            ``MinVariance()``, ``MeanVariance(risk_aversion)`` or ``MaxSharpe(rf)``.
        constraints : sequence of Constraint
            E.g. ``[LongOnly(), WeightBounds(max_weight=0.3)]``; ``Budget`` (weights
            sum to 1) is always applied.
        expected_returns : array-like of shape (n_assets,)
            Expected asset returns, in any consistent units (the service passes
            annualised simple returns).
        covariance : array-like of shape (n_assets, n_assets)
            Covariance of the asset returns in the same units (e.g. annualised).
        risk_free_rate : float or None, optional
            Rate used for the reported Sharpe ratio. Defaults to the objective's own
            (``MaxSharpe.risk_free_rate``), else 0.

        Returns
        -------
        PortfolioResult

        Raises
        ------
        InvalidProblem
            Bad inputs or constraints shown impossible before solving
            (``NoPositiveExcessReturn`` for an undefined max Sharpe).
        ProgramInfeasible, ProgramUnbounded, NumericalSolverError
            When solving fails; see ``optimizer._errors``.
        """
        if not isinstance(objective, Objective):
            raise InvalidProblem(
                f"objective must be an Objective such as MinVariance(); got {objective!r}"
            )
        strays = [c for c in constraints if not isinstance(c, Constraint)]
        if strays:
            raise InvalidProblem(
                f"constraints must be Constraint objects such as LongOnly(); got {strays!r}"
            )
        data = ProblemData.from_arrays(expected_returns, covariance)
        canonical = canonical_constraints(constraints)
        check_jointly_feasible(canonical, data.n_assets)
        lower, upper = implied_weight_bounds(canonical, data.n_assets)
        objective.check_feasible(data, lower, upper)
        rate = self._reporting_rate(objective, risk_free_rate)

        compiled, from_cache = self.compile(objective, canonical, data.n_assets)
        outcome = compiled.solve(objective, canonical, data, self.solvers)

        weights = outcome.weights.copy()
        stats = portfolio_statistics(weights, data.expected_returns, data.covariance, rate)
        weights.flags.writeable = False
        stats.risk_contributions.flags.writeable = False
        return PortfolioResult(
            weights=weights,
            expected_return=stats.expected_return,
            volatility=stats.volatility,
            sharpe=stats.sharpe,
            risk_free_rate=rate,
            risk_contributions=stats.risk_contributions,
            objective=objective.name,
            solver=outcome.solver,
            status=outcome.status,
            iterations=outcome.iterations,
            solve_time_seconds=outcome.solve_time_seconds,
            compiled_from_cache=from_cache,
        )

    @staticmethod
    def _reporting_rate(objective: Objective, risk_free_rate: float | None) -> float:
        """The risk-free rate for the reported Sharpe ratio (see ``optimize``)."""
        own = objective.sharpe_risk_free_rate()
        if risk_free_rate is None:
            return 0.0 if own is None else own
        if not math.isfinite(risk_free_rate):
            raise InvalidProblem(f"risk_free_rate={risk_free_rate} must be finite.")
        if own is not None and not np.isclose(own, risk_free_rate, rtol=0.0, atol=1e-12):
            raise InvalidProblem(
                f"risk_free_rate={risk_free_rate} differs from the objective's "
                f"risk_free_rate={own}; set it once, on the objective."
            )
        return float(risk_free_rate)
