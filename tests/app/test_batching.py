"""Micro-batching of TF Serving predicts, on a real tiny SavedModel.

Model calls are counted by a wrapper around the real model (``CountingModel``, the way
``app.services.serving`` times them) or, over HTTP, by the serving model's own
``quantserve_model_inference_seconds`` histogram. Every answer is compared with what
the model gives for that request's rows alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from app.core.config import BatchingSettings, Settings
from app.core.metrics import ServiceMetrics
from app.main import create_app
from app.services.batching import BatcherClosed, BatchFailed, BatchQueueFull, MicroBatcher
from app.services.model_registry import LoadedModel, load_model
from tests.training.synthetic import build_model_store
from training import schema

LOOKBACK = 5  # the look-back of build_model_store's tiny versions
N_FEATURES = len(schema.FEATURE_COLUMNS)
PREDICT = "/v1/models/forecaster:predict"


@dataclass(frozen=True)
class CountingModel(LoadedModel):
    """The real model, recording the rows of every call of its serving signature."""

    calls: list[int] = field(default_factory=list, compare=False)

    def predict(self, features: np.ndarray) -> dict[str, np.ndarray]:
        self.calls.append(len(features))
        return super().predict(features)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model_store(tmp_path_factory.mktemp("batching"), versions=1)


@pytest.fixture(scope="module")
def model(root: Path) -> LoadedModel:
    return load_model(root / "models", "forecaster", 1)


@pytest.fixture
def counted(model: LoadedModel) -> CountingModel:
    return CountingModel(**{f.name: getattr(model, f.name) for f in fields(LoadedModel)})


def windows(rows: int, seed: int) -> np.ndarray:
    """``rows`` random input windows, float32 as the parser makes them."""
    shape = (rows, LOOKBACK, N_FEATURES)
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def assert_answers_alone(
    model: LoadedModel, requests: Sequence[np.ndarray], results: Sequence[dict[str, np.ndarray]]
) -> None:
    """Each request got exactly the model's outputs for its own rows run alone."""
    assert len(results) == len(requests)
    for features, result in zip(requests, results, strict=True):
        alone = model.predict(features)
        assert sorted(result) == sorted(alone)
        for name, value in alone.items():
            assert result[name].shape == value.shape, name
            np.testing.assert_allclose(result[name], value, rtol=1e-5, atol=1e-7)


def batcher(
    max_batch_size: int = 256, max_wait_ms: float = 50.0, enabled: bool = True
) -> tuple[MicroBatcher, CollectorRegistry]:
    """A batcher with its own metrics registry (max_wait short, so tests stay fast)."""
    registry = CollectorRegistry()
    settings = BatchingSettings(
        enabled=enabled, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms
    )
    return MicroBatcher(settings, ServiceMetrics(registry)), registry


# -- the batcher ----------------------------------------------------------------------


def test_concurrent_requests_share_one_call_and_get_their_own_rows(
    model: LoadedModel, counted: CountingModel
) -> None:
    requests = [windows(rows, seed) for seed, rows in enumerate([1, 3, 2, 1, 4, 1])]

    async def scenario() -> tuple[list[dict[str, np.ndarray]], CollectorRegistry]:
        micro, registry = batcher(max_batch_size=64, max_wait_ms=50)
        results = await asyncio.gather(*(micro.run(counted, f) for f in requests))
        await micro.close()
        return list(results), registry

    results, registry = asyncio.run(scenario())
    # All six queued in one turn of the loop, before the drain task first ran.
    assert counted.calls == [12]
    assert_answers_alone(model, requests, results)
    labels = {"model": "forecaster"}
    assert registry.get_sample_value("quantserve_predict_batch_requests_sum", labels) == 6
    assert registry.get_sample_value("quantserve_predict_batch_instances_sum", labels) == 12
    assert registry.get_sample_value("quantserve_predict_queue_wait_seconds_count", labels) == 6


def test_no_call_exceeds_max_batch_size_and_batches_keep_arrival_order(
    model: LoadedModel, counted: CountingModel
) -> None:
    sizes = [1, 2, 3, 1, 2, 5, 1]
    requests = [windows(rows, seed) for seed, rows in enumerate(sizes)]

    async def scenario() -> list[dict[str, np.ndarray]]:
        micro, _ = batcher(max_batch_size=4, max_wait_ms=100)
        results = await asyncio.gather(*(micro.run(counted, f) for f in requests))
        await micro.close()
        return list(results)

    results = asyncio.run(scenario())
    # The 5-instance request is larger than a batch: it runs alone, beside the queue.
    assert sorted(counted.calls) == sorted([3, 4, 3, 5])
    queued = [c for c in counted.calls if c != 5]
    assert max(queued) <= 4
    # First come, first served, whole: [1, 2] (3 would overflow), [3, 1], then [2, 1].
    assert queued == [3, 4, 3]
    assert_answers_alone(model, requests, results)


