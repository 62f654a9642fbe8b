"""``quantserve tensorboard``: a real TensorBoard on a tiny version's logs, and its refusals.

The real command runs as a subprocess on a free loopback port, against versions trained
by ``train_and_export`` (``tests/model_store.py``); the test reads the runs and their
``epoch_loss`` scalars back through TensorBoard's HTTP API and compares them with the
losses the version's ``metadata.json`` recorded. The other tests run the command in
process with ``os.execve`` replaced, to check which logs it would serve and how it
refuses.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner, Result

from app._cli_tensorboard import tensorboard
from app.core.config import get_settings
from tests.model_store import fresh_root, tiny_store
from training.model_store import read_metadata
from training.registry import ModelRegistry

RUN_COMMAND = "import typer; from app._cli_tensorboard import tensorboard; typer.run(tensorboard)"


@pytest.fixture
def models_root(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """Versions 1 and 2 of "forecaster", each with its TensorBoard logs, as the settings'."""
    root = fresh_root(tiny_store(tmp_path_factory), tmp_path, versions=(1, 2))
    monkeypatch.setenv("QUANTSERVE_MODELS_DIR", str(root / "models"))
    get_settings.cache_clear()
    yield root / "models" / "forecaster"
    get_settings.cache_clear()


@pytest.fixture
def exec_calls(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The command lines the command would hand the process to (nothing is started)."""
    calls: list[list[str]] = []
    monkeypatch.setattr(os, "execve", lambda path, argv, env: calls.append(list(argv)))
    return calls


def invoke(*args: str) -> Result:
    app = typer.Typer()
    app.command()(tensorboard)
    return CliRunner().invoke(app, list(args))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def logdir_spec(argv: list[str]) -> dict[str, Path]:
    spec = argv[argv.index("--logdir_spec") + 1]
    return {name: Path(path) for name, _, path in (p.partition(":") for p in spec.split(","))}


def test_tensorboard_serves_the_serving_versions_losses(models_root: Path, tmp_path: Path) -> None:
    # Version 1 is production: it serves, although version 2 is newer.
    ModelRegistry(models_root).promote(1, reason="test")
    history = read_metadata(models_root / "1")["training"]
    port = free_port()
    out, err = (tmp_path / "stdout.txt").open("w"), (tmp_path / "stderr.txt").open("w")
    process = subprocess.Popen(
        [sys.executable, "-c", RUN_COMMAND, "--port", str(port)],
        stdout=out,
        stderr=err,
        env={**os.environ, "QUANTSERVE_MODELS_DIR": str(models_root.parent)},
    )
    try:
        base = f"http://127.0.0.1:{port}"
        runs = _wait_for_runs(base, process, tmp_path)
        assert sorted(runs) == ["v1/train", "v1/validation"]
        tags = httpx.get(f"{base}/data/plugin/scalars/tags", timeout=10).json()
        for run in runs:
            assert "epoch_loss" in tags[run]
            assert "epoch_log_variance_21d_loss" in tags[run]  # one loss per head
        for run, recorded in (
            ("v1/train", history["loss"]),
            ("v1/validation", history["val_loss"]),
        ):
            points = httpx.get(
                f"{base}/data/plugin/scalars/scalars",
                params={"run": run, "tag": "epoch_loss"},
                timeout=10,
            ).json()
            # [wall time, step, value] per epoch: the losses metadata.json recorded.
            assert [step for _, step, _ in points] == list(range(len(recorded)))
            assert [value for _, _, value in points] == pytest.approx(recorded, abs=1e-6)
    finally:
        process.terminate()
        process.wait(timeout=30)
        out.close()
        err.close()
    printed = (tmp_path / "stdout.txt").read_text()
    assert f"TensorBoard for forecaster v1 at http://127.0.0.1:{port}/" in printed


def _wait_for_runs(base: str, process: subprocess.Popen[bytes], folder: Path) -> list[str]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"tensorboard exited with {process.returncode}: "
                f"{(folder / 'stdout.txt').read_text()}{(folder / 'stderr.txt').read_text()}"
            )
        try:
            runs: list[str] = httpx.get(f"{base}/data/runs", timeout=5).json()
        except httpx.TransportError:
            runs = []
        if len(runs) >= 2:  # the logs load after the server starts answering
            return runs
        time.sleep(0.5)
    pytest.fail(
        f"TensorBoard did not list the runs within 120 s: {(folder / 'stderr.txt').read_text()}"
    )


def test_all_versions_side_by_side(models_root: Path, exec_calls: list[list[str]]) -> None:
    result = invoke("--all", "--port", "6123", "--host", "127.0.0.1")
    assert result.exit_code == 0, result.output
    (argv,) = exec_calls
    assert argv[:3] == [sys.executable, "-m", "tensorboard.main"]
    assert logdir_spec(argv) == {
        "v1": (models_root / "1" / "tensorboard").resolve(),
        "v2": (models_root / "2" / "tensorboard").resolve(),
    }
    assert argv[argv.index("--port") + 1] == "6123"
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert "TensorBoard for forecaster v1, v2 at http://127.0.0.1:6123/" in result.output


def test_chosen_versions_and_the_newest_by_default(
    models_root: Path, exec_calls: list[list[str]]
) -> None:
    assert invoke("2", "1").exit_code == 0
    assert invoke().exit_code == 0  # no registry: the newest version serves
    chosen, default = exec_calls
    assert sorted(logdir_spec(chosen)) == ["v1", "v2"]
    assert sorted(logdir_spec(default)) == ["v2"]


def test_all_skips_a_version_without_logs(models_root: Path, exec_calls: list[list[str]]) -> None:
    shutil.rmtree(models_root / "1" / "tensorboard")
    assert invoke("--all").exit_code == 0
    assert sorted(logdir_spec(exec_calls[0])) == ["v2"]


@pytest.mark.parametrize(
    ("args", "change", "message"),
    [
        (("7",), None, "forecaster has no version 7 in"),
        (("7",), None, "it has 1, 2 (`quantserve models list`)"),
        (("1",), "drop-logs", "version 1 has no TensorBoard logs in"),
        (("1",), "drop-logs", "`quantserve rebuild 1` trains it again"),
        (
            ("--all",),
            "drop-all-logs",
            "none of the versions 1, 2 of forecaster has TensorBoard logs",
        ),
        ((), "no-versions", "no version of forecaster in"),
        ((), "no-versions", "run `quantserve pipeline`"),
        (("1", "--all"), None, "pass VERSION... or --all, not both"),
    ],
)
def test_refusals_exit_2_and_say_why(
    models_root: Path,
    exec_calls: list[list[str]],
    args: tuple[str, ...],
    change: str | None,
    message: str,
) -> None:
    if change == "drop-logs":
        shutil.rmtree(models_root / "1" / "tensorboard")
    elif change == "drop-all-logs":
        for version in ("1", "2"):
            shutil.rmtree(models_root / version / "tensorboard")
    elif change == "no-versions":
        shutil.rmtree(models_root)
    result = invoke(*args)
    assert result.exit_code == 2
    assert "tensorboard refused: " in result.output
    assert message in " ".join(result.output.split())
    assert exec_calls == []


def test_a_port_in_use_is_refused(models_root: Path, exec_calls: list[list[str]]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = invoke("--port", str(port))
    assert result.exit_code == 2
    assert f"cannot serve on 127.0.0.1:{port}: Address already in use" in result.output
    assert "pass another --port" in result.output
    assert exec_calls == []


def test_every_interface_prints_the_machines_name(
    models_root: Path, exec_calls: list[list[str]]
) -> None:
    port = free_port()
    result = invoke("--host", "0.0.0.0", "--port", str(port))
    assert result.exit_code == 0, result.output
    assert f"at http://{socket.gethostname()}:{port}/" in result.output
    (argv,) = exec_calls
    assert argv[argv.index("--host") + 1] == "0.0.0.0"


def test_quantserve_has_the_command(models_root: Path, exec_calls: list[list[str]]) -> None:
    from app.cli import cli

    result = CliRunner().invoke(cli, ["tensorboard", "2", "--port", "6124"])
    assert result.exit_code == 0, result.output
    assert sorted(logdir_spec(exec_calls[0])) == ["v2"]
