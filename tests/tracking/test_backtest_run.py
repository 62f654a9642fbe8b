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
from mlflow.entities import Run
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


def _backtest_run(
    server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, experiment: str, args: list[str]
) -> Run:
    """``quantserve backtest ARGS`` with the settings' folders in ``tmp_path``; its one run."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    monkeypatch.setenv("QUANTSERVE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("QUANTSERVE_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("QUANTSERVE_TRACKING__EXPERIMENT", experiment)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["backtest", "--strategies", STRATEGIES, *args])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    found = MlflowClient(server).get_experiment_by_name(experiment)
    assert found is not None
    (run,) = MlflowClient(server).search_runs([found.experiment_id])
    return run


def test_a_backtest_is_a_run_with_each_strategys_metrics_and_the_report(
    mlflow_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    predictions = _serving_version_with_predictions(tmp_path / "models")
    output = tmp_path / "run"
    args = ["--start", "2018-01-02", "--end", "2019-06-28", "--rebalance", "quarterly"]
    args += ["--cost-bps", "5", "--output", str(output)]
    run = _backtest_run(mlflow_server, monkeypatch, tmp_path, "quantserve-backtests", args)
    client = MlflowClient(mlflow_server)
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
    args = ["--start", "2018-01-02", "--end", "2018-12-31"]
    args += ["--predictions", str(copy / "predictions.parquet"), "--output", str(tmp_path / "run")]
    run = _backtest_run(mlflow_server, monkeypatch, tmp_path, "quantserve-backtest-copies", args)
    assert run.data.tags["model_name"] == "forecaster"
    assert run.data.tags["model_version"] == "7"
