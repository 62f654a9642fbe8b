"""The serving signature compiled with XLA: same outputs, planned batch sizes, refusals.

Real tiny SavedModels (``build_model_store``), real XLA compiles on the CPU.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from app.core.config import BatchingSettings, Settings
from app.core.metrics import ServiceMetrics
from app.main import create_app
from app.services.batching import MicroBatcher
from app.services.compiled_model import CompiledSignature, CompileRefused, batch_plan
from app.services.feature_store import FeatureStore
from app.services.model_registry import LoadedModel, load_model
from app.services.serving import compile_model
from tests.training.synthetic import build_model_store

SIZES = (1, 16, 64, 256)
PREDICT = "/v1/models/forecaster:predict"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model_store(tmp_path_factory.mktemp("compiled"), versions=1)


@pytest.fixture(scope="module")
def model(root: Path) -> LoadedModel:
    return load_model(root / "models", "forecaster", 1)


@pytest.fixture(scope="module")
def windows(root: Path, model: LoadedModel) -> np.ndarray:
    store = FeatureStore.load(root / "data" / "features")
    return store.latest_windows(model.lookback_days, model.feature_columns).features


@pytest.fixture(scope="module")
def compiled(model: LoadedModel, windows: np.ndarray) -> CompiledSignature:
    signature = model.saved_model.signatures["serving_default"]
    return CompiledSignature.compile(signature, windows, SIZES, largest=1024)


def _random_batch(n: int, like: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, (n, *like.shape[1:])).astype(np.float32)


# -- the plan ---------------------------------------------------------------------------


def _cost(plan: tuple[int, ...], costs: dict[int, float]) -> float:
    return sum(costs[size] for size in plan)


def test_a_batch_of_65_runs_as_64_and_1_not_as_a_padded_256() -> None:
    costs = {1: 0.25e-3, 16: 0.3e-3, 64: 0.5e-3, 256: 1.5e-3}
    plans = batch_plan(costs, 1024)
    assert plans[65] == (64, 1)
    assert plans[64] == (64,)
    assert plans[1] == (1,)
    assert plans[2] == (16,)  # 0.30 ms padded beats two calls of one (0.50 ms)
    assert plans[200] == (256,)  # 1.5 ms padded beats 64 + 64 + 64 + 16 (1.8 ms)
    assert plans[1024] == (256, 256, 256, 256)


@settings(max_examples=60, deadline=None)
@given(
    costs=st.lists(st.floats(1e-5, 1e-2, allow_nan=False), min_size=3, max_size=3).map(
        lambda c: dict(zip((1, 4, 8), sorted(c), strict=True))
    ),
    n=st.integers(1, 20),
)
def test_every_plan_covers_the_batch_at_the_least_cost(costs: dict[int, float], n: int) -> None:
    plan = batch_plan(costs, 20)[n]
    assert sum(plan) >= n
    assert sum(plan[:-1]) < n  # padding only in the last call
    # No sequence of up to 20 calls that covers n is cheaper (brute force).
    cheapest = min(
        _cost(combo, costs)
        for length in range(1, n + 1)
        for combo in itertools.combinations_with_replacement(sorted(costs), length)
        if sum(combo) >= n and sum(combo) - min(combo) < n
    )
    assert _cost(plan, costs) == pytest.approx(cheapest, rel=1e-12)


def test_a_batch_larger_than_the_plans_is_split_into_planned_calls(
    compiled: CompiledSignature,
) -> None:
    plan = compiled._plan(3000)
    assert sum(plan) >= 3000
    assert sum(plan[:-1]) < 3000
    assert set(plan) <= set(SIZES)


# -- the compiled function --------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 15, 16, 17, 63, 64, 65, 200, 256, 257, 1024, 1100])
def test_compiled_outputs_match_the_savedmodel_signature_to_1e_6(
    model: LoadedModel, compiled: CompiledSignature, windows: np.ndarray, n: int
) -> None:
    """Every batch size, full, padded and split, on every output."""
    import tensorflow as tf

    batch = _random_batch(n, windows, seed=n)
    expected = model.saved_model.signatures["serving_default"](features=tf.constant(batch))
    got = compiled(batch)
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name].shape == tuple(value.shape), name
        np.testing.assert_allclose(got[name], value.numpy(), rtol=0, atol=1e-6, err_msg=name)


def test_each_allowed_size_is_compiled_and_timed_at_load(compiled: CompiledSignature) -> None:
    assert compiled.batch_sizes == list(SIZES)
    assert all(cost > 0 for cost in compiled.costs.values())
    # The plans use only compiled sizes, so no request ever triggers a compile.
    assert {size for plan in compiled.plans for size in plan} <= set(SIZES)


def test_the_model_predicts_through_the_compiled_function(
    root: Path, model: LoadedModel, windows: np.ndarray
) -> None:
    store = FeatureStore.load(root / "data" / "features")
    fast = compile_model(model, store, SIZES)
    assert fast.compiled is not None
    batch = _random_batch(5, windows, seed=1)
    plain, xla = model.predict(batch), fast.predict(batch)
    for name in plain:
        assert xla[name].shape == plain[name].shape
        np.testing.assert_allclose(xla[name], plain[name], rtol=0, atol=1e-6)


def test_outputs_beyond_the_tolerance_are_refused(model: LoadedModel, windows: np.ndarray) -> None:
    import tensorflow as tf

    signature = model.saved_model.signatures["serving_default"]

    def miscompiled(**inputs: object) -> dict[str, object]:
        # Called eagerly (the reference) it is the signature; traced for XLA it is off by
        # 1e-3, as a miscompiled kernel would be.
        outputs = signature(**inputs)
        if tf.executing_eagerly():
            return dict(outputs)
        return {name: value + 1e-3 for name, value in outputs.items()}

    off_by = r"differs from the SavedModel's by (9\.99e-04|1\.00e-03)"
    with pytest.raises(CompileRefused, match=off_by):
        CompiledSignature.compile(miscompiled, windows, SIZES, largest=64)


def test_a_refused_compile_serves_the_signature_as_loaded(
    root: Path, model: LoadedModel, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(**_: object) -> dict[str, object]:
        raise ValueError("no kernel for this op")

    class NoXla:
        signatures: ClassVar = {"serving_default": broken}

    unusable = LoadedModel(
        model.name, model.version, model.path, model.metadata, saved_model=NoXla()
    )
    store = FeatureStore.load(root / "data" / "features")
    with caplog.at_level(logging.WARNING):
        served = compile_model(unusable, store, SIZES)
    assert served is unusable
    assert served.compiled is None
    assert "serves without XLA" in caplog.text
    assert "no kernel for this op" in caplog.text


# -- served ----------------------------------------------------------------------------


def test_the_server_answers_predicts_through_the_compiled_model(
    root: Path, model: LoadedModel, windows: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The app points TF_XLA_FLAGS at its cache; servers started later by other tests
    # must not inherit this test's temporary folder.
    monkeypatch.delenv("TF_XLA_FLAGS", raising=False)
    settings = Settings(
        data_dir=root / "data",
        models_dir=root / "models",
        batching={"xla": True, "allowed_batch_sizes": [8, 1]},
    )
    batch = _random_batch(11, windows, seed=3)
    with TestClient(create_app(settings, registry=CollectorRegistry())) as client:
        served = client.app.state.lifecycle.current.model
        assert served.compiled is not None
        assert served.compiled.batch_sizes == [1, 8]
        response = client.post(PREDICT, json={"instances": batch.tolist()})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    expected = model.predict(batch)
    assert len(predictions) == 11
    for name, values in expected.items():
        got = np.array([p[name] for p in predictions]).reshape(values.shape)
        np.testing.assert_allclose(got, values, rtol=0, atol=1e-6, err_msg=name)


@dataclass(frozen=True)
class ThreadRecording(LoadedModel):
    """The real model, recording which thread ran each call."""

    threads: list[int] = field(default_factory=list, compare=False)

    def predict(self, features: np.ndarray) -> dict[str, np.ndarray]:
        self.threads.append(threading.get_ident())
        return super().predict(features)


def test_cheap_compiled_calls_run_on_the_event_loop_and_the_others_in_a_thread(
    model: LoadedModel, compiled: CompiledSignature, windows: np.ndarray
) -> None:
    values = {f.name: getattr(model, f.name) for f in fields(LoadedModel)}
    recording = ThreadRecording(**{**values, "compiled": compiled})
    # The threshold is what one instance took at load: 1 instance runs inline, 1,024
    # (four calls of 256, each costing at least as much as one of 1) does not.
    inline_ms = compiled.expected_seconds(1) * 1000
    settings = BatchingSettings(max_batch_size=256, max_wait_ms=0, inline_max_ms=inline_ms)
    batcher = MicroBatcher(settings, ServiceMetrics(CollectorRegistry()))

    async def scenario() -> int:
        await batcher.run(recording, _random_batch(1, windows, seed=1))
        await batcher.run(recording, _random_batch(1024, windows, seed=2))
        await batcher.close()
        return threading.get_ident()

    loop_thread = asyncio.run(scenario())
    assert recording.threads[0] == loop_thread
    assert recording.threads[1] != loop_thread
