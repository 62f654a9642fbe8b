"""`quantserve features` SIGKILLed (driver and JVM) in the middle of its Parquet write:
the previous features stay intact and readable, and the next run succeeds."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from pyspark.sql import SparkSession

from training import schema
from training.features import load_features, run_features_job

QUANTSERVE = Path(sys.executable).with_name("quantserve")


def _digest(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` and the SHA-256 of its bytes."""
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def _staging_with_parquet(data: Path) -> bool:
    """Spark is writing: a staging folder of the features holds a Parquet part file."""
    return any(
        any(staging.rglob("*.parquet"))
        for staging in data.glob(".features.tmp-*")
        if staging.is_dir()
    )


def test_a_features_job_killed_mid_write_leaves_the_old_features_and_the_next_run_works(
    spark: SparkSession, pipeline_dir: Path, tmp_path: Path, report
) -> None:
    data = tmp_path / "data"
    shutil.copytree(pipeline_dir / "data" / "raw", data / "raw")
    shutil.copytree(pipeline_dir / "data" / "features", data / "features")
    before = _digest(data / "features")
    rows_before = len(load_features(data / "features"))

    job = subprocess.Popen(
        [str(QUANTSERVE), "features", "--master", "local[2]"],
        env={
            **os.environ,
            "QUANTSERVE_DATA_DIR": str(data),
            "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable,
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the driver and its JVM: one process group to kill
    )
    try:
        deadline = time.monotonic() + 300
        while not _staging_with_parquet(data):
            assert job.poll() is None, f"the job ended ({job.returncode}) before its write"
            assert time.monotonic() < deadline, "the job never started writing"
            time.sleep(0.02)
        os.killpg(job.pid, signal.SIGKILL)
    finally:
        job.wait(timeout=60)
    assert job.returncode == -signal.SIGKILL
    assert list(data.glob(".features.tmp-*")), "the kill left no half-written staging"

    # The previous features: byte for byte, and readable.
    assert _digest(data / "features") == before
    assert len(load_features(data / "features")) == rows_before

    # The next run (here in this process's Spark session) writes them whole again and
    # clears what the killed one left.
    manifest = run_features_job(
        spark, data / "raw" / "prices.parquet", data / "features", "SP500", None
    )
    assert manifest["rows"] == rows_before
    assert sorted(p.name for p in data.iterdir()) == ["features", "raw"]
    order = [schema.TICKER, schema.DATE]
    pd.testing.assert_frame_equal(
        load_features(data / "features").sort_values(order, ignore_index=True),
        load_features(pipeline_dir / "data" / "features").sort_values(order, ignore_index=True),
    )
    report("Spark job SIGKILLed mid-write", "previous features intact, next run succeeded")
