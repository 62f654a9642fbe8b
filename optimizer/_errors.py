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
"""

from __future__ import annotations

from collections.abc import Sequence


class OptimizerError(Exception):
    """Base class of every error raised by ``optimizer``.

    Parameters
    ----------
    message : str
        What is wrong and how to fix it.
    status : str or None, optional
        The solver status that led to the error; ``None`` when no solver ran.
    constraints : sequence of str, optional
        Names of the constraints involved (e.g. ``["budget", "weight_bounds"]``).
    """

    def __init__(
        self,
        message: str,
        *,
        status: str | None = None,
        constraints: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.constraints: list[str] = list(constraints)


class InvalidProblem(OptimizerError, ValueError):
    """The inputs are malformed, or the constraints are impossible before solving.

    Raised for NaN or infinite inputs, shape mismatches, a covariance that is not
    symmetric positive semidefinite, bounds that cannot sum to the budget
    (``max_weight * n_assets < 1``, ``min_weight * n_assets > 1``,
    ``min_weight > max_weight``), group bounds that the members' bounds or the budget
    rule out, a turnover limit below the trading the budget or the bounds force, a
    return target above the best the bounds allow, and objectives missing what they
    need (scenarios for CVaR, one positive budget per asset).
    """


class NoPositiveExcessReturn(InvalidProblem):
    """Max Sharpe is undefined: no allowed portfolio beats the risk-free rate.

    When not even the asset with the highest expected return beats the rate
    (:meth:`no_asset_beats`), the error says which asset that is: ``best_asset`` is its
    position, ``best_expected_return`` its expected return and ``risk_free_rate`` the
    rate. The optimizer knows assets only by position, so its message says
    ``asset <position>``; :meth:`with_asset_names` gives the same error naming the asset
    by the caller's label (the API's ticker), in the message and in
    ``best_asset_name``. When some asset does beat the rate but the constraints or the
    transaction costs keep every allowed portfolio at or below it, these are ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        best_asset: int | None = None,
        best_asset_name: str | None = None,
        best_expected_return: float | None = None,
        risk_free_rate: float | None = None,
        status: str | None = None,
        constraints: Sequence[str] = (),
    ) -> None:
        super().__init__(message, status=status, constraints=constraints)
        self.best_asset = best_asset
        self.best_asset_name = best_asset_name
        self.best_expected_return = best_expected_return
        self.risk_free_rate = risk_free_rate

    @classmethod
    def no_asset_beats(
        cls,
        risk_free_rate: float,
        best_asset: int,
        best_expected_return: float,
        best_asset_name: str | None = None,
    ) -> NoPositiveExcessReturn:
        """The error for expected returns that are all at or below ``risk_free_rate``.

        Parameters
        ----------
        risk_free_rate : float
        best_asset : int
            Position of the asset with the highest expected return.
        best_expected_return : float
            Its expected return.
        best_asset_name : str or None, optional
            Its label; the message says ``asset <best_asset>`` without one.
        """
        name = f"asset {best_asset}" if best_asset_name is None else best_asset_name
        return cls(
            "max Sharpe is undefined: no asset's expected return exceeds the risk-free rate "
            f"{risk_free_rate:g} (the highest is {best_expected_return:.6g}, {name}), so no "
            "portfolio has a positive Sharpe ratio. Use the min_variance objective, or a "
            "lower risk_free_rate.",
            best_asset=best_asset,
            best_asset_name=best_asset_name,
            best_expected_return=best_expected_return,
            risk_free_rate=risk_free_rate,
        )

    def with_asset_names(self, names: Sequence[str]) -> NoPositiveExcessReturn:
        """This error naming the best asset ``names[best_asset]``; itself when none is named.

        Parameters
        ----------
        names : sequence of str
            One label per asset, in the order of the problem's assets (e.g. tickers).
        """
        if self.best_asset is None:
            return self
        assert self.best_expected_return is not None
        assert self.risk_free_rate is not None
        return self.no_asset_beats(
            self.risk_free_rate,
            self.best_asset,
            self.best_expected_return,
            best_asset_name=names[self.best_asset],
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
