"""Micro-batching: concurrent predict requests for one model share one model call.

A call of the forecaster's signature costs about the same for 1 row as for 100, so
under load, merging requests buys throughput for a bounded delay. The rules are those
of TensorFlow Serving's batching (``max_batch_size``, ``batch_timeout_micros``),
Triton's dynamic batcher (``max_queue_delay_microseconds``) and Ray Serve's
``@serve.batch`` (``max_batch_size``, ``batch_wait_timeout_s``):

- Requests queue per loaded model object (one version; a hot swap starts a new queue
  while the old one drains with the model its requests resolved), first come first
  served.
- A batch runs when the queue holds ``max_batch_size`` instances, or when its oldest
  request has waited ``max_wait_ms``, whichever is first. Requests join whole and in
  order: the first one that would overflow the batch opens the next (as Triton does).
- A request of ``max_batch_size`` instances or more runs alone at once; nothing could
  join it. (TF Serving would split it; one request holds at most 1,024 rows, one call.)
- Outputs are sliced back to each request along the batch axis.
- If the model call raises, every request in the batch gets a ``BatchFailed`` whose
  cause is the model's exception; the next batch runs as usual.
- One batch per model runs at a time (Ray's ``max_concurrent_batches=1``): requests that
  arrive meanwhile queue for the next, which is how batches grow under load.
- The queue is bounded, as TF Serving's ``max_enqueued_batches``: once
  ``max_enqueued_batches x max_batch_size`` instances wait for one model, a request is
  refused at once with :class:`BatchQueueFull` (503 with ``Retry-After``) rather than
  left to wait behind an ever longer queue.

- A model compiled with XLA (``app.services.compiled_model``) whose call for the batch
  took at most ``inline_max_ms`` at load runs on the event loop; any other call runs in
  the thread pool. A thread round trip costs 100-200 µs of CPU, about as much as a
  compiled call on a few instances.

Bodies are validated before ``run`` (``TFServingService.parse_predict``), so a bad
request never joins a batch. At idle nothing runs: a model's drain task ends once its
queue is empty and the next request starts another.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from starlette.concurrency import run_in_threadpool

from app.core.config import BatchingSettings
from app.core.metrics import ServiceMetrics
from app.services.model_registry import LoadedModel

logger = logging.getLogger(__name__)

Outputs = dict[str, np.ndarray]
"""Output name to value, the batch on axis 0 (``LoadedModel.predict``'s result)."""


class BatchFailed(RuntimeError):
    """The model call for a batch raised; every request in the batch gets one of these."""


class BatcherClosed(RuntimeError):
    """The server is shutting down and takes no more predict requests."""


class BatchQueueFull(RuntimeError):
    """Too many instances already wait for this model; retry after ``retry_after`` s."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(eq=False)
class _Request:
    features: np.ndarray
    future: asyncio.Future[Outputs]
    enqueued: float
    """``loop.time()`` when it joined the queue."""


@dataclass(eq=False)
class _ModelQueue:
    """The requests waiting for one model, and the task that drains them."""

    model: LoadedModel
    """Held here, so a hot swap never changes the model a queued request runs on."""
    waiting: deque[_Request] = field(default_factory=deque)
    rows: int = 0
    full: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the waiting requests hold ``max_batch_size`` instances or more."""
    task: asyncio.Task[None] | None = None


class MicroBatcher:
    """Merges concurrent ``run`` calls for the same model into one model call.

    Parameters
    ----------
    settings
        ``enabled``, ``max_batch_size`` (instances per call) and ``max_wait_ms`` (the
        longest the oldest queued request waits for others).
    metrics
        Records instances and requests per model call, and each request's queue wait.
    """

    def __init__(self, settings: BatchingSettings, metrics: ServiceMetrics) -> None:
        self.enabled = settings.enabled
        self.max_batch_size = settings.max_batch_size
        self.max_wait_seconds = settings.max_wait_ms / 1000
        self.max_queued_rows = settings.max_enqueued_batches * settings.max_batch_size
        self.inline_seconds = settings.inline_max_ms / 1000
        self._metrics = metrics
        self._queues: dict[int, _ModelQueue] = {}
        self._closed = False

    async def run(self, model: LoadedModel, features: np.ndarray) -> Outputs:
        """``model.predict(features)``, possibly computed in one call with other requests.

        ``features`` must already be valid for ``model``: whatever makes the model call
        fail fails every request batched with it.
        """
        if self._closed:
            raise BatcherClosed("the server is shutting down")
        rows = len(features)
        if not self.enabled or rows >= self.max_batch_size:
            self._observe(model, rows, waits=[0.0])
            return await self._call(model, features)
        # Keyed by identity: LoadedModel is not hashable (its metadata is a dict), and two
        # loads of one version are two models. The queue holds the model, so its id is
        # not reused while the queue exists.
        queue = self._queues.get(id(model))
        if queue is None:
            queue = self._queues[id(model)] = _ModelQueue(model)
            queue.task = asyncio.create_task(
                self._drain(queue), name=f"batcher {model.name} v{model.version}"
            )
        if queue.rows + rows > self.max_queued_rows:
            self._metrics.predict_refused.labels(model.name).inc()
            raise BatchQueueFull(
                f"{queue.rows} instances already wait for model {model.name} version "
                f"{model.version} (the limit is batching.max_enqueued_batches x "
                f"max_batch_size = {self.max_queued_rows}); retry shortly"
            )
        loop = asyncio.get_running_loop()
        request = _Request(features, loop.create_future(), loop.time())
        queue.waiting.append(request)
        queue.rows += rows
        if queue.rows >= self.max_batch_size:
            queue.full.set()
        # A caller cancelled here (client gone) cancels its future; the drain skips it.
        return await request.future

    async def close(self) -> None:
        """Take no more requests and wait for the queued ones to be answered."""
        self._closed = True
        tasks = [q.task for q in self._queues.values() if q.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- the drain task, one per model with requests waiting -------------------------

    async def _drain(self, queue: _ModelQueue) -> None:
        loop = asyncio.get_running_loop()
        try:
            while queue.waiting:
                deadline = queue.waiting[0].enqueued + self.max_wait_seconds
                if queue.rows < self.max_batch_size and loop.time() < deadline:
                    queue.full.clear()
                    try:
                        async with asyncio.timeout_at(deadline):
                            await queue.full.wait()
                    except TimeoutError:
                        pass
                batch = self._take(queue)
                if batch:
                    await self._run_batch(queue.model, batch)
        finally:
            del self._queues[id(queue.model)]
            for request in queue.waiting:  # only if this task was cancelled
                _fail(request, BatcherClosed("the server is shutting down"))

    def _take(self, queue: _ModelQueue) -> list[_Request]:
        """The oldest requests that fit in one batch, skipping those whose caller left."""
        batch: list[_Request] = []
        rows = 0
        while queue.waiting:
            request = queue.waiting[0]
            if rows + len(request.features) > self.max_batch_size:
                break
            queue.waiting.popleft()
            queue.rows -= len(request.features)
            if not request.future.done():
                batch.append(request)
                rows += len(request.features)
        return batch

    async def _run_batch(self, model: LoadedModel, batch: list[_Request]) -> None:
        started = asyncio.get_running_loop().time()
        sizes = [len(r.features) for r in batch]
        self._observe(model, sum(sizes), waits=[started - r.enqueued for r in batch])
        try:
            features = np.concatenate([r.features for r in batch])
            outputs = await self._call(model, features)
        except Exception as exc:
            logger.warning(
                "model %s v%s failed a batch of %d requests: %r",
                model.name,
                model.version,
                len(batch),
                exc,
            )
            for request in batch:
                failed = BatchFailed(f"the model call for a batch of {len(batch)} failed: {exc}")
                failed.__cause__ = exc
                _fail(request, failed)
            return
        except asyncio.CancelledError:
            for request in batch:
                _fail(request, BatcherClosed("the server is shutting down"))
            raise
        start = 0
        for request, size in zip(batch, sizes, strict=True):
            if not request.future.done():
                request.future.set_result(
                    {name: value[start : start + size] for name, value in outputs.items()}
                )
            start += size

    async def _call(self, model: LoadedModel, features: np.ndarray) -> Outputs:
        """The model call: on the event loop when its compiled plan is cheap, else a thread."""
        expected = model.expected_seconds(len(features))
        if expected is not None and expected <= self.inline_seconds:
            return model.predict(features)
        return await run_in_threadpool(model.predict, features)

    def _observe(self, model: LoadedModel, rows: int, waits: list[float]) -> None:
        self._metrics.predict_batch_instances.labels(model.name).observe(rows)
        self._metrics.predict_batch_requests.labels(model.name).observe(len(waits))
        wait = self._metrics.predict_queue_wait_seconds.labels(model.name)
        for seconds in waits:
            wait.observe(seconds)


def _fail(request: _Request, error: Exception) -> None:
    if not request.future.done():
        request.future.set_exception(error)
