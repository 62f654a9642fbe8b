"""The holdings simulation: drift between rebalances, trades and their costs.

Timing (the convention every strategy is run under):

- On a rebalance date *t* a strategy sees data up to and including *t*'s close and
  trades at that close, from the drifted weights to its targets.
- The cost is ``sum_i c_i |target_i - drifted_i|`` as a fraction of the portfolio's
  value at *t*'s close (``c_i = cost_bps / 10^4``, plus half the asset's spread), and
  is charged in day *t*'s return: ``net_t = (1 + gross_t) (1 - cost_t) - 1``.
- Day *t + 1* earns the target weights; between rebalances each holding grows with its
  own price, so the weights drift. The rest of the value (``1 - sum(w)``) is cash, which
  earns nothing; a negative rest (leverage) borrows at nothing either.
- Before the first rebalance the portfolio is all cash.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

FloatArray = np.ndarray
TargetFunction = Callable[[int, FloatArray], FloatArray]
"""``(row, drifted_weights) -> target_weights``: a strategy's decision at a rebalance row."""


@dataclass(frozen=True)
class Simulation:
    """Daily returns and trades of one strategy, from its first rebalance on.

    Attributes
    ----------
    rows : ndarray of int
        Rows (of the asset returns) the daily arrays cover: first rebalance to the end.
    gross_return, cost, net_return : ndarray
        Daily simple returns before costs, costs (fraction of the day's closing value)
        and returns after costs.
    rebalance_rows : ndarray of int
        The rows where the strategy traded.
    targets : ndarray of shape (n_rebalances, n_assets)
        The target weights set at each rebalance.
    turnover : ndarray of shape (n_rebalances,)
        ``sum |target - drifted|`` at each rebalance.
    """

    rows: np.ndarray
    gross_return: FloatArray
    cost: FloatArray
    net_return: FloatArray
    rebalance_rows: np.ndarray
    targets: FloatArray
    turnover: FloatArray


def simulate(
    asset_returns: FloatArray,
    rebalance_rows: np.ndarray,
    target_weights: TargetFunction,
    cost_rates: FloatArray,
) -> Simulation:
    """Run holdings through ``asset_returns``, trading to targets at ``rebalance_rows``.

    Parameters
    ----------
    asset_returns : ndarray of shape (n_days, n_assets)
        Daily simple returns; row ``r`` is the return from close ``r - 1`` to close
        ``r``. Must be finite from the first rebalance row on, for every asset held.
    rebalance_rows : ndarray of int
        Strictly increasing rows at whose close the portfolio trades.
    target_weights : callable
        ``(row, drifted_weights) -> target_weights``, called once per rebalance in order.
    cost_rates : ndarray of shape (n_assets,)
        Cost per unit of weight traded (10 bps = 0.001).

    Returns
    -------
    Simulation
    """
    n_days, n_assets = asset_returns.shape
    rebalance_rows = np.asarray(rebalance_rows, dtype=int)
    first = int(rebalance_rows[0])
    gross = np.zeros(n_days)
    cost = np.zeros(n_days)
    targets = np.zeros((len(rebalance_rows), n_assets))
    turnover = np.zeros(len(rebalance_rows))
    drifted = np.zeros(n_assets)  # all cash before the first trade
    ends = [*rebalance_rows[1:].tolist(), n_days - 1]
    for k, row in enumerate(rebalance_rows.tolist()):
        target = np.asarray(target_weights(row, drifted.copy()), dtype=np.float64)
        traded = np.abs(target - drifted)
        turnover[k] = float(traded.sum())
        cost[row] = float(cost_rates @ traded)
        targets[k] = target
        # Grow the target holdings through the days up to the next rebalance (inclusive).
        end = ends[k]
        if end == row:
            drifted = target.copy()
            continue
        period = asset_returns[row + 1 : end + 1]
        unknown = ~np.isfinite(period)
        held_unknown = unknown.any(axis=0) & (target != 0.0)
        if held_unknown.any():
            raise ValueError(
                f"assets {np.flatnonzero(held_unknown).tolist()} are held from row {row} but "
                "have no price on some day before the next rebalance"
            )
        growth = np.cumprod(1.0 + np.where(unknown, 0.0, period), axis=0)
        values = growth * target  # each holding's value, per unit of value at `row`
        total = values.sum(axis=1) + (1.0 - float(target.sum()))  # plus cash
        previous = np.concatenate([[1.0], total[:-1]])
        gross[row + 1 : end + 1] = total / previous - 1.0
        drifted = values[-1] / total[-1]
    net = (1.0 + gross) * (1.0 - cost) - 1.0
    rows = np.arange(first, n_days)
    return Simulation(
        rows=rows,
        gross_return=gross[first:],
        cost=cost[first:],
        net_return=net[first:],
        rebalance_rows=rebalance_rows,
        targets=targets,
        turnover=turnover,
    )
