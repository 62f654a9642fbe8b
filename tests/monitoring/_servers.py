"""Real servers for the monitoring tests: quantserve under gunicorn, Debian's Prometheus.

Both listen on loopback ports the kernel picked; each runs in its own process group,
which teardown ends (SIGTERM, then SIGKILL if it does not stop).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """Status and body of a GET (an HTTP error status is returned, not raised)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def http_post_json(
    url: str, body: Any, headers: Mapping[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    """Status, headers and JSON body of a POST with a JSON body."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", **(headers or {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    timeout: float,
    process: subprocess.Popen[bytes] | None = None,
) -> T:
    """Poll ``probe`` until it returns something, ``process`` dies, or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {process.returncode}")
        try:
            result = probe()
        except OSError:
            result = None
        if result is not None:
            return result
        time.sleep(0.5)
    raise TimeoutError(f"{what}: nothing after {timeout:.0f} s")


@contextmanager
def running(
    command: list[str], log_path: Path, env: Mapping[str, str], cwd: Path = REPO
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` in its own process group, output to ``log_path``; end it after."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=40)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def gunicorn_command(port: int, workers: int) -> list[str]:
    """quantserve as the container runs it, on loopback."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        str(REPO / "deploy" / "gunicorn.conf.py"),
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
    ]


def uvicorn_command(port: int) -> list[str]:
    """quantserve in one uvicorn process on loopback, from the app factory."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "app.main:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


@contextmanager
def quantserve_uvicorn(env: Mapping[str, str], log_path: Path) -> Iterator[str]:
    """A uvicorn quantserve with ``env``, ready (``/readyz`` 200); yields its base URL.

    A server that dies or is not ready within 3 minutes fails with its log.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running(uvicorn_command(port), log_path, env) as server:
        try:
            wait_for(
                "quantserve /readyz",
                lambda: True if http_get(f"{url}/readyz")[0] == 200 else None,
                timeout=180,
                process=server,
            )
        except (RuntimeError, TimeoutError) as error:
            raise AssertionError(f"{error}; the server's log:\n{log_path.read_text()}") from error
        yield url


def prometheus_command(binary: str, config: Path, storage: Path, port: int) -> list[str]:
    """A Prometheus server on loopback with its own storage."""
    return [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={storage}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]


def write_prometheus_config(path: Path, rules: Path, api_port: int) -> Path:
    """A config that scrapes quantserve on ``api_port`` every second, with ``rules/*.yml``."""
    import yaml

    path.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(rules / "*.yml")],
                "scrape_configs": [
                    {
                        "job_name": "quantserve",
                        "static_configs": [{"targets": [f"127.0.0.1:{api_port}"]}],
                    }
                ],
            }
        )
    )
    return path


class PrometheusApi:
    """The parts of Prometheus's HTTP API the tests read."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def get(self, path: str, **params: str) -> Any:
        """``data`` of an API answer; raises unless its status is success."""
        query = urllib.parse.urlencode(params)
        status, body = http_get(f"{self.base_url}{path}?{query}")
        answer = json.loads(body)
        if status != 200 or answer.get("status") != "success":
            raise AssertionError(f"{path} {params}: HTTP {status}: {answer}")
        return answer["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector of ``promql`` now."""
        data = self.get("/api/v1/query", query=promql)
        result: list[dict[str, Any]] = data["result"]
        return result

    def series(self, match: str) -> list[dict[str, str]]:
        """The label sets of the series matching ``match``."""
        found: list[dict[str, str]] = self.get("/api/v1/series", **{"match[]": match})
        return found
