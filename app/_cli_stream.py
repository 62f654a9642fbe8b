"""``quantserve stream``: new bars from the landing folder or a Kafka topic, into features."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from app._cli_output import console
from app.core.config import get_settings


def stream(
    available_now: Annotated[
        bool,
        typer.Option(
            "--available-now", help="Process the bars waiting now, then stop (a catch-up run)."
        ),
    ] = False,
    kafka: Annotated[
        str | None,
        typer.Option(
            "--kafka",
            help="Kafka bootstrap servers (host:port): read the topic, not the landing folder.",
        ),
    ] = None,
    topic: Annotated[
        str | None, typer.Option(help="Kafka topic (default: stream.kafka_topic).")
    ] = None,
) -> None:
    """Stream new bars into data/raw/ and publish the features incrementally."""
    from training.spark import build_spark_session
    from training.stream import BatchReport, run_stream

    settings = get_settings()
    config = settings.stream.model_copy(
        update={
            key: value
            for key, value in {"kafka_bootstrap_servers": kafka, "kafka_topic": topic}.items()
            if value
        }
    )
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    where = (
        f"Kafka topic {config.kafka_topic} at {config.kafka_bootstrap_servers}"
        if config.kafka_bootstrap_servers
        else f"{settings.landing_dir}/"
    )
    console.print(
        f"stream: bars from {where} into {settings.raw_dir}/ and {settings.features_dir}/"
    )

    def report(batch: BatchReport) -> None:
        console.print(batch.describe())

    spark = build_spark_session(
        settings.spark.master,
        "quantserve-stream",
        driver_memory=settings.spark.driver_memory,
        shuffle_partitions=settings.spark.shuffle_partitions,
    )
    try:
        run_stream(
            spark,
            raw_dir=settings.raw_dir,
            features_dir=settings.features_dir,
            landing_dir=settings.landing_dir,
            checkpoint_dir=settings.stream_checkpoint_dir,
            config=config,
            available_now=available_now,
            on_batch=report,
        )
    except KeyboardInterrupt:
        console.print("stream: stopped")
    finally:
        spark.stop()
