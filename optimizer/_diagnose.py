"""Which constraints make a problem infeasible: a deletion filter over named groups.

After a solver proves a problem infeasible, each named group of constraints is
dropped in turn; a group whose removal leaves the rest still infeasible is not
needed for the conflict and stays dropped. What remains is a minimal set of groups
that cannot hold together (an irreducible infeasible subsystem at the granularity of
the request's constraints; Chinneck & Dravnieks, 1991). It costs one feasibility
solve per group, on the error path only.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import cvxpy as cp

NamedConstraints = tuple[str, Sequence[cp.Constraint]]

TIME_LIMIT_OPTIONS: Mapping[str, str] = {
    "CLARABEL": "time_limit",  # seconds; stops with status MaxTime (cvxpy: user_limit)
    "SCS": "time_limit_secs",  # seconds; stops with an inaccurate solution
    "OSQP": "time_limit",  # seconds
}
"""Each solver's own time-limit option. Solvers not listed cannot be stopped: the limit
is checked after they return."""


def _feasible(
    groups: Sequence[NamedConstraints], solver: str, deadline: float | None = None
) -> bool | None:
    """Whether the union of ``groups`` is feasible; ``None`` if the solver cannot tell.

    Past ``deadline`` (a ``time.perf_counter()`` value) it cannot: ``None``.
    """
    options: dict[str, float] = {}
    if deadline is not None:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            return None
        if solver in TIME_LIMIT_OPTIONS:
            options[TIME_LIMIT_OPTIONS[solver]] = remaining
    constraints = [item for _, items in groups for item in items]
    problem = cp.Problem(cp.Minimize(0), constraints)
    try:
        problem.solve(solver=solver, **options)  # type: ignore[no-untyped-call]
    except cp.SolverError:
        return None
    if problem.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
        return True
    if problem.status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
        return False
    return None


def conflicting_constraints(
    groups: Sequence[NamedConstraints],
    solver: str,
    fixed: Sequence[cp.Constraint] = (),
    deadline: float | None = None,
) -> list[str] | None:
    """Names of a minimal set of ``groups`` that are infeasible together.

    Parameters
    ----------
    groups : sequence of (name, constraints)
        Every constraint of an infeasible problem, grouped by the request constraint
        it comes from; parameters must hold their values.
    solver : str
        Solver for the feasibility checks.
    fixed : sequence of cp.Constraint, optional
        Constraints always kept and never named (e.g. ``kappa == 1``, which turns a
        homogenised problem back into one on the weights).
    deadline : float, optional
        ``time.perf_counter()`` value past which no more feasibility solves start (the
        request's time limit); the answer is then ``None``.

    Returns
    -------
    list of str or None
        The conflicting groups' names, in input order; empty when all the groups can
        hold together (the conflict is elsewhere, e.g. in an objective's own
        condition); ``None`` when the solver cannot tell or the deadline passed.
    """
    everything = _feasible([*groups, ("", fixed)], solver, deadline)
    if everything is None:
        return None
    if everything:
        return []
    kept = list(groups)
    for group in list(groups):
        trial = [g for g in kept if g is not group]
        trial_with_fixed: list[NamedConstraints] = [*trial, ("", fixed)]
        feasible = _feasible(trial_with_fixed, solver, deadline)
        if feasible is None:
            return None
        if not feasible:
            kept = trial
    return [name for name, _ in kept]
