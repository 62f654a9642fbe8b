"""``quantserve replay`` and ``quantserve retrain``: a market feed, and retraining on it.

``replay`` sends the embedded data's later days to the landing folder or the Kafka
topic that ``quantserve stream`` reads (:mod:`training.replay`); ``retrain`` trains and
promotes as ``quantserve train`` does, with ``--if-due`` only once the features have
moved on past the serving version (:mod:`training.retrain_policy`).
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from app._cli_output import console, print_training, run_step
from app._cli_steps import promote_step, train_step
from app.core.config import Settings, get_settings
from training.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

    from training.replay import TradingDay
    from training.retrain_policy import RetrainDecision

__all__ = ["parse_day", "replay", "retrain", "retrain_decision"]


def parse_day(value: str, option: str) -> date:
    """An ISO ``YYYY-MM-DD`` day given to ``option``, or a usage error (exit code 2)."""
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a day as YYYY-MM-DD (e.g. 2022-11-28)", param_hint=option
        ) from None


def replay(
    from_day: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="DATE",
            help="First day to send (inclusive); default: the day after data/raw/ ends.",
        ),
    ] = None,
    speed: Annotated[
        float,
        typer.Option(metavar="N", help="Trading days per second (0.2: one day every 5 s)."),
    ] = 1.0,
    days: Annotated[
        int | None, typer.Option(metavar="K", min=1, help="Send at most K days.")
    ] = None,
    to_day: Annotated[
        str | None,
        typer.Option("--to", metavar="DATE", help="Last day to send (inclusive)."),
    ] = None,
    kafka: Annotated[
        str | None,
        typer.Option(
            metavar="HOST:PORT",
            help="Send to Kafka at these brokers; default stream.kafka_bootstrap_servers, "
            "and without either the landing folder.",
        ),
    ] = None,
    topic: Annotated[
        str | None, typer.Option(help="Kafka topic (default stream.kafka_topic).")
    ] = None,
) -> None:
    """Send the embedded data's bars day by day to the landing folder or Kafka, as a feed."""
    from training.replay import (
        KafkaBarProducer,
        embedded_bars,
        select_days,
        write_landing_file,
    )
    from training.replay import replay as run_replay

    if not (speed > 0 and math.isfinite(speed)):
        raise typer.BadParameter(f"{speed} is not a positive number", param_hint="--speed")
    settings = get_settings()
    start = parse_day(from_day, "--from") if from_day is not None else None
    end = parse_day(to_day, "--to") if to_day is not None else None
    bars = embedded_bars()
    if start is None:
        start = _day_after_ingest(settings, bars)
    try:
        selected = select_days(bars, start, end, days)
    except DataError as exc:
        console.print(f"[bold red]replay failed:[/] {exc}")
        raise typer.Exit(code=1) from exc
    servers = kafka or settings.stream.kafka_bootstrap_servers
    console.print(
        f"replaying {len(selected)} days, {selected[0].day}..{selected[-1].day}, "
        f"at {speed:g} days per second"
    )
    if servers is None:
        landing = settings.landing_dir

        def to_landing(trading_day: TradingDay) -> str:
            return str(write_landing_file(landing, trading_day))

        run_step("replay", lambda: run_replay(selected, to_landing, speed, on_sent=_print_day))
        return
    producer = KafkaBarProducer(servers, topic or settings.stream.kafka_topic)
    target = f"kafka {servers} topic {producer.topic}"

    def to_kafka(trading_day: TradingDay) -> str:
        producer.send(trading_day)
        return target

    try:
        run_step("replay", lambda: run_replay(selected, to_kafka, speed, on_sent=_print_day))
    finally:
        producer.close()


def _print_day(trading_day: TradingDay, target: object) -> None:
    console.print(f"{trading_day.day}: {len(trading_day.bars)} bars to {target}", soft_wrap=True)


def _day_after_ingest(settings: Settings, bars: pd.DataFrame) -> date:
    """The trading day after the last one of ``data/raw/`` (``--from`` when not given)."""
    from training.replay import day_after

    manifest_path = settings.raw_dir / "manifest.json"
    if not manifest_path.is_file():
        raise typer.BadParameter(
            f"no {manifest_path} to continue from; pass a day", param_hint="--from"
        )
    last = date.fromisoformat(json.loads(manifest_path.read_text())["date_range"][1])
    following = day_after(bars, last)
    if following is None:
        raise typer.BadParameter(
            f"data/raw/ already holds the data's last day, {last}; run `quantserve pipeline "
            "--until DATE` with an earlier day, or pass one",
            param_hint="--from",
        )
    return following


def retrain(
    if_due: Annotated[
        bool,
        typer.Option(
            "--if-due",
            help="Only when retrain.max_new_days trading days have arrived since the "
            "serving version's data, or a feature drifted past retrain.drift_psi.",
        ),
    ] = False,
) -> None:
    """Train and promote as `train` does; with --if-due only when the data has moved on."""
    settings = get_settings()
    decision = run_step("retrain check", lambda: retrain_decision(settings))
    verdict = "due" if decision.due else "not due"
    console.print(f"retrain {verdict}: {decision.reason}", soft_wrap=True)
    if if_due and not decision.due:
        console.print("nothing to do")
        return
    if not if_due and not decision.due:
        console.print("retraining anyway: --if-due not given")
    result = run_step("train", lambda: train_step(settings))
    print_training(result.metadata)
    promote_step(settings, result.version)


def retrain_decision(settings: Settings) -> RetrainDecision:
    """Whether the serving version of ``settings.model_name`` is due for a retrain."""
    from app.services.model_registry import serving_version
    from training.drift import read_drift_reference
    from training.feature_table import load_features
    from training.model_store import list_versions, read_metadata
    from training.retrain_policy import RetrainDecision, assess_retrain, training_data_end

    model_dir = settings.models_dir / settings.model_name
    if not list_versions(model_dir):
        return RetrainDecision(True, f"no version of {settings.model_name} yet")
    version = serving_version(settings.models_dir, settings.model_name)
    version_dir = model_dir / str(version)
    end = training_data_end(read_metadata(version_dir))
    if end is None:
        return RetrainDecision(
            True, f"version {version}'s metadata does not say which days it was trained on"
        )
    decision = assess_retrain(
        load_features(settings.features_dir),
        end,
        read_drift_reference(version_dir),
        settings.retrain,
    )
    return RetrainDecision(
        decision.due,
        f"serving version {version} was trained on data through {end}; {decision.reason}",
        decision.new_days,
        decision.new_rows,
        decision.drift,
    )
