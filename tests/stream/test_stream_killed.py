"""``quantserve stream`` killed with SIGKILL in the middle of a batch, then restarted.

The stream runs as a user runs it (the CLI, its own Spark driver and JVM). It is killed
twice: once just after Spark logged a batch's files in its checkpoint (before the bars
were committed), once between the commit of the bars and the swap of the features. After
each restart no bar is missing, none is stored twice, nothing is quarantined as a
duplicate, and the features equal a full recomputation.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pandas.testing as pdt
import pytest

from tests.stream.conftest import assert_features_match_a_full_run, land, new_days
from training.stream import QUARANTINE_DIR, PriceStore

pytestmark = pytest.mark.slow

TIMEOUT_SECONDS = 240.0


def stream_env(data: Path, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "QUANTSERVE_DATA_DIR": str(data),
        "QUANTSERVE_MODELS_DIR": str(tmp_path / "models"),
        "QUANTSERVE_SPARK__MASTER": "local[2]",
        "QUANTSERVE_SPARK__SHUFFLE_PARTITIONS": "2",
        "QUANTSERVE_SPARK__DRIVER_MEMORY": "1g",
        "QUANTSERVE_STREAM__TRIGGER_SECONDS": "0.5",
        "PYSPARK_PYTHON": sys.executable,
    }


@pytest.fixture
def start_stream(data_dir: Path, tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start `quantserve stream` (in its own process group); all are killed at the end."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> subprocess.Popen[str]:
        log = open(tmp_path / f"stream-{len(started)}.log", "w")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "stream", *args],
            env=stream_env(data_dir, tmp_path),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def kill_when(process: subprocess.Popen[str], condition: Callable[[], bool], what: str) -> None:
    """SIGKILL the stream's whole process group (driver and JVM) once ``condition`` holds."""
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not condition():
        assert process.poll() is None, f"the stream exited ({process.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def features_end(data: Path) -> str | None:
    try:
        manifest = json.loads((data / "features" / "_manifest.json").read_text())
    except (OSError, ValueError):
        return None
    end: str = manifest["end_date"]
    return end


def test_a_stream_killed_mid_batch_loses_no_bar_and_stores_none_twice(
    spark, data_dir: Path, tmp_path: Path, start_stream: Callable[..., subprocess.Popen[str]]
) -> None:
    (day1, bars1), (day2, bars2), (day3, bars3) = new_days()[:3]
    base, _ = PriceStore(data_dir / "raw").read()
    landing, checkpoint = data_dir / "landing", data_dir / "stream-checkpoint"

    # Run 1: day 1 goes through; killed once Spark has logged day 2's batch, before its
    # bars are committed.
    first = start_stream()
    land(landing, f"bars-{day1}.csv", bars1)
    wait_for(lambda: features_end(data_dir) == day1, f"features of {day1}")
    land(landing, f"bars-{day2}.csv", bars2)
    kill_when(first, lambda: (checkpoint / "offsets" / "1").is_file(), "batch 1's offsets")
    assert not (checkpoint / "commits" / "1").exists()  # Spark never finished batch 1

    # Run 2: batch 1 runs again, then day 3 lands; killed between the commit of its bars
    # and the swap of its features.
    second = start_stream()
    wait_for(lambda: features_end(data_dir) == day2, f"features of {day2} after the restart")
    land(landing, f"bars-{day3}.csv", bars3)
    kill_when(
        second,
        lambda: any(data_dir.glob(".features.tmp-*")),
        "the features of batch 2 being written",
    )
    prices, _ = PriceStore(data_dir / "raw").read()
    assert prices["date"].max() == pd.Timestamp(day3)  # the bars were committed...
    assert features_end(data_dir) == day2  # ...their features were not

    # Run 3: catches up and stops.
    third = start_stream("--available-now")
    assert third.wait(timeout=TIMEOUT_SECONDS) == 0, (tmp_path / "stream-2.log").read_text()

    prices, state = PriceStore(data_dir / "raw").read()
    fed = pd.concat([bars1, bars2, bars3], ignore_index=True)
    expected = pd.concat(
        [
            base,
            fed.assign(date=pd.to_datetime(fed["date"]), volume=float("nan")),
        ],
        ignore_index=True,
    ).sort_values(["ticker", "date"], ignore_index=True)
    pdt.assert_frame_equal(prices, expected.loc[:, prices.columns], check_dtype=False)
    assert state.bars_stored == len(fed)
    assert not (data_dir / "raw" / QUARANTINE_DIR).exists()  # no bar was seen as a duplicate
    manifest = json.loads((data_dir / "features" / "_manifest.json").read_text())
    assert (manifest["end_date"], manifest["stream_batch_id"]) == (day3, state.batch_id)

    assert_features_match_a_full_run(spark, data_dir, tmp_path)
