"""Session-wide fixtures: one Spark session per test run, one run of the real pipeline."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# Apps built by tests run without API keys unless a test configures keys itself (the
# auth tests do); servers the tests start as subprocesses inherit it too.
os.environ.setdefault("QUANTSERVE_DEV_MODE", "1")
# XLA compiles each allowed batch size when a version loads (~2 s a size on the tiny
# test models), and the suite loads models hundreds of times; so apps built by tests
# serve through the SavedModel's signature as loaded, unless a test turns XLA on:
# tests/app/test_compiled_model.py (outputs, plans, a served app) and tests/faults (the
# hot swap under load, with XLA) do.
os.environ.setdefault("QUANTSERVE_BATCHING__XLA", "false")


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """A real local Spark session shared by the whole run (starting one costs ~7 s)."""
    from training.spark import build_spark_session

    session = build_spark_session("local[2]", "quantserve-tests", shuffle_partitions=4)
    yield session
    session.stop()


PIPELINE_TICKERS = ["AAPL", "JNJ", "JPM", "XOM", "WMT"]


@pytest.fixture(scope="session")
def pipeline_dir(spark, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5 tickers and the index over 2015-2018, through the whole offline pipeline.

    Returns the root holding ``data/`` and ``models/``; every test that needs a real
    model shares it, so none may write there.
    """
    from tests.tiny_pipeline import run_tiny_pipeline
    from training.sources import embedded_dataset_files

    root = tmp_path_factory.mktemp("e2e")
    stocks_path, index_path = embedded_dataset_files()
    stocks = pd.read_csv(stocks_path)
    index = pd.read_csv(index_path)
    wide = stocks[["Date", *PIPELINE_TICKERS]].merge(index, on="Date")
    wide = wide[(wide["Date"] >= "2015-01-01") & (wide["Date"] <= "2018-12-31")]
    source = root / "slice.csv"
    wide.to_csv(source, index=False)

    manifest = run_tiny_pipeline(spark, root, source)
    assert manifest["rows"] == len(wide) * 6
    return root


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    """Debian's prometheus server; a test that needs it is skipped, saying so, without it."""
    import shutil

    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip(
            "prometheus is not installed, so the tests against a real Prometheus are skipped "
            "(`make test` installs it when run as root: apt-get install prometheus)"
        )
    return binary
