"""TensorFlow Serving's REST API: the shapes of its documentation's examples, real SavedModels.

Examples from https://www.tensorflow.org/tfx/serving/api_rest: model status
(``model_version_status``), metadata (``model_spec`` + ``signature_def``), predict in the
row format (``instances`` → ``predictions``) and the columnar one (``inputs`` →
``outputs``), and error bodies ``{"error": "..."}``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from app.core.config import Settings
from app.main import create_app
from tests.training.synthetic import build_model_store
from training import schema
from training.registry import ModelRegistry

LOOKBACK = 5  # the look-back of build_model_store's tiny versions
N_FEATURES = len(schema.FEATURE_COLUMNS)
OUTPUTS = sorted(
    ["expected_log_return_5d", "log_return_quantiles_5d", "variance_21d", "volatility_21d"]
)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with versions 1, 2 and 3 of "forecaster"; version 2 is in production."""
    root = build_model_store(tmp_path_factory.mktemp("tfserving"), versions=3)
    registry = ModelRegistry(root / "models" / "forecaster")
    for version in (1, 2, 3):
        registry.register(version)
    registry.promote(2)
    return root


@pytest.fixture(scope="module")
def client(root: Path) -> Iterator[TestClient]:
    settings = Settings(environment="test", data_dir=root / "data", models_dir=root / "models")
    with TestClient(create_app(settings, registry=CollectorRegistry())) as client:
        yield client


@pytest.fixture(scope="module")
def instances() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(3, LOOKBACK, N_FEATURES)).astype(np.float32)


def signature_outputs(root: Path, version: int, batch: np.ndarray) -> dict[str, np.ndarray]:
    """What the SavedModel's serving signature itself returns for ``batch``."""
    loaded = tf.saved_model.load(str(root / "models" / "forecaster" / str(version)))
    result = loaded.signatures["serving_default"](features=tf.constant(batch))
    return {name: value.numpy() for name, value in result.items()}


# -- routing --------------------------------------------------------------------------


def test_colon_verbs_route_to_predict(client: TestClient, instances: np.ndarray) -> None:
    body = {"instances": instances[:1].tolist()}
    for path in (
        "/v1/models/forecaster:predict",
        "/v1/models/forecaster/versions/1:predict",
        "/v1/models/forecaster/labels/production:predict",
    ):
        response = client.post(path, json=body)
        assert response.status_code == 200, (path, response.text)
        assert set(response.json()) == {"predictions"}


# -- model status ---------------------------------------------------------------------


def test_status_lists_the_serving_version_available(client: TestClient) -> None:
    response = client.get("/v1/models/forecaster")
    assert response.status_code == 200
    statuses = response.json()["model_version_status"]
    by_version = {s["version"]: s for s in statuses}
    assert by_version["2"] == {
        "version": "2",
        "state": "AVAILABLE",
        "status": {"error_code": "OK", "error_message": ""},
    }
    # Versions not loaded are END, as TF Serving reports unloaded versions; newest first.
    assert [s["version"] for s in statuses] == sorted(by_version, key=int, reverse=True)
    assert {s["state"] for v, s in by_version.items() if v != "2"} <= {"END", "AVAILABLE"}


def test_status_of_one_version_and_a_label(client: TestClient) -> None:
    (status,) = client.get("/v1/models/forecaster/versions/2").json()["model_version_status"]
    assert (status["version"], status["state"]) == ("2", "AVAILABLE")
    (status,) = client.get("/v1/models/forecaster/labels/production").json()["model_version_status"]
    assert status["version"] == "2"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/v1/models/nope", "Could not find any versions of model nope"),
        ("/v1/models/forecaster/versions/9", "Could not find version 9 of model forecaster"),
        ("/v1/models/forecaster/versions/x", "Malformed request"),
    ],
)
def test_unknown_models_and_versions_are_404_error_bodies(
    client: TestClient, path: str, message: str
) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert set(response.json()) == {"error"}
    assert message in response.json()["error"]


# -- metadata -------------------------------------------------------------------------


