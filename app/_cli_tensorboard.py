"""``quantserve tensorboard``: TensorBoard on the training logs of model versions.

Every version ``quantserve train`` exports keeps the Keras TensorBoard logs of its fit in
``models/<name>/<version>/tensorboard/``: a ``train`` and a ``validation`` run, each with
``epoch_loss`` and one ``epoch_<output>_loss`` per head. The command shows one version
(the serving one by default), several, or all of them side by side, each under the run
name ``v<version>`` (``v3/train``, ``v3/validation``), and hands the process over to
this venv's TensorBoard.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from app.core.config import get_settings

__all__ = ["LOGS_FOLDER", "NoLogs", "log_dirs", "tensorboard", "tensorboard_argv"]

LOGS_FOLDER = "tensorboard"
"""Where a version keeps its TensorBoard logs, inside its folder."""
EVENT_FILE_PREFIX = "events.out.tfevents."


class NoLogs(Exception):
    """No version to show: it does not exist, or it has no logs; the message says why."""


def log_dirs(model_dir: Path, versions: list[int] | None, every: bool) -> dict[int, Path]:
    """The log folder of each version to show, by version.

    Parameters
    ----------
    model_dir
        ``models/<name>``.
    versions
        The versions asked for; none asked means the serving version (the registry's
        production version, else the newest).
    every
        Every version that has logs, skipping those without.

    Raises
    ------
    NoLogs
        When a version asked for does not exist or has no logs, or none has logs.
    """
    from app.services.model_registry import serving_version
    from training.errors import PipelineError
    from training.model_store import list_versions

    existing = list_versions(model_dir)
    if not existing:
        raise NoLogs(
            f"no version of {model_dir.name} in {model_dir}; run `quantserve pipeline` (or "
            "`quantserve train`) to build one"
        )
    if every:
        found = {v: model_dir / str(v) / LOGS_FOLDER for v in existing}
        found = {v: path for v, path in found.items() if _has_events(path)}
        if not found:
            raise NoLogs(
                f"none of the versions {_listed(existing)} of {model_dir.name} has TensorBoard "
                f"logs; `quantserve train` writes them in <version>/{LOGS_FOLDER}/"
            )
        return found
    if not versions:
        try:
            versions = [serving_version(model_dir.parent, model_dir.name)]
        except PipelineError as exc:
            raise NoLogs(str(exc)) from exc
    chosen = {}
    for version in dict.fromkeys(versions):
        if version not in existing:
            raise NoLogs(
                f"{model_dir.name} has no version {version} in {model_dir}; it has "
                f"{_listed(existing)} (`quantserve models list`)"
            )
        path = model_dir / str(version) / LOGS_FOLDER
        if not _has_events(path):
            raise NoLogs(
                f"version {version} has no TensorBoard logs in {path} (exported before "
                f"versions kept them, or copied without them); `quantserve rebuild {version}` "
                "trains it again, from the same data and seeds, with them"
            )
        chosen[version] = path
    return chosen


def tensorboard_argv(logs: dict[int, Path], host: str, port: int) -> list[str]:
    """This venv's TensorBoard serving ``logs``, each version as the run ``v<version>``."""
    spec = ",".join(f"v{version}:{path.resolve()}" for version, path in sorted(logs.items()))
    return [
        sys.executable,
        "-m",
        "tensorboard.main",
        "--logdir_spec",
        spec,
        "--host",
        host,
        "--port",
        str(port),
    ]


def tensorboard(
    versions: Annotated[
        list[int] | None,
        typer.Argument(
            metavar="VERSION",
            help="Versions to show side by side (default: the serving version).",
            show_default=False,
        ),
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Every version that has logs, side by side.")
    ] = False,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to serve on.")] = 6006,
    host: Annotated[
        str, typer.Option(help="Interface to bind; 0.0.0.0 opens it to the network.")
    ] = "127.0.0.1",
) -> None:
    """TensorBoard on the training logs of model versions: losses per epoch and per head."""
    settings = get_settings()
    model_dir = settings.models_dir / settings.model_name
    if every and versions:
        _refuse("pass VERSION... or --all, not both")
    try:
        logs = log_dirs(model_dir, versions, every)
    except NoLogs as exc:
        _refuse(str(exc))
    for path in logs.values():
        if "," in str(path.resolve()):
            # --logdir_spec separates runs with commas; TensorBoard would split the path.
            _refuse(f"TensorBoard cannot read logs from a path with a comma: {path.resolve()}")
    problem = _cannot_bind(host, port)
    if problem is not None:
        _refuse(f"cannot serve on {host}:{port}: {problem}; pass another --port or --host")
    shown = ", ".join(f"v{version}" for version in sorted(logs))
    # Plain text: rich would wrap the URL on a narrow terminal.
    typer.echo(
        f"TensorBoard for {settings.model_name} {shown} at {_url(host, port)} (Ctrl+C to stop)"
    )
    sys.stdout.flush()
    command = tensorboard_argv(logs, host, port)
    # TensorBoard takes the process over, as `serve` hands it to gunicorn; TensorFlow's
    # C++ start-up notices are left out of its output.
    environment = {"TF_CPP_MIN_LOG_LEVEL": "2", **os.environ}
    os.execve(command[0], command, environment)  # nosec B606  # no shell; argv: our command


def _has_events(path: Path) -> bool:
    return path.is_dir() and any(path.rglob(f"{EVENT_FILE_PREFIX}*"))


def _listed(versions: list[int]) -> str:
    return ", ".join(map(str, versions))


def _cannot_bind(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be bound now (in use, unknown host), or None."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.bind(address)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _url(host: str, port: int) -> str:
    try:
        every_interface = ipaddress.ip_address(host).is_unspecified  # 0.0.0.0 or ::
    except ValueError:  # a host name
        every_interface = False
    # Bound to every interface: the machine's name is what another one would open.
    shown = socket.gethostname() if every_interface else host
    return f"http://[{shown}]:{port}/" if ":" in shown else f"http://{shown}:{port}/"


def _refuse(message: str) -> NoReturn:
    typer.echo(f"tensorboard refused: {message}", err=True)
    raise typer.Exit(code=2)
