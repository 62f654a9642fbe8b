"""Tests for ``training.features``: each column against numpy, no look-ahead, atomic writes.

The reference below recomputes every column with explicit loops over each ticker's rows,
sharing no code with the Spark job, so a wrong frame, lag or null rule shows up as a
mismatch.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from training import features as features_module
from training.errors import ArtifactNotFound, DataError
from training.features import (
    MANIFEST_NAME,
    OUTPUT_COLUMNS,
    compute_features,
    load_features,
    run_features_job,
    write_features,
)
from training.schema import FEATURE_COLUMNS, TARGET_COLUMNS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

BENCHMARK = "BENCH"
TICKERS = ("AAA", "BBB", "CCC")
N_DAYS = 400
RISING_ROWS = slice(100, 120)  # AAA: 20 daily gains in a row, no loss
FLAT_ROWS = slice(200, 230)  # AAA: 30 unchanged closes
CUTOFF_ROW = 320  # look-ahead tests cut the history after this date
PRICE_SCHEMA = "date date, ticker string, close double, volume double"
RAW_ARROW_SCHEMA = pa.schema(
    [
        ("date", pa.date32()),
        ("ticker", pa.string()),
        ("close", pa.float64()),
        ("volume", pa.float64()),
    ]
)
REPO_ROOT = Path(__file__).resolve().parents[2]


# --- synthetic data and the independent reference -------------------------------------


def _synthetic_prices() -> pd.DataFrame:
    """Long prices: a benchmark and 3 stocks, geometric random walks over 400 business days.

    Irregularities the windows must survive: CCC starts 30 rows late, BBB misses three
    dates, the benchmark misses one date the stocks trade on, and AAA has a run of gains
    only and a run of unchanged closes.
    """
    rng = np.random.default_rng(20240611)
    dates = pd.bdate_range("2021-01-04", periods=N_DAYS).date
    market = rng.normal(0.0003, 0.01, N_DAYS)
    paths = {BENCHMARK: 3000.0 * np.exp(np.cumsum(market))}
    for ticker, beta, start in zip(TICKERS, (0.6, 1.0, 1.4), (50.0, 120.0, 20.0), strict=True):
        log_returns = beta * market + rng.normal(0.0, 0.012, N_DAYS)
        if ticker == "AAA":
            log_returns[RISING_ROWS] = 0.002
            log_returns[FLAT_ROWS] = 0.0
        paths[ticker] = start * np.exp(np.cumsum(log_returns))
    frames = [
        pd.DataFrame({"date": dates, "ticker": ticker, "close": path, "volume": np.nan})
        for ticker, path in paths.items()
    ]
    prices = pd.concat(frames, ignore_index=True)
    dropped = (
        ((prices["ticker"] == "CCC") & (prices["date"] < dates[30]))
        | ((prices["ticker"] == "BBB") & prices["date"].isin(dates[[150, 151, 300]]))
        | ((prices["ticker"] == BENCHMARK) & (prices["date"] == dates[380]))
    )
    kept: pd.DataFrame = prices[~dropped].reset_index(drop=True)
    return kept


def _trailing(values: np.ndarray, t: int, rows: int) -> np.ndarray | None:
    """``values[t-rows+1 .. t]`` if that many rows exist and none is NaN, else None."""
    if t - rows + 1 < 0:
        return None
    window = values[t - rows + 1 : t + 1]
    return None if np.isnan(window).any() else window


def _reference_features(prices: pd.DataFrame, benchmark: str | None) -> pd.DataFrame:
    """Every feature and target, by loops over each ticker's rows in date order."""
    prices = prices.sort_values(["ticker", "date"])
    log_returns: dict[str, pd.Series] = {}
    for ticker, rows in prices.groupby("ticker"):
        close = rows["close"].to_numpy()
        daily = np.concatenate([[np.nan], np.log(close[1:] / close[:-1])])
        log_returns[str(ticker)] = pd.Series(daily, index=rows["date"].to_numpy())
    if benchmark is None:
        stacked = pd.concat(log_returns.values())
        market = stacked.groupby(level=0).mean()  # skips NaN: tickers with a return that day
    else:
        market = log_returns[benchmark]

    out = []
    for ticker, rows in prices.groupby("ticker"):
        if ticker == benchmark:
            continue
        p = rows["close"].to_numpy()
        r = log_returns[str(ticker)].to_numpy()
        r_m = market.reindex(rows["date"].to_numpy()).to_numpy()
        change = np.concatenate([[np.nan], np.diff(p)])
        n = len(p)
        col = {name: np.full(n, np.nan) for name in (*FEATURE_COLUMNS, *TARGET_COLUMNS)}
        for t in range(n):
            for days in (1, 5, 21):
                if t >= days:
                    col[f"log_return_{days}d"][t] = np.log(p[t] / p[t - days])
            for days in (21, 63):
                if (window := _trailing(r, t, days)) is not None:
                    col[f"realized_vol_{days}d"][t] = np.sqrt(252 / days * np.sum(window**2))
            for days in (63, 252):
                if t >= days:
                    col[f"momentum_{days}d_skip_21d"][t] = np.log(p[t - 21] / p[t - days])
            for days in (50, 200):
                if (window := _trailing(p, t, days)) is not None:
                    col[f"price_to_sma_{days}d"][t] = p[t] / np.mean(window) - 1
            if (window := _trailing(change, t, 14)) is not None:
                gain = np.mean(np.where(window > 0, window, 0.0))
                loss = np.mean(np.where(window < 0, -window, 0.0))
                col["rsi_14d"][t] = 100.0 if loss == 0 else 100 - 100 / (1 + gain / loss)
            if (window := _trailing(p, t, 252)) is not None:
                col["drawdown_252d"][t] = p[t] / np.max(window) - 1
            stock, mkt = _trailing(r, t, 252), _trailing(r_m, t, 252)
            if stock is not None and mkt is not None:
                cov = np.cov(stock, mkt, ddof=1)[0, 1]
                col["beta_252d"][t] = cov / np.var(mkt, ddof=1)
            if t + 5 < n:
                col["target_log_return_5d"][t] = np.log(p[t + 5] / p[t])
            if t + 21 < n:
                col["target_realized_variance_21d"][t] = np.sum(r[t + 1 : t + 22] ** 2)
        frame = pd.DataFrame({"date": pd.to_datetime(rows["date"]), "ticker": ticker, **col})
        out.append(frame)
    return pd.concat(out).sort_values(["ticker", "date"]).reset_index(drop=True)


