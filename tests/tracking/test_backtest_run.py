"""``quantserve backtest`` as an MLflow run in a real server: strategy metrics and the report.

The forecast-driven strategy reads the serving version's walk-forward predictions, as
``quantserve backtest`` does by default; they are made here from trailing prices (the
shape ``quantserve evaluate`` writes) for a stand-in version 1, so the run is tagged
with that model's name and version.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from app.cli import cli
from app.core.config import get_settings
from tests.backtest.conftest import write_trailing_predictions
from training.tracking import flatten_metrics

STRATEGIES = "min_variance,forecast_min_variance+vol_target"


def _serving_version_with_predictions(models_dir: Path) -> Path:
    """Version 1 of "forecaster" with only what a back-test reads: its predictions."""
    evaluation = models_dir / "forecaster" / "1" / "evaluation"
    evaluation.mkdir(parents=True)
    (evaluation.parent / "metadata.json").write_text("{}")
    return write_trailing_predictions(evaluation / "predictions.parquet")


def test_a_backtest_is_a_run_with_each_strategys_metrics_and_the_report(
    mlflow_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    predictions = _serving_version_with_predictions(tmp_path / "models")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("QUANTSERVE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("QUANTSERVE_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("QUANTSERVE_TRACKING__EXPERIMENT", "quantserve-backtests")
    get_settings.cache_clear()
    output = tmp_path / "run"
    args = ["backtest", "--strategies", STRATEGIES, "--start", "2018-01-02", "--end", "2019-06-28"]
    args += ["--rebalance", "quarterly", "--cost-bps", "5", "--output", str(output)]
    result = CliRunner().invoke(cli, args)
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output

    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("quantserve-backtests")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["run_kind"] == "backtest"
    assert run.data.tags["prices_source"] == "embedded"
    assert run.data.tags["model_name"] == "forecaster"
    assert run.data.tags["model_version"] == "1"
    params = run.data.params
    assert params["strategies"] == STRATEGIES
    assert params["rebalance"] == "quarterly"
    assert params["cost_bps"] == "5.0"
    assert params["predictions"] == str(predictions)
    assert params["first_day"] == "2018-01-02"

    document = json.loads((output / "metrics.json").read_text())
    assert set(document["strategies"]) == {
        "equal_weight",
        "index",
        "min_variance",
        "forecast_min_variance+vol_target",
    }
    expected = flatten_metrics(document["strategies"])
    # '+' is not allowed in MLflow keys.
    assert "forecast_min_variance_vol_target.sharpe" in expected
    assert "min_variance.vs_equal_weight.p_value" in expected
    assert run.data.metrics == pytest.approx(expected, rel=1e-12)
    artefacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artefacts == {"metrics.json", "report.html"}
    report = client.download_artifacts(run.info.run_id, "report.html", str(tmp_path))
    assert Path(report).read_text() == (output / "report.html").read_text()


def test_predictions_copied_out_of_the_store_still_name_their_model(
    mlflow_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # dvc.yaml's back-test reads data/evaluation/, evaluate's copy: its metrics.json
    # names the version, which is not the serving one here (there is no model store).
    served = _serving_version_with_predictions(tmp_path / "store")
    copy = tmp_path / "data" / "evaluation"
    copy.mkdir(parents=True)
    (copy / "predictions.parquet").write_bytes(served.read_bytes())
    context = {"model": "forecaster", "version": 7}
    (copy / "metrics.json").write_text(json.dumps({"context": context}))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("QUANTSERVE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("QUANTSERVE_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("QUANTSERVE_TRACKING__EXPERIMENT", "quantserve-backtest-copies")
    get_settings.cache_clear()
    args = ["backtest", "--strategies", STRATEGIES, "--start", "2018-01-02", "--end", "2018-12-31"]
    args += ["--predictions", str(copy / "predictions.parquet"), "--output", str(tmp_path / "run")]
    result = CliRunner().invoke(cli, args)
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output

    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("quantserve-backtest-copies")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.tags["model_name"] == "forecaster"
    assert run.data.tags["model_version"] == "7"
