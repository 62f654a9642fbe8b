"""``quantserve challenger`` as an MLflow run in the default local store, read back.

The GBT challenger is fitted with real Spark on the session pipeline's features. The
step builds and stops a Spark session of its own; here it is handed the test run's
shared session, with ``stop`` made a no-op so the other tests keep it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from pyspark.sql import SparkSession

from app._cli_steps import challenger_step
from app.core.config import get_settings
from training import spark as spark_module
from training.challenger import GBT_PARAMS


def test_the_challenger_is_a_run_and_its_metadata_names_it(
    spark: SparkSession,
    pipeline_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(pipeline_dir / "data" / "features", data_dir / "features")
    monkeypatch.setattr(spark_module, "build_spark_session", lambda *args, **kwargs: spark)
    monkeypatch.setattr(spark, "stop", lambda: None)
    monkeypatch.setenv("QUANTSERVE_DATA_DIR", str(data_dir))
    monkeypatch.setenv("QUANTSERVE_MODELS_DIR", str(tmp_path / "models"))
    get_settings.cache_clear()
    try:
        version, folder = challenger_step(get_settings())
    finally:
        get_settings.cache_clear()

    metadata = json.loads((folder / "metadata.json").read_text())
    reference = metadata["mlflow"]
    database = (data_dir / "mlflow" / "mlflow.db").resolve()
    assert reference["tracking_uri"] == f"sqlite:///{database}"
    client = MlflowClient(reference["tracking_uri"])
    run = client.get_run(reference["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params == {key: str(value) for key, value in GBT_PARAMS.items()}
    features = json.loads((data_dir / "features" / "_manifest.json").read_text())
    tags = run.data.tags
    assert tags["run_kind"] == "challenger"
    assert tags["model_name"] == "spark"
    assert tags["model_version"] == str(version)
    assert tags["feature_code_version"] == features["feature_code_version"]
    assert tags["prices_sha256"] == features["input_sha256"]
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"metadata.json"}
    logged = Path(client.download_artifacts(run.info.run_id, "metadata.json", str(tmp_path)))
    assert json.loads(logged.read_text())["version"] == version
