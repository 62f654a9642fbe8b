"""The Spark jobs on a real standalone cluster compute what they compute on ``local[*]``.

Each job runs in a process of its own with ``spark://127.0.0.1:<port>`` as its master
(one Python process holds one SparkContext, and this one holds the session's
``local[2]``), its tasks on the executor of the worker that :mod:`tests.spark_cluster`
started: the feature job as a user runs it, ``quantserve features --master``, and one
walk-forward refit through the library call ``quantserve evaluate`` makes
(:mod:`tests.cluster._walk_forward_job`). Each result is compared with the same job on
the test session's local master, and the master's own status must show that the
application ran there.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest

from tests.cluster._walk_forward_job import APP_NAME, walk_forward_config
from tests.spark_cluster import StandaloneCluster
from training.evaluation import run_walk_forward
from training.features import MANIFEST_NAME, load_features

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = pytest.mark.slow

REPOSITORY = Path(__file__).resolve().parents[2]
QUANTSERVE = Path(sys.executable).with_name("quantserve")
JOB_TIMEOUT_SECONDS = 600
TEST_YEAR = 2018
"""The pipeline's data run 2015-2018; beta needs 252 rows, so windows are complete from
2016, and a 2018 refit trains on 2016-2017."""
KEYS = ["date", "ticker", "forecaster", "target"]


def start_driver(command: list[str], environment: dict[str, str] | None = None) -> Driver:
    """Start a Spark driver ``command`` in a process group of its own (it and its JVM)."""
    process = subprocess.Popen(
        command,
        cwd=REPOSITORY,
        env={
            # Without PYSPARK_PYTHON, as a user starts it: build_spark_session pins the
            # executors' Python to the driver's interpreter, this venv's.
            **{k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_")},
            **(environment or {}),
            # The driver listens on loopback too: the worker connects back to it there.
            "SPARK_LOCAL_IP": "127.0.0.1",
            "COLUMNS": "200",  # rich wraps the CLI's lines at 80 columns otherwise
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    return Driver(" ".join(command[1:]), process)


@dataclass(frozen=True)
class Driver:
    """A driver process started by :func:`start_driver`."""

    name: str
    process: subprocess.Popen[str]

    def output(self, cluster: StandaloneCluster) -> str:
        """Wait for the driver to succeed; its output, or a failed test with the logs."""
        try:
            output, _ = self.process.communicate(timeout=JOB_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            output, _ = self.process.communicate()
            pytest.fail(
                f"{self.name} ran over {JOB_TIMEOUT_SECONDS} s:\n{output[-4000:]}\n"
                f"{cluster.log_tails()}"
            )
        assert self.process.returncode == 0, (
            f"{self.name} failed ({self.process.returncode}):\n{output[-4000:]}\n"
            f"{cluster.log_tails()}"
        )
        return output

    def kill(self) -> None:
        """End the driver and its JVM at once."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.communicate()


def finished_application(cluster: StandaloneCluster, name: str) -> dict[str, Any]:
    """The master's record of the finished application ``name`` (it ran on this cluster)."""
    status = cluster.status()
    applications = [app for app in status["completedapps"] if app["name"] == name]
    assert len(applications) == 1, f"the master finished no single {name!r}: {status}"
    application: dict[str, Any] = applications[0]
    return application


def test_the_feature_job_on_the_cluster_computes_what_local_does(
    standalone_master: StandaloneCluster, pipeline_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    shutil.copytree(pipeline_dir / "data" / "raw", data / "raw")

    output = start_driver(
        [str(QUANTSERVE), "features", "--master", standalone_master.master_url],
        {"QUANTSERVE_DATA_DIR": str(data), "QUANTSERVE_MODELS_DIR": str(tmp_path / "models")},
    ).output(standalone_master)

    assert f"on {standalone_master.master_url}" in output
    application = finished_application(standalone_master, "quantserve-features")
    assert application["state"] == "FINISHED"
    on_cluster = load_features(data / "features")
    on_local = load_features(pipeline_dir / "data" / "features")  # run_features_job, local[2]
    assert len(on_cluster) > 0
    # Exactly, not within a tolerance: every feature is a window over one ticker's rows
    # in date order, and Spark evaluates each frame over its rows in that order on any
    # master, so no sum is reassociated by where or in how many partitions it runs.
    pd.testing.assert_frame_equal(on_cluster, on_local, check_exact=True)

    cluster_manifest = json.loads((data / "features" / MANIFEST_NAME).read_text())
    local_manifest = json.loads((pipeline_dir / "data" / "features" / MANIFEST_NAME).read_text())
    assert cluster_manifest["spark_master"] == standalone_master.master_url
    assert local_manifest["spark_master"].startswith("local[")
    assert cluster_manifest["rows"] == len(on_cluster)
    for key in (
        "rows",
        "tickers",
        "start_date",
        "end_date",
        "years",
        "benchmark",
        "input_sha256",
        "feature_code_version",
        "feature_columns",
        "target_columns",
        "spark_version",
    ):
        assert cluster_manifest[key] == local_manifest[key], key


def test_a_walk_forward_refit_on_the_cluster_forecasts_what_local_does(
    standalone_master: StandaloneCluster, pipeline_dir: Path, spark: SparkSession, tmp_path: Path
) -> None:
    features = pipeline_dir / "data" / "features"  # only read, by the driver and executor
    output = tmp_path / "predictions.parquet"

    on_the_cluster = start_driver(
        [
            *(sys.executable, "-m", "tests.cluster._walk_forward_job"),
            *(standalone_master.master_url, str(features), str(output), str(TEST_YEAR)),
        ]
    )
    # Meanwhile, the same walk-forward on the session's local[2]: the refit a Spark task
    # there too, so TensorFlow runs with one thread per op on both sides.
    try:
        on_local = run_walk_forward(spark, features, walk_forward_config(TEST_YEAR))
    except BaseException:
        on_the_cluster.kill()
        raise
    on_the_cluster.output(standalone_master)

    assert finished_application(standalone_master, APP_NAME)["state"] == "FINISHED"
    on_cluster = pd.read_parquet(output)

    cluster_rows = on_cluster.sort_values(KEYS).reset_index(drop=True)
    local_rows = on_local.sort_values(KEYS).reset_index(drop=True)
    pd.testing.assert_frame_equal(cluster_rows[KEYS], local_rows[KEYS])
    assert set(cluster_rows["date"].dt.year) == {TEST_YEAR}
    assert cluster_rows["refit_train_end"].nunique() == 1
    assert cluster_rows["refit_train_end"].iloc[0].year == TEST_YEAR - 1
    assert {"model", "zero", "linear", "har", "ewma_0.94"} <= set(cluster_rows["forecaster"])
    np.testing.assert_array_equal(cluster_rows["realized"], local_rows["realized"])
    model = cluster_rows["forecaster"] == "model"
    assert model.sum() > 0
    assert np.isfinite(cluster_rows.loc[model, "forecast"]).all()
    np.testing.assert_array_equal(
        cluster_rows.loc[model, "forecast"], local_rows.loc[model, "forecast"]
    )
    np.testing.assert_array_equal(
        cluster_rows.loc[~model, "forecast"], local_rows.loc[~model, "forecast"]
    )