# --- helpers and fixtures ------------------------------------------------------------


def _spark_prices(spark: SparkSession, prices: pd.DataFrame) -> DataFrame:
    frame: DataFrame = spark.createDataFrame(
        prices[["date", "ticker", "close", "volume"]], PRICE_SCHEMA
    )
    return frame


def _to_pandas(features: DataFrame) -> pd.DataFrame:
    """Spark output in the shape ``load_features`` returns."""
    frame = features.toPandas()
    frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[ns]")
    frame["year"] = frame["year"].astype("int64")
    return frame.sort_values(["ticker", "date"]).reset_index(drop=True)


def _features(spark: SparkSession, prices: pd.DataFrame, benchmark: str | None) -> pd.DataFrame:
    return _to_pandas(compute_features(_spark_prices(spark, prices), benchmark))


def _entries(folder: Path) -> list[str]:
    """Names in ``folder``, hidden ones (Hadoop's ``.crc`` checksums) included."""
    return sorted(path.name for path in folder.iterdir())


@pytest.fixture(scope="module")
def synthetic_prices() -> pd.DataFrame:
    return _synthetic_prices()


@pytest.fixture(scope="module")
def cutoff(synthetic_prices: pd.DataFrame) -> dt.date:
    dates = synthetic_prices.loc[synthetic_prices["ticker"] == "AAA", "date"]
    cutoff_date: dt.date = dates.sort_values().iloc[CUTOFF_ROW]
    return cutoff_date


@pytest.fixture(scope="module")
def synthetic_features(spark: SparkSession, synthetic_prices: pd.DataFrame) -> Iterator[DataFrame]:
    """Spark features of the synthetic data, cached: several tests write them."""
    features = compute_features(_spark_prices(spark, synthetic_prices), BENCHMARK).persist()
    yield features
    features.unpersist()


@pytest.fixture(scope="module")
def computed(synthetic_features: DataFrame) -> pd.DataFrame:
    return _to_pandas(synthetic_features)


@pytest.fixture(scope="module")
def expected(synthetic_prices: pd.DataFrame) -> pd.DataFrame:
    return _reference_features(synthetic_prices, BENCHMARK)


