"""``quantserve backtest``: run strategies through history, write metrics and a report."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from app._cli_output import console
from app._cli_steps import tracker_for
from app.core.config import Settings, get_settings

if TYPE_CHECKING:
    from backtest import Rebalance
    from training.tracking import TrackedRun

RebalanceOption = Annotated[
    str, typer.Option(help="weekly, monthly or quarterly (the last trading day of each).")
]


def _date(value: str | None) -> date | None:
    return None if value is None else datetime.strptime(value, "%Y-%m-%d").date()


def _spreads(text: str | None) -> dict[str, float] | None:
    """``TICKER=BPS,...`` as a mapping; a malformed entry is a clear error."""
    if not text:
        return None
    spreads = {}
    for entry in text.split(","):
        ticker, _, value = entry.partition("=")
        try:
            spreads[ticker.strip()] = float(value)
        except ValueError:
            raise typer.BadParameter(
                f"{entry!r} is not TICKER=BPS (e.g. AMD=8)", param_hint="--spread-bps"
            ) from None
    return spreads


def default_predictions(settings: Settings) -> Path | None:
    """The serving version's walk-forward predictions, if ``quantserve evaluate`` wrote them."""
    from app.services.model_registry import serving_version
    from backtest import PREDICTIONS_FILE
    from training.errors import PipelineError

    try:
        version = serving_version(settings.models_dir, settings.model_name)
    except (PipelineError, FileNotFoundError):
        return None
    path = settings.models_dir / settings.model_name / str(version) / "evaluation"
    return path / PREDICTIONS_FILE if (path / PREDICTIONS_FILE).is_file() else None


def backtest(
    strategies: Annotated[
        str,
        typer.Option(
            help="Comma-separated names: equal_weight, index, min_variance, max_sharpe, "
            "risk_parity, hrp, forecast_min_variance, forecast_mean_variance, each also as "
            "<name>+vol_target; 'all' for every one."
        ),
    ] = "all",
    prices: Annotated[
        Path | None,
        typer.Option(help="CSV or Parquet prices as `ingest` reads them; default: embedded."),
    ] = None,
    benchmark: Annotated[
        str | None, typer.Option(help="The index ticker in --prices (bought by 'index').")
    ] = None,
    predictions: Annotated[
        Path | None,
        typer.Option(
            help="Walk-forward predictions.parquet; default: the serving version's, from "
            "`quantserve evaluate`."
        ),
    ] = None,
    start: Annotated[str | None, typer.Option(help="First day, YYYY-MM-DD.")] = None,
    end: Annotated[str | None, typer.Option(help="Last day, YYYY-MM-DD.")] = None,
    rebalance: RebalanceOption = "monthly",
    cost_bps: Annotated[float, typer.Option(help="Linear cost, bps of the value traded.")] = 10.0,
    spread_bps: Annotated[
        str | None,
        typer.Option(
            help="Bid-ask spreads in bps, half paid per trade on top of --cost-bps: "
            "TICKER=BPS,... (e.g. AMD=8,RRC=15)."
        ),
    ] = None,
    target_volatility: Annotated[
        float, typer.Option(help="Annual volatility of the +vol_target overlay.")
    ] = 0.10,
    max_leverage: Annotated[
        float, typer.Option(help="Gross exposure cap of the +vol_target overlay.")
    ] = 1.0,
    output: Annotated[
        Path | None,
        typer.Option(
            help="Folder for the outputs (replaced whole); default data/backtests/latest."
        ),
    ] = None,
) -> None:
    """Walk-forward back-test of strategies, net of costs: metrics, returns, weights, report."""
    from backtest import (
        METRICS_FILE,
        STRATEGY_NAMES,
        VOL_TARGET_SUFFIX,
        BacktestError,
        BacktestSettings,
        Market,
        WalkForwardForecasts,
        named_strategy,
        run_backtest,
        write_outputs,
    )
    from optimizer import PortfolioOptimizer
    from training.errors import PipelineError

    settings = get_settings()
    output = output or settings.data_dir / "backtests" / "latest"
    names = (
        [*STRATEGY_NAMES, *(f"{n}{VOL_TARGET_SUFFIX}" for n in STRATEGY_NAMES if n != "index")]
        if strategies.strip() == "all"
        else [n.strip() for n in strategies.split(",") if n.strip()]
    )
    try:
        config = BacktestSettings(
            start=_date(start),
            end=_date(end),
            rebalance=cast("Rebalance", rebalance),
            cost_bps=cost_bps,
            spread_bps=_spreads(spread_bps),
        )
        path = predictions or default_predictions(settings)
        forecasts = None if path is None else WalkForwardForecasts.read(path)
        market = Market.load(prices, benchmark, forecasts, settings.ingest.min_history_days)
        if strategies.strip() == "all" and forecasts is None:
            names = [n for n in names if "forecast" not in n and VOL_TARGET_SUFFIX not in n]
            console.print(
                "[yellow]no walk-forward predictions found: the forecast-driven strategies "
                "are left out. Run `quantserve evaluate` to include them.[/]"
            )
        optimizer = PortfolioOptimizer(
            settings.optimizer.solver, settings.optimizer.fallback_solvers
        )
        chosen = [
            named_strategy(
                name,
                benchmark=market.benchmark,
                optimizer=optimizer,
                target_volatility=target_volatility,
                max_leverage=max_leverage,
            )
            for name in names
        ]
        params = {
            "strategies": ",".join(names),
            "start": start,
            "end": end,
            "rebalance": rebalance,
            "cost_bps": cost_bps,
            "spread_bps": config.spread_bps or {},
            "target_volatility": target_volatility,
            "max_leverage": max_leverage,
            "prices": prices or "embedded",
            "benchmark": market.benchmark,
            "predictions": path,
        }
        with tracker_for(settings).run(
            "backtest",
            name="backtest",
            params=params,
            tags=_backtest_tags(settings, prices, path),
            fallback=str(output / METRICS_FILE),
        ) as tracked:
            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            ) as bar:
                task = bar.add_task("rebalances", total=None)
                result = run_backtest(
                    market,
                    chosen,
                    config,
                    progress=lambda done, total: bar.update(task, completed=done, total=total),
                )
            write_outputs(result, output)
            _log_backtest(tracked, result.metrics_document(), output)
    except (BacktestError, PipelineError, ValueError) as exc:
        console.print(f"[bold red]backtest failed:[/] {exc}")
        raise typer.Exit(code=1) from exc
    print_backtest(result.metrics_document(), output)


