"""Terms: small objects that own ``cp.Parameter`` s and compile to cvxpy expressions.

A term is built once per compiled problem; each solve only calls ``update`` to set
its parameter values from the request's :class:`~optimizer._data.ProblemData`, so
the problem is never rebuilt. Every expression must stay DPP (parameters enter
affinely, or multiply parameter-free expressions), otherwise cvxpy re-compiles on
each solve. Scalars such as a risk aversion are folded into parameter values, since
a parameter times a parameter-dependent expression is not DPP.

The risk of a problem is one shared :class:`RiskTerm` (dense or factor form); the
objective and the risk constraints (tracking error, maximum volatility) all use it.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import NamedTuple

import cvxpy as cp

from optimizer._data import ProblemData


class ProblemShape(NamedTuple):
    """What fixes the size and form of a compiled problem (never values).

    Attributes
    ----------
    n_assets : int
    n_factors : int or None
        ``k`` for a factor risk model; ``None`` for a dense covariance.
    has_costs : bool
        Whether a transaction-cost term is present.
    n_scenarios : int or None
        Number of scenario returns, for objectives that use them (CVaR).
    """

    n_assets: int
    n_factors: int | None = None
    has_costs: bool = False
    n_scenarios: int | None = None


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


class RiskTerm(Term):
    """Portfolio variance ``w' Sigma w`` as the squared norm of a vector of the weights."""

    @abstractmethod
    def vector(self, weights: cp.Expression) -> cp.Expression:
        """A vector ``v(w)`` with ``||v(w)||^2 = w' Sigma w`` (linear in ``w``)."""

    @property
    @abstractmethod
    def vector_size(self) -> int:
        """Length of :meth:`vector`."""

    def expression(self, weights: cp.Expression) -> cp.Expression:
        """``sum_squares(vector(weights))``, the variance."""
        # cvxpy re-exports its atoms implicitly, which mypy --strict does not see.
        expression: cp.Expression = cp.sum_squares(self.vector(weights))  # type: ignore[attr-defined]
        return expression

    @property
    def definitions(self) -> tuple[cp.Constraint, ...]:
        """Constraints that define auxiliary variables of :meth:`vector` (none here).

        They belong to every problem that uses the term, and never conflict.
        """
        return ()

    def volatility(self, weights: cp.Expression) -> cp.Expression:
        """``norm2(vector(weights))``, the volatility (a second-order cone)."""
        expression: cp.Expression = cp.norm(self.vector(weights), 2)  # type: ignore[attr-defined]
        return expression


class FullCovarianceRisk(RiskTerm):
    """Portfolio variance ``w' Sigma w`` written as ``sum_squares(F.T @ w)``.

    ``F`` is a parameter holding ``sqrt(scale) * L`` with ``Sigma = L @ L.T``; unlike
    ``quad_form(w, Sigma)`` this form is DPP.
    """

    def __init__(self, n_assets: int) -> None:
        super().__init__(n_assets)
        self.factor = cp.Parameter((n_assets, n_assets), name="risk_factor")

    @property
    def vector_size(self) -> int:
        """``n_assets``."""
        return self.n_assets

    def vector(self, weights: cp.Expression) -> cp.Expression:
        """``F.T @ weights``."""
        vector: cp.Expression = self.factor.T @ weights
        return vector

    def update(self, data: ProblemData, scale: float = 1.0) -> None:
        """Set ``F`` to ``sqrt(scale) * L``, so that the expression is ``scale * w' Sigma w``."""
        if scale < 0.0:
            raise ValueError(f"a risk term's scale must be non-negative; got {scale}")
        self.factor.value = math.sqrt(scale) * data.risk_factor


FACTOR_BLOCK_SIZE = 512
"""Assets per block of the factor exposures ``G' w`` (see :class:`FactorRisk`)."""


