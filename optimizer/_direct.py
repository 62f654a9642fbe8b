"""Warm re-solves with Clarabel that skip cvxpy's per-solve work.

A compiled DPP problem re-solved with ``problem.solve(solver="CLARABEL")`` still pays,
on every call, for cvxpy rebuilding the whole solver input as scipy matrices from its
stored parametric program (``ParamConicProg.apply_parameters``) and for handing all of
it to Clarabel again, although a new request usually changes only vectors: expected
returns and current weights enter the linear cost ``q`` and the right-hand side ``b``,
never the constraint matrix. That work was a fifth to a quarter of a warm 500-asset
solve.

``problem.solve(method=WARM_CLARABEL, solver="CLARABEL", **options)`` does the first
solve through cvxpy, then keeps the parametric program's sparsity pattern and a
Clarabel solver of its own. Each later solve multiplies the stored parameter-to-data
maps by the new parameter vector (three sparse mat-vecs), updates in Clarabel only the
parts whose values changed (``q`` and ``b`` always; ``A`` and ``P`` when a risk model
or a bound moved them), solves, and unpacks through cvxpy's own inverse chain, so
``problem.status``, ``value``, variable values and ``solver_stats`` are set exactly as
``problem.solve`` sets them. Anything this path does not cover falls back to cvxpy.

It reads cvxpy internals (``Problem._cache``, ``ParamConicProg``), pinned with cvxpy
in ``constraints.txt``; ``tests/optimizer/test_direct.py`` checks it against
``problem.solve`` so that a cvxpy upgrade that changes them fails loudly.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import clarabel
import cvxpy as cp
import numpy as np
import scipy.sparse as sp
from cvxpy import settings as cvxpy_settings
from cvxpy.cvxcore.python import canonInterface
from cvxpy.reductions.solvers.conic_solvers.clarabel_conif import dims_to_solver_cones
from cvxpy.reductions.solvers.solver_inverse_data import SolverInverseData

from optimizer._typing import FloatArray

WARM_CLARABEL = "quantserve_warm_clarabel"
"""The ``method`` name to pass to ``cp.Problem.solve`` (``solver`` must be CLARABEL)."""


@dataclass(frozen=True, eq=False)
class _Pattern:
    """A parametric sparse matrix with a fixed pattern, in the CSC order Clarabel keeps.

    cvxpy stores the matrix's values as ``tensor @ parameters`` in its own entry order;
    ``order`` picks and sorts the entries the solver gets (by column, then row).
    """

    tensor: Any  # scipy sparse: one row per stored entry, one column per parameter
    order: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray
    shape: tuple[int, int]

    def values(self, parameters: FloatArray) -> FloatArray:
        """Every stored value, in cvxpy's order."""
        return np.asarray(self.tensor @ parameters).ravel()

    def matrix(self, values: FloatArray) -> sp.csc_matrix:
        """The matrix holding ``values`` (already in solver order)."""
        return sp.csc_matrix((values, self.indices, self.indptr), shape=self.shape)


def _pattern(reduced: Any, n_columns: int, upper_only: bool) -> tuple[_Pattern, Any] | None:
    """The first ``n_columns`` columns of a cvxpy reduced tensor (and the rest's rows).

    Returns the pattern and cvxpy's raw ``(indices, indptr)``; ``None`` when cvxpy kept
    no reduced index (then the warm path is not used).
    """
    reduced.cache(False)
    if reduced.problem_data_index is None:
        return None
    indices, indptr, _ = reduced.problem_data_index
    indices, indptr = np.asarray(indices), np.asarray(indptr)
    stored = int(indptr[n_columns])
    columns = np.repeat(np.arange(n_columns), np.diff(indptr[: n_columns + 1]))
    rows = indices[:stored]
    keep = rows <= columns if upper_only else np.ones(stored, dtype=bool)
    kept = np.flatnonzero(keep)
    order = kept[np.lexsort((rows[kept], columns[kept]))]
    pairs = columns[order] * (int(rows.max(initial=0)) + 1) + rows[order]
    if np.any(np.diff(pairs) == 0):
        return None  # a repeated entry: let cvxpy sum it
    counts = np.bincount(columns[order], minlength=n_columns)
    pattern = _Pattern(
        tensor=reduced.reduced_mat,
        order=order,
        indices=rows[order].astype(np.int64),
        indptr=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        shape=(int(reduced.problem_data_index[2][0]), n_columns),
    )
    return pattern, (indices, indptr)


@dataclass(eq=False)
class _WarmState:
    """What one problem keeps between warm solves."""

    param_prog: Any  # cvxpy ParamConicProg, formatted for a conic solver
    solver_inverse: dict[str, Any]  # the solver's part of cvxpy's inverse data
    constraints: _Pattern  # A, in cvxpy's sign (Clarabel gets -A)
    rhs_rows: np.ndarray  # rows of b's stored entries
    rhs_start: int  # where b's entries start among the stored values
    quadratic: _Pattern | None  # P's upper triangle
    cones: list[Any]
    solver: Any = None  # clarabel.DefaultSolver, built at the first warm solve
    options: dict[str, Any] = field(default_factory=dict)
    last_a: FloatArray | None = None
    last_p: FloatArray | None = None


_states: weakref.WeakKeyDictionary[cp.Problem, _WarmState] = weakref.WeakKeyDictionary()
"""Each problem's warm state; nothing in it refers back to the problem (cvxpy's solving
chain does, so it is read from the problem at each solve), so it goes with the problem."""


