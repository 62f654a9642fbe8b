"""Forecast metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from training.metrics import hit_rate, qlike, rank_ic, return_metrics, rmse, volatility_metrics


def test_qlike_is_zero_for_a_perfect_forecast_and_penalises_under_forecasts_more() -> None:
    y = np.array([0.01, 0.02, 0.04])
    assert qlike(y, y) == pytest.approx(0.0, abs=1e-12)
    under, over = qlike(y, y / 2), qlike(y, y * 2)
    assert under == pytest.approx(2 - np.log(2) - 1)
    assert over == pytest.approx(0.5 - np.log(0.5) - 1)
    assert under > over > 0


def test_rmse_and_hit_rate() -> None:
    assert rmse(np.array([1.0, -1.0]), np.array([0.0, 0.0])) == pytest.approx(1.0)
    realized = np.array([0.1, -0.2, 0.3, 0.0])
    forecast = np.array([0.2, 0.1, 0.1, 0.5])
    assert hit_rate(realized, forecast) == pytest.approx(2 / 3)  # the zero is left out


def test_rank_ic_per_date_and_its_t_statistic() -> None:
    dates = np.repeat(np.array(["2024-01-01", "2024-01-02"], dtype="datetime64[D]"), 4)
    realized = np.array([1, 2, 3, 4, 1, 2, 3, 4], dtype=float)
    forecast = np.array([1, 2, 3, 4, 4, 3, 1, 2], dtype=float)
    mean, t_stat, n = rank_ic(dates, realized, forecast)
    assert n == 2
    assert mean == pytest.approx((1.0 + -0.8) / 2)
    ics = np.array([1.0, -0.8])
    assert t_stat == pytest.approx(ics.mean() / (ics.std(ddof=1) / np.sqrt(2)))


def test_undefined_metrics_are_none_so_reports_stay_valid_json() -> None:
    dates = np.repeat(np.array(["2024-01-01"], dtype="datetime64[D]"), 4)
    realized = np.array([0.1, -0.1, 0.2, -0.2])
    metrics = return_metrics(dates, realized, np.zeros(4))
    assert metrics["ic_mean"] is None
    assert metrics["hit_rate"] is None
    assert metrics["rmse"] == pytest.approx(np.sqrt(np.mean(realized**2)))
    vol = volatility_metrics(np.array([0.01, 0.02]), np.array([0.01, 0.02]))
    assert vol["qlike"] == pytest.approx(0.0, abs=1e-12)
    assert vol["rmse_volatility"] == pytest.approx(0.0, abs=1e-12)
