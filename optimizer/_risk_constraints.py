"""Risk constraints: tracking error against a benchmark and a volatility cap.

Both are second-order cones on the problem's shared risk term (dense or factor
form), so they cost no extra copy of the covariance.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import ClassVar

import cvxpy as cp
import numpy as np
import numpy.typing as npt

from optimizer._constraints import CompiledConstraint, Constraint, times_scale
from optimizer._data import ProblemData
from optimizer._errors import InvalidProblem
from optimizer._terms import CompileContext
from optimizer._typing import FloatArray, ParameterValue


@dataclass(frozen=True, eq=False)  # arrays have no boolean equality
class TrackingError(Constraint):
    """Active risk cap: ``sqrt((w - b)' Sigma (w - b)) <= max_tracking_error``.

    Parameters
    ----------
    benchmark_weights : array-like of shape (n_assets,)
        The benchmark ``b`` in asset order (it need not sum to 1).
    max_tracking_error : float
        Positive cap, in volatility units (annualised in the service).
    """

    name: ClassVar[str] = "tracking_error"

    benchmark_weights: npt.ArrayLike
    max_tracking_error: float

    @property
    def structure(self) -> tuple[Hashable, ...]:
        """The class only: the benchmark and the cap are parameters."""
        return super().structure

    def _benchmark(self) -> FloatArray:
        return np.asarray(self.benchmark_weights, dtype=np.float64)

    def check_feasible(self, n_assets: int) -> None:
        """Reject a benchmark of the wrong length or with NaN, and a cap <= 0."""
        benchmark = self._benchmark()
        if benchmark.shape != (n_assets,) or not np.all(np.isfinite(benchmark)):
            raise InvalidProblem(
                f"benchmark_weights must hold {n_assets} finite weights in asset order; got "
                f"shape {benchmark.shape}.",
                constraints=[self.name],
            )
        if not (math.isfinite(self.max_tracking_error) and self.max_tracking_error > 0.0):
            raise InvalidProblem(
                f"max_tracking_error={self.max_tracking_error} must be positive (e.g. 0.02 "
                "for 2% a year).",
                constraints=[self.name],
            )

    def compile(
        self, weights: cp.Variable, scale: cp.Expression | None, context: CompileContext
    ) -> CompiledConstraint:
        """``norm2(v(w) - v(b)) <= te`` with ``v`` the risk vector; ``v(b)`` is a parameter."""
        benchmark_vector = cp.Parameter(context.risk.vector_size, name="benchmark_risk_vector")
        cap = cp.Parameter(name="max_tracking_error", nonneg=True)
        active = context.risk.vector(weights) - times_scale(benchmark_vector, scale)
        constraint = cp.norm(active, 2) <= times_scale(cap, scale)  # type: ignore[attr-defined]
        return CompiledConstraint(
            self.name,
            (constraint,),
            {"benchmark_risk_vector": benchmark_vector, "max_tracking_error": cap},
        )

    def parameter_values(self, data: ProblemData) -> dict[str, ParameterValue]:
        """``v(b)`` for this request's risk model, and the cap."""
        return {
            "benchmark_risk_vector": data.risk_vector(self._benchmark()),
            "max_tracking_error": float(self.max_tracking_error),
        }

    def tracking_error(self, weights: FloatArray, data: ProblemData) -> float:
        """``sqrt((w - b)' Sigma (w - b))``."""
        active = weights - self._benchmark()
        return math.sqrt(max(float(active @ data.covariance_times(active)), 0.0))

    def violation(self, weights: FloatArray, data: ProblemData) -> float:
        """Tracking error above the cap."""
        return max(0.0, self.tracking_error(weights, data) - self.max_tracking_error)


@dataclass(frozen=True)
class MaxVolatility(Constraint):
    """Volatility cap: ``sqrt(w' Sigma w) <= max_volatility``.

    Parameters
    ----------
    max_volatility : float
        Positive cap in volatility units (annualised in the service).
    """

    name: ClassVar[str] = "max_volatility"

    max_volatility: float

    def check_feasible(self, n_assets: int) -> None:
        """Reject a cap <= 0."""
        if not (math.isfinite(self.max_volatility) and self.max_volatility > 0.0):
            raise InvalidProblem(
                f"max_volatility={self.max_volatility} must be positive (e.g. 0.15).",
                constraints=[self.name],
            )

    def compile(
        self, weights: cp.Variable, scale: cp.Expression | None, context: CompileContext
    ) -> CompiledConstraint:
        """``norm2(v(w)) <= max_volatility`` (times ``kappa`` when homogenised)."""
        cap = cp.Parameter(name="max_volatility", nonneg=True)
        constraint = context.risk.volatility(weights) <= times_scale(cap, scale)
        return CompiledConstraint(self.name, (constraint,), {"max_volatility": cap})

    def parameter_values(self, data: ProblemData) -> dict[str, ParameterValue]:
        """The cap."""
        return {"max_volatility": float(self.max_volatility)}

    def violation(self, weights: FloatArray, data: ProblemData) -> float:
        """Volatility above the cap."""
        volatility = math.sqrt(max(float(weights @ data.covariance_times(weights)), 0.0))
        return max(0.0, volatility - self.max_volatility)
