"""``quantserve train`` and ``evaluate`` with no tracking URI: MLflow's SQLite store in data/.

A tiny feature table (synthetic, 2010 to mid-2013) and the manifests ingest and the
feature job would write; the commands run through the CLI with the settings pointing
at a temporary data folder and the working directory at an empty one, which must stay
empty: MLflow's own default would put ``mlruns/`` or ``mlflow.db`` there.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from app.cli import cli
from app.core.config import get_settings
from tests.tracking.conftest import DATA_MANIFEST, FEATURES_MANIFEST
from tests.training.synthetic import synthetic_features, write_feature_table
from training.model_store import read_metadata
from training.tracking import flatten_metrics

TINY_SETTINGS = {
    "QUANTSERVE_TRAINING__LOOKBACK_DAYS": "5",
    "QUANTSERVE_TRAINING__HIDDEN_UNITS": "4",
    "QUANTSERVE_TRAINING__EPOCHS": "2",
    "QUANTSERVE_TRAINING__PATIENCE": "1",
    "QUANTSERVE_TRAINING__BATCH_SIZE": "256",
}
EVALUATE = ["evaluate", "--first-year", "2013", "--last-year", "2013", "--epochs", "1"]


@dataclass(frozen=True)
class Workspace:
    root: Path
    cwd: Path
    train_output: str

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def version_dir(self) -> Path:
        return self.root / "models" / "forecaster" / "1"

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(f"sqlite:///{self.data_dir / 'mlflow' / 'mlflow.db'}")


def _settings_environment(patch: pytest.MonkeyPatch, root: Path) -> None:
    patch.setenv("QUANTSERVE_DATA_DIR", str(root / "data"))
    patch.setenv("QUANTSERVE_MODELS_DIR", str(root / "models"))
    for name, value in TINY_SETTINGS.items():
        patch.setenv(name, value)
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """Version 1 trained and evaluated through the CLI, tracked in the default store."""
    root = tmp_path_factory.mktemp("local-store")
    data = root / "data"
    write_feature_table(synthetic_features(n_days=900), data / "features")
    (data / "features" / "_manifest.json").write_text(json.dumps(FEATURES_MANIFEST))
    (data / "raw").mkdir(parents=True)
    (data / "raw" / "manifest.json").write_text(json.dumps(DATA_MANIFEST))
    (data / "raw" / "quality.json").write_text(json.dumps({"stale_stretches": []}))
    cwd = root / "cwd"
    cwd.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.chdir(cwd)
        _settings_environment(patch, root)
        runner = CliRunner()
        trained = runner.invoke(cli, ["train"], env={"COLUMNS": "400"})
        assert trained.exit_code == 0, trained.output
        evaluated = runner.invoke(cli, [*EVALUATE, "--no-garch", "--in-process"])
        assert evaluated.exit_code == 0, evaluated.output
        yield Workspace(root, cwd, trained.output)
    get_settings.cache_clear()


def _runs(workspace: Workspace, kind: str) -> list[Run]:
    experiment = workspace.client.get_experiment_by_name("quantserve")
    assert experiment is not None
    return workspace.client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.run_kind = '{kind}'"
    )


def test_the_run_lands_in_the_sqlite_store_under_data_dir(workspace: Workspace) -> None:
    store = workspace.data_dir / "mlflow"
    assert (store / "mlflow.db").is_file()
    experiment = workspace.client.get_experiment_by_name("quantserve")
    assert experiment is not None
    assert experiment.artifact_location == (store / "artifacts").resolve().as_uri()
    (run,) = _runs(workspace, "train")
    assert run.info.status == "FINISHED"
    metadata = read_metadata(workspace.version_dir)
    assert metadata["mlflow"]["run_id"] == run.info.run_id
    assert metadata["mlflow"]["tracking_uri"] == f"sqlite:///{(store / 'mlflow.db').resolve()}"
    assert metadata["mlflow"]["run_url"] is None
    assert f"MLflow run {run.info.run_id} in sqlite:///" in workspace.train_output
    assert run.data.tags["model_version"] == "1"
    assert run.data.tags["prices_sha256"] == DATA_MANIFEST["prices_sha256"]
    assert run.data.params["epochs"] == "2"
    # The artefacts are files under data/mlflow/artifacts/<experiment>/<run>/artifacts/.
    folder = store / "artifacts" / run.info.run_id / "artifacts"
    assert run.info.artifact_uri == folder.resolve().as_uri()
    assert sorted(p.name for p in folder.iterdir()) == ["metadata.json", "metrics.json"]
    assert json.loads((folder / "metadata.json").read_text()) == metadata


def test_nothing_is_created_in_the_working_directory(workspace: Workspace) -> None:
    assert os.listdir(workspace.cwd) == []


def test_evaluate_logs_the_walk_forward_metrics_and_the_model_card_plots(
    workspace: Workspace,
) -> None:
    (run,) = _runs(workspace, "evaluate")
    assert run.info.status == "FINISHED"
    assert run.data.tags["model_name"] == "forecaster"
    assert run.data.tags["model_version"] == "1"
    assert run.data.tags["feature_code_version"] == FEATURES_MANIFEST["feature_code_version"]
    assert run.data.params["first_test_year"] == "2013"
    assert run.data.params["training.epochs"] == "1"
    evaluation = workspace.version_dir / "evaluation"
    document = json.loads((evaluation / "metrics.json").read_text())
    assert document["context"]["mlflow"]["run_id"] == run.info.run_id
    expected = flatten_metrics(
        {"walk_forward": {k: v for k, v in document.items() if k != "context"}}
    )
    assert "walk_forward.volatility.model.qlike" in expected
    assert "walk_forward.returns.model.ic_mean" in expected
    assert run.data.metrics == pytest.approx(expected, rel=1e-12)
    plots = sorted(p.name for p in evaluation.glob("*.png"))
    assert {"loss.png", "volatility.png", "ic.png"} <= set(plots)
    logged = sorted(a.path for a in workspace.client.list_artifacts(run.info.run_id))
    # Not predictions.parquet: the model card's inputs only.
    assert logged == sorted(["metrics.json", "report.md", *plots])


def test_models_list_shows_each_versions_run(workspace: Workspace) -> None:
    (run,) = _runs(workspace, "train")
    listing = CliRunner().invoke(cli, ["models", "list"], env={"COLUMNS": "250"})
    assert listing.exit_code == 0, listing.output
    header = next(line for line in listing.output.splitlines() if "version" in line)
    assert "MLflow run" in header
    row = next(line for line in listing.output.splitlines() if line.startswith("│ 1 "))
    assert run.info.run_id in row