def warm_clarabel_solve(problem: cp.Problem, solver: str = "CLARABEL", **options: Any) -> Any:
    """``problem.solve(solver="CLARABEL", **options)``, warm after the first call.

    Registered as the cvxpy solve method :data:`WARM_CLARABEL`; call it through
    ``problem.solve(method=WARM_CLARABEL, ...)``. Returns the optimal value, like
    ``problem.solve``.
    """
    if solver != "CLARABEL":
        raise ValueError(f"{WARM_CLARABEL} solves with CLARABEL only; got {solver!r}")
    state = _states.get(problem)
    if state is not None and state.param_prog is not problem._cache.param_prog:
        state = None  # cvxpy compiled the problem again: the stored maps are stale
    if state is None or any(p.value is None for p in problem.parameters()):
        # cvxpy compiles (or raises its own error), and the maps are taken from it.
        value = problem.solve(solver=solver, **options)  # type: ignore[no-untyped-call]
        _remember(problem, options)
        return value
    _solve_warm(problem, state, options)
    return problem.value


cp.Problem.register_solve(WARM_CLARABEL, warm_clarabel_solve)


def _remember(problem: cp.Problem, options: Mapping[str, Any]) -> None:
    """Keep what the warm path needs, when cvxpy's compiled program allows it."""
    param_prog = problem._cache.param_prog
    chain = problem._cache.solving_chain
    if param_prog is None or chain is None or chain.solver.name() != "CLARABEL":
        return
    if param_prog.lb_tensor is not None or param_prog.ub_tensor is not None:
        return  # variable bounds would need their own updates
    n_variables = int(param_prog.x.size)
    found = _pattern(param_prog.reduced_A, n_variables, upper_only=False)
    quadratic = None
    if param_prog.P is not None:
        found_p = _pattern(param_prog.reduced_P, n_variables, upper_only=True)
        if found_p is None:
            return
        quadratic = found_p[0]
    if found is None:
        return
    constraints, (indices, indptr) = found
    rhs_start = int(indptr[n_variables])
    # The solver's inverse data (constraint ids, cone sizes) does not depend on values;
    # only the objective's constant offset does, and it is set at every solve.
    _, _, inverse_data = problem.get_problem_data("CLARABEL", solver_opts=dict(options))
    solver_inverse = dict(inverse_data[-1].inverse_data)
    # cvxpy's own Clarabel solver for this problem is not used again: free it.
    problem._solver_cache.pop("CLARABEL", None)
    _states[problem] = _WarmState(
        param_prog=param_prog,
        solver_inverse=solver_inverse,
        constraints=constraints,
        rhs_rows=indices[rhs_start : int(indptr[n_variables + 1])],
        rhs_start=rhs_start,
        quadratic=quadratic,
        cones=dims_to_solver_cones(param_prog.cone_dims),
    )


def _settings(options: Mapping[str, Any]) -> Any:
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    for name, value in options.items():
        setattr(settings, name, value)
    return settings


def _solve_warm(problem: cp.Problem, state: _WarmState, options: Mapping[str, Any]) -> None:
    program = state.param_prog
    # The problem's cached program is ``program`` (checked by the caller), so cvxpy's
    # solving chain and its inverse data are those it was compiled with.
    chain = problem._cache.solving_chain
    cached_inverse = cast(list[Any], problem._cache.inverse_data)  # annotated as one item
    assert chain is not None
    assert cached_inverse is not None
    for reduction in chain.reductions:
        reduction.update_parameters(problem)
    parameters = canonInterface.get_parameter_vector(
        program.total_param_size,
        program.param_id_to_col,
        program.param_id_to_size,
        lambda param_id: np.asarray(program.id_to_param[param_id].value),
    )
    ones = np.ones(1)
    parameters = ones if parameters is None else parameters

    linear = np.asarray(program.q @ parameters).ravel()
    q, offset = linear[:-1], float(linear[-1])
    stored = state.constraints.values(parameters)
    a_values = -stored[state.constraints.order]  # cvxpy's A x + s = b is Clarabel's -A
    b = np.bincount(
        state.rhs_rows,
        weights=stored[state.rhs_start : state.rhs_start + len(state.rhs_rows)],
        minlength=state.constraints.shape[0],
    )
    p_values = None
    if state.quadratic is not None:
        p_values = state.quadratic.values(parameters)[state.quadratic.order]

    if state.solver is None or not state.solver.is_data_update_allowed():
        n_variables = state.constraints.shape[1]
        quadratic = (
            sp.csc_matrix((n_variables, n_variables))
            if state.quadratic is None or p_values is None
            else state.quadratic.matrix(p_values)
        )
        state.solver = clarabel.DefaultSolver(
            quadratic,
            q,
            state.constraints.matrix(a_values),
            b,
            state.cones,
            _settings(options),
        )
        state.options = dict(options)
    else:
        update: dict[str, Any] = {"q": q, "b": b}
        if state.last_a is None or not np.array_equal(a_values, state.last_a):
            update["A"] = a_values
        if p_values is not None and (
            state.last_p is None or not np.array_equal(p_values, state.last_p)
        ):
            update["P"] = p_values
        if options != state.options:  # e.g. a new time limit
            update["settings"] = _settings(options)
            state.options = dict(options)
        state.solver.update(**update)
    state.last_a, state.last_p = a_values, p_values

    solution = state.solver.solve()
    inverse = {**state.solver_inverse, cvxpy_settings.OFFSET: offset}
    inverse_data = [
        *cached_inverse,
        SolverInverseData(inverse, chain.solver, dict(options)),
    ]
    problem.unpack_results(solution, chain, inverse_data)
