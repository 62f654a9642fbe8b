"""A throw-away PostgreSQL cluster for the tests: Debian's server, on a loopback port.

``running_cluster`` runs ``initdb`` into a new folder under the system temporary
directory, starts the server with ``pg_ctl`` on a free 127.0.0.1 port (its Unix socket in
that folder too), creates the role ``quantserve`` with a password, and on exit stops the
server and removes the folder. ``initdb`` refuses to run as root, so as root every server
command runs as the ``postgres`` user (``runuser``), which owns the folder.

The app connects as it would in Kubernetes: ``postgresql+psycopg://`` over TCP, with a
password (scram-sha-256). Each test takes a database of its own (``create_database``).
``fsync`` is off: nothing here tests the disk, and the machine's disk is shared.

Without the server binaries (Debian's ``postgresql`` package: ``make test-tools``
installs it) the tests that need the cluster skip, saying so.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

ROLE = "quantserve"
_SERVER_USER = "postgres"


def server_bin_dir() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``, or None.

    ``initdb`` on the PATH first, else the newest ``/usr/lib/postgresql/<major>/bin``
    (Debian's package puts only the client wrappers on the PATH).
    """
    on_path = shutil.which("initdb")
    if on_path is not None:
        return Path(on_path).resolve().parent
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not found:
        return None

    def major(path: str) -> int:
        match = re.search(r"/postgresql/(\d+)/", path)
        return int(match.group(1)) if match else 0

    return Path(max(found, key=major)).parent


def unavailable_reason() -> str | None:
    """Why no cluster can be started here, or None when one can."""
    if server_bin_dir() is None:
        return (
            "PostgreSQL's server is not installed (no initdb on the PATH or in "
            "/usr/lib/postgresql/*/bin): `make test-tools` installs Debian's postgresql as root"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(_SERVER_USER)
        except KeyError:
            return "running as root and there is no 'postgres' user to run initdb as"
        if shutil.which("runuser") is None:
            return "running as root without runuser to start PostgreSQL as 'postgres'"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresCluster:
    """A running cluster: where it listens, and the password of the role ``quantserve``."""

    root: Path
    port: int
    password: str
    socket_dir: Path

    def admin_connection(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """A superuser connection over the Unix socket (trusted: it is the folder's owner)."""
        return psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user=_SERVER_USER,
            dbname=dbname,
            autocommit=True,
        )

    def create_database(self) -> str:
        """A new, empty database owned by ``quantserve``; its SQLAlchemy URL."""
        name = f"test_{secrets.token_hex(6)}"
        with self.admin_connection() as connection:
            connection.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(name), sql.Identifier(ROLE)
                )
            )
        return self.url(name)

    def url(self, database: str) -> str:
        """``postgresql+psycopg://quantserve:<password>@127.0.0.1:<port>/<database>``."""
        return f"postgresql+psycopg://{ROLE}:{self.password}@127.0.0.1:{self.port}/{database}"


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", _SERVER_USER, "--", *command]


def _run(command: list[str], timeout: float = 120) -> None:
    done = subprocess.run(
        _as_server_user(command), capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )


@contextlib.contextmanager
def running_cluster() -> Iterator[PostgresCluster]:
    """Start a new cluster, yield it, then stop it and remove its folder.

    Raises
    ------
    RuntimeError
        ``unavailable_reason`` names a reason, or a server command failed (with its output).
    """
    reason = unavailable_reason()
    bin_dir = server_bin_dir()
    if reason is not None or bin_dir is None:
        raise RuntimeError(reason)
    # Under the system temporary folder rather than pytest's, whose parent is private to
    # the user running the tests: the server user must reach its own folder.
    root = Path(tempfile.mkdtemp(prefix="quantserve-postgres-"))
    data, socket_dir = root / "data", root / "socket"
    socket_dir.mkdir()
    if os.geteuid() == 0:
        server = pwd.getpwnam(_SERVER_USER)
        for path in (root, socket_dir):
            os.chown(path, server.pw_uid, server.pw_gid)
    started = False
    try:
        _run(
            [
                str(bin_dir / "initdb"),
                "--pgdata",
                str(data),
                "--username",
                _SERVER_USER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        for attempt in range(3):  # a free port may be taken between the check and the start
            port = _free_port()
            options = (
                f"-p {port} -k {socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c max_connections=200 -c full_page_writes=off"
            )
            try:
                _run(
                    [
                        str(bin_dir / "pg_ctl"),
                        "--pgdata",
                        str(data),
                        "--log",
                        str(root / "server.log"),
                        "--options",
                        options,
                        "--wait",
                        "start",
                    ]
                )
                break
            except RuntimeError as exc:
                if attempt == 2:
                    log = root / "server.log"
                    shown = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                    raise RuntimeError(f"{exc}\nserver log:\n{shown}") from exc
        started = True
        password = secrets.token_urlsafe(16)
        cluster = PostgresCluster(root, port, password, socket_dir)
        with cluster.admin_connection() as connection:
            connection.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(ROLE), sql.Literal(password)
                )
            )
        yield cluster
    finally:
        if started:
            _run(
                [str(bin_dir / "pg_ctl"), "--pgdata", str(data), "--mode", "immediate", "stop"],
                timeout=60,
            )
        shutil.rmtree(root, ignore_errors=True)