def test_metadata_describes_the_serving_signature(client: TestClient) -> None:
    body = client.get("/v1/models/forecaster/metadata").json()
    assert body["model_spec"] == {"name": "forecaster", "signature_name": "", "version": "2"}
    signature = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["method_name"] == "tensorflow/serving/predict"
    features = signature["inputs"]["features"]
    assert features["dtype"] == "DT_FLOAT"
    assert features["tensor_shape"] == {
        "dim": [
            {"size": "-1", "name": ""},
            {"size": str(LOOKBACK), "name": ""},
            {"size": str(N_FEATURES), "name": ""},
        ],
        "unknown_rank": False,
    }
    assert features["name"]
    assert sorted(signature["outputs"]) == OUTPUTS
    quantiles = signature["outputs"]["log_return_quantiles_5d"]["tensor_shape"]["dim"]
    assert [d["size"] for d in quantiles] == ["-1", "3"]
    assert signature["outputs"]["volatility_21d"]["dtype"] == "DT_FLOAT"


def test_metadata_of_a_version_and_a_label(client: TestClient) -> None:
    spec = client.get("/v1/models/forecaster/versions/3/metadata").json()["model_spec"]
    assert spec["version"] == "3"
    spec = client.get("/v1/models/forecaster/labels/candidate/metadata").json()["model_spec"]
    assert spec["version"] == "3"


# -- predict --------------------------------------------------------------------------


def test_row_format_equals_the_signature_outputs(
    client: TestClient, root: Path, instances: np.ndarray
) -> None:
    response = client.post(
        "/v1/models/forecaster:predict",
        json={"signature_name": "serving_default", "instances": instances.tolist()},
    )
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == len(instances)
    assert all(sorted(p) == OUTPUTS for p in predictions)
    expected = signature_outputs(root, 2, instances)
    for name in OUTPUTS:
        got = np.array([p[name] for p in predictions])
        assert got.shape == expected[name].shape
        np.testing.assert_allclose(got, expected[name], rtol=1e-5, atol=1e-7)


def test_named_instances_and_columnar_format_agree(
    client: TestClient, instances: np.ndarray
) -> None:
    path = "/v1/models/forecaster:predict"
    rows = client.post(path, json={"instances": instances.tolist()}).json()["predictions"]
    named = client.post(
        path, json={"instances": [{"features": i} for i in instances.tolist()]}
    ).json()["predictions"]
    columnar = client.post(path, json={"inputs": instances.tolist()}).json()["outputs"]
    columnar_named = client.post(path, json={"inputs": {"features": instances.tolist()}}).json()
    assert named == rows
    assert columnar_named["outputs"] == columnar
    assert sorted(columnar) == OUTPUTS
    for name in OUTPUTS:
        np.testing.assert_allclose(
            np.array(columnar[name]), np.array([r[name] for r in rows]), rtol=1e-6
        )


def test_versions_and_labels_route_to_their_version(
    client: TestClient, root: Path, instances: np.ndarray
) -> None:
    body = {"inputs": instances.tolist()}
    for path, version in [
        ("/v1/models/forecaster/versions/1:predict", 1),
        ("/v1/models/forecaster/versions/3:predict", 3),
        ("/v1/models/forecaster/labels/production:predict", 2),
        ("/v1/models/forecaster/labels/candidate:predict", 3),
    ]:
        response = client.post(path, json=body)
        assert response.status_code == 200, response.text
        expected = signature_outputs(root, version, instances)
        for name in OUTPUTS:
            np.testing.assert_allclose(
                np.array(response.json()["outputs"][name]), expected[name], rtol=1e-5, atol=1e-7
            )
    # Versions loaded on demand now answer as AVAILABLE.
    statuses = client.get("/v1/models/forecaster").json()["model_version_status"]
    assert {s["version"]: s["state"] for s in statuses}["3"] == "AVAILABLE"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"instances": [[[0.0] * N_FEATURES] * (LOOKBACK - 1)]}, "instance 0 has shape"),
        ({"instances": [[[0.0] * (N_FEATURES + 1)] * LOOKBACK]}, "instance 0 has shape"),
        ({"inputs": [[0.0] * N_FEATURES] * LOOKBACK}, "'features'"),
        ({"instances": [[["a"] * N_FEATURES] * LOOKBACK]}, "not a rectangular list"),
        ({"instances": [[[0.0] * N_FEATURES] * LOOKBACK] * 1025}, "at most 1024"),
        ({"instances": []}, "non-empty"),
        ({"instances": [{"prices": [[0.0]]}]}, "unknown input 'prices'"),
        ({"rows": []}, "Missing 'inputs' or 'instances' key"),
        ({"instances": [], "inputs": []}, "only one of 'inputs' or 'instances'"),
        (
            {"signature_name": "classify", "instances": []},
            'Serving signature name: "classify" not found in signature def',
        ),
    ],
)
def test_bad_predict_bodies_are_400_error_bodies(
    client: TestClient, body: dict[str, object], message: str
) -> None:
    response = client.post("/v1/models/forecaster:predict", json=body)
    assert response.status_code == 400
    assert set(response.json()) == {"error"}
    assert message in response.json()["error"]


