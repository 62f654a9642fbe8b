"""The entry point: validate a request, fetch or compile its problem, solve, report."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import cvxpy as cp
import numpy as np
import numpy.typing as npt

from optimizer._cache import CacheInfo, LRUCache
from optimizer._constraints import (
    Constraint,
    check_against_data,
    check_jointly_feasible,
    clean_weights,
    implied_weight_bounds,
)
from optimizer._data import ProblemData
from optimizer._errors import (
    InvalidProblem,
    NoPositiveExcessReturn,
    OptimizerError,
    ProgramInfeasible,
)
from optimizer._factor_model import FactorModel
from optimizer._frontier import efficient_frontier
from optimizer._objectives import MaxReturn, MaxSharpe, MinVariance, Objective
from optimizer._pool import ProblemPool
from optimizer._problem import (
    CompiledProblem,
    CompileKey,
    SolveOutcome,
    canonical_constraints,
    compile_key,
    data_shape,
)
from optimizer._result import PortfolioResult, build_result
from optimizer._risk_constraints import MaxVolatility
from optimizer._targets import EfficientReturn, EfficientRisk
from optimizer._terms import ProblemShape


class PortfolioOptimizer:
    """Portfolio optimization with cached, compiled problems.

    Problems are compiled once per ``(shape, objective class, constraint structure)``
    (the shape: number of assets, dense or factor risk and its number of factors,
    whether costs and scenarios enter) and kept in an LRU cache; each request only
    sets parameter values (expected returns, risk factors, bounds, targets, costs)
    and re-solves. Safe to share between threads: the cache has a lock, and each
    structure keeps up to ``instances_per_problem`` compiled copies, so that many
    same-shape requests solve at once instead of queueing behind one copy.

    Parameters
    ----------
    solver : str, optional
        cvxpy solver tried first. Default ``"CLARABEL"`` (interior point, accurate).
    fallback_solvers : sequence of str, optional
        Solvers tried in order when the previous one errors, is inaccurate or returns
        a constraint-violating solution. Default ``("SCS",)``.
    cache_size : int, optional
        Number of problem structures kept compiled. Default 128.
    instances_per_problem : int, optional
        Compiled copies of one structure, i.e. how many same-shape solves run at once;
        further ones wait, the wait counting against ``time_limit_seconds``. Each copy
        holds its own compiled program (for 2,000 dense assets, tens of MB). Default 2.
    time_limit_seconds : float or None, optional
        Wall time allowed to one solve, fallbacks included (a frontier is one solve per
        point); past it :class:`SolverTimeLimitExceeded` is raised. Clarabel, SCS and
        OSQP are stopped by their own time-limit options; other solvers are checked
        when they return. Default ``None``: no limit.

    Raises
    ------
    ValueError
        If a solver is not installed, ``cache_size < 1``, ``instances_per_problem < 1``
        or ``time_limit_seconds <= 0``.
    """

    def __init__(
        self,
        solver: str = "CLARABEL",
        fallback_solvers: Sequence[str] = ("SCS",),
        cache_size: int = 128,
        time_limit_seconds: float | None = None,
        instances_per_problem: int = 2,
    ) -> None:
        self.solver = solver.upper()
        self.fallback_solvers = tuple(name.upper() for name in fallback_solvers)
        installed = set(cp.installed_solvers())  # type: ignore[no-untyped-call]
        missing = [s for s in (self.solver, *self.fallback_solvers) if s not in installed]
        if missing:
            raise ValueError(
                f"solvers {missing} are not installed; choose among {sorted(installed)}"
            )
        if time_limit_seconds is not None and not time_limit_seconds > 0:
            raise ValueError(f"time_limit_seconds={time_limit_seconds} must be positive")
        if instances_per_problem < 1:
            raise ValueError(f"instances_per_problem={instances_per_problem} must be at least 1")
        self.cache_size = cache_size
        self.time_limit_seconds = time_limit_seconds
        self.instances_per_problem = instances_per_problem
        self._cache: LRUCache[CompileKey, ProblemPool] = LRUCache(cache_size)

    @property
    def solvers(self) -> tuple[str, ...]:
        """The solvers in the order they are tried, without duplicates."""
        return tuple(dict.fromkeys((self.solver, *self.fallback_solvers)))

    def cache_info(self) -> CacheInfo:
        """Cache hits, misses, size and maximum size."""
        return self._cache.info()

    def compile(
        self,
        objective: Objective,
        constraints: Sequence[Constraint],
        shape: ProblemShape | int,
    ) -> tuple[CompiledProblem, bool]:
        """The compiled problem for this structure, from the cache or newly built.

        ``Budget`` is always added. Values in ``objective`` and ``constraints`` are
        ignored: only their structure matters. ``shape`` may be a number of assets
        (a dense covariance, no costs).

        Returns
        -------
        tuple of (CompiledProblem, bool)
            The problem (the first copy of its pool) and whether it came from the cache.
        """
        pool, from_cache = self._pool(objective, canonical_constraints(constraints), shape)
        return pool.primary, from_cache

    def _pool(
        self, objective: Objective, canonical: Sequence[Constraint], shape: ProblemShape | int
    ) -> tuple[ProblemPool, bool]:
        key = compile_key(shape, objective, canonical)
        return self._cache.get_or_create(
            key,
            lambda: ProblemPool(
                lambda: CompiledProblem(shape, objective, canonical), self.instances_per_problem
            ),
        )

    def optimize(
        self,
        objective: Objective,
        constraints: Sequence[Constraint],
        expected_returns: npt.ArrayLike,
        covariance: npt.ArrayLike | FactorModel,
        *,
        returns: npt.ArrayLike | None = None,
        current_weights: npt.ArrayLike | None = None,
        transaction_costs: npt.ArrayLike | None = None,
        risk_free_rate: float | None = None,
    ) -> PortfolioResult:
        """Optimal fully invested weights for ``objective`` under ``constraints``.

        Parameters
        ----------
        objective : Objective
            E.g. ``MinVariance()``, ``MaxSharpe(rf)``, ``EfficientRisk(0.15)``,
            ``RiskParity()``, ``MinCVaR(0.95)``, ``HierarchicalRiskParity()``.
        constraints : sequence of Constraint
            E.g. ``[LongOnly(), WeightBounds(max_weight=0.3), Turnover(0.2)]``;
            ``Budget`` (weights sum to 1) is always applied.
        expected_returns : array-like of shape (n_assets,)
            Expected asset returns, in any consistent units (the service passes
            annualised simple returns).
        covariance : array-like of shape (n_assets, n_assets), or FactorModel
            Covariance of the asset returns in the same units; a ``FactorModel`` is
            kept in factor form (faster for many assets).
        returns : array-like of shape (n_scenarios, n_assets), optional
            Scenario returns, for ``MinCVaR`` and the reported CVaR.
        current_weights : array-like of shape (n_assets,), optional
            Holdings before trading, for ``Turnover``, costs and the reported turnover.
        transaction_costs : float or array-like of shape (n_assets,), optional
            Linear cost per unit traded, in return units (10 bps = 0.001).
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
        SolverTimeLimitExceeded
            When ``time_limit_seconds`` ran out first (a ``NumericalSolverError``).
        """
        data = ProblemData.from_arrays(
            expected_returns,
            covariance,
            returns=returns,
            current_weights=current_weights,
            transaction_costs=transaction_costs,
        )
        return self.solve(objective, constraints, data, risk_free_rate=risk_free_rate)

    def solve(
        self,
        objective: Objective,
        constraints: Sequence[Constraint],
        data: ProblemData,
        *,
        risk_free_rate: float | None = None,
    ) -> PortfolioResult:
        """Like :meth:`optimize`, on already validated :class:`ProblemData`."""
        _check_types(objective, constraints)
        canonical = canonical_constraints(constraints)
        check_jointly_feasible(canonical, data.n_assets)
        check_against_data(canonical, data)
        lower, upper = implied_weight_bounds(canonical, data.n_assets)
        objective.check_feasible(data, lower, upper)
        rate = self._reporting_rate(objective, risk_free_rate)

        direct = self._allocate(objective, canonical, data)
        if direct is not None:
            return build_result(objective, data, direct, rate, from_cache=False)
        pool, from_cache = self._pool(objective, canonical, data_shape(data))
        try:
            outcome = pool.solve(
                objective, canonical, data, self.solvers, time_limit_seconds=self.time_limit_seconds
            )
        except ProgramInfeasible as exc:
            raise self._explain_infeasible(objective, canonical, data, exc) from exc
        return build_result(objective, data, outcome, rate, from_cache=from_cache)

    def frontier(
        self,
        constraints: Sequence[Constraint],
        expected_returns: npt.ArrayLike,
        covariance: npt.ArrayLike | FactorModel,
        *,
        n_points: int = 20,
        current_weights: npt.ArrayLike | None = None,
        transaction_costs: npt.ArrayLike | None = None,
        risk_free_rate: float = 0.0,
    ) -> list[PortfolioResult]:
        """``n_points`` portfolios along the efficient frontier, by increasing return.

        The first point is the minimum-variance portfolio, the last the highest
        expected return (net of costs) the constraints allow; between them,
        :class:`EfficientReturn` at evenly spaced target returns. Every point after the
        first re-uses one compiled problem.

        Raises
        ------
        InvalidProblem
            If ``n_points < 2`` or the inputs are invalid.
        ProgramUnbounded
            If the constraints leave the return unbounded (shorting without bounds).
        """
        return efficient_frontier(
            self,
            constraints,
            ProblemData.from_arrays(
                expected_returns,
                covariance,
                current_weights=current_weights,
                transaction_costs=transaction_costs,
            ),
            n_points=n_points,
            risk_free_rate=risk_free_rate,
        )

    def _allocate(
        self, objective: Objective, constraints: Sequence[Constraint], data: ProblemData
    ) -> SolveOutcome | None:
        """Direct allocation (HRP), or ``None`` for objectives solved as programs."""
        supported = getattr(objective, "supported_constraints", None)
        if supported is not None:
            refused = [c.name for c in constraints if c.name not in supported]
            if refused:
                raise InvalidProblem(
                    f"{objective.name} allocates by clustering and supports only "
                    f"{sorted(supported)}; remove {refused}, or use risk_parity or "
                    "risk_budgeting for a constrained risk-based allocation.",
                    constraints=refused,
                )
        start = time.perf_counter()
        weights = objective.allocate(data)
        if weights is None:
            return None
        lower, upper = implied_weight_bounds(constraints, data.n_assets)
        return SolveOutcome(
            weights=clean_weights(weights, lower, upper),
            solver=objective.name.upper(),
            status="optimal",
            iterations=None,
            solve_time_seconds=time.perf_counter() - start,
        )

    def _explain_infeasible(
        self,
        objective: Objective,
        constraints: Sequence[Constraint],
        data: ProblemData,
        error: ProgramInfeasible,
    ) -> Exception:
        """A clearer error for objectives whose infeasibility has a known meaning."""
        if isinstance(objective, MaxSharpe) and not error.constraints:
            return NoPositiveExcessReturn(
                f"max Sharpe is undefined: no portfolio allowed by the constraints earns "
                f"more than the risk-free rate {objective.risk_free_rate:g}"
                f"{' net of transaction costs' if data.transaction_costs is not None else ''}. "
                "Use the min_variance objective, a lower risk_free_rate, or looser constraints.",
                status=error.status,
            )
        if isinstance(objective, EfficientRisk) and "target_volatility" in error.constraints:
            try:
                lowest = self.solve(MinVariance(), constraints, data).volatility
            except OptimizerError:
                return error
            return ProgramInfeasible(
                f"target_volatility={objective.target_volatility:g} is below {lowest:.6g}, "
                "the lowest volatility the constraints allow; raise the target to at least "
                "that, or relax the constraints.",
                status=error.status,
                constraints=error.constraints,
            )
        if isinstance(objective, EfficientReturn) and "target_return" in error.constraints:
            try:
                highest = self.solve(MaxReturn(), constraints, data)
            except OptimizerError:
                return error
            best = highest.expected_return - highest.transaction_cost
            return ProgramInfeasible(
                f"target_return={objective.target_return:g} is above {best:.6g}, the "
                "highest expected return (net of costs) the constraints allow; lower the "
                "target to at most that, or relax the constraints.",
                status=error.status,
                constraints=error.constraints,
            )
        capped = [c for c in constraints if isinstance(c, MaxVolatility)]
        if capped and "max_volatility" in error.constraints:
            others = [c for c in constraints if not isinstance(c, MaxVolatility)]
            try:
                lowest = self.solve(MinVariance(), others, data).volatility
            except OptimizerError:
                return error
            return ProgramInfeasible(
                f"{error.message} The lowest volatility the other constraints allow is "
                f"{lowest:.6g}, above max_volatility={capped[0].max_volatility:g}.",
                status=error.status,
                constraints=error.constraints,
            )
        return error

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


def _check_types(objective: Objective, constraints: Sequence[Constraint]) -> None:
    if not isinstance(objective, Objective):
        raise InvalidProblem(
            f"objective must be an Objective such as MinVariance(); got {objective!r}"
        )
    strays = [c for c in constraints if not isinstance(c, Constraint)]
    if strays:
        raise InvalidProblem(
            f"constraints must be Constraint objects such as LongOnly(); got {strays!r}"
        )
