"""``GET /v1/models/{name}/versions/{version}/evaluation``: a real app over a real store.

The store holds two tiny exported versions of ``forecaster`` (2 serves), a copy of
version 1 as model ``other``, and one as ``broken``. Version 2 gets an evaluation
written by ``quantserve evaluate``'s own writer (``write_evaluation``) from a small
walk-forward predictions table; ``broken`` gets an unreadable one. API keys are on.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from app.core.config import ApiKey, LimitSettings, Settings
from app.core.security import generate_key, hash_key
from app.main import create_app
from tests.app._problems import assert_problem
from tests.training.synthetic import build_model_store
from training.evaluation import compute_metrics, write_evaluation

PROBLEM = "application/problem+json"
VIEWER_KEY = generate_key()
VIEWER = {"X-API-Key": VIEWER_KEY}


def _evaluation_url(name: str, version: int | str) -> str:
    return f"/v1/models/{name}/versions/{version}/evaluation"


def _predictions(seed: int = 0) -> pd.DataFrame:
    """Walk-forward predictions of the model and two baselines, both targets, 3 tickers."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2012-01-02", periods=60)
    rows = []
    for ticker in ("T0", "T1", "T2"):
        variance = rng.uniform(0.5e-4, 2e-4, dates.size)
        returns = rng.normal(0, 0.02, dates.size)
        for forecaster, noise in (("model", 0.2), ("historical_mean", 0.5), ("ewma", 0.4)):
            rows.append(
                pd.DataFrame(
                    {
                        "date": dates,
                        "ticker": ticker,
                        "forecaster": forecaster,
                        "target": "variance_21d",
                        "forecast": variance * np.exp(rng.normal(0, noise, dates.size)),
                        "realized": variance,
                    }
                )
            )
            rows.append(
                pd.DataFrame(
                    {
                        "date": dates,
                        "ticker": ticker,
                        "forecaster": forecaster,
                        "target": "log_return_5d",
                        "forecast": returns + rng.normal(0, noise * 0.05, dates.size),
                        "realized": returns,
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model store described above; returns its ``models`` folder."""
    root = build_model_store(tmp_path_factory.mktemp("evaluation"), versions=2)
    models = root / "models"
    predictions = _predictions()
    context = {"model": "forecaster", "version": 2, "test_start": "2012-01-02", "refits": 1}
    write_evaluation(
        models / "forecaster" / "2" / "evaluation",
        predictions,
        compute_metrics(predictions),
        context,
    )
    for copy in ("other", "broken"):
        shutil.copytree(models / "forecaster" / "1", models / copy / "1")
    broken = models / "broken" / "1" / "evaluation"
    broken.mkdir()
    (broken / "metrics.json").write_text('{"volatility": {"model": {"qlike"')
    return models


@pytest.fixture(scope="module")
def client(store: Path) -> Iterator[TestClient]:
    settings = Settings(
        environment="test",
        data_dir=store.parent / "data",
        models_dir=store,
        dev_mode=False,
        api_keys=[ApiKey(id="viewer-key", role="viewer", sha256=hash_key(VIEWER_KEY))],
        limits=LimitSettings(rate_per_second=0),
    )
    with TestClient(create_app(settings, registry=CollectorRegistry())) as test_client:
        yield test_client


def test_the_evaluation_is_served_as_quantserve_evaluate_wrote_it(
    client: TestClient, store: Path
) -> None:
    response = client.get(_evaluation_url("forecaster", 2), headers=VIEWER)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    on_disk = json.loads((store / "forecaster" / "2" / "evaluation" / "metrics.json").read_text())
    assert response.json() == {
        "model": {"name": "forecaster", "version": 2},
        "metrics": {"volatility": on_disk["volatility"], "returns": on_disk["returns"]},
        "context": on_disk["context"],
    }
    body = response.json()
    assert set(body["metrics"]["volatility"]) == {"model", "historical_mean", "ewma"}
    model = body["metrics"]["volatility"]["model"]
    assert model["samples"] == 180
    assert model["dm_baseline"] in {"historical_mean", "ewma"}
    assert body["metrics"]["returns"]["model"]["ic_dates"] == 60
    assert body["context"]["test_start"] == "2012-01-02"


def test_a_version_not_serving_without_an_evaluation_says_to_promote_it_first(
    client: TestClient,
) -> None:
    response = client.get(_evaluation_url("forecaster", 1), headers=VIEWER)
    problem = assert_problem(response, 404, "evaluation-not-found")
    assert (problem["model"], problem["version"]) == ("forecaster", 1)
    detail = problem["detail"]
    assert "model forecaster version 1 has no evaluation yet" in detail
    assert "evaluates only the serving version (now 2)" in detail
    assert "`quantserve models promote 1`" in detail
    assert "run `quantserve evaluate`" in detail
    assert "QUANTSERVE_MODEL_NAME" not in detail  # forecaster is the configured model


def test_the_serving_version_of_another_model_names_it_for_evaluate(client: TestClient) -> None:
    problem = assert_problem(
        client.get(_evaluation_url("other", 1), headers=VIEWER), 404, "evaluation-not-found"
    )
    assert (
        "run `QUANTSERVE_MODEL_NAME=other quantserve evaluate` (it evaluates the serving "
        "version, 1" in problem["detail"]
    )


def test_an_unreadable_evaluation_is_404_saying_write_it_again(client: TestClient) -> None:
    problem = assert_problem(
        client.get(_evaluation_url("broken", 1), headers=VIEWER), 404, "evaluation-not-found"
    )
    assert "cannot be read; write it again" in problem["detail"]
    assert "QUANTSERVE_MODEL_NAME=broken quantserve evaluate" in problem["detail"]


@pytest.mark.parametrize(
    ("name", "version", "available"),
    [("forecaster", 3, [1, 2]), ("nope", 1, []), ("..", 1, []), (".", 2, [])],
)
def test_an_unknown_model_or_version_is_404_as_for_its_metadata(
    client: TestClient, name: str, version: int, available: list[int]
) -> None:
    encoded = name.replace(".", "%2E")  # so the client does not resolve . and ..
    response = client.get(_evaluation_url(encoded, version), headers=VIEWER)
    problem = assert_problem(response, 404, "model-version-not-found")
    assert (problem["model"], problem["available_versions"]) == (name, available)
    assert f"has no complete version {version}" in problem["detail"]
    assert "GET /v1/models lists the versions" in problem["detail"]
    # The TensorFlow Serving metadata route refuses the same version, in its own shape.
    metadata = client.get(f"/v1/models/{encoded}/versions/{version}/metadata", headers=VIEWER)
    assert metadata.status_code == 404
    assert set(metadata.json()) == {"error"}


@pytest.mark.parametrize(
    "name",
    ["..%2F..%2Fforecaster", "%2E%2E%2Fforecaster", "forecaster%00", "fore caster", "a" * 256],
)
def test_names_that_are_not_a_model_folder_never_reach_the_store(
    client: TestClient, name: str
) -> None:
    response = client.get(_evaluation_url(name, 2), headers=VIEWER)
    assert response.status_code in (404, 422), response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] in {"/problems/not-found", "/problems/invalid-request"}


@pytest.mark.parametrize("version", ["0", "-1", "two", "1.5", str(2**63), "9" * 5000])
def test_a_version_that_is_not_a_positive_int64_is_422(client: TestClient, version: str) -> None:
    problem = assert_problem(
        client.get(_evaluation_url("forecaster", version), headers=VIEWER),
        422,
        "invalid-request",
    )
    assert [error["location"] for error in problem["errors"]] == ["path.version"]


def test_the_viewer_role_is_needed_and_refusals_are_problems(client: TestClient) -> None:
    # Under /v1/models/ but not a TensorFlow Serving route: problem+json, not {"error"}.
    assert_problem(client.get(_evaluation_url("forecaster", 2)), 401, "unauthorized")
    response = client.get(_evaluation_url("forecaster", 2), headers={"X-API-Key": "qs_wrong"})
    assert_problem(response, 401, "unauthorized")