def _assert_column_matches(actual: pd.Series, wanted: pd.Series) -> None:
    """Nulls in the same places, values equal to 1e-9 relative."""
    got, want = actual.to_numpy(float), wanted.to_numpy(float)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"nulls of {actual.name}")
    known = ~np.isnan(want)
    assert known.sum() > 0, f"{actual.name} is never computed: the comparison proves nothing"
    np.testing.assert_allclose(got[known], want[known], rtol=1e-9, atol=1e-12, err_msg=actual.name)


# --- definitions ----------------------------------------------------------------------


def test_one_row_per_stock_and_date(computed: pd.DataFrame, synthetic_prices: pd.DataFrame) -> None:
    assert tuple(computed.columns) == OUTPUT_COLUMNS
    stocks = synthetic_prices[synthetic_prices["ticker"] != BENCHMARK]
    wanted = stocks.assign(date=pd.to_datetime(stocks["date"]))[["ticker", "date"]]
    pd.testing.assert_frame_equal(
        computed[["ticker", "date"]],
        wanted.sort_values(["ticker", "date"]).reset_index(drop=True),
    )
    assert (computed["year"] == computed["date"].dt.year).all()
    np.testing.assert_array_equal(
        computed["close"], stocks.sort_values(["ticker", "date"])["close"]
    )


@pytest.mark.parametrize("column", [*FEATURE_COLUMNS, *TARGET_COLUMNS])
def test_column_matches_numpy_reference(
    computed: pd.DataFrame, expected: pd.DataFrame, column: str
) -> None:
    pd.testing.assert_frame_equal(computed[["ticker", "date"]], expected[["ticker", "date"]])
    _assert_column_matches(computed[column], expected[column])


@pytest.mark.parametrize(
    ("column", "first_row"),
    [
        ("log_return_1d", 1),
        ("log_return_5d", 5),
        ("log_return_21d", 21),
        ("realized_vol_21d", 21),
        ("realized_vol_63d", 63),
        ("momentum_63d_skip_21d", 63),
        ("momentum_252d_skip_21d", 252),
        ("price_to_sma_50d", 49),
        ("price_to_sma_200d", 199),
        ("rsi_14d", 14),
        ("drawdown_252d", 251),
        ("beta_252d", 252),
    ],
)
def test_feature_is_null_until_its_window_is_full(
    computed: pd.DataFrame, column: str, first_row: int
) -> None:
    # AAA has every date, so row i is the (i+1)-th close; CCC's history starts 30 rows late.
    for ticker in ("AAA", "CCC"):
        values = computed.loc[computed["ticker"] == ticker, column].to_numpy()
        assert np.isnan(values[:first_row]).all(), ticker
        assert not np.isnan(values[first_row]), ticker


def test_targets_are_null_where_the_future_is_unknown(computed: pd.DataFrame) -> None:
    for _ticker, rows in computed.groupby("ticker"):
        forward_return = rows["target_log_return_5d"].to_numpy()
        forward_variance = rows["target_realized_variance_21d"].to_numpy()
        assert np.isnan(forward_return[-5:]).all()
        assert not np.isnan(forward_return[:-5]).any()
        assert np.isnan(forward_variance[-21:]).all()
        assert not np.isnan(forward_variance[:-21]).any()


def test_beta_is_null_for_252_rows_after_a_benchmark_gap(
    computed: pd.DataFrame, synthetic_prices: pd.DataFrame
) -> None:
    all_dates = pd.to_datetime(pd.Series(sorted(synthetic_prices["date"].unique())))
    gap = all_dates.iloc[380]  # the benchmark has no close that day
    aaa = computed[computed["ticker"] == "AAA"]
    assert aaa.loc[aaa["date"] < gap, "beta_252d"].notna().sum() == 380 - 252
    assert aaa.loc[aaa["date"] >= gap, "beta_252d"].isna().all()


def test_rsi_is_100_without_losses_and_flat_closes_give_zero_vol(computed: pd.DataFrame) -> None:
    aaa = computed[computed["ticker"] == "AAA"].reset_index(drop=True)
    # 14 gains in a row end at RISING_ROWS.start + 13, 14 zero changes at FLAT_ROWS.start + 14.
    assert aaa.loc[RISING_ROWS.start + 13 : RISING_ROWS.stop - 1, "rsi_14d"].eq(100.0).all()
    assert aaa.loc[FLAT_ROWS.start + 14 : FLAT_ROWS.stop - 1, "rsi_14d"].eq(100.0).all()
    assert aaa.loc[FLAT_ROWS.start + 21 : FLAT_ROWS.stop - 1, "realized_vol_21d"].eq(0.0).all()
    assert aaa["rsi_14d"].between(0, 100).sum() == aaa["rsi_14d"].notna().sum()


