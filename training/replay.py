"""``quantserve replay``: the embedded data set's last days, sent again as a market feed.

Each trading day's closes go out together, in date order, paced in trading days per
second, to one of the two inputs ``quantserve stream`` reads:

- the landing folder: one long CSV per day, ``bars-YYYY-MM-DD.csv`` with the header
  ``date,ticker,close`` and one row per ticker (the benchmark included), written as the
  hidden ``.bars-YYYY-MM-DD.csv.tmp`` and renamed into place, so the stream (which
  skips names starting with ``.`` or ``_``) never reads half a file;
- a Kafka topic: one UTF-8 JSON message per bar, ``{"date": "YYYY-MM-DD", "ticker":
  "AAPL", "close": 123.45}``, keyed by ticker, flushed after each day.

Closes are sent as the embedded files spell them, so a replayed day holds exactly the
rows that ``quantserve ingest --until`` left out.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Final

import pandas as pd

from training.errors import DataError, PipelineError
from training.sources import read_embedded

BAR_COLUMNS: Final = ("date", "ticker", "close")
"""The landing files' header and the Kafka messages' keys, in order."""
FLUSH_TIMEOUT_SECONDS: Final = 30.0
"""How long one day's messages may take to reach the Kafka brokers."""


class KafkaDeliveryError(PipelineError):
    """Bars did not reach the Kafka topic; the message names the broker's error."""


@dataclass(frozen=True)
class TradingDay:
    """One day's bars: ``bars`` has :data:`BAR_COLUMNS`, values as the source spelled them."""

    day: date
    bars: pd.DataFrame

    def csv_text(self) -> str:
        """The landing file's content: header, then one ``date,ticker,close`` row per bar."""
        text: str = self.bars.to_csv(index=False, lineterminator="\n")
        return text

    def messages(self) -> list[tuple[str, bytes]]:
        """``(key, value)`` per bar: the ticker, and the bar as UTF-8 JSON."""
        return [
            (
                ticker,
                json.dumps({"date": day, "ticker": ticker, "close": float(close)}).encode(),
            )
            for day, ticker, close in self.bars.itertuples(index=False, name=None)
        ]


def embedded_bars() -> pd.DataFrame:
    """Every bar of the embedded set: ``date, ticker, close`` as text, in file order."""
    rows = read_embedded().rows
    bars: pd.DataFrame = rows[list(BAR_COLUMNS)].astype(str).reset_index(drop=True)
    return bars


def select_days(
    bars: pd.DataFrame,
    start: date,
    end: date | None = None,
    limit: int | None = None,
) -> list[TradingDay]:
    """The trading days of ``bars`` from ``start`` to ``end`` (both inclusive), oldest first.

    Parameters
    ----------
    bars
        Rows with :data:`BAR_COLUMNS` and ISO ``YYYY-MM-DD`` dates (see :func:`embedded_bars`).
    start, end
        The first and last day to send; ``end=None`` runs to the end of the data.
    limit
        At most this many days (``None``: all of them).

    Raises
    ------
    DataError
        If no day of ``bars`` falls in the range, or ``limit`` is below 1.
    """
    if limit is not None and limit < 1:
        raise DataError(f"the number of days must be at least 1, got {limit}")
    first, last = bars["date"].min(), bars["date"].max()
    upper = end.isoformat() if end is not None else last
    wanted = bars[(bars["date"] >= start.isoformat()) & (bars["date"] <= upper)]
    if wanted.empty:
        raise DataError(
            f"no bars from {start} to {upper}: the data runs {first}..{last}; pick days within it"
        )
    days = sorted(wanted["date"].unique())[:limit]
    chosen = wanted[wanted["date"].isin(days)]
    return [
        TradingDay(date.fromisoformat(str(day)), group.reset_index(drop=True))
        for day, group in chosen.groupby("date", sort=True)
    ]


def day_after(bars: pd.DataFrame, day: date) -> date | None:
    """The first trading day of ``bars`` after ``day``; None when ``day`` is the last."""
    later = bars.loc[bars["date"] > day.isoformat(), "date"]
    return None if later.empty else date.fromisoformat(later.min())


