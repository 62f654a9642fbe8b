"""A real MLflow tracking server on loopback, tiny training inputs, and a clean environment.

The server is the full ``mlflow`` package from ``.venv-mlflow`` (``make mlops``: its
pins clash with the service's, so it has a venv of its own), started once per test run
with a SQLite backend and proxied artefacts in a temporary folder, and stopped at the
end with its whole process group. Without that venv the tests that need the server
skip, saying how to install it; under CI (``CI`` set) they fail instead.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from training.config import TrainingConfig
from training.tracking import HTTP_BOUNDS, TRACKING_URI_VARIABLE

ROOT = Path(__file__).resolve().parents[2]
MLFLOW = ROOT / ".venv-mlflow" / "bin" / "mlflow"
TINY = TrainingConfig(lookback_days=5, hidden_units=4, epochs=2, batch_size=256, patience=1)
"""Two epochs (patience 1 may stop after the second): per-epoch history to read back."""
DATA_MANIFEST = {"prices_sha256": "ab" * 32, "date_range": ["2010-01-01", "2011-02-25"]}
FEATURES_MANIFEST = {
    "input_sha256": "ab" * 32,
    "feature_code_version": "0123456789ab",
    "benchmark": None,
}


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago (nothing listens there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def clean_mlflow_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No tracking URI or HTTP bounds from outside; whatever a test sets is undone after.

    Setting then deleting records each variable's absence, so the bounds the tracker
    adds with ``os.environ.setdefault`` are removed at teardown too.
    """
    for variable in (TRACKING_URI_VARIABLE, *HTTP_BOUNDS):
        monkeypatch.setenv(variable, "")
        monkeypatch.delenv(variable)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of a running ``mlflow server``; stopped after the run."""
    if not MLFLOW.is_file():
        message = (
            f"{MLFLOW.relative_to(ROOT)} is missing, so the tests against a real MLflow "
            "server cannot run; `make mlops` installs it"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    log = (root / "server.log").open("wb")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    # No job runner: it forks seven huey consumers (GenAI evaluation jobs) the tracking
    # API does not need, and keeps them busy on a shared 2-core machine.
    environment["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    server = subprocess.Popen(
        [
            str(MLFLOW),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--workers",
            "1",
        ],
        cwd=root,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the workers stop with it
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_health(url, server, root / "server.log")
        yield url
    finally:
        _stop(server)
        log.close()


def _wait_for_health(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 180  # ~20 s on an idle machine; 2 shared cores can be slow
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {server.returncode}:\n{_tail(log)}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"mlflow server at {url} not healthy after 180 s:\n{_tail(log)}")


def _stop(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group (its uvicorn workers too), then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=20)


def _tail(log: Path, characters: int = 3000) -> str:
    return log.read_text(errors="replace")[-characters:] if log.is_file() else "(no log)"