def test_equal_weighted_market_proxy_without_benchmark(
    spark: SparkSession, synthetic_prices: pd.DataFrame
) -> None:
    stocks = synthetic_prices[synthetic_prices["ticker"] != BENCHMARK]
    actual = _features(spark, stocks, None)
    wanted = _reference_features(stocks, None)
    pd.testing.assert_frame_equal(actual[["ticker", "date"]], wanted[["ticker", "date"]])
    for column in (*FEATURE_COLUMNS, *TARGET_COLUMNS):
        _assert_column_matches(actual[column], wanted[column])


# --- no look-ahead ---------------------------------------------------------------------


def _assert_same_features_up_to(
    actual: pd.DataFrame, wanted: pd.DataFrame, cutoff: dt.date
) -> None:
    """Every feature column identical at dates <= cutoff, and all computed at the cutoff."""

    def up_to_cutoff(frame: pd.DataFrame) -> pd.DataFrame:
        kept = frame[frame["date"] <= pd.Timestamp(cutoff)]
        return kept[["ticker", "date", *FEATURE_COLUMNS]].reset_index(drop=True)

    expected_part = up_to_cutoff(wanted)
    pd.testing.assert_frame_equal(up_to_cutoff(actual), expected_part, check_exact=True)
    # Teeth: a leaking feature could hide behind nulls on both sides (e.g. a frame
    # reaching one row ahead is never "full" under the count rule). At the cutoff every
    # ticker has 252+ rows, so every feature must be there.
    at_cutoff = expected_part[expected_part["date"] == pd.Timestamp(cutoff)]
    assert len(at_cutoff) == len(TICKERS)
    assert at_cutoff[list(FEATURE_COLUMNS)].notna().all(axis=None)


@pytest.mark.parametrize("benchmark", [BENCHMARK, None])
def test_no_lookahead_dropping_the_future_changes_no_feature(
    spark: SparkSession, synthetic_prices: pd.DataFrame, cutoff: dt.date, benchmark: str | None
) -> None:
    prices = synthetic_prices
    if benchmark is None:
        prices = prices[prices["ticker"] != BENCHMARK]
    full = _features(spark, prices, benchmark)
    truncated = _features(spark, prices[prices["date"] <= cutoff], benchmark)

    _assert_same_features_up_to(truncated, full, cutoff)
    # The targets do see the future: the check above would catch a feature that did.
    last_days = truncated["date"] > pd.Timestamp(cutoff) - pd.Timedelta(days=5)
    assert truncated.loc[last_days, "target_log_return_5d"].isna().all()
    same_days = full["date"].isin(truncated.loc[last_days, "date"])
    assert full.loc[same_days, "target_log_return_5d"].notna().all()


def test_no_lookahead_perturbing_the_future_changes_no_feature(
    spark: SparkSession,
    synthetic_prices: pd.DataFrame,
    computed: pd.DataFrame,
    cutoff: dt.date,
) -> None:
    perturbed = synthetic_prices.copy()
    after = perturbed["date"] > cutoff
    factors = np.random.default_rng(7).uniform(0.5, 1.5, after.sum())
    perturbed.loc[after, "close"] = perturbed.loc[after, "close"] * factors
    changed = _features(spark, perturbed, BENCHMARK)

    _assert_same_features_up_to(changed, computed, cutoff)
    at_cutoff = changed["date"] == pd.Timestamp(cutoff)
    assert not np.allclose(
        changed.loc[at_cutoff, "target_log_return_5d"],
        computed.loc[at_cutoff, "target_log_return_5d"],
    ), "the perturbation must reach the targets, or the test proves nothing"


# --- the embedded S&P 500 data -----------------------------------------------------------


