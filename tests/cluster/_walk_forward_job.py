"""One walk-forward year on a given Spark master, run in a process of its own.

``python -m tests.cluster._walk_forward_job MASTER FEATURES_DIR OUTPUT TEST_YEAR`` makes
the library call that ``quantserve evaluate`` makes, with a tiny network and without
the GARCH baselines and the Spark ML challenger, and writes the predictions to
``OUTPUT`` (Parquet). The refit runs as a Spark task on ``MASTER``'s executors.
"""

from __future__ import annotations

import sys
from pathlib import Path

from training.config import TrainingConfig
from training.evaluation import WalkForwardConfig, run_walk_forward
from training.spark import build_spark_session

APP_NAME = "quantserve-walk-forward"
TINY_TRAINING = TrainingConfig(
    lookback_days=10, hidden_units=8, epochs=1, batch_size=256, window_stride=2
)


def walk_forward_config(test_year: int) -> WalkForwardConfig:
    """One refit: train up to the purge gap before ``test_year``, forecast that year."""
    return WalkForwardConfig(
        first_test_year=test_year,
        last_test_year=test_year,
        training=TINY_TRAINING,
        garch=False,
        challenger=False,
    )


def main(arguments: list[str]) -> None:
    master, features_dir, output, test_year = arguments
    spark = build_spark_session(master, APP_NAME)
    try:
        predictions = run_walk_forward(
            spark, Path(features_dir), walk_forward_config(int(test_year))
        )
    finally:
        spark.stop()
    predictions.to_parquet(output, index=False)


if __name__ == "__main__":
    main(sys.argv[1:])
