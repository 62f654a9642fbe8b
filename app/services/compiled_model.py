"""The serving signature compiled with XLA for a few batch sizes, and a plan per batch.

XLA (``tf.function(jit_compile=True)``) fuses the forecaster's graph into one kernel
per input shape: one instance costs ~0.25 ms instead of the signature's ~0.9 ms on
this model. It compiles once per shape, so, as TensorFlow Serving does with
``allowed_batch_sizes``, calls only ever see a configured set of batch sizes:

- At load, each size is compiled, run on the real input windows, and compared with the
  SavedModel's own signature; any output further than ``tolerance`` from it, or a
  compile error, and the version serves through the plain signature instead (logged).
  So a version is marked ready only with its compiled sizes warm.
- Each size's cost is timed at load. A batch of ``n`` instances runs as the cheapest
  sequence of compiled calls that covers it: a padded call of the next size up, or
  pieces (65 as 64 + 1 rather than a 256 mostly made of padding). The plan for every
  ``n`` up to the largest request is worked out once, by dynamic programming over the
  measured costs.
- No other shape ever reaches XLA: a batch larger than the largest size is split into
  pieces too. So a request never pays a compile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

Outputs = dict[str, np.ndarray]


class CompileRefused(RuntimeError):
    """The compiled signature could not be built or does not match the SavedModel's."""


def batch_plan(costs: dict[int, float], largest: int) -> list[tuple[int, ...]]:
    """For each ``n`` in ``0..largest``, the compiled sizes to call, cheapest first found.

    ``costs`` maps each compiled batch size to the seconds one call takes. A plan's
    pieces sum to at least ``n``; only its last piece may hold padding. Ties go to
    fewer calls, then to the smaller padded size.
    """
    if not costs or min(costs) < 1:
        raise ValueError(f"batch sizes must be positive, got {sorted(costs)}")
    sizes = sorted(costs)
    best_cost = [0.0] * (largest + 1)
    plans: list[tuple[int, ...]] = [()] * (largest + 1)
    for n in range(1, largest + 1):
        # A single padded call of the smallest size that holds n (if any size does) ...
        holding = [s for s in sizes if s >= n][:1]
        options: list[tuple[float, int, tuple[int, ...]]] = [(costs[s], 1, (s,)) for s in holding]
        # ... or a full piece of size s < n and the best plan for the rest.
        for s in sizes:
            if s < n:
                rest = plans[n - s]
                options.append((costs[s] + best_cost[n - s], 1 + len(rest), (s, *rest)))
        cost, _, plan = min(options, key=lambda o: (o[0], o[1], o[2][-1]))
        best_cost[n], plans[n] = cost, plan
    return plans


