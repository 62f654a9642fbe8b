"""A price table and features up to a cut-off, and the embedded bars after it to stream in.

Five stocks and the index over 2017-2018, as ``quantserve pipeline --until`` would
leave them on 2018-11-30; the December 2018 bars are the "new" days.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pandas.testing as pdt
import pytest

from tests.tiny_pipeline import ingest_and_features
from training.config import StreamConfig
from training.features import load_features, run_features_job
from training.sources import embedded_dataset_files
from training.stream import BatchReport, run_stream

TICKERS = ["AAPL", "JNJ", "JPM", "XOM", "WMT"]
CUT_OFF = "2018-11-30"
LAST_DAY = "2018-12-31"


def embedded_wide() -> pd.DataFrame:
    """The five stocks and SP500, 2017-01-01..2018-12-31, wide, as the CSVs spell them."""
    stocks_path, index_path = embedded_dataset_files()
    wide = pd.read_csv(stocks_path)[["Date", *TICKERS]].merge(pd.read_csv(index_path), on="Date")
    return wide[(wide["Date"] >= "2017-01-01") & (wide["Date"] <= LAST_DAY)].reset_index(drop=True)


def new_days() -> list[tuple[str, pd.DataFrame]]:
    """Each day after the cut-off: its date and its long bars (date, ticker, close)."""
    wide = embedded_wide()
    later = wide[wide["Date"] > CUT_OFF]
    long = later.melt(id_vars="Date", var_name="ticker", value_name="close").rename(
        columns={"Date": "date"}
    )
    return [(day, bars.reset_index(drop=True)) for day, bars in long.groupby("date", sort=True)]


def land(landing: Path, name: str, bars: pd.DataFrame) -> Path:
    """Write a bar file the way a producer should: hidden, then renamed into place."""
    landing.mkdir(parents=True, exist_ok=True)
    hidden = landing / f".{name}.tmp"
    bars.to_csv(hidden, index=False)
    final = landing / name
    hidden.rename(final)
    return final


@pytest.fixture(scope="session")
def cut_off_data(spark, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``data/`` with prices and features up to the cut-off (shared: copy before writing)."""
    root = tmp_path_factory.mktemp("stream-base")
    wide = embedded_wide()
    source = root / "until.csv"
    wide[wide["Date"] <= CUT_OFF].to_csv(source, index=False)
    data = root / "data"
    ingest_and_features(spark, data, source)
    return data


@pytest.fixture
def data_dir(cut_off_data: Path, tmp_path: Path) -> Path:
    """A private copy of the cut-off data to stream into."""
    target = tmp_path / "data"
    shutil.copytree(cut_off_data, target)
    return target


def stream_available(spark, data: Path, **config: object) -> list[BatchReport]:
    """Run the stream over what is waiting (folder or topic, by ``config``); its batches."""
    reports: list[BatchReport] = []
    run_stream(
        spark,
        raw_dir=data / "raw",
        features_dir=data / "features",
        landing_dir=data / "landing",
        checkpoint_dir=data / "checkpoint",
        config=StreamConfig(**config),  # type: ignore[arg-type]
        available_now=True,
        on_batch=reports.append,
    )
    return reports


def assert_features_match_a_full_run(spark, data: Path, scratch: Path) -> None:
    """The streamed feature table equals the feature job run on the same prices."""
    full = scratch / "full-features"
    run_features_job(
        spark, data / "raw" / "prices.parquet", full, benchmark="SP500", input_manifest_sha256=None
    )
    pdt.assert_frame_equal(load_features(data / "features"), load_features(full))