class FactorRisk(RiskTerm):
    """Variance of a factor model: ``||G' w||^2 + ||s * w||^2``.

    ``G = B chol(F)`` is ``n x k`` and ``s = sqrt(D)``, so the solver sees
    ``n * (k + 1)`` numbers instead of the ``n^2`` of a dense covariance.

    Above :data:`FACTOR_BLOCK_SIZE` assets the factor exposures are summed from blocks,
    ``G' w = sum_b z_b`` with ``z_b = G_b' w_b`` over blocks of assets, each ``z_b`` a
    variable defined by :attr:`definitions`. Written in one piece, each of the ``k``
    rows of ``G' w`` couples all ``n`` weights; Clarabel's AMD ordering sets rows
    longer than ``15 sqrt(dim KKT)`` aside as dense, and for these KKT systems that
    ordering factors several times slower: a 2,000-asset problem sits on that edge
    (its solve time doubled when a redundant bound was removed) and a 3,000-asset one
    took 3x longer than in blocks. Blocks keep every row short, at ``k`` extra
    variables and rows per block.
    """

    def __init__(self, n_assets: int, n_factors: int) -> None:
        super().__init__(n_assets)
        self.n_factors = n_factors
        self.exposure = cp.Parameter((n_assets, n_factors), name="factor_exposure")
        self.specific = cp.Parameter(n_assets, name="specific_volatility", nonneg=True)
        self._blocks: dict[int, cp.Expression] = {}
        self._definitions: list[cp.Constraint] = []

    @property
    def vector_size(self) -> int:
        """``n_factors + n_assets``."""
        return self.n_factors + self.n_assets

    @property
    def definitions(self) -> tuple[cp.Constraint, ...]:
        """``z_b == G_b' w_b`` for the blocks built so far (always satisfiable)."""
        return tuple(self._definitions)

    def factor_exposures(self, weights: cp.Expression) -> cp.Expression:
        """``G' w``, summed from per-block variables above ``FACTOR_BLOCK_SIZE`` assets.

        The same ``weights`` get the same block variables, however often it is asked.
        """
        if self.n_assets <= FACTOR_BLOCK_SIZE:
            exposures: cp.Expression = self.exposure.T @ weights
            return exposures
        if weights.id not in self._blocks:
            blocks = []
            for start in range(0, self.n_assets, FACTOR_BLOCK_SIZE):
                stop = min(start + FACTOR_BLOCK_SIZE, self.n_assets)
                block = cp.Variable(self.n_factors, name=f"factor_exposure_{start}")
                self._definitions.append(block == self.exposure[start:stop].T @ weights[start:stop])
                blocks.append(block)
            self._blocks[weights.id] = cp.sum(blocks)  # type: ignore[attr-defined]
        return self._blocks[weights.id]

    def vector(self, weights: cp.Expression) -> cp.Expression:
        """``[G.T @ w; s * w]``."""
        vector: cp.Expression = cp.hstack(  # type: ignore[attr-defined]
            [self.factor_exposures(weights), cp.multiply(self.specific, weights)]  # type: ignore[attr-defined]
        )
        return vector

    def update(self, data: ProblemData, scale: float = 1.0) -> None:
        """Set ``G`` and ``s`` (times ``sqrt(scale)``)."""
        if scale < 0.0:
            raise ValueError(f"a risk term's scale must be non-negative; got {scale}")
        if data.specific_volatility is None:
            raise ValueError("a factor risk term needs a factor model")
        root = math.sqrt(scale)
        self.exposure.value = root * data.risk_factor
        self.specific.value = root * data.specific_volatility


class LinearTransactionCost(Term):
    """Linear trading cost ``sum_i c_i |w_i - w0_i|`` (``c`` in return units).

    Written ``sum(abs(c * w - c * w0))`` with ``c`` and ``c * w0`` as parameters: the
    product of two parameters would not be DPP.
    """

    def __init__(self, n_assets: int) -> None:
        super().__init__(n_assets)
        self.rate = cp.Parameter(n_assets, name="transaction_cost", nonneg=True)
        self.offset = cp.Parameter(n_assets, name="transaction_cost_offset")

    def expression(
        self, weights: cp.Expression, scale: cp.Expression | None = None
    ) -> cp.Expression:
        """The cost of trading to ``weights`` (``weights / scale`` when homogenised)."""
        offset = self.offset if scale is None else self.offset * scale
        expression: cp.Expression = cp.sum(cp.abs(cp.multiply(self.rate, weights) - offset))  # type: ignore[attr-defined]
        return expression

    def update(self, data: ProblemData, scale: float = 1.0) -> None:
        """Set ``c`` and ``c * w0`` (times ``scale``)."""
        if data.transaction_costs is None:
            raise ValueError("a cost term needs transaction costs")
        rate = scale * data.transaction_costs
        self.rate.value = rate
        self.offset.value = rate * data.holdings


@dataclass(frozen=True)
class CompileContext:
    """What objectives and constraints share when a problem is compiled.

    Attributes
    ----------
    shape : ProblemShape
    risk : RiskTerm
        The problem's one risk term; the compiled problem sets its values.
    cost : LinearTransactionCost or None
        The cost term when the problem has costs; objectives that use it set it.
    """

    shape: ProblemShape
    risk: RiskTerm
    cost: LinearTransactionCost | None = None

    @property
    def n_assets(self) -> int:
        """Number of assets."""
        return self.shape.n_assets

    @classmethod
    def for_shape(cls, shape: ProblemShape) -> CompileContext:
        """Fresh terms for ``shape``."""
        risk: RiskTerm = (
            FullCovarianceRisk(shape.n_assets)
            if shape.n_factors is None
            else FactorRisk(shape.n_assets, shape.n_factors)
        )
        cost = LinearTransactionCost(shape.n_assets) if shape.has_costs else None
        return cls(shape, risk, cost)
