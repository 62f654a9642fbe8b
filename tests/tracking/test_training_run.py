"""A training run in a real MLflow server, read back; and training with the server down.

The first module fixture trains a tiny model once with a tracker pointing at the
``mlflow server`` of ``conftest.py``; the tests read the run back with ``MlflowClient``
and compare it with the version's ``metadata.json``. The others point the tracker at
a loopback port where nothing listens, or where a socket accepts connections and
never answers: training must succeed all the same, say once where the metrics went,
and not wait on MLflow's default retries (7, with backoff: minutes).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.tracking.conftest import DATA_MANIFEST, FEATURES_MANIFEST, ROOT, TINY, free_port
from tests.training.synthetic import synthetic_features
from training.model_store import read_metadata
from training.tracking import HTTP_BOUNDS, Tracker, flatten_metrics
from training.train import TrainResult, train_and_export

EXPERIMENT = "quantserve-tests"


def _train(models: Path, tracker: Tracker) -> TrainResult:
    return train_and_export(
        synthetic_features(n_days=300),
        models,
        "forecaster",
        TINY,
        data_manifest=DATA_MANIFEST,
        features_manifest=FEATURES_MANIFEST,
        tracker=tracker,
    )


@pytest.fixture(scope="module")
def tracked(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """Version 1 of a tiny model, trained once with the server as its tracking store."""
    with pytest.MonkeyPatch.context() as patch:
        for variable in HTTP_BOUNDS:  # the tracker's defaults, removed afterwards
            patch.setenv(variable, "")
            patch.delenv(variable)
        return _train(tmp_path_factory.mktemp("models"), Tracker(mlflow_server, EXPERIMENT))


def _expected_commit() -> str | None:
    found = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return found.stdout.strip() if found.returncode == 0 else None


def test_metadata_names_the_run_and_the_run_has_params_and_tags(
    tracked: TrainResult, mlflow_server: str
) -> None:
    metadata = read_metadata(tracked.path)
    reference = metadata["mlflow"]
    client = MlflowClient(mlflow_server)
    run = client.get_run(reference["run_id"])
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == EXPERIMENT
    assert reference == {
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "experiment": EXPERIMENT,
        "tracking_uri": mlflow_server,
        "run_url": f"{mlflow_server}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}",
    }
    assert "mlflow_reason" not in metadata
    assert run.info.status == "FINISHED"
    assert run.data.params == {key: str(value) for key, value in TINY.model_dump().items()}
    tags = run.data.tags
    assert tags["run_kind"] == "train"
    assert tags["model_name"] == "forecaster"
    assert tags["model_version"] == "1"
    assert tags["prices_sha256"] == DATA_MANIFEST["prices_sha256"]
    assert tags["feature_code_version"] == FEATURES_MANIFEST["feature_code_version"]
    assert tags.get("mlflow.source.git.commit") == _expected_commit()


def test_each_epoch_is_one_step_of_the_loss_history(
    tracked: TrainResult, mlflow_server: str
) -> None:
    metadata = read_metadata(tracked.path)
    client = MlflowClient(mlflow_server)
    run_id = metadata["mlflow"]["run_id"]
    epochs = metadata["training"]["epochs_run"]
    assert epochs >= 1
    for key in ("loss", "val_loss"):
        history = sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
        assert [m.step for m in history] == list(range(epochs))
        assert [round(m.value, 6) for m in history] == metadata["training"][key]


def test_final_metrics_equal_metadata_json(tracked: TrainResult, mlflow_server: str) -> None:
    metadata = read_metadata(tracked.path)
    logged = MlflowClient(mlflow_server).get_run(metadata["mlflow"]["run_id"]).data.metrics
    expected = flatten_metrics(
        {
            "validation": metadata["validation_metrics"],
            "holdout": metadata["holdout_metrics"],
            "epochs_run": metadata["training"]["epochs_run"],
        }
    )
    assert "validation.volatility.model.qlike" in expected
    assert "holdout.returns.model.ic_mean" in expected
    assert {key: logged[key] for key in expected} == pytest.approx(expected, rel=1e-12)
    assert set(logged) == {*expected, "loss", "val_loss"}


def test_artefacts_are_metrics_json_and_metadata_json(
    tracked: TrainResult, mlflow_server: str, tmp_path: Path
) -> None:
    metadata = read_metadata(tracked.path)
    client = MlflowClient(mlflow_server)
    run_id = metadata["mlflow"]["run_id"]
    assert {a.path for a in client.list_artifacts(run_id)} == {"metrics.json", "metadata.json"}
    downloaded = Path(client.download_artifacts(run_id, "metrics.json", str(tmp_path)))
    document = json.loads(downloaded.read_text())
    assert document["validation_metrics"] == metadata["validation_metrics"]
    assert document["holdout_metrics"] == metadata["holdout_metrics"]
    assert document["history"]["loss"] == metadata["training"]["loss"]


def test_training_with_the_server_down_succeeds_and_says_where_the_metrics_are(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    tracker = Tracker(f"http://127.0.0.1:{port}", EXPERIMENT)
    started = time.perf_counter()
    with caplog.at_level(logging.WARNING):
        result = _train(tmp_path / "models", tracker)
    elapsed = time.perf_counter() - started
    # MLflow's default retries would wait minutes on the refused connections.
    assert elapsed < 60
    metadata = read_metadata(result.path)
    assert metadata["mlflow"] is None
    reason = metadata["mlflow_reason"]
    assert reason.startswith(f"MLflow tracking at http://127.0.0.1:{port} failed (create the run:")
    assert "Connection refused" in reason
    warnings = [r for r in caplog.records if r.name == "training.tracking"]
    assert len(warnings) == 1
    # No retry, so no warning of urllib3's about one.
    assert not [r for r in caplog.records if r.name.startswith("urllib3")]
    message = warnings[0].getMessage()
    assert message.startswith(f"MLflow tracking at http://127.0.0.1:{port} failed (")
    assert message.endswith(f"; the run's metrics are in {result.path / 'metadata.json'}")
    assert result.metadata["validation_metrics"]["volatility"]["model"]["qlike"] > 0


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A loopback socket that accepts connections and never answers (a hung server)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_a_server_that_never_answers_costs_seconds_and_one_failure(
    silent_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = Tracker(silent_server, EXPERIMENT)
    started = time.perf_counter()
    with (
        caplog.at_level(logging.WARNING, logger="training.tracking"),
        tracker.run("train", params={"epochs": 2}, fallback="metadata.json") as run,
    ):
        for step in range(20):  # none of these may wait: the first failure ended tracking
            run.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
        run.log_artifacts(Path(__file__))
    elapsed = time.perf_counter() - started
    # One request (looking up the experiment), tried once with a 5 s timeout.
    assert elapsed < 15
    assert run.run_id is None
    assert run.failure is not None
    assert "timed out" in run.failure.lower()
    assert len([r for r in caplog.records if r.name == "training.tracking"]) == 1
    assert {variable: os.environ[variable] for variable in HTTP_BOUNDS} == HTTP_BOUNDS


def test_bounds_the_user_set_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    with Tracker(f"http://127.0.0.1:{free_port()}", EXPERIMENT).run("backtest") as run:
        pass
    assert run.failure is not None
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "1"
    assert (
        os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_JITTER"]
        == HTTP_BOUNDS["MLFLOW_HTTP_REQUEST_BACKOFF_JITTER"]
    )


def test_without_a_tracker_metadata_says_why_there_is_no_run(tmp_path: Path) -> None:
    result = _train(tmp_path / "models", Tracker.off("tracking.enabled is false"))
    metadata = read_metadata(result.path)
    assert metadata["mlflow"] is None
    assert metadata["mlflow_reason"] == "tracking.enabled is false"
