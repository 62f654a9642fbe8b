"""Terms: small objects that own ``cp.Parameter`` s and compile to cvxpy expressions.

A term is built once per compiled problem; each solve only calls ``update`` to set
its parameter values from the request's :class:`~optimizer._data.ProblemData`, so
the problem is never rebuilt. Every expression must stay DPP (parameters enter
affinely, or multiply parameter-free expressions), otherwise cvxpy re-compiles on
each solve.

New forecasts, risk models and costs (a factor risk model, transaction costs) slot
in as new subclasses of :class:`Term`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import cvxpy as cp

from optimizer._data import ProblemData


class Term(ABC):
    """A piece of an objective: a cvxpy expression of the weights with its parameters.

    Parameters
    ----------
    n_assets : int
        Number of assets; fixes the parameter shapes.
    """

    def __init__(self, n_assets: int) -> None:
        self.n_assets = n_assets

    @abstractmethod
    def expression(self, weights: cp.Expression) -> cp.Expression:
        """The term as a cvxpy expression of ``weights`` (DPP in the parameters)."""

    @abstractmethod
    def update(self, data: ProblemData, scale: float = 1.0) -> None:
        """Set parameter values so that the expression equals ``scale`` times the term.

        Parameters
        ----------
        data : ProblemData
            The request's validated inputs.
        scale : float, optional
            Non-negative multiplier folded into the parameters (a parameter times a
            parameter-dependent expression would not be DPP).
        """


class ExpectedReturn(Term):
    """Expected portfolio return ``mu @ w`` with ``mu`` a parameter.

    Units are those of ``data.expected_returns`` (annualised in the service).
    """

    def __init__(self, n_assets: int) -> None:
        super().__init__(n_assets)
        self.expected_return = cp.Parameter(n_assets, name="expected_return")

    def expression(self, weights: cp.Expression) -> cp.Expression:
        """``mu @ weights``."""
        expression: cp.Expression = self.expected_return @ weights
        return expression

    def update(self, data: ProblemData, scale: float = 1.0) -> None:
        """Set ``mu`` to ``scale * data.expected_returns``."""
        self.expected_return.value = scale * data.expected_returns


class FullCovarianceRisk(Term):
    """Portfolio variance ``w' Sigma w`` written as ``sum_squares(F.T @ w)``.

    ``F`` is a parameter holding ``sqrt(scale) * L`` with ``Sigma = L @ L.T``; unlike
    ``quad_form(w, Sigma)`` this form is DPP.
    """

    def __init__(self, n_assets: int) -> None:
        super().__init__(n_assets)
        self.factor = cp.Parameter((n_assets, n_assets), name="risk_factor")

    def expression(self, weights: cp.Expression) -> cp.Expression:
        """``sum_squares(F.T @ weights)``, equal to ``scale * w' Sigma w``."""
        # cvxpy re-exports its atoms implicitly, which mypy --strict does not see.
        expression: cp.Expression = cp.sum_squares(self.factor.T @ weights)  # type: ignore[attr-defined]
        return expression

    def update(self, data: ProblemData, scale: float = 1.0) -> None:
        """Set ``F`` to ``sqrt(scale) * L``, so that the expression is ``scale * w' Sigma w``."""
        if scale < 0.0:
            raise ValueError(f"a risk term's scale must be non-negative; got {scale}")
        self.factor.value = math.sqrt(scale) * data.risk_factor
