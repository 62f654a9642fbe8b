"""Session-wide fixtures: one Spark session per test run, the embedded data set."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """A real local Spark session shared by the whole run (starting one costs ~7 s)."""
    from training.spark import build_spark_session

    session = build_spark_session("local[2]", "quantserve-tests", shuffle_partitions=4)
    yield session
    session.stop()
