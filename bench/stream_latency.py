"""Landing-to-forecast latency: a bar file lands, how long until /v1/forecasts shows its day?

    python -m bench.stream_latency [--days 20] [--from 2022-11-29] [--poll 1.0] [--workers 2]

The production path, end to end, on loopback: ``quantserve ingest --until`` and the
full feature job build the data up to the day before ``--from``; the served model is a
copy of ``models/`` (``make serve`` builds one) or, without one, a one-epoch model
trained here. quantserve then serves under gunicorn while ``quantserve stream`` watches
the landing folder, and each replayed day is landed (written hidden, renamed into
place) only once the previous one is served. A day's latency runs from its file's
rename to the first ``POST /v1/forecasts`` answering with ``as_of`` equal to its date
(polled every 50 ms).

Each day's latency is split where the feature manifest allows: the stream (arrival to
the new feature table's swap) and the server (swap to the first answer: the poll
interval, then the reload). The baseline, measured in the same run, is the full
feature job's wall time on the same data: what each new day would cost if the table
were recomputed instead of updated.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import httpx

from bench.harness import ROOT, Server
from training.replay import day_after, embedded_bars, select_days, write_landing_file


def quantserve(env: dict[str, str], *args: str) -> float:
    """Run one CLI command to completion; return its wall time in seconds."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def served_as_of(client: httpx.Client) -> str | None:
    response = client.post("/v1/forecasts", json={})
    if response.status_code != 200:
        return None
    as_of: str = response.json()["as_of"]
    return as_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--from", dest="start", default="2022-11-29")
    parser.add_argument("--poll", type=float, default=1.0, help="lifecycle poll (s)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="quantserve-stream-bench-"))
    data, models = work / "data", work / "models"
    env = {
        **os.environ,
        "QUANTSERVE_DATA_DIR": str(data),
        "QUANTSERVE_MODELS_DIR": str(models),
        "QUANTSERVE_DEV_MODE": "1",
        "QUANTSERVE_LIMITS__RATE_PER_SECOND": "0",
        "QUANTSERVE_LIFECYCLE__POLL_INTERVAL_SECONDS": str(args.poll),
        "QUANTSERVE_STREAM__TRIGGER_SECONDS": "0.5",
        "PYSPARK_PYTHON": sys.executable,
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    bars = embedded_bars()
    first = date.fromisoformat(args.start)
    until = max(d for d in bars["date"].unique() if d < first.isoformat())
    days = select_days(bars, first, limit=args.days)
    assert day_after(bars, date.fromisoformat(until)) == days[0].day
    print(f"load average {os.getloadavg()[0]:.1f}; data up to {until}, {len(days)} days to replay")

    quantserve(env, "ingest", "--until", until)
    full_job = quantserve(env, "features")
    source = ROOT / "models" / "forecaster"
    if any(p.name.isdigit() for p in source.glob("*")):
        shutil.copytree(source, models / "forecaster", ignore=shutil.ignore_patterns("*.lock"))
    else:
        quantserve({**env, "QUANTSERVE_TRAINING__EPOCHS": "1"}, "train")
    print(f"full feature job (the baseline): {full_job:.1f} s")

    stream_log = (work / "stream.log").open("w")
    stream = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "stream"],
        cwd=ROOT,
        env=env,
        stdout=stream_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    rows = []
    try:
        with (
            Server(
                "quantserve",
                "app.main:create_app()",
                workers=args.workers,
                ready_path="/readyz",
                workdir=work,
                env=env,
            ) as server,
            httpx.Client(base_url=server.url, timeout=10) as client,
        ):
            while not (data / "stream-checkpoint" / "metadata").is_file():
                assert stream.poll() is None, (work / "stream.log").read_text()
                time.sleep(0.2)
            assert served_as_of(client) == until
            for day in days:
                landed = write_landing_file(data / "landing", day)
                arrived = landed.stat().st_mtime
                while served_as_of(client) != day.day.isoformat():
                    assert stream.poll() is None, (work / "stream.log").read_text()
                    time.sleep(0.05)
                answered = time.time()
                manifest = json.loads((data / "features" / "_manifest.json").read_text())
                swapped = datetime.fromisoformat(manifest["created_at"]).timestamp()
                rows.append((day.day, answered - arrived, swapped - arrived, answered - swapped))
                print(
                    f"{day.day}: {answered - arrived:5.1f} s "
                    f"(stream {swapped - arrived:4.1f} s, server {answered - swapped:4.1f} s)",
                    flush=True,
                )
    finally:
        os.killpg(stream.pid, 15)
        stream.wait(30)
    latencies = [r[1] for r in rows]
    median = statistics.median(latencies)
    print()
    print(f"landing -> /v1/forecasts, {len(rows)} days, poll {args.poll} s, {args.workers} workers")
    print(f"  median {median:.1f} s, worst {max(latencies):.1f} s (target <= 30 s)")
    print(
        f"  stream part: median {statistics.median(r[2] for r in rows):.1f} s, "
        f"worst {max(r[2] for r in rows):.1f} s"
    )
    print(
        f"  server part: median {statistics.median(r[3] for r in rows):.1f} s, "
        f"worst {max(r[3] for r in rows):.1f} s"
    )
    print(
        f"  full feature job per day instead: {full_job:.1f} s "
        f"(median latency / full job = {median / full_job:.2f})"
    )
    print(f"finished {datetime.now(UTC).isoformat(timespec='seconds')}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
