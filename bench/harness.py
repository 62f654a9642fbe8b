"""What the serving benchmarks share: servers started the production way, and wrk.

- :class:`Server` starts an ASGI app under gunicorn with uvicorn workers, configured by
  ``deploy/gunicorn.conf.py`` as in production (JSON logs, Prometheus multiprocess
  folder, TCP_NODELAY on the listening socket), and waits until it answers.
- :func:`run_wrk` drives one request with wrk and reads the result from a Lua ``done``
  hook that prints JSON: requests, errors by kind (non-2xx responses included) and
  latency percentiles from wrk's own histogram, so nothing is parsed from wrk's text.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from app.cli import gunicorn_argv

ROOT = Path(__file__).resolve().parents[1]
# 20 of the embedded data set's tickers: the allocations' universe.
TICKERS_20 = (
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
)
WRK_INSTALL_HINT = "wrk is not installed: apt-get install -y wrk (Debian's package)"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``gunicorn -c deploy/gunicorn.conf.py --workers N APP`` on loopback, as a context.

    The server's output (JSON log lines, access log included) goes to ``log_path``,
    as it would to a log collector; :meth:`log_tail` shows it when something fails.
    """

    def __init__(
        self,
        name: str,
        app: str,
        *,
        workers: int,
        ready_path: str,
        workdir: Path,
        env: Mapping[str, str] | None = None,
        ready_timeout: float = 180.0,
    ) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"{name}.log"
        metrics_dir = workdir / f"{name}-metrics"
        metrics_dir.mkdir(parents=True, exist_ok=True)
        self._command = [*gunicorn_argv("127.0.0.1", self.port, workers), app]
        self._env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            **(env or {}),
        }
        self._ready_path = ready_path
        self._ready_timeout = ready_timeout
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                self._command, cwd=ROOT, env=self._env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + self._ready_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self._process.returncode}:\n{self.log_tail()}"
                )
            try:
                if httpx.get(self.url + self._ready_path, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"{self.name} was not ready within {self._ready_timeout:.0f} s")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        """The gunicorn master's process id."""
        if self._process is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._process.pid

    def running(self) -> bool:
        """The master is alive."""
        return self._process is not None and self._process.poll() is None

    def worker_pids(self) -> set[int]:
        """The master's child processes right now: its workers (Linux's /proc)."""
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text()
        return {int(pid) for pid in children.split()}

    def stop(self) -> None:
        """SIGTERM to the gunicorn master (it stops its workers), SIGKILL after 30 s."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def log_tail(self, lines: int = 30) -> str:
        """The last lines the server wrote."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: counts over the whole run, latencies of the completed requests."""

    requests: int
    seconds: float
    non_2xx: int
    """Responses with a status of 400 or more (wrk's ``errors.status``)."""
    socket_errors: int
    """Connect, read and write errors and timeouts."""
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float

    @property
    def rps(self) -> float:
        """Requests per second over the run (completed requests, any status)."""
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def valid(self) -> bool:
        """No failed request: a run with errors measures the errors, not the endpoint."""
        return self.requests > 0 and self.non_2xx == 0 and self.socket_errors == 0


# wrk's Lua hooks: the request, then one JSON line from wrk's own counters and
# latency histogram (microseconds) when the run is done.
_LUA = """\
wrk.method = "{method}"
wrk.body = [==[{body}]==]
{headers}
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {{"requests": %d, "duration_us": %d, "non_2xx": %d, '
    .. '"socket_errors": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, '
    .. '"max_us": %d, "mean_us": %f}}\\n',
    summary.requests, summary.duration, e.status,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"""


def wrk_script(method: str, body: bytes, headers: Mapping[str, str]) -> str:
    """The Lua script that sends ``method`` with ``body`` and ``headers``."""
    text = body.decode()
    if "]==]" in text:
        raise ValueError("the body must not contain ']==]' (it closes the Lua string)")
    lines = [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    return _LUA.format(method=method, body=text, headers="\n".join(lines))


def parse_wrk_output(output: str) -> WrkResult:
    """The result line the Lua ``done`` hook printed."""
    for line in output.splitlines():
        if line.startswith("WRK_RESULT "):
            raw: dict[str, Any] = json.loads(line.removeprefix("WRK_RESULT "))
            return WrkResult(
                requests=int(raw["requests"]),
                seconds=raw["duration_us"] / 1e6,
                non_2xx=int(raw["non_2xx"]),
                socket_errors=int(raw["socket_errors"]),
                p50_ms=raw["p50_us"] / 1000,
                p90_ms=raw["p90_us"] / 1000,
                p99_ms=raw["p99_us"] / 1000,
                max_ms=raw["max_us"] / 1000,
                mean_ms=raw["mean_us"] / 1000,
            )
    raise RuntimeError(f"no WRK_RESULT line in wrk's output:\n{output}")


def run_wrk(
    url: str,
    *,
    method: str = "POST",
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    connections: int = 16,
    threads: int = 2,
    seconds: float = 10.0,
) -> WrkResult:
    """Closed loop: ``connections`` keep-alive connections, each sending its next request
    as soon as the last one is answered, for ``seconds``."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError(WRK_INSTALL_HINT)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(wrk_script(method, body, headers or {}))
    try:
        completed = subprocess.run(
            [
                wrk,
                f"-t{threads}",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "30s",
                "-s",
                script.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        os.unlink(script.name)
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed ({completed.returncode}):\n{completed.stderr}")
    return parse_wrk_output(completed.stdout)


def load_average() -> tuple[float, float, float]:
    """1, 5 and 15-minute load averages: how busy the machine was."""
    return os.getloadavg()
