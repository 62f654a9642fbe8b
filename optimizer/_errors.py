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

The optimizer knows assets only by position. An error about particular assets carries
their positions in ``asset_positions`` and says ``asset 2`` (``assets 1 and 3``) in its
message; :meth:`OptimizerError.with_asset_names` gives the same error naming them by
the caller's labels (the API's tickers) instead, so the library stays label-agnostic
and a caller that knows the labels applies them in one place, whatever the error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

ASSETS = "{assets}"
"""The placeholder for the assets in the message of an error with ``asset_positions``."""


class OptimizerError(Exception):
    """Base class of every error raised by ``optimizer``.

    Parameters
    ----------
    message : str
        What is wrong and how to fix it. With ``asset_positions``, a template in which
        :data:`ASSETS` (``"{assets}"``) stands for those assets: ``asset 2`` until
        :meth:`with_asset_names` names them. Nothing else in it is substituted.
    status : str or None, optional
        The solver status that led to the error; ``None`` when no solver ran.
    constraints : sequence of str, optional
        Names of the constraints involved (e.g. ``["budget", "weight_bounds"]``).
    asset_positions : sequence of int, optional
        Positions of the assets the error is about, in the problem's asset order.

    Attributes
    ----------
    asset_names : tuple of str or None
        The labels of ``asset_positions`` once :meth:`with_asset_names` has named them.
    """

    def __init__(
        self,
        message: str,
        *,
        status: str | None = None,
        constraints: Sequence[str] = (),
        asset_positions: Sequence[int] = (),
    ) -> None:
        self.template = message
        self.asset_positions: tuple[int, ...] = tuple(int(p) for p in asset_positions)
        self.asset_names: tuple[str, ...] | None = None
        self.message = self._render()
        super().__init__(self.message)
        self.status = status
        self.constraints: list[str] = list(constraints)

    def with_asset_names(self, names: Sequence[str]) -> Self:
        """This error naming its assets by ``names``; itself when there is nothing to name.

        Returns a copy whose message and ``asset_names`` name each position ``p`` of
        ``asset_positions`` as ``names[p]``. An error about no asset in particular, or
        one already named, is returned as it is: the first caller that knows the order
        the positions refer to names them, and callers further out cannot rename them.

        Parameters
        ----------
        names : sequence of str
            One label per asset, in the order of the problem's assets (e.g. tickers).
        """
        if not self.asset_positions or self.asset_names is not None:
            return self
        # A shallow copy that skips __init__, whose signature subclasses extend.
        error = type(self).__new__(type(self))
        error.__dict__.update(self.__dict__)
        error.asset_names = tuple(names[p] for p in self.asset_positions)
        error.message = error._render()
        error.args = (error.message,)
        return error

    def _render(self) -> str:
        if not self.asset_positions:
            return self.template
        if self.asset_names is None:
            noun = "asset" if len(self.asset_positions) == 1 else "assets"
            assets = f"{noun} {_listed([str(p) for p in self.asset_positions])}"
        else:
            assets = _listed(list(self.asset_names))
        return self.template.replace(ASSETS, assets)


def _listed(labels: list[str]) -> str:
    """``"A"``, ``"A and B"``, ``"A, B and C"``."""
    return labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} and {labels[-1]}"


class InvalidProblem(OptimizerError, ValueError):
    """The inputs are malformed, or the constraints are impossible before solving.

    Raised for NaN or infinite inputs, shape mismatches, a covariance that is not
    symmetric positive semidefinite, bounds that cannot sum to the budget
    (``max_weight * n_assets < 1``, ``min_weight * n_assets > 1``,
    ``min_weight > max_weight``), group bounds that the members' bounds or the budget
    rule out, a turnover limit below the trading the budget or the bounds force, a
    return target above the best the bounds allow, and objectives missing what they
    need (scenarios for CVaR, one positive budget per asset). Those about particular
    assets (an asset's lower bound above its upper bound, an asset risk budgeting
    cannot hold long, an asset with zero variance for HRP or a correlation) carry
    ``asset_positions``.
    """


class NoPositiveExcessReturn(InvalidProblem):
    """Max Sharpe is undefined: no allowed portfolio beats the risk-free rate.

    When not even the asset with the highest expected return beats the rate
    (:meth:`no_asset_beats`), the error says which asset that is: ``best_asset`` is its
    position (its ``asset_positions`` is ``(best_asset,)``), ``best_expected_return``
    its expected return and ``risk_free_rate`` the rate; after
    :meth:`~OptimizerError.with_asset_names`, ``best_asset_name`` is its label. When
    some asset does beat the rate but the constraints or the transaction costs keep
    every allowed portfolio at or below it, these are ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        best_asset: int | None = None,
        best_expected_return: float | None = None,
        risk_free_rate: float | None = None,
        status: str | None = None,
        constraints: Sequence[str] = (),
    ) -> None:
        super().__init__(
            message,
            status=status,
            constraints=constraints,
            asset_positions=() if best_asset is None else (best_asset,),
        )
        self.best_expected_return = best_expected_return
        self.risk_free_rate = risk_free_rate

    @property
    def best_asset(self) -> int | None:
        """The position of the asset with the highest expected return, when it is named."""
        return self.asset_positions[0] if self.asset_positions else None

    @property
    def best_asset_name(self) -> str | None:
        """Its label, once :meth:`~OptimizerError.with_asset_names` has named it."""
        return self.asset_names[0] if self.asset_names else None

    @classmethod
    def no_asset_beats(
        cls, risk_free_rate: float, best_asset: int, best_expected_return: float
    ) -> NoPositiveExcessReturn:
        """The error for expected returns that are all at or below ``risk_free_rate``.

        Parameters
        ----------
        risk_free_rate : float
        best_asset : int
            Position of the asset with the highest expected return.
        best_expected_return : float
            Its expected return.
        """
        return cls(
            "max Sharpe is undefined: no asset's expected return exceeds the risk-free rate "
            f"{risk_free_rate:g} (the highest is {best_expected_return:.6g}, {ASSETS}), so "
            "no portfolio has a positive Sharpe ratio. Use the min_variance objective, or a "
            "lower risk_free_rate.",
            best_asset=best_asset,
            best_expected_return=best_expected_return,
            risk_free_rate=risk_free_rate,
        )


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
