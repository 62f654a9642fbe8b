"""The dashboard's routes over HTTP: the page, its cached and gzipped assets, the model card.

The browser tests (tests/web) drive the page itself; these check what any client gets.
The app is built without its lifespan: these routes serve files and need no model.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from app.core.config import Settings
from app.main import create_app
from app.web.assets import plotly_js

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def client() -> TestClient:
    settings = Settings(environment="test", dev_mode=True, docs_dir=REPO / "docs")
    return TestClient(create_app(settings, registry=CollectorRegistry()))


def _asset_urls(page: str) -> list[str]:
    return [part.split('"', 1)[0] for part in page.split('src="')[1:] + page.split('href="')[1:]]


def test_the_page_is_served_with_a_strict_content_security_policy(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-eval" not in policy
    assert "connect-src 'self'" in policy
    urls = [u for u in _asset_urls(response.text) if u.startswith("/assets/")]
    assert {u.split("?")[0] for u in urls} == {
        "/assets/dashboard.css",
        "/assets/plotly.min.js",
        "/assets/dashboard.js",
    }
    # Nothing outside this server: no http(s) URL among the page's scripts and styles.
    assert not [u for u in _asset_urls(response.text) if u.startswith(("http:", "https:", "//"))]


def test_assets_are_gzipped_cached_for_good_and_revalidated(client: TestClient) -> None:
    page = client.get("/").text
    (url,) = [u for u in _asset_urls(page) if u.startswith("/assets/plotly.min.js")]
    zipped = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert zipped.status_code == 200
    assert zipped.headers["content-encoding"] == "gzip"
    assert "immutable" in zipped.headers["cache-control"]
    assert zipped.headers["vary"] == "Accept-Encoding"
    raw = client.get(url, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers
    assert raw.content == plotly_js()
    assert len(gzip.compress(raw.content)) < len(raw.content) / 2
    etag = raw.headers["etag"]
    assert url.endswith(etag.strip('"'))  # the URL names the content
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""


@pytest.mark.parametrize("name", ["missing.js", "..%2Fmain.py", "%2E%2E"])
def test_an_unknown_asset_is_a_problem_not_a_file(client: TestClient, name: str) -> None:
    response = client.get(f"/assets/{name}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_the_model_card_renders_with_its_figures(client: TestClient) -> None:
    response = client.get("/model-card")
    assert response.status_code == 200
    assert "<h1>Model card" in response.text
    figures = [p.split('"', 1)[0] for p in response.text.split('src="')[1:]]
    assert figures, "the model card shows no figure"
    for figure in figures:
        image = client.get(f"/{figure}")
        assert image.status_code == 200, figure
        assert image.headers["content-type"] == "image/png"
    refused = client.get("/model_card/..%2F..%2Fpyproject.toml")
    assert refused.status_code == 404


def test_without_the_model_card_the_page_says_where_to_point(tmp_path: Path) -> None:
    settings = Settings(environment="test", dev_mode=True, docs_dir=tmp_path)
    client = TestClient(create_app(settings, registry=CollectorRegistry()))
    response = client.get("/model-card")
    assert response.status_code == 404
    assert "QUANTSERVE_DOCS_DIR" in response.json()["detail"]


def test_the_page_is_open_when_keys_are_on_and_the_api_is_not(client: TestClient) -> None:
    from app.core.config import ApiKey
    from app.core.security import hash_key

    settings = Settings(
        environment="test",
        api_keys=(ApiKey(id="analyst", role="viewer", sha256=hash_key("qs_secret")),),
    )
    keyed = TestClient(create_app(settings, registry=CollectorRegistry()))
    page = keyed.get("/")
    assert page.status_code == 200
    assert 'data-keys-required="true"' in page.text
    assert keyed.get("/v1/models").status_code == 401
