"""Hot reload with real tiny SavedModels: new versions and features are noticed, verified
and swapped in under traffic; broken versions are refused while the last good one serves.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from app.core.config import LifecycleSettings, LimitSettings, Settings
from app.main import create_app
from app.services.lifecycle import ModelLifecycle, ReloadOutcome
from tests.model_store import (
    BROKEN_KINDS,
    LOOKBACK,
    N_FEATURES,
    OTHER_LOOKBACK,
    fresh_root,
    make_broken,
    other_lookback_version,
    publish_version,
    rewrite_in_place,
    tiny_store,
)
from tests.training.synthetic import synthetic_features, write_feature_table
from training.registry import ModelRegistry


def settings_for(root: Path, poll_seconds: float = 0.0) -> Settings:
    return Settings(
        environment="test",
        data_dir=root / "data",
        models_dir=root / "models",
        lifecycle=LifecycleSettings(poll_interval_seconds=poll_seconds),
        limits=LimitSettings(rate_per_second=0),  # the hammering below is one dev key
    )


@pytest.fixture
def root(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    """Version 1 in the store, version 2 staged."""
    return fresh_root(tiny_store(tmp_path_factory), tmp_path)


@pytest.fixture
def client(root: Path) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(root), registry=CollectorRegistry())) as client:
        yield client


def lifecycle_of(client: TestClient) -> ModelLifecycle:
    lifecycle: ModelLifecycle = client.app.state.lifecycle  # type: ignore[attr-defined]
    return lifecycle


def forecast(client: TestClient) -> dict:
    response = client.post("/v1/forecasts", json={})
    assert response.status_code == 200, response.text
    return response.json()


def sample(client: TestClient, name: str, **labels: str) -> float | None:
    """One sample of /metrics, None when absent."""
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


# -- new versions -----------------------------------------------------------------------


def test_a_new_version_is_picked_up_by_a_check_and_served(client: TestClient, root: Path) -> None:
    before = forecast(client)
    assert before["model"] == {"name": "forecaster", "version": 1}
    lifecycle = lifecycle_of(client)
    assert lifecycle.check().outcome is ReloadOutcome.UNCHANGED  # nothing new on disk

    publish_version(root, root / "staged" / "2", 2)
    result = lifecycle.check()

    assert result.outcome is ReloadOutcome.SWAPPED
    assert result.previous.model is not None
    assert result.previous.model.version == 1
    after = forecast(client)
    assert after["model"] == {"name": "forecaster", "version": 2}
    assert after["forecasts"] != before["forecasts"]  # another model's numbers
    assert client.get("/readyz").json()["model"]["version"] == 2
    assert client.get("/v1/models").json()["models"][0]["serving_version"] == 2
    assert lifecycle.check().outcome is ReloadOutcome.UNCHANGED
    assert sample(client, "quantserve_model_reloads_total", outcome="swapped") == 1
    assert sample(client, "quantserve_model_serving_version", model="forecaster") == 2
    assert sample(client, "quantserve_model_info", version="2", stage="candidate") == 1
    assert sample(client, "quantserve_model_info", version="1") is None  # retired


def test_a_version_swaps_under_concurrent_requests_without_a_failed_request(
    client: TestClient, root: Path
) -> None:
    rng = np.random.default_rng(0)
    instances = rng.normal(size=(2, LOOKBACK, N_FEATURES)).tolist()
    stop = threading.Event()
    seen: dict[int, list[int]] = {}
    failures: list[str] = []

    def forecasts(worker: int) -> None:
        versions = seen.setdefault(worker, [])
        while not stop.is_set():
            try:
                response = client.post("/v1/forecasts", json={"tickers": ["T0", "T1"]})
                if response.status_code != 200:
                    failures.append(f"forecasts {response.status_code}: {response.text}")
                else:
                    versions.append(response.json()["model"]["version"])
            except Exception as exc:  # a failed request, reported below
                failures.append(f"forecasts raised {exc!r}")

    def predictions() -> None:
        while not stop.is_set():
            try:
                response = client.post(
                    "/v1/models/forecaster:predict", json={"instances": instances}
                )
                if response.status_code != 200 or len(response.json()["predictions"]) != 2:
                    failures.append(f"predict {response.status_code}: {response.text}")
                else:
                    seen.setdefault(-1, []).append(0)
            except Exception as exc:
                failures.append(f"predict raised {exc!r}")

    def swapper() -> None:
        time.sleep(0.3)
        publish_version(root, root / "staged" / "2", 2)
        outcomes.append(lifecycle_of(client).check().outcome)  # what the poll does
        time.sleep(0.2)
        reload = client.post("/v1/admin/reload")  # an admin's forced reload, same version
        outcomes.append(reload.json()["outcome"] if reload.status_code == 200 else reload.text)
        time.sleep(0.3)

    outcomes: list[object] = []
    threads = [threading.Thread(target=forecasts, args=(i,)) for i in range(3)]
    threads.append(threading.Thread(target=predictions))
    for thread in threads:
        thread.start()
    swapping = threading.Thread(target=swapper)
    swapping.start()
    swapping.join(timeout=60)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)

    assert failures == []
    assert outcomes == [ReloadOutcome.SWAPPED, "swapped"]
    assert len(seen[-1]) > 5  # predicts ran throughout
    for versions in (seen[i] for i in range(3)):
        assert versions == sorted(versions), "a request saw the old version after the new"
        assert versions[0] == 1
        assert versions[-1] == 2
    assert sample(client, "quantserve_model_reloads_total", outcome="swapped") == 2


def test_a_server_without_a_model_becomes_ready_when_one_appears(root: Path) -> None:
    shutil.move(root / "models" / "forecaster" / "1", root / "staged" / "1")
    with TestClient(create_app(settings_for(root), registry=CollectorRegistry())) as client:
        assert client.get("/readyz").status_code == 503
        assert client.post("/v1/forecasts", json={}).status_code == 503
        lifecycle = lifecycle_of(client)
        assert lifecycle.check().outcome is ReloadOutcome.UNCHANGED  # the same nothing

        publish_version(root, make_broken(root, "corrupt-graph", root / "staged" / "1"), 1)
        assert lifecycle.check().outcome is ReloadOutcome.REFUSED
        ready = client.get("/readyz")
        assert ready.status_code == 503
        # In plain words: the open probe shows no path and no TensorFlow error text.
        assert ready.json()["reason"] == (
            "model forecaster version 1 was refused (it failed to load), so nothing "
            "serves yet; see the server log for the details"
        )
        assert str(root) not in ready.text
        assert "Cannot parse" not in ready.text

        publish_version(root, root / "staged" / "1", 2)
        assert lifecycle.check().outcome is ReloadOutcome.SWAPPED

        assert client.get("/readyz").json() == {
            "status": "ready",
            "model": {"name": "forecaster", "version": 2},
        }
        assert forecast(client)["model"]["version"] == 2
        assert sample(client, "quantserve_model_ready") == 1


# -- broken versions --------------------------------------------------------------------


@pytest.mark.parametrize("kind", BROKEN_KINDS)
def test_a_broken_version_is_refused_and_the_last_good_one_serves(
    client: TestClient, root: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    before = forecast(client)
    publish_version(root, make_broken(root, kind), 2)
    lifecycle = lifecycle_of(client)

    with caplog.at_level(logging.ERROR, logger="app.services.lifecycle"):
        result = lifecycle.check()

    assert result.outcome is ReloadOutcome.REFUSED
    assert result.refused is not None
    assert result.refused.version == 2
    assert forecast(client) == before  # version 1 still serves, same forecasts
    assert client.get("/readyz").json()["model"]["version"] == 1
    failure = "error" if kind == "corrupt-graph" else "invalid"
    assert result.refused.failure == failure
    expected_reason = {
        "metadata-mismatch": "lookback_days=7",
        "corrupt-graph": "Cannot parse",
        "nan-outputs": "non-finite",
    }[kind]
    (record,) = [r for r in caplog.records if r.name == "app.services.lifecycle"]
    assert "version 2 was refused" in record.getMessage()
    assert expected_reason in record.getMessage()
    assert record.model_version == 2  # type: ignore[attr-defined]
    assert sample(client, "quantserve_model_reloads_total", outcome="refused") == 1
    assert sample(client, "quantserve_model_load_failures_total", reason=failure) == 1
    assert sample(client, "quantserve_model_serving_version", model="forecaster") == 1

    # Remembered: the next polls do not load it again...
    assert lifecycle.check().outcome is ReloadOutcome.UNCHANGED
    assert sample(client, "quantserve_model_reloads_total", outcome="refused") == 1
    # ...until a good version replaces it.
    publish_version(root, root / "staged" / "2", 3)
    assert lifecycle.check().outcome is ReloadOutcome.SWAPPED
    assert forecast(client)["model"]["version"] == 3


def test_a_refused_version_is_retried_when_its_files_change(client: TestClient, root: Path) -> None:
    broken = publish_version(root, make_broken(root, "corrupt-graph"), 2)
    lifecycle = lifecycle_of(client)
    assert lifecycle.check().outcome is ReloadOutcome.REFUSED
    # Fixed in place by hand: the version's files changed, so it is tried again.
    shutil.copy(root / "models" / "forecaster" / "1" / "saved_model.pb", broken / "saved_model.pb")
    assert lifecycle.check().outcome is ReloadOutcome.SWAPPED
    assert forecast(client)["model"]["version"] == 2


# -- features and registry --------------------------------------------------------------


def test_new_features_recompute_the_forecasts(client: TestClient, root: Path) -> None:
    before = forecast(client)
    features = root / "data" / "features"
    staging = root / "data" / "features.new"
    write_feature_table(synthetic_features(n_days=320, seed=1), staging)
    shutil.rmtree(features)
    os.rename(staging, features)

    assert lifecycle_of(client).check().outcome is ReloadOutcome.SWAPPED

    after = forecast(client)
    assert after["model"] == before["model"]  # same version, new data
    assert after["as_of"] > before["as_of"]  # 320 business days instead of 300
    assert after["forecasts"] != before["forecasts"]


def test_new_features_reuse_the_loaded_model_and_a_new_version_does_not(
    client: TestClient, root: Path
) -> None:
    lifecycle = lifecycle_of(client)
    loaded = lifecycle.current.model
    write_feature_table(synthetic_features(n_days=320, seed=1), root / "data" / "features.new")
    shutil.rmtree(root / "data" / "features")
    os.rename(root / "data" / "features.new", root / "data" / "features")

    assert lifecycle.check().outcome is ReloadOutcome.SWAPPED
    # A new day of data: the same model object (neither loaded nor compiled again), new store.
    assert lifecycle.current.model is loaded
    assert lifecycle.current.store is not None
    assert len(lifecycle.current.store.table) > 0

    publish_version(root, root / "staged" / "2", 2)
    assert lifecycle.check().outcome is ReloadOutcome.SWAPPED
    assert lifecycle.current.model is not None
    assert lifecycle.current.model is not loaded
    assert lifecycle.current.model.version == 2


def test_a_promotion_of_the_serving_version_relabels_without_a_reload(
    client: TestClient, root: Path
) -> None:
    assert sample(client, "quantserve_model_info", version="1", stage="candidate") == 1
    ModelRegistry(root / "models" / "forecaster").promote(1)  # e.g. `quantserve models promote`

    assert lifecycle_of(client).check().outcome is ReloadOutcome.UNCHANGED

    assert sample(client, "quantserve_model_info", version="1", stage="production") == 1
    assert sample(client, "quantserve_model_info", version="1", stage="candidate") is None
    assert sample(client, "quantserve_model_reloads_total", outcome="swapped") == 0


def test_the_poll_loop_picks_up_a_new_version(root: Path) -> None:
    app = create_app(settings_for(root, poll_seconds=0.2), registry=CollectorRegistry())
    with TestClient(app) as client:
        assert client.get("/readyz").json()["model"]["version"] == 1
        publish_version(root, root / "staged" / "2", 2)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if client.get("/readyz").json()["model"]["version"] == 2:
                break
            time.sleep(0.05)
        assert client.get("/readyz").json()["model"]["version"] == 2
        assert forecast(client)["model"]["version"] == 2
        assert sample(client, "quantserve_model_reloads_total", outcome="swapped") == 1
        last_check = sample(client, "quantserve_model_last_check_timestamp_seconds")
        assert last_check is not None
        assert time.time() - last_check < 5


# -- the TensorFlow Serving routes ------------------------------------------------------


def _input_shape(client: TestClient, path: str) -> list[str]:
    response = client.get(path)
    assert response.status_code == 200, response.text
    signature = response.json()["metadata"]["signature_def"]["signature_def"]["serving_default"]
    return [d["size"] for d in signature["inputs"]["features"]["tensor_shape"]["dim"]]


def test_tf_serving_routes_serve_a_version_rewritten_in_place_once_the_check_swaps_it(
    client: TestClient, root: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import tensorflow as tf

    rng = np.random.default_rng(5)
    before = rng.normal(size=(2, LOOKBACK, N_FEATURES)).tolist()
    after = rng.normal(size=(2, OTHER_LOOKBACK, N_FEATURES)).astype(np.float32)
    metadata_paths = ("/v1/models/forecaster/metadata", "/v1/models/forecaster/versions/1/metadata")
    # Both routes fill the service's caches with version 1 as first exported.
    assert client.post("/v1/models/forecaster:predict", json={"instances": before}).is_success
    for path in metadata_paths:
        assert _input_shape(client, path) == ["-1", str(LOOKBACK), str(N_FEATURES)]

    replacement = other_lookback_version(tmp_path_factory)
    rewrite_in_place(root / "models" / "forecaster" / "1", replacement)
    assert lifecycle_of(client).check().outcome is ReloadOutcome.SWAPPED  # what the poll does

    for path in metadata_paths:
        assert _input_shape(client, path) == ["-1", str(OTHER_LOOKBACK), str(N_FEATURES)]
    response = client.post("/v1/models/forecaster:predict", json={"instances": after.tolist()})
    assert response.status_code == 200, response.text
    loaded = tf.saved_model.load(str(replacement))
    expected = loaded.signatures["serving_default"](features=tf.constant(after))
    predictions = response.json()["predictions"]
    for name, value in expected.items():
        got = np.array([p[name] for p in predictions])
        np.testing.assert_allclose(got, value.numpy(), rtol=1e-5, atol=1e-7)
    stale = client.post("/v1/models/forecaster:predict", json={"instances": before})
    assert stale.status_code == 400
    assert f"expected [{OTHER_LOOKBACK}, {N_FEATURES}]" in stale.json()["error"]


def test_an_on_demand_version_rewritten_in_place_is_loaded_again(
    root: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Versions other than the serving one: the lifecycle does not watch them, the
    TF Serving service notices their files changed on the next request."""
    from app.services.model_registry import LoadedModel, load_model
    from app.services.tfserving import TFServingService

    loads: list[int] = []

    def counting_loader(models_dir: Path, name: str, version: int) -> LoadedModel:
        loads.append(version)
        return load_model(models_dir, name, version)

    service = TFServingService(root / "models", loader=counting_loader)
    first = service.resolve(None, "forecaster", 1)
    assert service.resolve(None, "forecaster", 1) is first  # cached while unchanged
    assert service.signature("forecaster", 1).inputs["features"].shape == (-1, LOOKBACK, N_FEATURES)

    rewrite_in_place(root / "models" / "forecaster" / "1", other_lookback_version(tmp_path_factory))

    second = service.resolve(None, "forecaster", 1)
    assert second.lookback_days == OTHER_LOOKBACK
    assert loads == [1, 1]
    wanted = (-1, OTHER_LOOKBACK, N_FEATURES)
    assert service.signature("forecaster", 1).inputs["features"].shape == wanted
    instances = np.zeros((1, OTHER_LOOKBACK, N_FEATURES)).tolist()
    parsed = service.parse_predict(second, {"instances": instances})
    assert parsed.features.shape == (1, OTHER_LOOKBACK, N_FEATURES)
    assert [s.state for s in service.status(None, "forecaster", 1)] == ["AVAILABLE"]
