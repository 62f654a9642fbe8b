"""Serving benchmark: quantserve's endpoints beside a bare FastAPI endpoint, same run.

Starts the real server (``quantserve serve``, one uvicorn worker, the model in
``models/``) and ``bench/bare_app.py`` on loopback, drives each scenario with the same
closed-loop client (``--connections`` concurrent keep-alive connections for
``--seconds``; wrk when it is installed, else an asyncio httpx client), and prints
throughput and latency percentiles with ratios to the bare endpoint measured in this
run (the machine is noisy: compare ratios, not absolutes).
The last line is one JSON object.

Run: ``make bench`` (builds a model first if none exists).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TICKERS_20 = [
    "AAPL",
    "AMD",
    "BAC",
    "BBY",
    "CVX",
    "GE",
    "HD",
    "JNJ",
    "JPM",
    "KO",
    "LLY",
    "MRK",
    "MSFT",
    "PEP",
    "PFE",
    "PG",
    "RRC",
    "UNH",
    "WMT",
    "XOM",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(command: list[str], port: int, ready_path: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}{ready_path}", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise SystemExit(f"{' '.join(command)} exited with {process.returncode}")
        time.sleep(0.5)
    process.kill()
    raise SystemExit(f"{' '.join(command)} was not ready within 120 s")


async def drive(
    url: str, body: dict[str, Any], connections: int, seconds: float
) -> dict[str, float]:
    """Closed loop: each connection sends its next request when the last one returns."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        # warm-up: compile the optimizer problem, fill caches
        for _ in range(3):
            (await client.post(url, json=body)).raise_for_status()
        stop = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                started = time.perf_counter()
                response = await client.post(url, json=body)
                latencies.append(time.perf_counter() - started)
                errors += response.status_code != 200

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - began
    ms = np.array(latencies) * 1000
    return {
        "requests": float(len(ms)),
        "errors": float(errors),
        "rps": len(ms) / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def drive_wrk(url: str, body: dict[str, Any], connections: int, seconds: float) -> dict[str, float]:
    """The same scenario through wrk (2 threads), which outpaces a Python client."""
    for _ in range(3):  # warm-up, as for the Python driver
        httpx.post(url, json=body, timeout=30).raise_for_status()
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = {json.dumps(json.dumps(body))}\n"
        )
    try:
        output = subprocess.run(
            [
                "wrk",
                "-t2",
                f"-c{connections}",
                f"-d{seconds:.0f}s",
                "--latency",
                "-s",
                script.name,
                url,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        os.unlink(script.name)

    def latency(percent: str) -> float:
        match = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        if match is None:
            raise RuntimeError(f"no {percent}% latency in wrk output:\n{output}")
        return float(match.group(1)) * _UNITS_MS[match.group(2)]

    requests = re.search(r"(\d+) requests in", output)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if requests is None or rps is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    return {
        "requests": float(requests.group(1)),
        "errors": float(errors.group(1)) if errors else 0.0,
        "rps": float(rps.group(1)),
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--driver", choices=["auto", "wrk", "httpx"], default="auto")
    args = parser.parse_args()
    use_wrk = args.driver == "wrk" or (args.driver == "auto" and shutil.which("wrk"))

    bare_port, app_port = free_port(), free_port()
    uvicorn = [sys.executable, "-m", "uvicorn", "--log-level", "warning", "--host", "127.0.0.1"]
    bare = start([*uvicorn, "--port", str(bare_port), "bench.bare_app:app"], bare_port, "/docs")
    served = start(
        [
            sys.executable,
            "-m",
            "app.cli",
            "serve",
            "--workers",
            "1",
            "--host",
            "127.0.0.1",
            "--port",
            str(app_port),
        ],
        app_port,
        "/readyz",
    )
    scenarios = {
        "bare POST /echo": (f"http://127.0.0.1:{bare_port}/echo", {"tickers": ["AAPL", "MSFT"]}),
        "POST /v1/forecasts (2 tickers)": (
            f"http://127.0.0.1:{app_port}/v1/forecasts",
            {"tickers": ["AAPL", "MSFT"]},
        ),
        "POST /v1/portfolios/optimize min_variance (20)": (
            f"http://127.0.0.1:{app_port}/v1/portfolios/optimize",
            {"tickers": TICKERS_20, "objective": "min_variance"},
        ),
        "POST /v1/portfolios/optimize max_sharpe cap 10% (20)": (
            f"http://127.0.0.1:{app_port}/v1/portfolios/optimize",
            {
                "tickers": TICKERS_20,
                "objective": "max_sharpe",
                "constraints": {"long_only": True, "max_weight": 0.1},
            },
        ),
    }
    results: dict[str, dict[str, float]] = {}
    try:
        for name, (url, body) in scenarios.items():
            if use_wrk:
                results[name] = drive_wrk(url, body, args.connections, args.seconds)
            else:
                results[name] = asyncio.run(drive(url, body, args.connections, args.seconds))
    finally:
        for process in (bare, served):
            process.terminate()
            process.wait(timeout=30)

    baseline = results["bare POST /echo"]
    print(
        f"{'wrk' if use_wrk else 'httpx'}: {args.connections} connections, "
        f"{args.seconds:.0f} s per scenario, one uvicorn worker each, client on the same machine"
    )
    print(
        f"{'scenario':52} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'rps/bare':>9} "
        f"{'p99/bare':>9} {'errors':>7}"
    )
    for name, r in results.items():
        r["rps_ratio"] = r["rps"] / baseline["rps"]
        r["p99_ratio"] = r["p99_ms"] / baseline["p99_ms"]
        print(
            f"{name:52} {r['rps']:8.0f} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f} "
            f"{r['rps_ratio']:9.2f} {r['p99_ratio']:9.2f} {int(r['errors']):7d}"
        )
    print(json.dumps({name: {k: round(v, 3) for k, v in r.items()} for name, r in results.items()}))


if __name__ == "__main__":
    main()
