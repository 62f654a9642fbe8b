"""Copies of one compiled problem, lent one per solve, so same-shape solves run at once.

A :class:`~optimizer._problem.CompiledProblem` holds its parameter and variable values
as shared state, so it solves one request at a time. With one copy per structure, every
request of the same shape (the common case: one universe, one constraint set) queued
behind the one before it. A pool keeps up to ``max_instances`` copies: a solve borrows
an idle one, or compiles another while under the cap, or waits for one to come back,
its waiting counted against the solve's time limit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from optimizer._attempts import time_limit_exceeded
from optimizer._constraints import Constraint
from optimizer._data import ProblemData
from optimizer._objectives import Objective
from optimizer._problem import CompiledProblem, SolveOutcome


class ProblemPool:
    """Up to ``max_instances`` compiled copies of one problem structure.

    Parameters
    ----------
    factory : callable
        Builds a new copy (cvxpy compiles it at its first solve).
    max_instances : int
        Copies at most; more concurrent solves wait for one. Must be >= 1.
    """

    def __init__(self, factory: Callable[[], CompiledProblem], max_instances: int) -> None:
        if max_instances < 1:
            raise ValueError(f"max_instances must be at least 1; got {max_instances}")
        self._factory = factory
        self.max_instances = max_instances
        self.primary = factory()
        self._idle: list[CompiledProblem] = [self.primary]
        self._instances = 1
        self._available = threading.Condition()

    @property
    def instances(self) -> int:
        """Copies built so far (at most ``max_instances``)."""
        with self._available:
            return self._instances

    def solve(
        self,
        objective: Objective,
        constraints: Sequence[Constraint],
        data: ProblemData,
        solvers: Sequence[str],
        *,
        time_limit_seconds: float | None = None,
    ) -> SolveOutcome:
        """:meth:`CompiledProblem.solve` on a borrowed copy; waiting spends the limit."""
        start = time.perf_counter()
        deadline = None if time_limit_seconds is None else start + time_limit_seconds
        problem = self.borrow(deadline)
        if problem is None:
            assert time_limit_seconds is not None
            raise time_limit_exceeded(
                time_limit_seconds,
                ["waited for other solves of this problem"],
                None,
                self.primary.constraint_names,
            )
        try:
            return problem.solve(
                objective,
                constraints,
                data,
                solvers,
                time_limit_seconds=time_limit_seconds,
                deadline=deadline,
            )
        finally:
            self.give_back(problem)

    def borrow(self, deadline: float | None) -> CompiledProblem | None:
        """An idle copy, a new one while under the cap, or None once ``deadline`` passed.

        ``deadline`` is a ``time.perf_counter()`` value, or None to wait as long as it
        takes. Every copy borrowed must be given back (:meth:`give_back`).
        """
        with self._available:
            while not self._idle and self._instances >= self.max_instances:
                timeout = None if deadline is None else deadline - time.perf_counter()
                if timeout is not None and timeout <= 0:
                    return None
                self._available.wait(timeout)
            if self._idle:
                return self._idle.pop()
            self._instances += 1  # reserved: built outside the lock
        try:
            return self._factory()
        except BaseException:
            with self._available:
                self._instances -= 1
                self._available.notify()
            raise

    def give_back(self, problem: CompiledProblem) -> None:
        """Return a borrowed copy, waking one solve that waits for it."""
        with self._available:
            self._idle.append(problem)
            self._available.notify()