def test_a_lone_request_waits_max_wait_for_company_and_no_longer(
    counted: CountingModel,
) -> None:
    max_wait_seconds = 0.05

    async def scenario() -> tuple[list[int], float, CollectorRegistry]:
        micro, registry = batcher(max_wait_ms=max_wait_seconds * 1000)
        loop = asyncio.get_running_loop()
        started = loop.time()
        first = asyncio.create_task(micro.run(counted, windows(1, 0)))
        answered_at: list[float] = []
        first.add_done_callback(lambda _: answered_at.append(loop.time()))
        await asyncio.sleep(0.5)  # ten times max_wait
        calls_before_second = list(counted.calls)
        await micro.run(counted, windows(2, 1))
        await micro.close()
        return calls_before_second, answered_at[0] - started, registry

    calls_before_second, elapsed_first, registry = asyncio.run(scenario())
    # The first request's batch ran without waiting for the second one.
    assert calls_before_second == [1]
    assert counted.calls == [1, 2]
    assert elapsed_first < 1.0
    labels = {"model": "forecaster"}
    waits = registry.get_sample_value("quantserve_predict_queue_wait_seconds_sum", labels)
    # Each waited out max_wait (a deadline, never early) and was then run at once.
    assert waits is not None
    assert 2 * (max_wait_seconds - 0.001) <= waits < 2 * 1.0
    le_1s = {**labels, "le": "1.0"}
    assert registry.get_sample_value("quantserve_predict_queue_wait_seconds_bucket", le_1s) == 2


def test_a_failing_model_call_fails_its_whole_batch_and_the_next_batch_runs(
    model: LoadedModel, counted: CountingModel
) -> None:
    # Windows one feature too wide get past the batcher (it trusts parse_predict) and
    # make the real signature raise.
    misshapen = [np.zeros((1, LOOKBACK, N_FEATURES + 1), np.float32) for _ in range(3)]
    after = [windows(2, 7), windows(1, 8)]

    async def scenario() -> tuple[list[BaseException | dict[str, np.ndarray]], list[Any]]:
        micro, _ = batcher(max_wait_ms=20)
        failed = await asyncio.gather(
            *(micro.run(counted, f) for f in misshapen), return_exceptions=True
        )
        answered = await asyncio.gather(*(micro.run(counted, f) for f in after))
        await micro.close()
        return list(failed), list(answered)

    failed, answered = asyncio.run(scenario())
    assert counted.calls == [3, 3]
    errors = [error for error in failed if isinstance(error, BatchFailed)]
    assert len(errors) == len(misshapen)
    assert len({id(error) for error in errors}) == len(errors)  # each request its own
    # ... caused by the one exception of the one model call: the signature's own.
    (cause,) = {error.__cause__ for error in errors}
    assert cause is not None
    assert not isinstance(cause, BatchFailed)
    assert_answers_alone(model, after, answered)


def test_a_cancelled_request_leaves_its_batch(model: LoadedModel, counted: CountingModel) -> None:
    requests = [windows(1, 0), windows(2, 1), windows(3, 2)]

    async def scenario() -> list[dict[str, np.ndarray]]:
        micro, _ = batcher(max_wait_ms=50)
        tasks = [asyncio.create_task(micro.run(counted, f)) for f in requests]
        await asyncio.sleep(0)  # all three queued
        tasks[1].cancel()  # its client went away
        kept = await asyncio.gather(tasks[0], tasks[2])
        await micro.close()
        return list(kept)

    kept = asyncio.run(scenario())
    assert counted.calls == [4]
    assert_answers_alone(model, [requests[0], requests[2]], kept)


def test_disabled_batching_calls_the_model_once_per_request(
    model: LoadedModel, counted: CountingModel
) -> None:
    sizes = [1, 3, 2, 1, 2]
    requests = [windows(rows, seed) for seed, rows in enumerate(sizes)]

    async def scenario() -> list[dict[str, np.ndarray]]:
        micro, _ = batcher(enabled=False, max_wait_ms=50)
        results = await asyncio.gather(*(micro.run(counted, f) for f in requests))
        await micro.close()
        return list(results)

    results = asyncio.run(scenario())
    assert sorted(counted.calls) == sorted(sizes)
    assert_answers_alone(model, requests, results)


def test_close_answers_what_is_queued_then_refuses(
    model: LoadedModel, counted: CountingModel
) -> None:
    requests = [windows(1, 0), windows(2, 1)]

    async def scenario() -> list[dict[str, np.ndarray]]:
        micro, _ = batcher(max_wait_ms=50)
        tasks = [asyncio.create_task(micro.run(counted, f)) for f in requests]
        await asyncio.sleep(0)
        await micro.close()
        with pytest.raises(BatcherClosed):
            await micro.run(counted, requests[0])
        return list(await asyncio.gather(*tasks))

    results = asyncio.run(scenario())
    assert counted.calls == [3]
    assert_answers_alone(model, requests, results)


