"""The Spark ML challenger: gradient-boosted trees on the same features, trained by Spark.

Two ``pyspark.ml`` GBT regressors on the 12 features at ``t`` (no look-back window:
trees take one row): one for the forward 5-day log return, one for the log of the
forward 21-day variance, turned back into a variance with the lognormal mean
correction ``exp(m + s^2/2)`` (``s^2``: the training residuals' variance). Fitting is
itself distributed, so in the walk-forward the challenger's refits run one after the
other on the driver, each a Spark job.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from training import schema
from training.model_store import METADATA_FILE, new_version

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

NAME = "spark_gbt"
# 21-day variances below (0.1%)^2 come from stale prices, not quiet markets: left out
# of the fit, as training leaves out flagged stale stretches. With them in, a few leaves
# learned near-zero variances and the challenger's out-of-sample QLIKE was 87.7.
STALE_VARIANCE = 1e-6
GBT_PARAMS: dict[str, Any] = {
    "maxIter": 30,
    "maxDepth": 4,
    "stepSize": 0.1,
    "subsamplingRate": 0.5,
    "seed": 7,
}
_LOG_VARIANCE = "_log_variance"


@dataclass(frozen=True)
class GbtChallenger:
    """The two fitted GBT models and the variance's bias correction."""

    return_model: Any
    log_variance_model: Any
    log_variance_bias: float

    def predict(self, rows: DataFrame) -> pd.DataFrame:
        """``date, ticker, log_return_5d, variance_21d`` forecasts for ``rows``."""
        from pyspark.sql import functions as sf

        assembled = _assemble(rows)
        returns = self.return_model.transform(assembled).select(
            schema.DATE, schema.TICKER, sf.col("prediction").alias("log_return_5d")
        )
        variances = self.log_variance_model.transform(assembled).select(
            schema.DATE,
            schema.TICKER,
            sf.exp(sf.col("prediction") + sf.lit(self.log_variance_bias)).alias("variance_21d"),
        )
        joined: pd.DataFrame = returns.join(variances, [schema.DATE, schema.TICKER]).toPandas()
        joined[schema.DATE] = pd.to_datetime(joined[schema.DATE])
        return joined

    def save(self, folder: Path) -> None:
        """Spark ML's own format, one folder per model."""
        self.return_model.write().overwrite().save(str(folder / "log_return_5d"))
        self.log_variance_model.write().overwrite().save(str(folder / "log_variance_21d"))


def fit_challenger(train_rows: DataFrame) -> GbtChallenger:
    """Fit both GBTs on rows with every feature and both targets known, stale ones out."""
    from pyspark.ml.regression import GBTRegressor
    from pyspark.sql import functions as sf

    known = train_rows.dropna(subset=list(schema.TARGET_COLUMNS)).where(
        sf.col(schema.TARGET_VARIANCE) >= STALE_VARIANCE
    )
    usable = _assemble(known).withColumn(_LOG_VARIANCE, sf.log(schema.TARGET_VARIANCE)).cache()
    try:
        return_model = GBTRegressor(labelCol=schema.TARGET_RETURN, **GBT_PARAMS).fit(usable)
        variance_model = GBTRegressor(labelCol=_LOG_VARIANCE, **GBT_PARAMS).fit(usable)
        residuals = (
            variance_model.transform(usable)
            .select((sf.col(_LOG_VARIANCE) - sf.col("prediction")).alias("residual"))
            .agg(sf.var_pop("residual").alias("variance"))
            .first()
        )
    finally:
        usable.unpersist()
    bias = 0.5 * float(residuals["variance"]) if residuals is not None else 0.0
    return GbtChallenger(return_model, variance_model, bias)


def challenger_forecasts(
    spark: SparkSession, features_path: Path, refits: list[Any], samples: pd.DataFrame
) -> pd.DataFrame:
    """Walk-forward forecasts of the challenger, on the given (date, ticker) samples.

    ``samples`` holds ``date, ticker, target, realized`` of the model's test samples,
    so the challenger is scored on exactly the same rows.
    """
    from pyspark.sql import functions as sf

    table = spark.read.parquet(features_path.resolve().as_uri())
    parts = []
    for refit in refits:
        train = table.where(sf.col(schema.DATE) <= sf.lit(refit.train_end.date()))
        test = table.where(
            (sf.col(schema.DATE) >= sf.lit(refit.test_start.date()))
            & (sf.col(schema.DATE) <= sf.lit(refit.test_end.date()))
        )
        parts.append(fit_challenger(train).predict(test))
    forecasts = pd.concat(parts, ignore_index=True).melt(
        id_vars=[schema.DATE, schema.TICKER], var_name="target", value_name="forecast"
    )
    merged = samples.merge(forecasts, on=[schema.DATE, schema.TICKER, "target"], how="left")
    merged["forecaster"] = NAME
    return merged


def train_and_save_challenger(
    spark: SparkSession,
    features_path: Path,
    models_dir: Path,
    data: dict[str, Any],
    tracking: Mapping[str, Any] | None = None,
) -> tuple[int, Path]:
    """Fit on every row with known targets; save under ``models_dir/spark/<version>/``.

    ``tracking`` (the MLflow run's ``metadata_fields()``) goes into ``metadata.json``,
    as a forecaster version's does.
    """
    table = spark.read.parquet(features_path.resolve().as_uri())
    challenger = fit_challenger(table)
    with new_version(models_dir / "spark") as (version, folder):
        challenger.save(folder)
        metadata = {
            "name": "spark",
            "version": version,
            "kind": "pyspark.ml GBTRegressor",
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "features": list(schema.FEATURE_COLUMNS),
            "targets": {
                "log_return_5d": schema.TARGET_RETURN,
                "log_variance_21d": f"ln({schema.TARGET_VARIANCE})",
            },
            "log_variance_bias": challenger.log_variance_bias,
            "params": GBT_PARAMS,
            "data": data,
            **(tracking or {}),
        }
        (folder / METADATA_FILE).write_text(json.dumps(metadata, indent=2, default=str))
    return version, models_dir / "spark" / str(version)


def _assemble(rows: DataFrame) -> DataFrame:
    from pyspark.ml.feature import VectorAssembler

    complete = rows.dropna(subset=list(schema.FEATURE_COLUMNS))
    return VectorAssembler(inputCols=list(schema.FEATURE_COLUMNS), outputCol="features").transform(
        complete
    )
