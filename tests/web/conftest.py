"""The dashboard in a real browser: Debian's Chromium under Playwright, against a real server.

One quantserve server (uvicorn, API keys on, as in production) runs for the module on the
session's pipeline model; each test opens a fresh page and types the key in, as a user
does. Screenshots and the page's measured weight go to ``test-artifacts/browser/``
(``QUANTSERVE_TEST_ARTIFACTS`` moves them); ``make screenshots`` copies the dashboard's
into ``docs/images/`` for the README.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from app.core.security import generate_key, hash_key
from tests.monitoring._servers import REPO, quantserve_uvicorn

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ARTIFACTS = Path(os.environ.get("QUANTSERVE_TEST_ARTIFACTS", REPO / "test-artifacts")) / "browser"
VIEWPORT = {"width": 1280, "height": 900}


@dataclass(frozen=True)
class Dashboard:
    """The running server and the key it accepts."""

    url: str
    key: str
    log: Path


@pytest.fixture(scope="session")
def chromium_binary() -> str:
    """Debian's chromium; the browser tests skip, saying so, where it is missing."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip(
            "chromium is not installed, so the browser tests are skipped "
            "(`make test` installs it when run as root: apt-get install chromium)"
        )
    return binary


@pytest.fixture(scope="session")
def browser(chromium_binary: str) -> Iterator[Browser]:
    """Headless Chromium driven by Playwright (its own browsers are never downloaded)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium_binary, args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def dashboard(
    chromium_binary: str, pipeline_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Dashboard]:
    """quantserve with one trader key, over a copy of the session's pipeline data."""
    root = tmp_path_factory.mktemp("dashboard")
    shutil.copytree(pipeline_dir / "data", root / "data")
    key = generate_key()
    env = {
        "QUANTSERVE_ENVIRONMENT": "test",
        "QUANTSERVE_DEV_MODE": "0",
        "QUANTSERVE_API_KEYS": f"analyst:trader:{hash_key(key)}",
        "QUANTSERVE_DATA_DIR": str(root / "data"),
        "QUANTSERVE_MODELS_DIR": str(pipeline_dir / "models"),
        "QUANTSERVE_DOCS_DIR": str(REPO / "docs"),
        "QUANTSERVE_LIMITS__RATE_PER_SECOND": "0",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONPATH": str(REPO),
    }
    log = root / "quantserve.log"
    with quantserve_uvicorn(env, log) as url:
        yield Dashboard(url, key, log)


@pytest.fixture
def page(browser: Browser, dashboard: Dashboard) -> Iterator[Page]:
    """A fresh tab on the dashboard; what its scripts threw fails the test."""
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.goto(dashboard.url + "/")
    yield opened
    context.close()
    assert not errors, f"the page's scripts threw: {errors}"


def screenshot(page: Page, name: str) -> Path:
    """Save the whole page as ``<artifacts>/<name>.png``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page: Page, key: str) -> None:
    """Type the key into the page's key field, as a user does."""
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Use this key").click()


def plotted_traces(page: Page, chart_id: str) -> list[dict[str, Any]]:
    """The traces Plotly drew in ``#chart_id`` (its ``data``), once it has drawn."""
    page.wait_for_selector(f"#{chart_id} .main-svg", timeout=60_000)
    traces: list[dict[str, Any]] = page.evaluate(
        "id => document.getElementById(id).data.map(t => ({type: t.type || 'scatter', "
        "name: t.name, x: Array.from(t.x || []), y: Array.from(t.y || [])}))",
        chart_id,
    )
    return traces
