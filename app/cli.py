"""The ``quantserve`` command line: the offline pipeline and the server."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from app.core.config import Role, Settings, get_settings
from training.errors import PipelineError

cli = typer.Typer(
    name="quantserve",
    help="Spark features, TensorFlow forecasts and cvxpy allocations over REST.",
    no_args_is_help=True,
    add_completion=False,
)
models_cli = typer.Typer(help="List model versions and change their stage.", no_args_is_help=True)
cli.add_typer(models_cli, name="models")
keys_cli = typer.Typer(
    help="Make API keys and the hashes the server is configured with.", no_args_is_help=True
)
cli.add_typer(keys_cli, name="keys")
console = Console()
T = TypeVar("T")

MasterOption = Annotated[
    str | None,
    typer.Option("--master", help="Spark master: local[*], spark://host:7077, k8s://https://…"),
]


def _run(step: str, action: Callable[[], T]) -> T:
    """Run a pipeline step, turning its errors into a message and exit code 1."""
    started = time.perf_counter()
    try:
        result = action()
    except PipelineError as exc:
        console.print(f"[bold red]{step} failed:[/] {exc}")
        raise typer.Exit(code=1) from exc
    console.print(f"[green]{step} done[/] in {time.perf_counter() - started:.1f} s")
    return result


def _settings_with_master(master: str | None) -> Settings:
    settings = get_settings()
    if master:
        settings = settings.model_copy(
            update={"spark": settings.spark.model_copy(update={"master": master})}
        )
    return settings


@cli.command()
def ingest(
    source: Annotated[
        Path | None,
        typer.Option(
            help="CSV or Parquet prices, long or wide; default: the embedded S&P 500 set."
        ),
    ] = None,
    benchmark: Annotated[
        str | None, typer.Option(help="Ticker used as the market for beta (default SP500).")
    ] = None,
) -> None:
    """Read, validate and quarantine prices; write data/raw/."""
    from training.ingest import run_ingest

    settings = get_settings()
    report = _run(
        "ingest", lambda: run_ingest(settings.raw_dir, settings.ingest, source, benchmark)
    )
    _print_ingest(
        report.manifest, report.quarantine_reasons, report.quality_summary, report.output_dir
    )


@cli.command()
def features(master: MasterOption = None) -> None:
    """Compute features and targets with Spark; write data/features/."""
    settings = _settings_with_master(master)
    manifest = _run("features", lambda: _features_step(settings))
    console.print(
        f"features: {manifest['rows']:,} rows, {len(manifest['tickers'])} tickers, "
        f"{manifest['start_date']}..{manifest['end_date']} on {manifest['spark_master']}"
    )


@cli.command()
def train() -> None:
    """Train the forecaster and export a new version to models/<name>/<version>/."""
    settings = get_settings()
    result = _run("train", lambda: _train_step(settings))
    _print_training(result.metadata)
    _promote_step(settings, result.version)


@cli.command()
def pipeline(
    master: MasterOption = None,
    if_missing: Annotated[
        bool, typer.Option("--if-missing", help="Do nothing when a model version already exists.")
    ] = False,
) -> None:
    """Ingest the embedded data, compute features and train, in order."""
    from training.ingest import run_ingest
    from training.model_store import list_versions

    settings = _settings_with_master(master)
    existing = list_versions(settings.models_dir / settings.model_name)
    if if_missing and existing:
        console.print(
            f"model {settings.model_name} version {existing[-1]} exists; pipeline skipped"
        )
        return
    report = _run("ingest", lambda: run_ingest(settings.raw_dir, settings.ingest))
    _print_ingest(
        report.manifest, report.quarantine_reasons, report.quality_summary, report.output_dir
    )
    _run("features", lambda: _features_step(settings))
    result = _run("train", lambda: _train_step(settings))
    _print_training(result.metadata)
    _promote_step(settings, result.version)


GUNICORN_CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "gunicorn.conf.py"


@cli.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface to bind (default from config).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Worker processes (default QUANTSERVE_WORKERS); 1 runs uvicorn alone."),
    ] = None,
) -> None:
    """Serve the REST API: gunicorn with uvicorn workers, or one uvicorn process."""
    from app.core.security import MissingApiKeys, check_can_start

    settings = get_settings()
    try:
        # Here, not only in each worker: one clear message, before gunicorn starts.
        check_can_start(settings)
    except MissingApiKeys as exc:
        typer.echo(f"serve refused: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    bind_host, bind_port = host or settings.host, port or settings.port
    command = gunicorn_command(bind_host, bind_port, workers or settings.workers)
    if command is not None:
        # gunicorn takes the process over: its master supervises the workers, sets
        # TCP_NODELAY on the listening socket (uvicorn --workers does not, adding ~44 ms
        # to keep-alive requests) and empties the Prometheus multiprocess folder.
        os.execv(command[0], command)

    import uvicorn

    from app.core.logging import logging_config

    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=bind_host,
        port=bind_port,
        log_level=settings.log_level,
        # JSON lines with request ids; the middleware writes the access log.
        log_config=logging_config(settings.log_level),
        access_log=False,
    )


def gunicorn_command(host: str, port: int, workers: int) -> list[str] | None:
    """The gunicorn command line for ``workers`` > 1, or None to run uvicorn in-process."""
    if workers <= 1:
        return None
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        str(GUNICORN_CONFIG),
        "--bind",
        f"{host}:{port}",
        "--workers",
        str(workers),
    ]


@cli.command()
def evaluate(
    master: MasterOption = None,
    first_year: Annotated[int, typer.Option(help="First out-of-sample year.")] = 2000,
    last_year: Annotated[int | None, typer.Option(help="Last year (default: the data's).")] = None,
    refit_every: Annotated[int, typer.Option(help="Years between refits.")] = 1,
    epochs: Annotated[int, typer.Option(help="Training epochs per refit.")] = 8,
    garch: Annotated[bool, typer.Option(help="Fit the GARCH baselines (the slow part).")] = True,
    in_process: Annotated[
        bool, typer.Option("--in-process", help="Run the refits here, one by one, without Spark.")
    ] = False,
) -> None:
    """Walk-forward evaluation of the model against baselines; writes <version>/evaluation/."""
    settings = _settings_with_master(master)
    metrics = _run(
        "evaluate",
        lambda: _evaluate_step(
            settings, first_year, last_year, refit_every, epochs, garch, in_process
        ),
    )
    _print_evaluation(metrics)


@cli.command()
def challenger(master: MasterOption = None) -> None:
    """Train the Spark ML GBT challenger on all data; save it under models/spark/<version>/."""
    settings = _settings_with_master(master)
    version, path = _run("challenger", lambda: _challenger_step(settings))
    console.print(f"saved the GBT challenger as version {version} at {path}")


@cli.command()
def rebuild(version: Annotated[int, typer.Argument(help="The version to rebuild.")]) -> None:
    """Train VERSION again from the same data, feature code and seeds; export a new version."""
    from training.features import load_features
    from training.model_store import read_metadata
    from training.rebuild import rebuild_version
    from training.train import load_training_inputs

    settings = get_settings()

    def step() -> Any:
        data_manifest, features_manifest, quality = load_training_inputs(settings.data_dir)
        return rebuild_version(
            load_features(settings.features_dir),
            settings.models_dir,
            settings.model_name,
            version,
            data_manifest=data_manifest,
            features_manifest=features_manifest,
            quality_report=quality,
        )

    result = _run("rebuild", step)
    original = read_metadata(settings.models_dir / settings.model_name / str(version))
    same = original["validation_metrics"] == result.metadata["validation_metrics"]
    console.print(
        f"rebuilt version {version} as version {result.version}: validation metrics "
        f"{'identical' if same else 'differ'}"
    )
    _print_training(result.metadata)


@keys_cli.command("create")
def keys_create(
    key_id: Annotated[
        str, typer.Option("--id", help="Who holds the key; shown in logs and the audit trail.")
    ],
    role: Annotated[
        Role,
        typer.Option(help="viewer: forecasts, models; trader: also optimize; admin: everything."),
    ],
) -> None:
    """Make a new key: print it once, with the config entries that hold its hash."""
    from pydantic import ValidationError

    from app.core.config import ApiKey
    from app.core.security import generate_key, hash_key

    key = generate_key()
    try:
        entry = ApiKey.model_validate({"id": key_id, "role": role, "sha256": hash_key(key)})
    except ValidationError:
        typer.echo(f"invalid --id {key_id!r}: use 1 to 64 letters, digits and . _ @ -", err=True)
        raise typer.Exit(code=2) from None
    # Plain echo, not rich: a wrapped line would break a copied key.
    typer.echo("API key (shown once: store it now; the server keeps only its SHA-256):")
    typer.echo(f"  {key}")
    typer.echo("In the config file (api_keys):")
    typer.echo(f"  - {{id: {entry.id}, role: {entry.role}, sha256: {entry.sha256}}}")
    typer.echo("Or in the environment (append to QUANTSERVE_API_KEYS, comma-separated):")
    typer.echo(f"  QUANTSERVE_API_KEYS='{entry.id}:{entry.role}:{entry.sha256}'")


@keys_cli.command("hash")
def keys_hash() -> None:
    """Read a key from stdin and print its SHA-256, the value api_keys holds."""
    from app.core.security import hash_key

    interactive = sys.stdin.isatty()
    key = (
        typer.prompt("API key", hide_input=True) if interactive else sys.stdin.readline()
    ).strip()
    if not key:
        typer.echo("no key on stdin: pipe one in, e.g. `quantserve keys hash < key.txt`", err=True)
        raise typer.Exit(code=2)
    typer.echo(hash_key(key))


@models_cli.command("list")
def models_list() -> None:
    """Every version of the model with its stage and validation scores."""
    from training.model_store import read_metadata
    from training.registry import ModelRegistry

    settings = get_settings()
    model_dir = settings.models_dir / settings.model_name
    table = Table(title=f"{settings.model_name} in {settings.models_dir}")
    for column in ("version", "stage", "changed", "trained on", "validation", "vol QLIKE"):
        table.add_column(column)
    for record in ModelRegistry(model_dir).records():
        metadata = read_metadata(model_dir / str(record.version))
        split = metadata.get("split", {})
        score = (metadata.get("validation_metrics", {}).get("volatility", {}).get("model", {})).get(
            "qlike"
        )
        table.add_row(
            str(record.version),
            record.stage.value,
            record.changed_at or "",
            "..".join(split.get("train", [])),
            "..".join(split.get("validation", [])),
            "" if score is None else f"{score:.4f}",
        )
    console.print(table)


@models_cli.command("promote")
def models_promote(version: Annotated[int, typer.Argument(help="The version to serve.")]) -> None:
    """Make VERSION production; the current production version is archived."""
    from training.registry import ModelRegistry

    settings = get_settings()
    registry = ModelRegistry(settings.models_dir / settings.model_name)
    previous = _run("promote", lambda: registry.promote(version, reason="promoted by hand"))
    console.print(f"version {version} is production (was {previous})")


@models_cli.command("rollback")
def models_rollback() -> None:
    """Serve again the version the current production version replaced."""
    from training.registry import ModelRegistry

    settings = get_settings()
    registry = ModelRegistry(settings.models_dir / settings.model_name)
    restored = _run("rollback", lambda: registry.rollback())
    console.print(f"version {restored} is production again")


def _promote_step(settings: Settings, version: int) -> None:
    from training.features import load_features
    from training.promotion import register_and_maybe_promote

    decision = _run(
        "promotion",
        lambda: register_and_maybe_promote(
            load_features(settings.features_dir),
            settings.models_dir / settings.model_name,
            version,
        ),
    )
    console.print(decision.describe())


def _evaluate_step(
    settings: Settings,
    first_year: int,
    last_year: int | None,
    refit_every: int,
    epochs: int,
    garch: bool,
    in_process: bool,
) -> dict[str, Any]:
    from app.services.model_registry import serving_version
    from training.evaluation import (
        WalkForwardConfig,
        compute_metrics,
        run_walk_forward,
        write_evaluation,
    )
    from training.model_store import read_metadata
    from training.spark import build_spark_session

    version = serving_version(settings.models_dir, settings.model_name)
    version_dir = settings.models_dir / settings.model_name / str(version)
    metadata = read_metadata(version_dir)
    config = WalkForwardConfig(
        first_test_year=first_year,
        last_test_year=last_year,
        refit_every_years=refit_every,
        training=settings.training.model_copy(
            update={"epochs": epochs, "lookback_days": metadata["lookback_days"]}
        ),
        garch=garch,
    )
    started = time.perf_counter()
    spark = (
        None
        if in_process
        else build_spark_session(
            settings.spark.master, "quantserve-evaluate", driver_memory=settings.spark.driver_memory
        )
    )
    try:
        predictions = run_walk_forward(spark, settings.features_dir, config)
    finally:
        if spark is not None:
            spark.stop()
    metrics = compute_metrics(predictions)
    dates = predictions["date"]
    context = {
        "model": settings.model_name,
        "version": version,
        "test_start": str(dates.min().date()),
        "test_end": str(dates.max().date()),
        "refits": int(predictions["refit_train_end"].nunique()),
        "refit_every_years": refit_every,
        "purge_days": config.purge_days,
        "tickers": int(predictions["ticker"].nunique()),
        "training": config.training.model_dump(),
        "garch": garch,
        "spark_master": "in-process" if in_process else settings.spark.master,
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_evaluation(
        version_dir / "evaluation",
        predictions,
        metrics,
        context,
        training_history=metadata.get("training"),
    )
    console.print(f"wrote {version_dir / 'evaluation'} in {context['seconds']} s")
    return metrics


def _print_evaluation(metrics: dict[str, Any]) -> None:
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


def _challenger_step(settings: Settings) -> tuple[int, Path]:
    import json

    from training.challenger import train_and_save_challenger
    from training.spark import build_spark_session

    manifest_path = settings.features_dir / "_manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    spark = build_spark_session(
        settings.spark.master, "quantserve-challenger", driver_memory=settings.spark.driver_memory
    )
    try:
        return train_and_save_challenger(
            spark,
            settings.features_dir,
            settings.models_dir,
            {key: manifest.get(key) for key in ("input_sha256", "feature_code_version")},
        )
    finally:
        spark.stop()


def _features_step(settings: Settings) -> dict[str, Any]:
    import json

    from training.features import run_features_job
    from training.spark import build_spark_session

    data_manifest_path = settings.raw_dir / "manifest.json"
    data_manifest = (
        json.loads(data_manifest_path.read_text()) if data_manifest_path.is_file() else {}
    )
    spark = build_spark_session(
        settings.spark.master,
        settings.spark.app_name,
        driver_memory=settings.spark.driver_memory,
        shuffle_partitions=settings.spark.shuffle_partitions,
    )
    try:
        return run_features_job(
            spark,
            settings.raw_dir / "prices.parquet",
            settings.features_dir,
            benchmark=data_manifest.get("benchmark"),
            input_manifest_sha256=data_manifest.get("prices_sha256"),
        )
    finally:
        spark.stop()


def _train_step(settings: Settings) -> Any:
    from training.features import load_features
    from training.train import load_training_inputs, train_and_export

    data_manifest, features_manifest, quality = load_training_inputs(settings.data_dir)
    return train_and_export(
        load_features(settings.features_dir),
        settings.models_dir,
        settings.model_name,
        settings.training,
        data_manifest=data_manifest,
        features_manifest=features_manifest,
        quality_report=quality,
    )


def _print_ingest(
    manifest: dict[str, Any], reasons: dict[str, int], quality: dict[str, int], output_dir: Path
) -> None:
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


def _print_training(metadata: dict[str, Any]) -> None:
    metrics = metadata["validation_metrics"]
    split = metadata["split"]
    console.print(
        f"exported {metadata['name']} version {metadata['version']}: trained "
        f"{split['train'][0]}..{split['train'][1]}, validated "
        f"{split['validation'][0]}..{split['validation'][1]}"
    )
    table = Table(title="validation (out of sample)")
    for column in ("forecaster", "metric", "value"):
        table.add_column(column)
    for target, rows in metrics.items():
        for name, values in rows.items():
            for metric, value in values.items():
                shown = "n/a" if value is None else f"{value:.5f}"
                table.add_row(f"{target}/{name}", metric, shown)
    console.print(table)


def main() -> None:
    """Console-script entry point."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    cli()


if __name__ == "__main__":
    main()