def test_malformed_json_is_a_400_error_body(client: TestClient) -> None:
    response = client.post(
        "/v1/models/forecaster:predict",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith("JSON Parse error")


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/v1/models/nope:predict", 404, "Servable not found for request: Latest(nope)"),
        (
            "/v1/models/forecaster/versions/9:predict",
            404,
            "Servable not found for request: Specific(forecaster, 9)",
        ),
        ("/v1/models/forecaster/labels/canary:predict", 400, "Unrecognized servable version"),
    ],
)
def test_unknown_servables_in_predict(
    client: TestClient, instances: np.ndarray, path: str, status: int, message: str
) -> None:
    response = client.post(path, json={"instances": instances.tolist()})
    assert response.status_code == status
    assert response.json() == {"error": response.json()["error"]}
    assert message in response.json()["error"]


def test_on_demand_versions_are_cached_and_evicted(root: Path) -> None:
    from app.services.model_registry import load_model
    from app.services.tfserving import TFServingService

    loads: list[int] = []

    def counting_loader(models_dir: Path, name: str, version: int):  # type: ignore[no-untyped-def]
        loads.append(version)
        return load_model(models_dir, name, version)

    service = TFServingService(root / "models", max_extra_versions=2, loader=counting_loader)
    for version in (1, 3, 1, 2, 3):
        assert service.resolve(None, "forecaster", version).version == version
    # 1 and 3 load once each while both fit; 2 evicts 3 (least recently used) and 3 reloads.
    assert loads == [1, 3, 2, 3]


# -- version numbers out of range ----------------------------------------------------

VERSION_ROUTES = [
    ("GET", "/v1/models/forecaster/versions/{v}"),
    ("GET", "/v1/models/forecaster/versions/{v}/metadata"),
    ("POST", "/v1/models/forecaster/versions/{v}:predict"),
]


@pytest.mark.parametrize(("method", "template"), VERSION_ROUTES)
@pytest.mark.parametrize(
    ("version", "status", "message"),
    [
        # TensorFlow Serving parses the version as an int64: past it, its InvalidArgument.
        (str(2**63), 400, "Failed to convert version: 9223372036854775808 to numbers"),
        ("1606429250434622291968", 400, "Failed to convert version: 1606429250434622291968"),
        ("9" * 5000, 400, "Failed to convert version: 999"),  # past Python's int(str) limit
        # Within it, a version the store does not have: not found.
        (str(2**63 - 1), 404, "9223372036854775807"),
        # Its URLs take ASCII digits only; "²" passes str.isdigit but not int().
        ("²", 404, "Malformed request"),
        ("١٢", 404, "Malformed request"),
    ],
)
def test_out_of_range_versions_are_tf_serving_errors_not_500(
    client: TestClient,
    instances: np.ndarray,
    method: str,
    template: str,
    version: str,
    status: int,
    message: str,
) -> None:
    body = {"instances": instances.tolist()} if method == "POST" else None
    response = client.request(method, template.format(v=version), json=body)
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"] == "application/json"
    assert set(response.json()) == {"error"}
    assert message in response.json()["error"]
    assert len(response.json()["error"]) < 300  # a 5,000-digit version is not echoed whole