def _backtest_tags(
    settings: Settings, prices: Path | None, predictions: Path | None
) -> dict[str, Any]:
    """Where the prices and forecasts came from, for the MLflow run's tags.

    ``prices_sha256`` is the key the training and evaluation runs use for the ingested
    ``prices.parquet``, so one tag search finds every run on the same prices.
    """
    from training._io import sha256_file

    tags: dict[str, Any] = {
        "prices_source": str(prices or "embedded"),
        "prices_sha256": None if prices is None else sha256_file(prices),
    }
    if predictions is not None:
        tags.update(_forecasting_model(settings, predictions))
    return tags


def _forecasting_model(settings: Settings, predictions: Path) -> dict[str, Any]:
    """The model version whose walk-forward made ``predictions``, when it can be told.

    An evaluation folder's ``metrics.json`` names it (wherever the folder was copied,
    as dvc.yaml's ``data/evaluation/``); else the serving version's own folder does.
    """
    import json

    metrics = predictions.parent / "metrics.json"
    try:
        context = json.loads(metrics.read_text()).get("context", {})
    except (OSError, ValueError, AttributeError):
        context = {}
    if context.get("model") and context.get("version") is not None:
        return {"model_name": context["model"], "model_version": context["version"]}
    if predictions == default_predictions(settings):
        return {"model_name": settings.model_name, "model_version": predictions.parent.parent.name}
    return {}


def _log_backtest(run: TrackedRun, document: dict[str, Any], output: Path) -> None:
    """Each strategy's metrics, the period as run, and metrics.json and report.html."""
    from backtest import METRICS_FILE, REPORT_FILE

    described = document["settings"]
    run.log_params(
        {
            "first_day": described["start"],
            "last_day": described["end"],
            "rebalances": described["rebalances"],
            "tickers": len(described["tickers"]),
        }
    )
    run.log_metrics(document["strategies"])
    run.log_artifacts(output, include=(METRICS_FILE, REPORT_FILE))


def print_backtest(document: dict[str, Any], output: Path) -> None:
    """The KPI table, best Sharpe first, and where the outputs went."""
    settings = document["settings"]
    table = Table(
        title=f"back-test {settings['start']}..{settings['end']}, {settings['rebalance']}, "
        f"{settings['cost_bps']:g} bps"
    )
    for column in ("strategy", "Sharpe", "CAGR", "vol", "max DD", "turnover/yr", "vs 1/N p"):
        if column == "strategy":
            table.add_column(column, no_wrap=True)
        else:
            table.add_column(column, justify="right")
    rows = document["strategies"]
    for name in sorted(rows, key=lambda n: -(rows[n]["sharpe"] or float("-inf"))):
        metrics = rows[name]
        versus = metrics.get("vs_equal_weight")
        table.add_row(
            name,
            _number(metrics["sharpe"], "{:.2f}"),
            _number(metrics["cagr"], "{:.1%}"),
            _number(metrics["volatility"], "{:.1%}"),
            _number(metrics["max_drawdown"], "{:.0%}"),
            _number(metrics["turnover"], "{:.2f}"),
            "" if versus is None else _number(versus["p_value"], "{:.3f}"),
        )
    console.print(table)
    failed = {n: m["failed_rebalances"] for n, m in rows.items() if m.get("failed_rebalances")}
    for name, count in failed.items():
        console.print(
            f"[yellow]{name}: {count} rebalance{'' if count == 1 else 's'} kept the drifted "
            "weights[/] (see metrics.json)"
        )
    console.print(f"wrote {output}/: metrics.json, returns.parquet, weights.parquet, report.html")


def _number(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)
