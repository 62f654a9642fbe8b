"""Walk-forward artefacts: metrics.json, predictions.parquet, report.md and plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training import schema
from training._io import atomic_directory
from training.evaluation._stats import diebold_mariano, r2_out_of_sample
from training.evaluation._walkforward import RETURN_TARGET, VARIANCE_TARGET
from training.metrics import VARIANCE_FLOOR, hit_rate, qlike, rank_ic, rmse

MODEL = "model"
CHALLENGER = "spark_gbt"
Metrics = dict[str, dict[str, dict[str, Any]]]


def compute_metrics(predictions: pd.DataFrame) -> Metrics:
    """Each forecaster's out-of-sample metrics, by target.

    Volatility: QLIKE on variances and RMSE on volatilities; the model also gets a
    Diebold-Mariano test on QLIKE against the best baseline. Returns: the rank IC (mean
    and t-statistic), R² against the historical mean, hit rate and RMSE.
    """
    variance_rows = _sorted(predictions, VARIANCE_TARGET)
    volatility: dict[str, dict[str, Any]] = {}
    for name, group in variance_rows.groupby("forecaster", sort=True):
        realized, forecast = group["realized"].to_numpy(float), group["forecast"].to_numpy(float)
        volatility[str(name)] = {
            "qlike": _finite(qlike(realized, forecast)),
            "rmse": _finite(
                rmse(np.sqrt(np.maximum(realized, 0)), np.sqrt(np.maximum(forecast, 0)))
            ),
            "samples": len(group),
        }
    # The challenger is a competing model, not a baseline: the DM test is against the
    # best baseline, and the challenger gets its own.
    baselines = {
        k: v["qlike"]
        for k, v in volatility.items()
        if k not in {MODEL, CHALLENGER} and v["qlike"] is not None
    }
    if MODEL in volatility and baselines:
        best = min(baselines, key=lambda k: baselines[k])
        statistic, p_value = _dm(variance_rows, best)
        volatility[MODEL].update(
            {"dm_baseline": best, "dm_statistic": statistic, "dm_p_value": p_value}
        )
        if CHALLENGER in volatility:
            statistic, p_value = _dm(variance_rows, CHALLENGER)
            volatility[MODEL].update(
                {"dm_vs_challenger_statistic": statistic, "dm_vs_challenger_p_value": p_value}
            )

    return_rows = _sorted(predictions, RETURN_TARGET)
    benchmark = return_rows[return_rows["forecaster"] == "historical_mean"]["forecast"].to_numpy(
        float
    )
    returns: dict[str, dict[str, Any]] = {}
    for name, group in return_rows.groupby("forecaster", sort=True):
        realized, forecast = group["realized"].to_numpy(float), group["forecast"].to_numpy(float)
        ic_mean, ic_t, ic_dates = rank_ic(group["date"].to_numpy(), realized, forecast)
        returns[str(name)] = {
            "ic_mean": _finite(ic_mean),
            "ic_t": _finite(ic_t),
            "ic_dates": ic_dates,
            "r2_oos": _finite(r2_out_of_sample(realized, forecast, benchmark))
            if benchmark.size == forecast.size
            else None,
            "hit_rate": _finite(hit_rate(realized, forecast)),
            "rmse": _finite(rmse(realized, forecast)),
        }
    coverage = quantile_coverage(predictions)
    if coverage and MODEL in returns:
        returns[MODEL]["quantile_coverage"] = coverage
    return {"volatility": volatility, "returns": returns}


def quantile_coverage(predictions: pd.DataFrame) -> dict[str, float]:
    """Share of realized returns at or below each forecast quantile (ideal: the level)."""
    coverage = {}
    for target, group in predictions.groupby("target", sort=True):
        name = str(target)
        if not name.startswith(f"{RETURN_TARGET}_q"):
            continue
        level = int(name.rsplit("_q", 1)[1]) / 100
        coverage[f"{level:.2f}"] = float(np.mean(group["realized"] <= group["forecast"]))
    return coverage


def write_evaluation(
    output_dir: Path,
    predictions: pd.DataFrame,
    metrics: Metrics,
    context: dict[str, Any],
    training_history: dict[str, list[float]] | None = None,
) -> None:
    """Write every artefact into ``output_dir``, swapped in whole."""
    with atomic_directory(output_dir) as staging:
        staging.mkdir(parents=True)
        (staging / "metrics.json").write_text(
            json.dumps({**metrics, "context": context}, indent=2, default=str, allow_nan=False)
        )
        predictions.loc[
            :, ["date", "ticker", "forecaster", "target", "forecast", "realized"]
        ].to_parquet(staging / "predictions.parquet", index=False)
        (staging / "report.md").write_text(render_report(metrics, context))
        _plots(staging, predictions, training_history)


def render_report(metrics: Metrics, context: dict[str, Any]) -> str:
    """The comparison tables as Markdown."""
    lines = [
        "# Walk-forward evaluation",
        "",
        f"Out of sample {context.get('test_start')} to {context.get('test_end')}, "
        f"{context.get('refits')} refits (expanding window, every "
        f"{context.get('refit_every_years')} year(s)), purge gap "
        f"{context.get('purge_days')} trading days; {context.get('tickers')} tickers.",
        "",
        "## Volatility: forward 21-day realized variance (lower is better)",
        "",
        "| forecaster | QLIKE | RMSE (volatility) |",
        "| --- | ---: | ---: |",
    ]
    volatility = metrics["volatility"]
    for name in sorted(volatility, key=lambda k: volatility[k]["qlike"] or np.inf):
        row = volatility[name]
        lines.append(f"| {name} | {_fmt(row['qlike'])} | {_fmt(row['rmse'])} |")
    model = volatility.get(MODEL, {})
    if "dm_baseline" in model:
        lines += [
            "",
            f"Diebold-Mariano on QLIKE, model vs {model['dm_baseline']} (the best baseline): "
            f"statistic {_fmt(model['dm_statistic'], 2)}, p-value {_fmt(model['dm_p_value'], 3)} "
            "(negative: the model's loss is lower).",
        ]
    if "dm_vs_challenger_statistic" in model:
        lines += [
            "",
            f"Against the Spark ML challenger ({CHALLENGER}): statistic "
            f"{_fmt(model['dm_vs_challenger_statistic'], 2)}, p-value "
            f"{_fmt(model['dm_vs_challenger_p_value'], 3)}.",
        ]
    lines += [
        "",
        "## Returns: forward 5-day log return",
        "",
        "| forecaster | rank IC | IC t-stat | R² oos vs historical mean | hit rate | RMSE |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    returns = metrics["returns"]
    for name in sorted(returns, key=lambda k: -(returns[k]["ic_mean"] or -np.inf)):
        row = returns[name]
        lines.append(
            f"| {name} | {_fmt(row['ic_mean'])} | {_fmt(row['ic_t'], 2)} | {_fmt(row['r2_oos'])} "
            f"| {_fmt(row['hit_rate'])} | {_fmt(row['rmse'])} |"
        )
    coverage = returns.get(MODEL, {}).get("quantile_coverage")
    if coverage:
        shown = ", ".join(f"{float(k):.0%} quantile: {v:.1%}" for k, v in coverage.items())
        lines += ["", f"Share of realized returns at or below the model's quantiles: {shown}."]
    lines += [
        "",
        "The IC t-statistic treats dates as independent; overlapping 5-day returns make it "
        "optimistic. A constant forecast (zero) has no IC or hit rate.",
        "",
    ]
    return "\n".join(lines)


def _plots(
    folder: Path, predictions: pd.DataFrame, training_history: dict[str, list[float]] | None
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if training_history:
        figure, axis = plt.subplots(figsize=(6, 4))
        axis.plot(training_history.get("loss", []), label="training")
        axis.plot(training_history.get("val_loss", []), label="validation")
        axis.set(xlabel="epoch", ylabel="loss", title="Training and validation loss")
        axis.legend()
        figure.savefig(folder / "loss.png", dpi=100, bbox_inches="tight")
        plt.close(figure)

    variance = _sorted(predictions, VARIANCE_TARGET)
    model = variance[variance["forecaster"] == MODEL]
    if not model.empty:
        monthly = (
            model.assign(
                realized=np.sqrt(model["realized"] * 12), forecast=np.sqrt(model["forecast"] * 12)
            )
            .groupby(pd.Grouper(key="date", freq="ME"))[["realized", "forecast"]]
            .mean()
        )
        figure, axis = plt.subplots(figsize=(8, 4))
        axis.plot(monthly.index, monthly["realized"], label="realized", lw=1)
        axis.plot(monthly.index, monthly["forecast"], label="model forecast", lw=1)
        axis.set(
            ylabel="annualised 21-day volatility (monthly mean across tickers)",
            title="Predicted vs realized volatility, out of sample",
        )
        axis.legend()
        figure.savefig(folder / "volatility.png", dpi=100, bbox_inches="tight")
        plt.close(figure)

    returns = _sorted(predictions, RETURN_TARGET)
    figure, axis = plt.subplots(figsize=(8, 4))
    for name in ("model", "momentum_12_1", "linear"):
        group = returns[returns["forecaster"] == name]
        if group.empty:
            continue
        daily = group.groupby("date")[["realized", "forecast"]].apply(
            lambda g: g["realized"].rank().corr(g["forecast"].rank())
        )
        axis.plot(daily.rolling(252, min_periods=60).mean(), label=name, lw=1)
    axis.axhline(0.0, color="grey", lw=0.5)
    axis.set(ylabel="rank IC, 252-day rolling mean", title="Information coefficient over time")
    axis.legend()
    figure.savefig(folder / "ic.png", dpi=100, bbox_inches="tight")
    plt.close(figure)

    coverage = quantile_coverage(predictions)
    if coverage:
        levels = [float(k) for k in coverage]
        figure, axis = plt.subplots(figsize=(4.5, 4.5))
        axis.plot([0, 1], [0, 1], color="grey", lw=0.5, label="perfect calibration")
        axis.plot(levels, list(coverage.values()), "o-", label="model")
        axis.set(
            xlabel="quantile level",
            ylabel="share of realized returns at or below",
            title="Quantile calibration, 5-day return",
        )
        axis.legend()
        figure.savefig(folder / "quantile_calibration.png", dpi=100, bbox_inches="tight")
        plt.close(figure)


def _dm(variance_rows: pd.DataFrame, other: str) -> tuple[float | None, float | None]:
    """Diebold-Mariano on QLIKE, the model against ``other``, same samples."""
    model_rows = variance_rows[variance_rows["forecaster"] == MODEL]
    other_rows = variance_rows[variance_rows["forecaster"] == other]
    statistic, p_value = diebold_mariano(
        model_rows["date"].to_numpy(),
        _qlike_terms(model_rows),
        _qlike_terms(other_rows),
        lags=schema.VOLATILITY_HORIZON_DAYS - 1,
    )
    return _finite(statistic), _finite(p_value)


def _sorted(predictions: pd.DataFrame, target: str) -> pd.DataFrame:
    rows = predictions[predictions["target"] == target]
    return rows.sort_values(["forecaster", "date", "ticker"], kind="stable")


def _qlike_terms(rows: pd.DataFrame) -> np.ndarray:
    realized = np.maximum(rows["realized"].to_numpy(float), VARIANCE_FLOOR)
    forecast = np.maximum(rows["forecast"].to_numpy(float), VARIANCE_FLOOR)
    ratio = realized / forecast
    return np.asarray(ratio - np.log(ratio) - 1.0)


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"