@dataclass(frozen=True)
class CompiledSignature:
    """Calls the compiled function of each batch size, following :func:`batch_plan`.

    Build it with :meth:`compile`; call it like ``LoadedModel.predict``.
    """

    functions: dict[int, Callable[..., dict[str, Any]]]
    """Batch size to its compiled concrete function (keyword ``features``)."""
    costs: dict[int, float]
    """Batch size to the seconds a call took at load (see ``_call_costs``)."""
    plans: list[tuple[int, ...]]
    """Index ``n``: the sizes that run a batch of ``n``."""
    compile_seconds: float

    @classmethod
    def compile(
        cls,
        signature: Callable[..., dict[str, Any]],
        windows: np.ndarray,
        batch_sizes: Sequence[int],
        largest: int,
        tolerance: float = 1e-6,
    ) -> CompiledSignature:
        """Compile ``signature`` for ``batch_sizes``, check it on ``windows``, time it.

        ``windows`` are real inputs, ``(n, lookback, features)`` float32; each size is
        checked on them (cycled to fill the size) against ``signature`` itself. Raises
        :class:`CompileRefused` when a compile fails or an output differs by more than
        ``tolerance``.
        """
        import tensorflow as tf

        if len(windows) == 0:
            raise CompileRefused("no input windows to check the compiled function with")
        started = time.perf_counter()
        jitted = tf.function(lambda features: signature(features=features), jit_compile=True)
        functions: dict[int, Callable[..., dict[str, Any]]] = {}
        batches: dict[int, Any] = {}
        for size in sorted(set(batch_sizes)):
            spec = tf.TensorSpec([size, *windows.shape[1:]], tf.float32, name="features")
            batch = tf.constant(np.resize(windows, (size, *windows.shape[1:])), tf.float32)
            try:
                function = jitted.get_concrete_function(spec)
                compiled = {k: v.numpy() for k, v in function(batch).items()}
            except Exception as exc:  # XLA refuses an op, runs out of memory, ...
                raise CompileRefused(f"XLA could not compile batch size {size}: {exc}") from exc
            reference = {k: v.numpy() for k, v in signature(features=batch).items()}
            for name, expected in reference.items():
                error = float(np.max(np.abs(compiled[name] - expected)))
                if not error <= tolerance:
                    raise CompileRefused(
                        f"the compiled {name!r} differs from the SavedModel's by {error:.2e} "
                        f"at batch size {size} (tolerance {tolerance:g})"
                    )
            functions[size], batches[size] = function, batch
        costs = _call_costs(functions, batches)
        plans = batch_plan(costs, largest)
        return cls(functions, costs, plans, time.perf_counter() - started)

    @property
    def batch_sizes(self) -> list[int]:
        return sorted(self.functions)

    def __call__(self, features: np.ndarray) -> Outputs:
        """The outputs for ``features``, each a NumPy array with the batch on axis 0."""
        import tensorflow as tf

        n = len(features)
        pieces: list[dict[str, Any]] = []
        start = 0
        for size in self._plan(n):
            chunk = features[start : start + size]
            if len(chunk) < size:  # only the last piece
                padded = np.zeros((size, *features.shape[1:]), dtype=np.float32)
                padded[: len(chunk)] = chunk
                chunk = padded
            pieces.append(self.functions[size](tf.constant(chunk, dtype=tf.float32)))
            start += size
        if len(pieces) == 1:
            return {k: v.numpy()[:n] for k, v in pieces[0].items()}
        return {k: np.concatenate([p[k].numpy() for p in pieces])[:n] for k in pieces[0]}

    def expected_seconds(self, n: int) -> float:
        """Seconds a batch of ``n`` takes: the load-time costs of its plan's calls."""
        return sum(self.costs[size] for size in self._plan(n))

    def _plan(self, n: int) -> tuple[int, ...]:
        if n < len(self.plans):
            return self.plans[n]
        # Beyond the planned range (the server caps a request's instances below it):
        # whole calls of the largest size, then the plan for what is left.
        planned, largest = len(self.plans) - 1, self.batch_sizes[-1]
        full = -(-(n - planned) // largest)
        return (largest,) * full + self.plans[max(0, n - full * largest)]


def _call_costs(
    functions: dict[int, Callable[..., Any]], batches: dict[int, Any], rounds: int = 20
) -> dict[int, float]:
    """Seconds per call of each size: the fastest of ``rounds``, sizes taken in turn.

    The fastest call is the estimate least moved by other processes' load, and taking
    the sizes in turn exposes all of them to the same load. A larger batch never costs
    less than a smaller one; a measurement that says so is noise, so each cost is raised
    to the largest cost of the sizes below it.
    """
    best = dict.fromkeys(functions, float("inf"))
    for size, function in functions.items():
        function(batches[size])
    for _ in range(rounds):
        for size, function in functions.items():
            started = time.perf_counter()
            function(batches[size])
            best[size] = min(best[size], time.perf_counter() - started)
    costs, floor = {}, 0.0
    for size in sorted(best):
        floor = costs[size] = max(floor, best[size])
    return costs
