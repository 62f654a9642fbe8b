"""The ``quantserve`` command line: the offline pipeline and the server.

The commands are here; ``keys`` and ``models`` are in ``app._cli_keys`` and
``app._cli_models``, the pipeline steps behind the commands in ``app._cli_steps`` and
what they print in ``app._cli_output``.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from app._cli_backtest import backtest
from app._cli_keys import keys_cli
from app._cli_live import parse_day, replay, retrain
from app._cli_models import models_cli
from app._cli_output import (
    console,
    print_evaluation,
    print_ingest,
    print_training,
    run_step,
)
from app._cli_steps import (
    challenger_step,
    evaluate_step,
    features_step,
    promote_step,
    tracker_for,
    train_step,
)
from app._cli_stream import stream
from app._cli_tensorboard import tensorboard
from app.core.config import Settings, get_settings

__all__ = ["GUNICORN_CONFIG", "cli", "gunicorn_argv", "gunicorn_command", "main"]

cli = typer.Typer(
    name="quantserve",
    help="Spark features, TensorFlow forecasts and cvxpy allocations over REST.",
    no_args_is_help=True,
    add_completion=False,
)
cli.add_typer(models_cli, name="models")
cli.add_typer(keys_cli, name="keys")
cli.command()(backtest)
cli.command()(replay)
cli.command()(retrain)
cli.command()(stream)
cli.command()(tensorboard)

MasterOption = Annotated[
    str | None,
    typer.Option("--master", help="Spark master: local[*], spark://host:7077, k8s://https://…"),
]
UntilOption = Annotated[
    str | None,
    typer.Option(
        "--until",
        metavar="DATE",
        help="Ingest the days up to and including DATE (YYYY-MM-DD); later rows are left out.",
    ),
]


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
    until: UntilOption = None,
) -> None:
    """Read, validate and quarantine prices; write data/raw/."""
    from training.ingest import run_ingest

    settings = get_settings()
    until_day = None if until is None else parse_day(until, "--until")
    report = run_step(
        "ingest",
        lambda: run_ingest(settings.raw_dir, settings.ingest, source, benchmark, until_day),
    )
    print_ingest(
        report.manifest, report.quarantine_reasons, report.quality_summary, report.output_dir
    )


@cli.command()
def features(master: MasterOption = None) -> None:
    """Compute features and targets with Spark; write data/features/."""
    settings = _settings_with_master(master)
    manifest = run_step("features", lambda: features_step(settings))
    console.print(
        f"features: {manifest['rows']:,} rows, {len(manifest['tickers'])} tickers, "
        f"{manifest['start_date']}..{manifest['end_date']} on {manifest['spark_master']}"
    )


@cli.command()
def train() -> None:
    """Train the forecaster and export a new version to models/<name>/<version>/."""
    settings = get_settings()
    result = run_step("train", lambda: train_step(settings))
    print_training(result.metadata)
    promote_step(settings, result.version)


@cli.command()
def pipeline(
    master: MasterOption = None,
    if_missing: Annotated[
        bool, typer.Option("--if-missing", help="Do nothing when a model version already exists.")
    ] = False,
    until: UntilOption = None,
) -> None:
    """Ingest the embedded data, compute features and train, in order."""
    from training.ingest import run_ingest
    from training.model_store import list_versions

    settings = _settings_with_master(master)
    until_day = None if until is None else parse_day(until, "--until")
    existing = list_versions(settings.models_dir / settings.model_name)
    if if_missing and existing:
        console.print(
            f"model {settings.model_name} version {existing[-1]} exists; pipeline skipped"
        )
        return
    report = run_step(
        "ingest", lambda: run_ingest(settings.raw_dir, settings.ingest, until=until_day)
    )
    print_ingest(
        report.manifest, report.quarantine_reasons, report.quality_summary, report.output_dir
    )
    run_step("features", lambda: features_step(settings))
    result = run_step("train", lambda: train_step(settings))
    print_training(result.metadata)
    promote_step(settings, result.version)


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
        os.execv(command[0], command)  # nosec B606  # no shell; argv: our gunicorn command

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
    return gunicorn_argv(host, port, workers) if workers > 1 else None


def gunicorn_argv(host: str, port: int, workers: int) -> list[str]:
    """gunicorn with ``deploy/gunicorn.conf.py`` (uvicorn workers, multiprocess metrics)."""
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
        bool,
        typer.Option(
            "--in-process/--no-in-process", help="Run the refits here, one by one, without Spark."
        ),
    ] = False,
    copy_to: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Also copy the evaluation folder to DIR, replaced whole (dvc.yaml's evaluate "
            "stage tracks data/evaluation/).",
        ),
    ] = None,
) -> None:
    """Walk-forward evaluation of the model against baselines; writes <version>/evaluation/."""
    settings = _settings_with_master(master)
    metrics = run_step(
        "evaluate",
        lambda: evaluate_step(
            settings, first_year, last_year, refit_every, epochs, garch, in_process
        ),
    )
    print_evaluation(metrics)
    if copy_to is not None:
        from app.services.model_registry import serving_version
        from training.dvc_data import copy_evaluation

        def copy() -> Path:
            version = serving_version(settings.models_dir, settings.model_name)
            model_dir = settings.models_dir / settings.model_name
            return copy_evaluation(model_dir / str(version) / "evaluation", copy_to)

        console.print(f"copied the evaluation to {run_step('copy', copy)}")


@cli.command()
def challenger(master: MasterOption = None) -> None:
    """Train the Spark ML GBT challenger on all data; save it under models/spark/<version>/."""
    settings = _settings_with_master(master)
    version, path = run_step("challenger", lambda: challenger_step(settings))
    console.print(f"saved the GBT challenger as version {version} at {path}")


@cli.command()
def rebuild(version: Annotated[int, typer.Argument(help="The version to rebuild.")]) -> None:
    """Train VERSION again from the same data, feature code and seeds; export a new version.

    When that data is not on disk and the project is a DVC repository, it is fetched
    first from the DVC cache or remote (docs/dvc.md).
    """
    from training.dvc_data import restore_version_data
    from training.features import load_features
    from training.model_store import read_metadata
    from training.rebuild import rebuild_version
    from training.train import load_training_inputs

    settings = get_settings()
    version_dir = settings.models_dir / settings.model_name / str(version)

    def step() -> Any:
        fetched = restore_version_data(settings.data_dir, version_dir)
        if fetched is not None:
            console.print(fetched.describe())
        data_manifest, features_manifest, quality = load_training_inputs(settings.data_dir)
        return rebuild_version(
            load_features(settings.features_dir),
            settings.models_dir,
            settings.model_name,
            version,
            data_manifest=data_manifest,
            features_manifest=features_manifest,
            quality_report=quality,
            tracker=tracker_for(settings),
        )

    result = run_step("rebuild", step)
    original = read_metadata(version_dir)
    same = original["validation_metrics"] == result.metadata["validation_metrics"]
    console.print(
        f"rebuilt version {version} as version {result.version}: validation metrics "
        f"{'identical' if same else 'differ'}"
    )
    print_training(result.metadata)


def main() -> None:
    """Console-script entry point."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    cli()


if __name__ == "__main__":
    main()
