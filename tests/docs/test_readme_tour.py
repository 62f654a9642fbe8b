"""The README's five-minute tour, run as printed against a live server.

The tour's commands are the fenced ``bash`` blocks under the README's "A five-minute
tour" heading. Each is run with bash against a uvicorn server on the session's test
model, with ``http://localhost:8000`` (where ``make serve`` listens) replaced by the test
server's address, and nothing else changed: its tickers must be among the five the test
pipeline builds. Each must exit 0 (``curl -f`` fails on an HTTP error status), print
JSON with every key the README shows under it, and give a sensible answer.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PIPELINE_TICKERS
from tests.monitoring._servers import REPO, quantserve_uvicorn

pytestmark = pytest.mark.slow

README = REPO / "README.md"
TOUR_HEADING = "## A five-minute tour"
TOUR_URL = "http://localhost:8000"
SHELLS = {"bash", "sh"}


def tour_commands(markdown: str) -> list[str]:
    """The fenced bash/sh blocks between the tour's heading and the next heading."""
    blocks: list[str] = []
    in_tour = False
    fence: str | None = None  # the open block's info string, while inside one
    lines: list[str] = []
    for line in markdown.splitlines():
        if fence is None and re.match(r"#{1,6}\s", line):
            if in_tour:
                break
            in_tour = line.strip() == TOUR_HEADING
            continue
        if line.startswith("```"):
            if fence is None:
                fence, lines = line[3:].strip(), []
            else:
                if in_tour and fence in SHELLS:
                    blocks.append("\n".join(lines) + "\n")
                fence = None
            continue
        if fence is not None:
            lines.append(line)
    return blocks


def command_lines(block: str) -> str:
    """The block without its comment lines (which show the answer)."""
    return "\n".join(line for line in block.splitlines() if not line.lstrip().startswith("#"))


def keys_shown(block: str) -> set[str]:
    """Every JSON key the block's comment lines show in the answer."""
    comments = "\n".join(line for line in block.splitlines() if line.lstrip().startswith("#"))
    return set(re.findall(r'"([A-Za-z_][A-Za-z0-9_]*)"\s*:', comments))


def keys_of(value: Any) -> set[str]:
    """Every key of every object in a JSON document."""
    if isinstance(value, dict):
        return set(value).union(*(keys_of(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(keys_of(v) for v in value))
    return set()


def request_body(block: str) -> dict[str, Any]:
    """The JSON body a command sends with ``-d '...'``; empty when it sends none."""
    match = re.search(r"-d\s+'(.*?)'", command_lines(block), flags=re.DOTALL)
    if match is None:
        return {}
    body: dict[str, Any] = json.loads(match.group(1))
    return body


def endpoint(block: str) -> str:
    """The path a command calls on the tour's server ("" when it names no such URL)."""
    match = re.search(re.escape(TOUR_URL) + r"(/[^\s'\"]*)", block)
    return "" if match is None else match.group(1)


TOUR = tour_commands(README.read_text(encoding="utf-8"))


def test_the_tour_is_three_curl_calls_on_make_serves_server() -> None:
    assert len(TOUR) == 3, f"the README's tour should hold three bash blocks, not {len(TOUR)}"
    for block in TOUR:
        command = command_lines(block).strip()
        assert command.startswith("curl "), command
        # -f: curl exits non-zero on an HTTP error status, so a broken call fails the test.
        assert re.match(r"curl\s+-[A-Za-z]*f", command), f"use curl -fsS: {command}"
        assert TOUR_URL in command, f"the tour calls make serve's {TOUR_URL}: {command}"
        assert keys_shown(block), f"show the answer under the command:\n{block}"
        tickers = request_body(block).get("tickers", [])
        assert set(tickers) <= set(PIPELINE_TICKERS), (
            f"the tour's tickers {tickers} must be among the test pipeline's "
            f"{PIPELINE_TICKERS}, so that the tour runs here as printed"
        )


@pytest.fixture(scope="module")
def server_url(pipeline_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """quantserve as ``make serve`` runs it (development mode, no keys), on the test model."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed, so the README's curl tour cannot run")
    root = tmp_path_factory.mktemp("readme-tour")
    env = {
        "QUANTSERVE_CONFIG_FILE": str(REPO / "config" / "default.yaml"),
        "QUANTSERVE_ENVIRONMENT": "development",
        "QUANTSERVE_DEV_MODE": "1",
        "QUANTSERVE_API_KEYS": "",
        "QUANTSERVE_DATA_DIR": str(pipeline_dir / "data"),
        "QUANTSERVE_MODELS_DIR": str(pipeline_dir / "models"),
        # The pipeline's folder is shared by the session: the server's databases go here.
        "QUANTSERVE_AUDIT__URL": f"sqlite:///{root / 'audit.db'}",
        "QUANTSERVE_BACKTESTS__URL": f"sqlite:///{root / 'backtests.db'}",
        "QUANTSERVE_BACKTESTS__OUTPUT_DIR": str(root / "backtests"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONPATH": str(REPO),
    }
    with quantserve_uvicorn(env, root / "server.log") as url:
        yield url


def _check_answer(path: str, sent: dict[str, Any], answer: dict[str, Any]) -> None:
    """What each tour call's answer must say, beyond having the keys shown."""
    if path == "/readyz":
        assert answer["status"] == "ready"
        assert answer["model"]["name"] == "forecaster"
    elif path == "/v1/forecasts":
        forecasts = answer["forecasts"]
        assert {f["ticker"] for f in forecasts} == set(sent["tickers"])
        assert all(math.isfinite(f["expected_log_return"]) for f in forecasts)
        assert all(f["volatility"] > 0 for f in forecasts)
    elif path == "/v1/portfolios/optimize":
        weights = answer["weights"]
        assert set(weights) == set(sent["tickers"])
        assert sum(weights.values()) == pytest.approx(1.0, abs=1e-6)
        cap = sent.get("constraints", {}).get("max_weight", 1.0)
        assert all(-1e-6 <= w <= cap + 1e-6 for w in weights.values())
        assert answer["solver"]["status"] == "optimal"
        assert answer["inputs"] == "model"
    else:
        raise AssertionError(f"the tour calls {path}: add what its answer must say here")


@pytest.mark.parametrize("block", TOUR, ids=[endpoint(block) or "no-url" for block in TOUR])
def test_a_tour_command_runs_as_printed(block: str, server_url: str) -> None:
    script = "set -eo pipefail\n" + block.replace(TOUR_URL, server_url)
    run = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, (
        f"the README's command failed (exit {run.returncode}):\n{block}\n"
        f"stderr: {run.stderr}\nstdout: {run.stdout}"
    )
    answer = json.loads(run.stdout)
    missing = keys_shown(block) - keys_of(answer)
    assert not missing, f"the README shows keys the answer lacks: {sorted(missing)}"
    _check_answer(endpoint(block), request_body(block), answer)