@pytest.fixture(scope="module")
def sp500_prices() -> pd.DataFrame:
    """AAPL, JPM, XOM and the S&P 500 index, 2015-2018, long format."""
    data = resources.files("skfolio") / "datasets" / "data"
    with (data / "sp500_dataset.csv.gz").open("rb") as handle:
        stocks = pd.read_csv(handle, compression="gzip", usecols=["Date", "AAPL", "JPM", "XOM"])
    with (data / "sp500_index.csv.gz").open("rb") as handle:
        index = pd.read_csv(handle, compression="gzip")
    wide = stocks.merge(index, on="Date")
    wide["Date"] = pd.to_datetime(wide["Date"])
    wide = wide[(wide["Date"] >= "2015-01-01") & (wide["Date"] <= "2018-12-31")]
    long = wide.melt(id_vars="Date", var_name="ticker", value_name="close")
    long["date"] = long.pop("Date").dt.date
    long["volume"] = np.nan
    return long


def test_embedded_sp500_slice_is_plausible(spark: SparkSession, sp500_prices: pd.DataFrame) -> None:
    actual = _features(spark, sp500_prices, "SP500")

    assert sorted(actual["ticker"].unique()) == ["AAPL", "JPM", "XOM"]
    assert len(actual) == 3 * sp500_prices["date"].nunique()
    for column in ("realized_vol_21d", "realized_vol_63d"):
        vol = actual[column].dropna()
        assert len(vol) > 2500
        assert vol.between(0.05, 1.5).mean() > 0.95, column
    beta = actual["beta_252d"].dropna()
    assert len(beta) > 2000
    assert beta.between(0.0, 2.5).mean() > 0.95
    assert actual["rsi_14d"].dropna().between(0.0, 100.0).all()
    drawdown = actual["drawdown_252d"].dropna()
    assert ((drawdown <= 0) & (drawdown > -1)).all()
    assert (drawdown == 0).any()  # a new 252-day high happens in four years


# --- writing and reading ---------------------------------------------------------------


def test_write_features_layout_and_manifest(
    spark: SparkSession, tmp_path: Path, synthetic_features: DataFrame, computed: pd.DataFrame
) -> None:
    output = tmp_path / "features"
    manifest = write_features(
        synthetic_features, output, {"benchmark": BENCHMARK, "input_sha256": "ab" * 32}
    )

    assert _entries(tmp_path) == ["features"], "no temporary directory is left behind"
    visible = [name for name in _entries(output) if not name.startswith(".")]
    assert visible == sorted([MANIFEST_NAME, "_SUCCESS", "year=2021", "year=2022"])
    for year_dir in output.glob("year=*"):
        assert 1 <= len(list(year_dir.glob("*.parquet"))) <= 4
    assert json.loads((output / MANIFEST_NAME).read_text()) == manifest

    source = b"".join(path.read_bytes() for path in features_module.FEATURE_CODE_FILES)
    assert manifest["feature_code_version"] == hashlib.sha256(source).hexdigest()[:12]
    assert manifest["rows"] == len(computed)
    assert manifest["tickers"] == list(TICKERS)
    assert manifest["start_date"] == computed["date"].min().date().isoformat()
    assert manifest["end_date"] == computed["date"].max().date().isoformat()
    assert manifest["years"] == [2021, 2022]
    assert manifest["feature_columns"] == list(FEATURE_COLUMNS)
    assert manifest["target_columns"] == list(TARGET_COLUMNS)
    assert manifest["benchmark"] == BENCHMARK
    assert manifest["input_sha256"] == "ab" * 32
    assert manifest["spark_master"] == "local[2]"
    assert manifest["spark_version"] == spark.version
    created = dt.datetime.fromisoformat(manifest["created_at"])
    assert created.utcoffset() == dt.timedelta(0)
    assert abs(dt.datetime.now(dt.UTC) - created) < dt.timedelta(minutes=5)


def test_load_features_round_trip(
    tmp_path: Path, synthetic_features: DataFrame, computed: pd.DataFrame
) -> None:
    write_features(synthetic_features, tmp_path / "features", {})
    loaded = load_features(tmp_path / "features")

    assert loaded["date"].dtype == "datetime64[ns]"
    assert loaded["year"].dtype == "int64"
    pd.testing.assert_frame_equal(loaded, computed, check_exact=True)


def test_second_write_replaces_the_first(tmp_path: Path, synthetic_features: DataFrame) -> None:
    output = tmp_path / "features"
    write_features(synthetic_features, output, {"benchmark": BENCHMARK})
    smaller = synthetic_features.filter("ticker = 'AAA' AND year = 2022")
    manifest = write_features(smaller, output, {"benchmark": BENCHMARK})

    assert _entries(tmp_path) == ["features"]
    assert sorted(path.name for path in output.glob("year=*")) == ["year=2022"]
    loaded = load_features(output)
    assert set(loaded["ticker"]) == {"AAA"}
    assert len(loaded) == manifest["rows"]
    assert json.loads((output / MANIFEST_NAME).read_text())["tickers"] == ["AAA"]


