"""Building the Spark session the feature job runs on."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def build_spark_session(
    master: str = "local[*]",
    app_name: str = "quantserve",
    *,
    driver_memory: str = "2g",
    shuffle_partitions: int = 8,
    extra_conf: dict[str, str] | None = None,
) -> SparkSession:
    """Return a Spark session on ``master`` (``local[*]``, ``spark://…``, ``k8s://…``).

    Python workers run ``PYSPARK_PYTHON``, which defaults to the system ``python3``
    rather than this interpreter; it is pinned to ``sys.executable`` unless the caller
    set it, so workers import the same pandas and pyarrow as the driver. On a cluster,
    set ``PYSPARK_PYTHON`` to the executors' interpreter.
    """
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.driver.memory", driver_memory)
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
    )
    for key, value in (extra_conf or {}).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session
