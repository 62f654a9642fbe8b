"""``quantserve backtest``: real runs on the embedded data, outputs on disk, errors exit 1."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from app.cli import cli
from tests.backtest.conftest import write_trailing_predictions


def _predictions(tmp_path: Path) -> Path:
    """Predictions shaped as ``quantserve evaluate`` writes them, from trailing data only."""
    return write_trailing_predictions(tmp_path / "predictions.parquet")


def test_backtest_writes_outputs_and_prints_the_table(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = [
        "backtest",
        "--strategies",
        "min_variance,forecast_min_variance+vol_target",
        "--predictions",
        str(_predictions(tmp_path)),
        "--start",
        "2018-01-02",
        "--end",
        "2019-06-28",
        "--rebalance",
        "quarterly",
        "--cost-bps",
        "5",
        "--spread-bps",
        "AAPL=8,XOM=4",
        "--output",
        str(out),
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    document = json.loads((out / "metrics.json").read_text())
    assert set(document["strategies"]) == {
        "equal_weight",
        "index",
        "min_variance",
        "forecast_min_variance+vol_target",
    }
    assert document["settings"]["cost_bps"] == 5.0
    assert document["settings"]["spread_bps"] == {"AAPL": 8.0, "XOM": 4.0}
    assert document["settings"]["rebalance"] == "quarterly"
    assert document["settings"]["forecasts"]["source"].endswith("predictions.parquet")
    sharpe = document["strategies"]["min_variance"]["sharpe"]
    assert f"{sharpe:.2f}" in result.output
    assert "back-test 2018-01-02..2019-06-28, quarterly, 5 bps" in result.output
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")


def test_forecast_strategies_without_predictions_say_how_to_make_them(
    data_dir: Path, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        cli,
        ["backtest", "--strategies", "forecast_min_variance", "--output", str(tmp_path / "x")],
    )
    assert result.exit_code == 1
    assert "backtest failed" in result.output
    assert "quantserve evaluate" in result.output
    assert not (tmp_path / "x").exists()


def test_unknown_strategy_exits_1_with_the_choices(data_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["backtest", "--strategies", "momentum"])
    assert result.exit_code == 1
    assert "unknown strategy 'momentum'" in result.output
    assert "min_variance" in result.output


def test_a_malformed_spread_is_refused(data_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["backtest", "--spread-bps", "AAPL:8"])
    assert result.exit_code == 2
    assert "is not TICKER=BPS" in result.output