@pytest.mark.parametrize("failure", ["spark_job", "manifest", "no_rows"])
def test_failed_write_leaves_the_previous_output(
    tmp_path: Path,
    synthetic_features: DataFrame,
    monkeypatch: pytest.MonkeyPatch,
    failure: str,
) -> None:
    from pyspark.errors import PySparkException
    from pyspark.sql import functions as sf

    output = tmp_path / "features"
    first = write_features(synthetic_features, output, {"benchmark": BENCHMARK})
    before = load_features(output)

    if failure == "spark_job":
        # Tasks writing 2022 rows fail after others may have written files.
        poison = sf.raise_error(sf.lit("injected failure"))
        failing = synthetic_features.withColumn(
            "close", sf.when(sf.col("year") == 2022, poison).otherwise(sf.col("close"))
        )
        with pytest.raises(PySparkException, match="injected failure"):
            write_features(failing, output, {"benchmark": BENCHMARK})
    elif failure == "no_rows":
        with pytest.raises(DataError, match="no feature rows to write"):
            write_features(synthetic_features.limit(0), output, {"benchmark": BENCHMARK})
    else:

        def refuse(path: Path, payload: object) -> None:
            raise OSError(f"injected failure writing {path}")

        monkeypatch.setattr(features_module, "atomic_write_json", refuse)
        with pytest.raises(OSError, match="injected failure"):
            write_features(synthetic_features, output, {"benchmark": BENCHMARK})

    assert _entries(tmp_path) == ["features"], "no temporary directory is left behind"
    assert json.loads((output / MANIFEST_NAME).read_text()) == first
    pd.testing.assert_frame_equal(load_features(output), before, check_exact=True)


def test_load_features_refuses_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ArtifactNotFound, match="quantserve features"):
        load_features(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactNotFound, match="no Parquet file"):
        load_features(tmp_path / "empty")


def test_module_imports_without_pyspark() -> None:
    """The API server calls load_features without Spark: importing must not pull pyspark in."""
    code = "import sys, training.features; assert 'pyspark' not in sys.modules, 'pyspark loaded'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)


# --- the job ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raw_prices_path(
    tmp_path_factory: pytest.TempPathFactory, synthetic_prices: pd.DataFrame
) -> Path:
    """The synthetic prices as the ingest step writes them: one Parquet file, date32."""
    path = tmp_path_factory.mktemp("raw") / "prices.parquet"
    table = pa.Table.from_pandas(synthetic_prices, schema=RAW_ARROW_SCHEMA, preserve_index=False)
    pq.write_table(table, path)
    return path


def test_run_features_job(
    spark: SparkSession, tmp_path: Path, raw_prices_path: Path, computed: pd.DataFrame
) -> None:
    output = tmp_path / "features"
    manifest = run_features_job(spark, raw_prices_path, output, BENCHMARK, "cd" * 32)

    assert manifest["benchmark"] == BENCHMARK
    assert manifest["input_sha256"] == "cd" * 32
    assert manifest["input_path"] == str(raw_prices_path)
    assert json.loads((output / MANIFEST_NAME).read_text()) == manifest
    pd.testing.assert_frame_equal(load_features(output), computed, check_exact=True)


def test_run_features_job_without_raw_prices(spark: SparkSession, tmp_path: Path) -> None:
    with pytest.raises(ArtifactNotFound, match="run `quantserve ingest` first"):
        run_features_job(spark, tmp_path / "missing.parquet", tmp_path / "features", None, None)
    assert not (tmp_path / "features").exists()


def test_run_features_job_with_an_unknown_benchmark(
    spark: SparkSession, tmp_path: Path, raw_prices_path: Path
) -> None:
    with pytest.raises(DataError, match="benchmark 'SP500' is not in the prices"):
        run_features_job(spark, raw_prices_path, tmp_path / "features", "SP500", None)
    assert not (tmp_path / "features").exists()


