"""The analyst dashboard, driven in headless Chromium against a running quantserve.

Each check compares what the page shows with what the REST API answers to the same
request, so a chart that draws the wrong numbers fails, not only one that does not draw.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import PIPELINE_TICKERS
from tests.web.conftest import ARTIFACTS, Dashboard, plotted_traces, screenshot, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.slow

# The page lists the model's tickers as GET /v1/models gives them: sorted.
UNIVERSE = sorted(PIPELINE_TICKERS)
WRONG_KEY = "qs_this-key-was-never-issued-to-anyone-000000000"


def api(
    dashboard: Dashboard, method: str, path: str, body: Any = None, key: str | None = None
) -> Any:
    """Status and JSON answer of the API, called as the page calls it."""
    request = urllib.request.Request(
        dashboard.url + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"X-API-Key": key or dashboard.key, "Content-Type": "application/json"},
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def min_variance_request(max_weight: float) -> dict[str, Any]:
    """The optimize body the page sends for min variance under ``max_weight``."""
    return {
        "tickers": UNIVERSE,
        "objective": "min_variance",
        "constraints": {"long_only": True, "max_weight": max_weight},
    }


def optimize_min_variance(page: Page, max_weight: float) -> None:
    """Ask the Allocations view for min variance under ``max_weight``, as a user does."""
    page.get_by_label("Objective").select_option("min_variance")
    page.get_by_label("Maximum weight per asset").fill(str(max_weight))
    page.get_by_role("button", name="Optimize").click()


def test_the_page_loads_everything_from_this_server_and_asks_for_a_key(
    page: Page, dashboard: Dashboard
) -> None:
    page.wait_for_load_state("load")
    assert page.title().startswith("quantserve")
    assert "Enter an API key" in page.locator("#status").inner_text()
    timing = page.evaluate(
        """() => {
        const nav = performance.getEntriesByType('navigation')[0];
        const resources = performance.getEntriesByType('resource');
        return {
          urls: resources.map(r => r.name),
          transferred_bytes: nav.transferSize + resources.reduce((s, r) => s + r.transferSize, 0),
          decoded_bytes: nav.decodedBodySize + resources.reduce((s, r) => s + r.decodedBodySize, 0),
          load_ms: nav.loadEventEnd - nav.startTime,
          dom_content_loaded_ms: nav.domContentLoadedEventEnd - nav.startTime,
        };
    }"""
    )
    # Nothing from a CDN: every script and style sheet came from the server itself.
    assert timing["urls"], "the page loaded no assets"
    assert all(url.startswith(dashboard.url + "/") for url in timing["urls"]), timing["urls"]
    # Plotly.js travels gzipped: the bytes on the wire are well under the decoded size.
    assert timing["transferred_bytes"] < 0.5 * timing["decoded_bytes"], timing
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "page-weight.json").write_text(json.dumps(timing, indent=2))
    # Every control has a label a screen reader reads, and every chart a text alternative.
    unlabelled = page.evaluate(
        """() => Array.from(document.querySelectorAll('input, select, textarea, button'))
        .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                      && !el.textContent.trim())
        .map(el => el.id || el.outerHTML.slice(0, 60))"""
    )
    assert unlabelled == []
    charts = page.locator(".chart")
    assert charts.count() == 6  # forecasts, volatility, weights, frontier, equity, drawdown
    for index in range(charts.count()):
        assert charts.nth(index).get_attribute("aria-label")
    # The key is asked for, and lives nowhere but the tab's memory once given.
    sign_in(page, dashboard.key)
    page.wait_for_selector("#ticker-list input")
    stored = page.evaluate(
        "() => [localStorage.length, sessionStorage.length, document.cookie, location.href]"
    )
    assert stored[:3] == [0, 0, ""], stored
    assert dashboard.key not in stored[3]


def test_a_wrong_key_is_refused_in_words(page: Page, dashboard: Dashboard) -> None:
    status, problem = api(dashboard, "GET", "/v1/models", key=WRONG_KEY)
    assert status == 401
    sign_in(page, WRONG_KEY)
    message = page.locator("#api-key-error")
    message.wait_for(state="visible")
    assert message.inner_text() == problem["detail"]
    assert page.get_by_label("API key").get_attribute("aria-invalid") == "true"
    screenshot(page, "wrong-key")
    # The right key then gets in, without reloading the page.
    sign_in(page, dashboard.key)
    page.wait_for_selector("#forecast-chart .main-svg")
    assert message.inner_text() == ""


def test_the_forecasts_chart_draws_the_api_forecasts(page: Page, dashboard: Dashboard) -> None:
    sign_in(page, dashboard.key)
    (expected,) = plotted_traces(page, "forecast-chart")
    status, answer = api(dashboard, "POST", "/v1/forecasts", {"tickers": PIPELINE_TICKERS})
    assert status == 200
    by_ticker = {f["ticker"]: f for f in answer["forecasts"]}
    assert sorted(expected["x"]) == sorted(PIPELINE_TICKERS)
    for ticker, value in zip(expected["x"], expected["y"], strict=True):
        assert value == pytest.approx(100 * by_ticker[ticker]["expected_log_return"])
    (volatility,) = plotted_traces(page, "volatility-chart")
    assert volatility["y"] == pytest.approx(
        [100 * by_ticker[t]["annualized_volatility"] for t in volatility["x"]]
    )
    caption = page.locator("#forecast-caption").inner_text()
    assert f"version {answer['model']['version']}" in caption
    assert answer["as_of"] in caption
    assert page.locator("#forecast-table tbody tr").count() == len(PIPELINE_TICKERS)
    screenshot(page, "forecasts")


def test_an_optimization_shows_its_weights_and_its_place_on_the_frontier(
    page: Page, dashboard: Dashboard
) -> None:
    sign_in(page, dashboard.key)
    page.wait_for_selector("#forecast-chart .main-svg")
    # The keyboard reaches the tabs: arrow right from Forecasts selects Allocations.
    page.get_by_role("tab", name="Forecasts").focus()
    page.keyboard.press("ArrowRight")
    assert page.get_by_role("tab", name="Allocations").get_attribute("aria-selected") == "true"
    optimize_min_variance(page, 0.4)
    bars = plotted_traces(page, "weights-chart")
    status, answer = api(dashboard, "POST", "/v1/portfolios/optimize", min_variance_request(0.4))
    assert status == 200, answer
    weights = bars[0]
    assert weights["x"] == list(answer["weights"])
    assert weights["y"] == pytest.approx([100 * w for w in answer["weights"].values()], abs=1e-4)
    assert max(weights["y"]) <= 40 + 1e-4
    rows = page.locator("#weights-table tbody tr")
    assert rows.count() == len(PIPELINE_TICKERS)
    assert "optimal" in page.locator("#solver-report").inner_text()
    traces = {t["name"]: t for t in plotted_traces(page, "frontier-chart")}
    frontier, chosen = traces["efficient frontier"], traces["this portfolio"]
    assert len(frontier["x"]) >= 2
    # A minimum-variance portfolio sits at the frontier's low-volatility end.
    assert chosen["x"][0] == pytest.approx(100 * answer["volatility"])
    assert chosen["x"][0] <= min(frontier["x"]) + 0.05
    screenshot(page, "allocations")
    # The README's picture: from the tabs down to the charts.
    top = page.get_by_role("tablist").bounding_box()
    charts = page.locator("#allocation-results .charts").bounding_box()
    assert top is not None
    assert charts is not None
    clip = {
        "x": 0,
        "y": top["y"] - 8,
        "width": 1280,
        "height": charts["y"] + charts["height"] - top["y"] + 16,
    }
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True, clip=clip)  # type: ignore[arg-type]


def test_an_impossible_constraint_shows_the_api_message_next_to_it(
    page: Page, dashboard: Dashboard
) -> None:
    sign_in(page, dashboard.key)
    page.wait_for_selector("#ticker-list input")
    page.get_by_role("tab", name="Allocations").click()
    optimize_min_variance(page, 0.1)
    page.wait_for_selector("#max_weight[aria-invalid=true]")
    status, problem = api(dashboard, "POST", "/v1/portfolios/optimize", min_variance_request(0.1))
    assert status == 422
    beside = page.locator("#max_weight + .problem")
    assert beside.inner_text() == problem["detail"]
    assert "max_weight" in problem["detail"]
    assert page.locator("#allocation-results").is_hidden()
    screenshot(page, "impossible-constraint")


def test_a_backtest_runs_to_its_equity_curves_and_verdict(page: Page, dashboard: Dashboard) -> None:
    sign_in(page, dashboard.key)
    page.wait_for_selector("#ticker-list input")
    page.get_by_role("tab", name="Back-tests").click()
    page.get_by_label("Start").fill("2017-01-01")
    page.get_by_label("End").fill("2018-12-31")
    page.get_by_role("button", name="Start back-test").click()
    page.wait_for_selector("#backtest-results:not([hidden])", timeout=300_000)
    traces = plotted_traces(page, "equity-chart")
    names = {t["name"] for t in traces}
    assert {"equal_weight", "index", "min_variance", "risk_parity"} <= names
    assert page.evaluate("() => document.getElementById('equity-chart').layout.yaxis.type") == "log"
    report = page.locator("#backtest-report").get_attribute("href") or ""
    job_id = report.split("/")[-2]
    status, job = api(dashboard, "GET", f"/v1/backtests/{job_id}")
    assert status == 200
    assert job["status"] == "succeeded"
    assert job["request"]["tickers"] == UNIVERSE
    status, equity = api(dashboard, "GET", f"/v1/backtests/{job_id}/equity?points=1000")
    assert status == 200
    for trace in traces:
        assert trace["y"] == pytest.approx(equity["equity"][trace["name"]])
    drawdowns = plotted_traces(page, "drawdown-chart")
    assert all(max(t["y"]) <= 0 for t in drawdowns)
    rows = page.locator("#backtest-table tbody tr")
    assert rows.count() == len(job["metrics"]["strategies"])
    assert "1/N" in page.locator("#backtest-verdict").inner_text()
    screenshot(page, "backtest")


def test_the_models_view_lists_versions_and_links_the_model_card(
    page: Page, dashboard: Dashboard
) -> None:
    sign_in(page, dashboard.key)
    page.wait_for_selector("#ticker-list input")
    page.get_by_role("tab", name="Models").click()
    serving = page.locator("#versions-table tbody tr", has_text="serving")
    serving.wait_for()
    assert serving.count() == 1
    card = page.get_by_role("link", name="Read the model card")
    with page.context.expect_page() as opened:
        card.click()
    card_page = opened.value
    card_page.wait_for_load_state()
    assert card_page.locator("h1").first.inner_text().startswith("Model card")
    screenshot(page, "models")
