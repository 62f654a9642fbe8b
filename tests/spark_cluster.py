"""A throw-away Spark standalone cluster for the tests: one master and one worker on loopback.

``standalone_cluster`` starts both daemons from the pyspark wheel, as a user would
start them from a Spark distribution: ``SPARK_HOME`` is the installed ``pyspark/``
folder and each daemon is ``bin/spark-class org.apache.spark.deploy.<role>``. The
master's RPC port and both web UIs take free 127.0.0.1 ports; the worker offers 2
cores and 2 GB to executors and runs their Python workers with this interpreter
(``PYSPARK_PYTHON``), so executors import the same pandas, pyarrow and TensorFlow.

The cluster is ready when the master's JSON status (``http://127.0.0.1:<ui>/json``)
lists the worker as ``ALIVE``. Each daemon runs in a process group of its own, so
stopping it also ends the executors and Python workers it started; nothing outlives
the ``with`` block. Logs (the daemons' output, executors' ``stderr`` under
``work/``) go to a temporary folder that is removed afterwards; a failure to start
raises with their tails.

Without ``java`` on the PATH (``make java`` says how to install it) the tests that
need the cluster skip, saying so.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

WORKER_CORES = 2
WORKER_MEMORY = "2g"
"""What the worker offers executors; an executor takes 1 GB (Spark's default) of it."""
DAEMON_MEMORY = "512m"
"""Heap of the master and worker daemons themselves (Spark's default is 1 GB each)."""
START_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 20.0
_START_ATTEMPTS = 3  # a free port may be taken between the check and the bind


def unavailable_reason() -> str | None:
    """Why no cluster can be started here, or None when one can."""
    if shutil.which("java") is None:
        return (
            "java is not on the PATH: Spark's daemons need Java 17 "
            "(apt-get install -y openjdk-17-jre-headless)"
        )
    return None


def spark_home() -> Path:
    """The installed ``pyspark/`` folder: the wheel carries ``bin/spark-class`` and the jars."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


@dataclass(frozen=True)
class StandaloneCluster:
    """A running master and worker: where to reach them, and where they log."""

    master_url: str
    """``spark://127.0.0.1:<port>``: what ``--master`` takes."""
    web_ui_url: str
    """The master's web UI, ``http://127.0.0.1:<port>``; its status is at ``/json``."""
    log_dir: Path
    daemon_pids: tuple[int, ...]
    """The master's and the worker's process ids, each the leader of its process group."""

    def status(self) -> dict[str, Any]:
        """The master's JSON status: its workers, their state, cores and applications."""
        response = httpx.get(f"{self.web_ui_url}/json/", timeout=5)
        response.raise_for_status()
        status: dict[str, Any] = response.json()
        return status

    def log_tails(self, characters: int = 3000) -> str:
        """The end of every daemon and executor log, to explain a failure."""
        return _log_tails(self.log_dir, characters)


@contextlib.contextmanager
def standalone_cluster(
    *,
    worker_cores: int = WORKER_CORES,
    worker_memory: str = WORKER_MEMORY,
    start_timeout: float = START_TIMEOUT_SECONDS,
) -> Iterator[StandaloneCluster]:
    """Start a master and one worker on 127.0.0.1, yield the cluster, then stop both.

    Raises
    ------
    RuntimeError
        ``unavailable_reason`` names a reason, or the worker was not ``ALIVE`` at the
        master within ``start_timeout`` seconds (with the daemons' log tails).
    """
    reason = unavailable_reason()
    if reason is not None:
        raise RuntimeError(reason)
    root = Path(tempfile.mkdtemp(prefix="quantserve-spark-"))
    daemons: list[subprocess.Popen[bytes]] = []
    try:
        for attempt in range(1, _START_ATTEMPTS + 1):
            log_dir = root / f"attempt-{attempt}"
            log_dir.mkdir()
            try:
                cluster = _start(log_dir, daemons, worker_cores, worker_memory, start_timeout)
                break
            except _PortTaken:
                _stop(daemons)
                daemons.clear()
                if attempt == _START_ATTEMPTS:
                    raise RuntimeError(
                        f"the Spark daemons could not bind free ports in {_START_ATTEMPTS} "
                        f"attempts\n{_log_tails(log_dir)}"
                    ) from None
        yield cluster
    finally:
        _stop(daemons)
        shutil.rmtree(root, ignore_errors=True)


class _PortTaken(Exception):
    """A daemon exited because another process took its port first."""


def _start(
    log_dir: Path,
    daemons: list[subprocess.Popen[bytes]],
    worker_cores: int,
    worker_memory: str,
    start_timeout: float,
) -> StandaloneCluster:
    master_port, master_ui_port, worker_ui_port = _free_ports(3)
    master_url = f"spark://127.0.0.1:{master_port}"
    environment = _daemon_environment(log_dir)
    deploy = "org.apache.spark.deploy"
    daemons.append(
        _launch(
            "master",
            [
                f"{deploy}.master.Master",
                *("--host", "127.0.0.1", "--port", str(master_port)),
                *("--webui-port", str(master_ui_port)),
            ],
            environment,
            log_dir,
        )
    )
    daemons.append(
        _launch(
            "worker",
            [
                f"{deploy}.worker.Worker",
                *("--host", "127.0.0.1", "--webui-port", str(worker_ui_port)),
                *("--cores", str(worker_cores), "--memory", worker_memory),
                *("--work-dir", str(log_dir / "work")),
                master_url,
            ],
            environment,
            log_dir,
        )
    )
    cluster = StandaloneCluster(
        master_url,
        f"http://127.0.0.1:{master_ui_port}",
        log_dir,
        tuple(daemon.pid for daemon in daemons),
    )
    _wait_for_alive_worker(cluster, daemons, start_timeout)
    return cluster


def _daemon_environment(log_dir: Path) -> dict[str, str]:
    scratch = log_dir / "scratch"
    scratch.mkdir()
    # Ports are chosen here: a daemon that cannot bind its port must fail, not move to
    # the next one (Spark's default retries 16 higher ports) where nobody looks for it.
    no_port_retries = "-Dspark.port.maxRetries=0"
    # The master's REST submission server would take the fixed port 6066; jobs here are
    # submitted by drivers in client mode, which need only the RPC port.
    no_rest_server = "-Dspark.master.rest.enabled=false"
    return {
        **os.environ,
        "SPARK_HOME": str(spark_home()),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(log_dir),
        "SPARK_LOCAL_DIRS": str(scratch),
        "SPARK_DAEMON_MEMORY": DAEMON_MEMORY,
        "SPARK_MASTER_OPTS": f"{no_port_retries} {no_rest_server}",
        "SPARK_WORKER_OPTS": no_port_retries,
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
    }


def _launch(
    role: str, arguments: list[str], environment: Mapping[str, str], log_dir: Path
) -> subprocess.Popen[bytes]:
    """``spark-class`` in a new session: its JVM and everything it starts share one group."""
    with (log_dir / f"{role}.log").open("wb") as log:
        return subprocess.Popen(
            [str(spark_home() / "bin" / "spark-class"), *arguments],
            env=dict(environment),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_for_alive_worker(
    cluster: StandaloneCluster, daemons: list[subprocess.Popen[bytes]], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    last_seen = "no answer yet"
    while time.monotonic() < deadline:
        for daemon in daemons:
            if daemon.poll() is not None:
                tails = _log_tails(cluster.log_dir)
                if "BindException" in tails or "Address already in use" in tails:
                    raise _PortTaken
                raise RuntimeError(
                    f"a Spark daemon exited with {daemon.returncode} before the worker "
                    f"registered: {daemon.args!r}\n{tails}"
                )
        try:
            status = cluster.status()
        except (httpx.HTTPError, ValueError) as exc:
            last_seen = f"{type(exc).__name__}: {exc}"
        else:
            workers = status.get("workers", [])
            last_seen = f"status {status.get('status')}, workers {workers}"
            if status.get("status") == "ALIVE" and any(
                worker.get("state") == "ALIVE" for worker in workers
            ):
                return
        time.sleep(0.5)
    raise RuntimeError(
        f"no ALIVE worker at {cluster.web_ui_url}/json/ after {timeout:.0f} s "
        f"(last seen: {last_seen})\n{_log_tails(cluster.log_dir)}"
    )


def _stop(daemons: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each daemon's process group, SIGKILL what is left after the timeout.

    The worker's group holds its executors; their PySpark daemons put themselves in
    groups of their own (``os.setpgid(0, 0)``), so every descendant is noted before the
    first signal and any still running at the end is killed by its id. Waiting until
    every group is empty, not only its leader gone, is what leaves no process behind.
    """
    below = descendants([daemon.pid for daemon in daemons])
    for daemon in reversed(daemons):  # the worker first, so it does not re-register
        _signal_group(daemon.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for daemon in daemons:
        while _group_alive(daemon) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _group_alive(daemon):
            _signal_group(daemon.pid, signal.SIGKILL)
        daemon.wait(timeout=STOP_TIMEOUT_SECONDS)
        kill_deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while _group_alive(daemon) and time.monotonic() < kill_deadline:
            time.sleep(0.1)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while (alive := [p for p in below if p.running()]) and time.monotonic() < deadline:
        time.sleep(0.1)
    for process in alive:
        process.kill()


def _group_alive(daemon: subprocess.Popen[bytes]) -> bool:
    """Whether any process of the daemon's group (the daemon is its leader) still runs."""
    daemon.poll()  # reap the leader, or the group looks alive while it is a zombie
    try:
        os.killpg(daemon.pid, 0)
    except ProcessLookupError:
        return False
    return True


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signum)


@dataclass(frozen=True)
class ProcessId:
    """A process by id and start time, so that a reused id is never mistaken for it."""

    pid: int
    start_ticks: str

    def running(self) -> bool:
        stat = _stat(self.pid)
        # A zombie has exited: its parent will reap it.
        return stat is not None and stat[21] == self.start_ticks and stat[2] != "Z"

    def kill(self) -> None:
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


def _stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` (the command name, which may hold spaces, as one)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    process_id, _, rest = text.partition(" ")
    name, _, fields = rest.rpartition(") ")
    return [process_id, f"{name})", *fields.split()]


def descendants(roots: list[int]) -> list[ProcessId]:
    """Every process below ``roots`` (from ``/proc``; none where there is no ``/proc``)."""
    children: dict[int, list[ProcessId]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        stat = _stat(int(entry.name))
        if stat is not None:
            children.setdefault(int(stat[3]), []).append(ProcessId(int(stat[0]), stat[21]))
    found: list[ProcessId] = []
    pending = list(roots)
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child.pid)
    return found


def _free_ports(count: int) -> list[int]:
    """``count`` distinct ports that were free on 127.0.0.1 a moment ago."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _log_tails(log_dir: Path, characters: int = 3000) -> str:
    logs = sorted(path for path in log_dir.rglob("*") if path.is_file() and path.suffix != ".jar")
    sections = []
    for path in logs:
        if path.name in {"stdout", "stderr"} or path.suffix in {".log", ".out"}:
            text = path.read_text(errors="replace")[-characters:]
            sections.append(f"--- {path.relative_to(log_dir)} ---\n{text}")
    return "\n".join(sections) or f"(no log in {log_dir})"
