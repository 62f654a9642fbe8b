"""What the ``quantserve`` commands print: one rich console, step timing, result tables."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from training.errors import PipelineError

console = Console()
T = TypeVar("T")


def run_step(step: str, action: Callable[[], T]) -> T:
    """Run a pipeline step, turning its errors into a message and exit code 1."""
    started = time.perf_counter()
    try:
        result = action()
    except PipelineError as exc:
        console.print(f"[bold red]{step} failed:[/] {exc}")
        raise typer.Exit(code=1) from exc
    console.print(f"[green]{step} done[/] in {time.perf_counter() - started:.1f} s")
    return result


def print_ingest(
    manifest: dict[str, Any], reasons: dict[str, int], quality: dict[str, int], output_dir: Path
) -> None:
    """What ingest kept, what it quarantined and why, and the data-quality counts."""
    console.print(
        f"kept {manifest['rows']:,} rows of {len(manifest['tickers'])} tickers "
        f"({manifest['date_range'][0]}..{manifest['date_range'][1]}), benchmark "
        f"{manifest['benchmark']}; quarantined {manifest['quarantined_rows']:,} rows"
    )
    if manifest.get("empty_wide_cells"):
        console.print(f"{manifest['empty_wide_cells']:,} empty cells of wide input: no observation")
    for reason, count in reasons.items():
        console.print(f"  quarantined {count:,}: {reason}")
    console.print(
        f"data quality: {quality['stale_stretches']} stale stretches ({quality['stale_days']} "
        f"days), {quality['jumps']} implausible jumps; see {output_dir / 'quality.json'}"
    )


def print_training(metadata: dict[str, Any]) -> None:
    """The exported version, its training and validation periods and its scores."""
    metrics = metadata["validation_metrics"]
    split = metadata["split"]
    holdout = split.get("holdout")
    held_out = f", held out {holdout[0]}..{holdout[1]}" if holdout else ", no holdout"
    console.print(
        f"exported {metadata['name']} version {metadata['version']}: trained "
        f"{split['train'][0]}..{split['train'][1]}, validated (early stopping) "
        f"{split['validation'][0]}..{split['validation'][1]}{held_out}"
    )
    if tracked := metadata.get("mlflow"):
        console.print(f"MLflow run {tracked['run_id']} in {tracked['tracking_uri']}")
    _print_scores("validation (early stopping chose the epoch here)", metrics)
    if metadata.get("holdout_metrics"):
        _print_scores("holdout (never used to fit or select)", metadata["holdout_metrics"])


def _print_scores(title: str, metrics: dict[str, Any]) -> None:
    table = Table(title=title)
    for column in ("forecaster", "metric", "value"):
        table.add_column(column)
    for target, rows in metrics.items():
        for name, values in rows.items():
            for metric, value in values.items():
                shown = "n/a" if value is None else f"{value:.5f}"
                table.add_row(f"{target}/{name}", metric, shown)
    console.print(table)


def print_evaluation(metrics: dict[str, Any]) -> None:
    """The walk-forward scores: volatility forecasters best first, then return forecasters."""
    volatility = Table(title="volatility: forward 21-day variance, out of sample")
    for column in ("forecaster", "QLIKE", "RMSE (vol)"):
        volatility.add_column(column)
    rows = metrics["volatility"]
    for name in sorted(rows, key=lambda k: rows[k]["qlike"] or float("inf")):
        volatility.add_row(name, _fmt(rows[name]["qlike"]), _fmt(rows[name]["rmse"]))
    console.print(volatility)
    model = rows.get("model", {})
    if "dm_baseline" in model:
        console.print(
            f"Diebold-Mariano, model vs {model['dm_baseline']} (best baseline): statistic "
            f"{_fmt(model['dm_statistic'])}, p-value {_fmt(model['dm_p_value'])}"
        )
    if "dm_vs_challenger_statistic" in model:
        console.print(
            f"Diebold-Mariano, model vs the Spark ML challenger: statistic "
            f"{_fmt(model['dm_vs_challenger_statistic'])}, p-value "
            f"{_fmt(model['dm_vs_challenger_p_value'])}"
        )
    returns = Table(title="returns: forward 5-day log return, out of sample")
    for column in ("forecaster", "rank IC", "IC t", "R² oos", "hit rate"):
        returns.add_column(column)
    for name, row in sorted(metrics["returns"].items()):
        returns.add_row(
            name,
            _fmt(row["ic_mean"]),
            _fmt(row["ic_t"]),
            _fmt(row["r2_oos"]),
            _fmt(row["hit_rate"]),
        )
    console.print(returns)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