# -- over HTTP ------------------------------------------------------------------------


def post_concurrently(
    root: Path, batching: BatchingSettings, bodies: list[dict[str, Any]]
) -> tuple[list[httpx.Response], float]:
    """Real concurrent requests to a real app; also the serving model's calls they made."""
    settings = Settings(
        environment="test",
        data_dir=root / "data",
        models_dir=root / "models",
        batching=batching,
    )
    registry = CollectorRegistry()
    app = create_app(settings, registry=registry)
    labels = {"model": "forecaster", "version": "1"}
    name = "quantserve_model_inference_seconds_count"

    async def scenario() -> tuple[list[httpx.Response], float]:
        async with app.router.lifespan_context(app):
            before = registry.get_sample_value(name, labels) or 0.0
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                responses = await asyncio.gather(*(client.post(PREDICT, json=b) for b in bodies))
            calls = (registry.get_sample_value(name, labels) or 0.0) - before
        return list(responses), calls

    return asyncio.run(scenario())


def assert_predictions_alone(
    model: LoadedModel, response: httpx.Response, features: np.ndarray
) -> None:
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == len(features)
    for name, value in model.predict(features).items():
        got = np.array([p[name] for p in predictions])
        np.testing.assert_allclose(got.reshape(value.shape), value, rtol=1e-5, atol=1e-7)


def test_concurrent_http_requests_are_batched(root: Path, model: LoadedModel) -> None:
    requests = [windows(1 + seed % 2, seed) for seed in range(8)]
    rows = sum(len(f) for f in requests)
    # A batch closes when all have arrived, or after a generous wait for stragglers.
    batching = BatchingSettings(max_batch_size=rows, max_wait_ms=500)
    bodies = [{"instances": f.tolist()} for f in requests]
    responses, calls = post_concurrently(root, batching, bodies)
    assert 1 <= calls < len(requests)
    for response, features in zip(responses, requests, strict=True):
        assert_predictions_alone(model, response, features)


def test_an_invalid_request_fails_alone(root: Path, model: LoadedModel) -> None:
    requests = [windows(2, seed) for seed in range(4)]
    bad = {"instances": [[[0.0] * N_FEATURES] * (LOOKBACK - 1)]}
    bodies: list[dict[str, Any]] = [{"instances": f.tolist()} for f in requests]
    bodies.insert(2, bad)
    batching = BatchingSettings(max_batch_size=2 * len(requests), max_wait_ms=500)
    responses, calls = post_concurrently(root, batching, bodies)
    rejected = responses.pop(2)
    assert rejected.status_code == 400
    assert set(rejected.json()) == {"error"}
    assert "instance 0 has shape" in rejected.json()["error"]
    assert 1 <= calls < len(requests)
    for response, features in zip(responses, requests, strict=True):
        assert_predictions_alone(model, response, features)


def test_disabled_batching_over_http_is_one_call_per_request(
    root: Path, model: LoadedModel
) -> None:
    requests = [windows(1, seed) for seed in range(5)]
    bodies = [{"instances": f.tolist()} for f in requests]
    responses, calls = post_concurrently(root, BatchingSettings(enabled=False), bodies)
    assert calls == len(requests)
    for response, features in zip(responses, requests, strict=True):
        assert_predictions_alone(model, response, features)


def test_a_full_queue_refuses_at_once_and_the_queued_are_answered(
    model: LoadedModel, counted: CountingModel
) -> None:
    """Past max_enqueued_batches x max_batch_size waiting instances: BatchQueueFull."""
    queued = [windows(2, seed) for seed in range(4)]  # 8 instances: the limit, 2 x 4

    async def scenario() -> tuple[list[dict[str, np.ndarray]], str, CollectorRegistry]:
        registry = CollectorRegistry()
        settings = BatchingSettings(max_batch_size=4, max_wait_ms=200, max_enqueued_batches=2)
        micro = MicroBatcher(settings, ServiceMetrics(registry))
        tasks = [asyncio.create_task(micro.run(counted, f)) for f in queued]
        await asyncio.sleep(0)  # all four queued; the drain task waits for max_wait
        with pytest.raises(BatchQueueFull) as refused:
            await micro.run(counted, windows(1, 99))
        results = await asyncio.gather(*tasks)
        await micro.close()
        return list(results), str(refused.value), registry

    results, message, registry = asyncio.run(scenario())
    assert "max_enqueued_batches" in message
    assert "8 instances already wait" in message
    assert_answers_alone(model, queued, results)
    assert (
        registry.get_sample_value("quantserve_predict_refused_total", {"model": "forecaster"}) == 1
    )