def landing_file_name(day: date) -> str:
    """``bars-YYYY-MM-DD.csv``: the name ``quantserve stream`` reads the day under."""
    return f"bars-{day.isoformat()}.csv"


def write_landing_file(landing_dir: Path, trading_day: TradingDay) -> Path:
    """Write one day's bars to ``landing_dir`` atomically; returns the file's path.

    The bars go to ``.bars-YYYY-MM-DD.csv.tmp`` first (hidden from the stream), are
    synced to disk, and the file is renamed to ``bars-YYYY-MM-DD.csv`` in one step. A
    file of the same name is replaced; on failure the temporary file is removed.
    """
    landing_dir.mkdir(parents=True, exist_ok=True)
    final = landing_dir / landing_file_name(trading_day.day)
    tmp = landing_dir / f".{final.name}.tmp"
    try:
        with tmp.open("w", encoding="utf-8", newline="") as handle:
            handle.write(trading_day.csv_text())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return final


class KafkaBarProducer:
    """Sends trading days to a Kafka topic, one message per bar, flushed per day.

    Parameters
    ----------
    bootstrap_servers
        ``host:port[,host:port]`` of the brokers.
    topic
        The topic ``quantserve stream`` reads (``stream.kafka_topic``).
    config
        Further librdkafka settings (security, timeouts), merged over the defaults.
    """

    def __init__(
        self, bootstrap_servers: str, topic: str, config: Mapping[str, Any] | None = None
    ) -> None:
        from confluent_kafka import Producer

        self.topic = topic
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap_servers,
                # One copy per bar even when a send is retried.
                "enable.idempotence": True,
                "client.id": "quantserve-replay",
                **(config or {}),
            }
        )

    def send(self, trading_day: TradingDay) -> int:
        """Produce the day's bars and wait until the brokers hold them; returns the count.

        Raises
        ------
        KafkaDeliveryError
            If a bar was refused, or not acknowledged within ``FLUSH_TIMEOUT_SECONDS``.
        """
        failures: list[str] = []

        def delivered(error: Any, _message: Any) -> None:
            if error is not None:
                failures.append(str(error))

        messages = trading_day.messages()
        for key, value in messages:
            self._producer.produce(self.topic, key=key.encode(), value=value, on_delivery=delivered)
        waiting = self._producer.flush(FLUSH_TIMEOUT_SECONDS)
        if waiting:
            raise KafkaDeliveryError(
                f"{waiting} bars of {trading_day.day} were not acknowledged within "
                f"{FLUSH_TIMEOUT_SECONDS:.0f} s; check that the brokers are reachable"
            )
        if failures:
            raise KafkaDeliveryError(
                f"{len(failures)} bars of {trading_day.day} were refused by topic "
                f"{self.topic!r}: {failures[0]}"
            )
        return len(messages)

    def close(self) -> None:
        """Deliver anything still queued."""
        self._producer.flush(FLUSH_TIMEOUT_SECONDS)


def replay(
    days: Sequence[TradingDay],
    send: Callable[[TradingDay], object],
    speed: float,
    *,
    on_sent: Callable[[TradingDay, object], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Send ``days`` in order, ``speed`` trading days per second; returns the days sent.

    Day ``i`` goes out ``i / speed`` seconds after the first, on a fixed schedule: a
    slow send delays that day, not every later one. ``on_sent`` is called with each day
    and what ``send`` returned.

    Raises
    ------
    ValueError
        If ``speed`` is not a positive finite number.
    """
    if not (speed > 0 and math.isfinite(speed)):
        raise ValueError(f"speed must be a positive number of trading days per second: {speed}")
    started = clock()
    for index, trading_day in enumerate(days):
        delay = started + index / speed - clock()
        if delay > 0:
            sleep(delay)
        result = send(trading_day)
        if on_sent is not None:
            on_sent(trading_day, result)
    return len(days)
