"""Per-request cost of quantserve's endpoints in-process: no server, no socket, no client.

The app (``create_app`` with the model in ``models/``) is called directly as an ASGI
callable, request after request, and the CPU time of this process per request is
reported (``time.process_time``: the thread pool's work counts, other processes' load
mostly does not). This is how docs/benchmarks.md measured what each piece of the hot
path costs; ``--profile`` prints cProfile's view of one endpoint (the event loop's
thread only).

    python -m bench.hotpath [--endpoint forecasts-5 ...] [--rounds 9] [--profile]

The audit trail goes to a temporary SQLite file; the rate limit is off; the JSON logs
go to /dev/null, formatted as in production.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import logging
import os
import pstats
import statistics
import tempfile
import time
from typing import Any

from bench.harness import TICKERS_20

TICKERS_5 = ["AAPL", "JNJ", "JPM", "XOM", "WMT"]
Send = tuple[str, str, bytes]


def _scope(method: str, path: str, body: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": {},
    }


async def call(app: Any, method: str, path: str, body: bytes) -> tuple[int, bytes]:
    """One request through the whole app; its status and body."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        return pending.pop() if pending else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(_scope(method, path, body), receive, send)
    return status, b"".join(chunks)


async def measure(args: argparse.Namespace) -> None:
    from prometheus_client import CollectorRegistry

    from app.core.config import Settings
    from app.core.logging import configure_logging
    from app.main import create_app

    configure_logging("info")
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 (for the whole run)
    app = create_app(Settings(), registry=CollectorRegistry())
    async with app.router.lifespan_context(app):
        status, metadata = await call(app, "GET", "/v1/models/forecaster/metadata", b"")
        if status != 200:
            raise SystemExit(f"no model is served ({status}): run `quantserve pipeline` first")
        signature = json.loads(metadata)["metadata"]["signature_def"]["signature_def"]
        (tensor,) = signature["serving_default"]["inputs"].values()
        _, lookback, n_features = (int(d["size"]) for d in tensor["tensor_shape"]["dim"])
        instance = [[0.1 * ((i + j) % 7 - 3) for j in range(n_features)] for i in range(lookback)]
        endpoints: dict[str, Send] = {
            "healthz": ("GET", "/healthz", b""),
            "forecasts-5": ("POST", "/v1/forecasts", json.dumps({"tickers": TICKERS_5}).encode()),
            "forecasts-all": ("POST", "/v1/forecasts", b"{}"),
            "predict-1": (
                "POST",
                "/v1/models/forecaster:predict",
                json.dumps({"instances": [instance]}).encode(),
            ),
            "predict-64": (
                "POST",
                "/v1/models/forecaster:predict",
                json.dumps({"instances": [instance] * 64}).encode(),
            ),
            "optimize-20": (
                "POST",
                "/v1/portfolios/optimize",
                json.dumps({"tickers": list(TICKERS_20), "objective": "min_variance"}).encode(),
            ),
        }
        for name in args.endpoint or list(endpoints):
            method, path, body = endpoints[name]
            count = 100 if name.startswith("optimize") else args.requests
            for _ in range(min(count, 200)):  # warm-up: caches, compiled problems
                status, answer = await call(app, method, path, body)
                if status != 200:
                    raise SystemExit(f"{name}: {status} {answer[:300]!r}")
            per_request = []
            for _ in range(args.rounds):
                started = time.process_time()
                for _ in range(count):
                    await call(app, method, path, body)
                per_request.append((time.process_time() - started) / count * 1e6)
            print(
                f"{name:14} {statistics.median(per_request):7.0f} µs CPU per request "
                f"(median of {args.rounds} rounds of {count}; min {min(per_request):.0f})",
                flush=True,
            )
            if args.profile:
                profile = cProfile.Profile()
                profile.enable()
                for _ in range(count):
                    await call(app, method, path, body)
                profile.disable()
                pstats.Stats(profile).sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--endpoint", action="append", default=[], help="default: all")
    parser.add_argument("--requests", type=int, default=1000, help="per round")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="quantserve-hotpath-") as tmp:
        os.environ.update(
            {
                "QUANTSERVE_DEV_MODE": "1",
                "QUANTSERVE_API_KEYS": "[]",
                "QUANTSERVE_LIMITS__RATE_PER_SECOND": "0",
                "QUANTSERVE_AUDIT__URL": f"sqlite:///{tmp}/audit.db",
                "QUANTSERVE_LIFECYCLE__POLL_INTERVAL_SECONDS": "0",
                "TF_CPP_MIN_LOG_LEVEL": "2",
            }
        )
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(measure(args))


if __name__ == "__main__":
    main()
