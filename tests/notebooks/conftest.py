"""Tiny data for the notebooks: a real ingest, Spark features, a model and its evaluation.

Five stocks and the index over 2015-2018, read from the embedded set, with a few faults
put in on purpose so that every section of the data-quality notebook has something to
show: a stale stretch, a bad print (a jump undone the next day) and two rows ingest
must quarantine.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

TICKERS = ["AAPL", "JNJ", "JPM", "XOM", "WMT"]
STALE = ("JPM", "2016-03-01", 7)
"""Ticker, first day and length of the stretch of identical closes put in."""
BAD_PRINT = ("XOM", "2017-06-15", 1.6)
"""Ticker, day and factor of the one-day bad print put in."""
QUARANTINED = {("WMT", "2016-09-13"): "-1", ("AAPL", "2017-02-08"): "abc"}
FIRST_TEST_YEAR = 2018


def faulty_slice(path: Path) -> Path:
    """The wide CSV slice with the faults above, written to ``path``."""
    from training.sources import embedded_dataset_files

    stocks_path, index_path = embedded_dataset_files()
    wide = pd.read_csv(stocks_path)[["Date", *TICKERS]].merge(pd.read_csv(index_path), on="Date")
    wide = wide[(wide["Date"] >= "2015-01-01") & (wide["Date"] <= "2018-12-31")]
    wide = wide.reset_index(drop=True).astype(dict.fromkeys(TICKERS, object))

    ticker, first, days = STALE
    start = int(wide.index[wide["Date"] == first][0])
    wide.loc[start : start + days - 1, ticker] = wide.loc[start, ticker]
    ticker, day, factor = BAD_PRINT
    on_day = wide["Date"] == day
    wide.loc[on_day, ticker] = float(wide.loc[on_day, ticker].iloc[0]) * factor
    for (ticker, day), text in QUARANTINED.items():
        wide.loc[wide["Date"] == day, ticker] = text
    wide.to_csv(path, index=False)
    return path


def build_notebook_data(spark: SparkSession, root: Path) -> Path:
    """``root/data`` and ``root/models`` as the pipeline and `quantserve evaluate` leave them."""
    from typer.testing import CliRunner

    from app.cli import cli
    from app.core.config import get_settings
    from tests.tiny_pipeline import run_tiny_pipeline

    data_dir, models_dir = root / "data", root / "models"
    run_tiny_pipeline(spark, root, faulty_slice(root / "slice.csv"))
    # The walk-forward as `quantserve evaluate --in-process` runs it: one yearly refit.
    # The notebooks read no MLflow run, so none is recorded (it would cost a database).
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("QUANTSERVE_DATA_DIR", str(data_dir))
        patch.setenv("QUANTSERVE_MODELS_DIR", str(models_dir))
        patch.setenv("QUANTSERVE_TRACKING__ENABLED", "false")
        get_settings.cache_clear()
        try:
            result = CliRunner().invoke(
                cli,
                ["evaluate", "--first-year", str(FIRST_TEST_YEAR), "--epochs", "2", "--in-process"],
            )
        finally:
            get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture(scope="session")
def notebook_data(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The root holding ``data/`` and ``models/`` the notebooks read; none may write there."""
    return build_notebook_data(spark, tmp_path_factory.mktemp("notebook-data"))