def _small_prices(**changes: Any) -> pd.DataFrame:
    dates = pd.bdate_range("2022-01-03", periods=5).date
    prices = pd.DataFrame(
        {
            "date": [*dates, *dates],
            "ticker": ["AAA"] * 5 + [BENCHMARK] * 5,
            "close": [10.0, 11.0, 12.0, 11.5, 12.5, 100.0, 101.0, 99.0, 100.0, 102.0],
            "volume": np.nan,
        }
    )
    for key, value in changes.items():
        row, column = key.split("__")
        prices.loc[int(row), column] = value
    return prices


@pytest.mark.parametrize(
    ("prices", "benchmark", "message"),
    [
        (_small_prices(**{"1__date": _small_prices()["date"][0]}), BENCHMARK, "repeated"),
        (_small_prices(**{"2__close": 0.0}), BENCHMARK, "non-positive closes for \\['AAA'\\]"),
        (_small_prices(**{"3__close": np.nan}), BENCHMARK, "NaN"),
        (_small_prices().query("ticker == @BENCHMARK"), BENCHMARK, "only the benchmark"),
        (_small_prices().head(0), None, "empty"),
    ],
    ids=["duplicate-date", "zero-close", "nan-close", "only-benchmark", "empty"],
)
def test_unusable_prices_are_refused(
    spark: SparkSession, prices: pd.DataFrame, benchmark: str | None, message: str
) -> None:
    with pytest.raises(DataError, match=message):
        compute_features(_spark_prices(spark, prices), benchmark)


def test_missing_columns_are_refused(spark: SparkSession) -> None:
    prices = _spark_prices(spark, _small_prices()).drop("close")
    with pytest.raises(DataError, match="lack columns \\['close'\\]"):
        compute_features(prices, BENCHMARK)


def test_the_feature_code_version_covers_the_column_definitions(tmp_path: Path) -> None:
    """A change to what a feature is must be a new version, wherever the code lives."""
    job, columns = features_module.FEATURE_CODE_FILES
    assert columns.name == "_feature_columns.py"
    copies = [tmp_path / job.name, tmp_path / columns.name]
    copies[0].write_bytes(job.read_bytes())
    copies[1].write_bytes(columns.read_bytes())
    before = features_module.feature_code_version(copies)
    assert before == features_module.feature_code_version()
    copies[1].write_bytes(
        columns.read_bytes().replace(b"_RSI_DAYS: Final = 14", b"_RSI_DAYS: Final = 9")
    )
    assert features_module.feature_code_version(copies) != before


def test_every_write_is_a_new_version(tmp_path: Path, synthetic_features: DataFrame) -> None:
    output = tmp_path / "features"
    assert write_features(synthetic_features, output, {})["version"] == 1
    assert write_features(synthetic_features, output, {"version": 99})["version"] == 2
    unversioned = json.loads((output / MANIFEST_NAME).read_text())
    del unversioned["version"]
    (output / MANIFEST_NAME).write_text(json.dumps(unversioned))

    manifest = write_features(synthetic_features, output, {})

    assert manifest["version"] == 2, "a table without a version counts as version 1"
    assert json.loads((output / MANIFEST_NAME).read_text())["version"] == 2


def test_market_proxy_does_not_depend_on_how_spark_splits_the_tickers(
    spark: SparkSession, sp500_prices: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a benchmark, the features are the same bits whatever the partitioning.

    Floating-point addition is not associative: an average summed per partition and then
    across partitions changes in the last bits with the partitions' boundaries, which
    the tickers' row counts and ``spark.sql.shuffle.partitions`` decide. An update that
    recomputes a slice of the table would then differ from a full recomputation.
    """
    # Four tickers (the index as one more stock), one of them listed a year later.
    late_listing = (sp500_prices["ticker"] == "JPM") & (sp500_prices["date"] < dt.date(2016, 1, 1))
    stocks = sp500_prices[~late_listing]
    # Let spark.sql.shuffle.partitions alone set the partitions, as on a large table.
    monkeypatch.setattr(features_module, "_ROWS_PER_PARTITION", 1)
    key = "spark.sql.shuffle.partitions"
    configured = spark.conf.get(key) or "8"
    results = []
    try:
        for partitions in ("1", "2", "4"):
            spark.conf.set(key, partitions)
            results.append(_features(spark, stocks, None))
    finally:
        spark.conf.set(key, configured)
    assert results[0]["beta_252d"].notna().sum() > 0
    for other in results[1:]:
        pd.testing.assert_frame_equal(other, results[0], check_exact=True)
