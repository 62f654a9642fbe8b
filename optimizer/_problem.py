"""A cvxpy problem compiled once per structure and re-solved with new parameter values."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import cvxpy as cp
import numpy as np

from optimizer._attempts import solver_attempts, time_limit_exceeded
from optimizer._constraints import (
    Budget,
    CompiledConstraint,
    Constraint,
    clean_weights,
    implied_weight_bounds,
)
from optimizer._data import ProblemData
from optimizer._diagnose import conflicting_constraints
from optimizer._errors import (
    NumericalSolverError,
    ProgramInfeasible,
    ProgramUnbounded,
    SolverTimeLimitExceeded,
)
from optimizer._objectives import Objective
from optimizer._terms import CompileContext, ProblemShape
from optimizer._typing import FloatArray

CompileKey: TypeAlias = tuple[ProblemShape, tuple[Hashable, ...], tuple[tuple[Hashable, ...], ...]]
"""``(shape, objective structure, constraint structures)``; never values."""

FEASIBILITY_TOLERANCE = 1e-7
"""Largest constraint violation (in weight units) accepted from a solver."""


def canonical_constraints(constraints: Sequence[Constraint]) -> tuple[Constraint, ...]:
    """The constraints with exactly one ``Budget``, in a canonical (structure) order.

    Order does not change the problem, so it must not change the compile key either.
    Constraints the others imply (``LongOnly`` beside ``WeightBounds(min_weight=0)``)
    are left out.
    """
    others = [c for c in constraints if not isinstance(c, Budget)]
    needed = [c for c in others if not c.implied_by(others)]
    return tuple(sorted([Budget(), *needed], key=lambda c: repr(c.structure)))


def problem_shape(objective: Objective, shape: ProblemShape | int) -> ProblemShape:
    """``shape`` reduced to what ``objective`` uses (an int is a dense, cost-free problem).

    Costs and scenarios only change the compiled problem of objectives that use them;
    dropping them otherwise avoids compiling the same problem twice.
    """
    if isinstance(shape, int):
        shape = ProblemShape(shape)
    return shape._replace(
        has_costs=shape.has_costs and objective.uses_costs,
        n_scenarios=shape.n_scenarios if objective.uses_scenarios else None,
    )


def data_shape(data: ProblemData) -> ProblemShape:
    """The full shape of ``data`` (reduce it with :func:`problem_shape`)."""
    return ProblemShape(
        n_assets=data.n_assets,
        n_factors=data.n_factors,
        has_costs=data.transaction_costs is not None,
        n_scenarios=None if data.scenarios is None else int(data.scenarios.shape[0]),
    )


def compile_key(
    shape: ProblemShape | int, objective: Objective, constraints: Sequence[Constraint]
) -> CompileKey:
    """The cache key of a problem: its shape and structure, not its values."""
    return (
        problem_shape(objective, shape),
        objective.structure,
        tuple(c.structure for c in constraints),
    )


@dataclass(frozen=True, eq=False)  # arrays have no boolean equality
class SolveOutcome:
    """Weights and solver facts from one successful solve."""

    weights: FloatArray
    solver: str
    status: str
    iterations: int | None
    solve_time_seconds: float


class CompiledProblem:
    """A DPP cvxpy problem for one ``(shape, objective, constraints)`` structure.

    Built once; :meth:`solve` sets the parameters from a request and re-solves, so
    cvxpy re-uses its compiled program. A lock serialises solves, because parameter
    and variable values are shared state.

    Parameters
    ----------
    shape : ProblemShape or int
        Size and form of the inputs (an int: that many assets, a dense covariance).
    objective : Objective
        Any objective of the wanted class (its values are not used here).
    constraints : sequence of Constraint
        Constraints in canonical order (see :func:`canonical_constraints`).

    Raises
    ------
    RuntimeError
        If the assembled problem is not DPP (a bug in a term or constraint).
    """

    def __init__(
        self, shape: ProblemShape | int, objective: Objective, constraints: Sequence[Constraint]
    ) -> None:
        self.shape = problem_shape(objective, shape)
        self.n_assets = self.shape.n_assets
        self.key = compile_key(self.shape, objective, constraints)
        self.objective_name = objective.name
        self.constraint_names = [c.name for c in constraints]
        self._context = CompileContext.for_shape(self.shape)
        self._objective = objective.compile(self._context)
        self._constraints: list[CompiledConstraint] = [
            c.compile(self._objective.weights, self._objective.scale, self._context)
            for c in constraints
        ]
        cvxpy_constraints = [
            *self._objective.constraints,
            *(item for compiled in self._constraints for item in compiled.constraints),
            *self._context.risk.definitions,
        ]
        self.problem = cp.Problem(self._objective.objective, cvxpy_constraints)
        if not self.problem.is_dpp():
            raise RuntimeError(f"internal error: the problem for {self.key} is not DPP")
        # cvxpy keeps one compiled program per Problem and drops it when the solver
        # changes; one Problem per solver (sharing variables and parameters) keeps
        # the primary solver's program warm after a fallback.
        self._problems: dict[str, cp.Problem] = {}
        self._lock = threading.Lock()

    def problem_for(self, solver: str) -> cp.Problem:
        """The cvxpy problem used with ``solver`` (the first solver gets ``problem``)."""
        if solver not in self._problems:
            self._problems[solver] = (
                cp.Problem(self.problem.objective, self.problem.constraints)
                if self._problems
                else self.problem
            )
        return self._problems[solver]

    def solve(
        self,
        objective: Objective,
        constraints: Sequence[Constraint],
        data: ProblemData,
        solvers: Sequence[str],
        *,
        time_limit_seconds: float | None = None,
        deadline: float | None = None,
    ) -> SolveOutcome:
        """Set the parameters from the request and solve, falling back on failure.

        Parameters
        ----------
        objective, constraints
            The request's objective and canonical constraints; their structure must
            match this problem's.
        data : ProblemData
            Validated inputs with ``n_assets`` assets.
        solvers : sequence of str
            Solver names, tried in order while a solver errors, is inaccurate or
            returns a solution that violates the constraints.
        time_limit_seconds : float or None, optional
            Wall time for the whole solve, fallbacks included (cvxpy's canonicalisation
            counts too); each solver is given what is left. ``None``: no limit.
        deadline : float or None, optional
            A ``time.perf_counter()`` value by which the solve must end, when the limit
            started before this call (a wait for the problem); errors still name
            ``time_limit_seconds``. Default: now plus ``time_limit_seconds``.

        Returns
        -------
        SolveOutcome
            Cleaned weights and the facts of the accepted solve.

        Raises
        ------
        ProgramInfeasible, ProgramUnbounded
            When a solver proves it.
        NumericalSolverError
            When no solver gave an accurate, feasible solution.
        SolverTimeLimitExceeded
            When the time limit ran out before one did.
        """
        if compile_key(data_shape(data), objective, constraints) != self.key:
            raise ValueError("the request's structure does not match this compiled problem")
        # The time limit counts from here: waiting for another solve of this problem
        # (the lock) spends it too, so a queue of same-shape requests cannot outlast it.
        start = time.perf_counter()
        if deadline is None and time_limit_seconds is not None:
            deadline = start + time_limit_seconds
        wait = -1 if deadline is None else max(deadline - start, 0.0)
        if not self._lock.acquire(timeout=wait):
            raise self._out_of_time(
                time_limit_seconds, ["waited for other solves of this problem"], None
            )
        try:
            self._context.risk.update(data)
            objective.update(self._objective, data)
            for constraint, compiled in zip(constraints, self._constraints, strict=True):
                constraint.update(compiled, data)
            return self._solve_with_fallbacks(
                constraints, data, solvers, time_limit_seconds, start, deadline
            )
        finally:
            self._lock.release()

    def _solve_with_fallbacks(
        self,
        constraints: Sequence[Constraint],
        data: ProblemData,
        solvers: Sequence[str],
        time_limit_seconds: float | None,
        start: float,
        deadline: float | None,
    ) -> SolveOutcome:
        attempts: list[str] = []
        last_status: str | None = None
        for index, attempt in enumerate(solver_attempts(solvers)):
            solver, label = attempt.solver, attempt.label
            problem = self.problem_for(solver)
            remaining = None if deadline is None else deadline - time.perf_counter()
            if remaining is not None and remaining <= 0 and index > 0:
                raise self._out_of_time(time_limit_seconds, attempts, last_status)
            options = attempt.options(remaining)
            try:
                with warnings.catch_warnings():
                    # The status is checked below; cvxpy's "may be inaccurate" warning and
                    # the overflows of evaluating atoms at a failed iterate add nothing.
                    warnings.filterwarnings("ignore", message="Solution may be inaccurate")
                    warnings.filterwarnings("ignore", category=RuntimeWarning, module="cvxpy")
                    problem.solve(solver=solver, **options)  # type: ignore[no-untyped-call]
            except cp.SolverError as exc:
                attempts.append(f"{label} failed ({exc})")
                continue
            status = str(problem.status)
            last_status = status
            if status == cp.INFEASIBLE:
                involved = self.conflicting_constraints(solver, deadline)
                raise self._infeasible(
                    self.constraint_names if involved is None else involved, status
                )
            if status == cp.UNBOUNDED:
                raise ProgramUnbounded(
                    f"the {self.objective_name} objective can improve without limit under "
                    f"the constraints ({', '.join(self.constraint_names)}); add LongOnly or "
                    "WeightBounds, or check that the covariance is not singular.",
                    status=status,
                    constraints=self.constraint_names,
                )
            if status != cp.OPTIMAL:
                attempts.append(f"{label} returned status {status!r}")
                if deadline is not None and time.perf_counter() >= deadline:
                    raise self._out_of_time(time_limit_seconds, attempts, last_status)
                continue
            try:
                weights = self._objective.portfolio_weights()
            except NumericalSolverError as exc:
                attempts.append(f"{label}: {exc.message}")
                continue
            problem_found = self._check_solution(weights, constraints, data)
            if problem_found:
                attempts.append(f"{label}: {problem_found}")
                continue
            lower, upper = implied_weight_bounds(constraints, self.n_assets)
            stats = problem.solver_stats
            return SolveOutcome(
                weights=clean_weights(weights, lower, upper),
                solver=solver,
                status=status,
                iterations=None if stats.num_iters is None else int(stats.num_iters),
                solve_time_seconds=time.perf_counter() - start,
            )
        # A log barrier (risk budgeting) can hide infeasibility from the solvers: check
        # the constraints alone before blaming the numerics.
        involved = self.conflicting_constraints(solvers[0], deadline) if solvers else None
        if involved:
            raise self._infeasible(involved, last_status)
        raise NumericalSolverError(
            f"no solver produced an accurate solution ({'; '.join(attempts)}). The "
            "covariance may be badly conditioned or the inputs badly scaled: use a shrunk "
            "covariance, express returns in consistent (e.g. annualised) units, or relax "
            "the constraints.",
            status=last_status,
            constraints=self.constraint_names,
        )

    def _out_of_time(
        self, time_limit_seconds: float | None, attempts: list[str], status: str | None
    ) -> SolverTimeLimitExceeded:
        assert time_limit_seconds is not None
        return time_limit_exceeded(time_limit_seconds, attempts, status, self.constraint_names)

    def _infeasible(self, involved: list[str], status: str | None) -> ProgramInfeasible:
        if involved:
            detail = (
                f"no portfolio satisfies these constraints together: {', '.join(involved)} "
                "(without any one of them the rest can hold); relax one of them."
            )
        else:
            detail = (
                f"the constraints can hold, but not together with the {self.objective_name} "
                "objective's own condition; see the objective's documentation."
            )
        return ProgramInfeasible(detail, status=status, constraints=involved)

    def conflicting_constraints(
        self, solver: str, deadline: float | None = None
    ) -> list[str] | None:
        """Names of a minimal set of constraints that cannot hold together.

        Call after a failed solve (parameters hold the request's values). The
        objective's own constraints (a target return or volatility) take part. Empty
        when the constraints can all hold; ``None`` when ``solver`` cannot tell or the
        request's ``deadline`` (``time.perf_counter()``) passed first.
        """
        scale = self._objective.scale
        groups: list[tuple[str, Sequence[cp.Constraint]]] = [
            (compiled.name, compiled.constraints) for compiled in self._constraints
        ]
        # Definitions of the risk term's auxiliary variables always hold.
        definitions = self._context.risk.definitions
        if scale is None:
            own = zip(self._objective.constraint_names, self._objective.constraints, strict=True)
            groups = [*((name, [c]) for name, c in own), *groups]
            return conflicting_constraints(groups, solver, fixed=definitions, deadline=deadline)
        # A homogenised problem (max Sharpe, risk budgeting): with kappa == 1 the
        # variables are the weights; the objective's normalisation is left out.
        return conflicting_constraints(
            groups, solver, fixed=(scale == 1.0, *definitions), deadline=deadline
        )

    @staticmethod
    def _check_solution(
        weights: FloatArray, constraints: Sequence[Constraint], data: ProblemData
    ) -> str:
        """Describe what is wrong with ``weights``; empty when they can be accepted."""
        if not np.all(np.isfinite(weights)):
            return "the weights are not finite"
        violations = {c.name: c.violation(weights, data) for c in constraints}
        violated = {name: v for name, v in violations.items() if v > FEASIBILITY_TOLERANCE}
        if violated:
            detail = ", ".join(f"{name} by {v:.3g}" for name, v in violated.items())
            return f"the solution violates {detail}"
        return ""
