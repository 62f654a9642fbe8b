"""Every route of the app needs a key of the right role, unless it is one of a few open ones.

The routes are walked from ``app.routes`` as FastAPI routes requests
(``fastapi.routing.iter_route_contexts``: the routers ``create_app`` includes, with the
dependencies it includes them with), so a route added tomorrow is checked without
touching this file. The role a route needs is read from its dependencies: the highest
``require_role(...)`` among them (``app.core.security``), however deep. A route with no
role dependency must be on ``OPEN_PATHS``, a short list kept by hand, and every path on
that list must exist and be open.

Each protected route and method is asked with no key, a wrong key that looks real, a
revoked key (valid on an app configured with it; this app is built without it), and a
key of each role below the one it needs: 401 or 403, as problem+json (TensorFlow
Serving's routes answer in its own ``{"error": ...}`` shape, on purpose: its clients parse
it), and its handler never runs: no handler is called, no audit row is written, no job is
queued. Then a key of exactly the role it needs is let through, which shows that the role
read from the dependencies is not stricter than the app's.
"""

from __future__ import annotations

import functools
import inspect
import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import RouteContext, iter_route_contexts
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from app.api.routes.tfserving import TFServingRoute
from app.core.config import ROLES, ApiKey, LimitSettings, Role, Settings
from app.core.security import generate_key, hash_key, require_role
from app.main import create_app

PROBLEM = "application/problem+json"

# The routes anyone may call, and why. Nothing else may be without a role dependency.
OPEN_PATHS = frozenset(
    {
        "/healthz",  # probes
        "/readyz",
        "/metrics",  # scrapes; with protect_metrics, MetricsKeyGuard wants any valid key
        "/",  # the dashboard: a page and files; it calls the API with the user's key
        "/assets/{name}",
        "/model-card",
        "/model_card/{image}",
        "/docs",  # FastAPI's API documentation
        "/redoc",
        "/openapi.json",
        "/docs/oauth2-redirect",
    }
)
# Open to any valid key when protect_metrics is set, by a middleware rather than a role.
KEY_GUARDED_PATHS = frozenset({"/metrics"})

KEYS: dict[str, str] = {role: generate_key() for role in ROLES}
REVOKED_KEY = generate_key()
_ROLE_OF_DEPENDENCY: dict[Callable[..., Any], Role] = {require_role(r): r for r in ROLES}


@dataclass(frozen=True)
class Endpoint:
    """One method of one route, and the role its dependencies require (None: open)."""

    path: str
    method: str
    role: Role | None
    context: RouteContext

    @property
    def url(self) -> str:
        """The path with every parameter given ``1`` (a valid int and str alike)."""
        return re.sub(r"\{[^}]+\}", "1", self.path)

    @property
    def tf_serving(self) -> bool:
        return isinstance(self.context.original_route, TFServingRoute)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _dependencies(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _dependencies(sub)


def required_role(context: RouteContext) -> Role | None:
    """The highest role any ``require_role`` dependency of the route asks for, or None."""
    dependant: Dependant | None = getattr(context, "dependant", None)
    if dependant is None:  # a plain Starlette route (the docs): no dependencies at all
        return None
    found = {
        _ROLE_OF_DEPENDENCY[d.call]
        for d in _dependencies(dependant)
        if d.call in _ROLE_OF_DEPENDENCY
    }
    return max(found, key=ROLES.index) if found else None


def endpoints(app: FastAPI) -> list[Endpoint]:
    """Every route and method the app answers, in routing order."""
    found = []
    for context in iter_route_contexts(app.routes):
        path, methods = context.path, context.methods
        assert path is not None, f"a route that is not an HTTP route: {context!r}"
        assert methods, f"a route that is not an HTTP route: {context!r}"
        role = required_role(context)
        found += [Endpoint(path, method, role, context) for method in sorted(methods)]
    return found


def _settings(root: Path, *keys: tuple[str, Role, str]) -> Settings:
    return Settings(
        environment="test",
        data_dir=root,
        models_dir=root,
        dev_mode=False,
        protect_metrics=True,
        limits=LimitSettings(rate_per_second=0),
        api_keys=[ApiKey(id=key_id, role=role, sha256=hash_key(key)) for key_id, role, key in keys],
    )


def _configured_keys() -> list[tuple[str, Role, str]]:
    return [(f"{role}-key", role, KEYS[role]) for role in ROLES]


def _spy_on_handlers(app: FastAPI, calls: list[str]) -> None:
    """Record every handler call in ``calls``, the handler then running as before."""
    for context in iter_route_contexts(app.routes):
        dependant: Dependant | None = getattr(context, "dependant", None)
        if dependant is None or dependant.call is None:
            continue
        handler, label = dependant.call, f"{sorted(context.methods or [])} {context.path}"
        if inspect.iscoroutinefunction(handler):

            async def spy_async(*args: Any, _h: Any = handler, _l: str = label, **kw: Any) -> Any:
                calls.append(_l)
                return await _h(*args, **kw)

            dependant.call = functools.update_wrapper(spy_async, handler)
        else:

            def spy(*args: Any, _h: Any = handler, _l: str = label, **kw: Any) -> Any:
                calls.append(_l)
                return _h(*args, **kw)

            dependant.call = functools.update_wrapper(spy, handler)


def _count(database: Path, table: str) -> int:
    if not database.exists():
        return 0
    with closing(sqlite3.connect(database)) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        if table not in tables:
            return 0
        (count,) = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(count)


def _first_match(app_endpoints: list[Endpoint], endpoint: Endpoint) -> Endpoint:
    """The endpoint the app routes ``endpoint``'s URL and method to (the first match)."""
    for candidate in app_endpoints:
        regex = getattr(candidate.context, "path_regex", None)
        if candidate.method == endpoint.method and regex and regex.match(endpoint.url):
            return candidate
    raise AssertionError(f"nothing routes {endpoint.method} {endpoint.url}")


def _assert_refused(response: Any, endpoint: Endpoint, status: int, case: str) -> None:
    where = f"{endpoint} with {case}"
    assert response.status_code == status, (where, response.status_code, response.text)
    if status == 401:
        assert response.headers["WWW-Authenticate"] == "Bearer", where
    if endpoint.tf_serving:
        assert response.headers["content-type"] == "application/json", where
        assert set(response.json()) == {"error"}, where
        return
    assert response.headers["content-type"] == PROBLEM, where
    problem = response.json()
    slug = "unauthorized" if status == 401 else "forbidden"
    assert (problem["type"], problem["status"]) == (f"/problems/{slug}", status), where


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder with no model: the app starts in moments and serves every route."""
    return tmp_path_factory.mktemp("route-protection")


def test_a_revoked_key_was_valid_before_it_was_removed(root: Path) -> None:
    keys = [*_configured_keys(), ("revoked-key", "admin", REVOKED_KEY)]
    app = create_app(_settings(root / "before", *keys), registry=CollectorRegistry())
    with TestClient(app) as client:
        assert client.get("/v1/audit", headers={"X-API-Key": REVOKED_KEY}).status_code == 200


def test_every_protected_route_refuses_callers_without_the_role(root: Path) -> None:
    data = root / "after"
    app = create_app(_settings(data, *_configured_keys()), registry=CollectorRegistry())
    app_endpoints = endpoints(app)
    protected = [e for e in app_endpoints if e.role is not None or e.path in KEY_GUARDED_PATHS]
    assert len(protected) >= 25, [str(e) for e in protected]
    calls: list[str] = []
    _spy_on_handlers(app, calls)
    with TestClient(app) as client:
        for endpoint in protected:
            assert _first_match(app_endpoints, endpoint) == endpoint, endpoint

            def ask(headers: dict[str, str], endpoint: Endpoint = endpoint) -> Any:
                return client.request(endpoint.method, endpoint.url, headers=headers)

            _assert_refused(ask({}), endpoint, 401, "no key")
            _assert_refused(ask({"X-API-Key": generate_key()}), endpoint, 401, "a wrong key")
            bearer = {"Authorization": f"Bearer {REVOKED_KEY}"}
            _assert_refused(ask(bearer), endpoint, 401, "a revoked key")
            if endpoint.role is None:  # /metrics: any valid key
                continue
            for lower in ROLES[: ROLES.index(endpoint.role)]:
                _assert_refused(ask({"X-API-Key": KEYS[lower]}), endpoint, 403, f"a {lower} key")
        assert calls == []
        assert _count(data / "audit.db", "audit_events") == 0
        assert _count(data / "backtests.db", "backtest_jobs") == 0

        # A key of exactly the role read from the dependencies is let through (to the
        # handler, or to the body's validation, which comes after the role check).
        for endpoint in protected:
            role = endpoint.role or "viewer"
            response = client.request(
                endpoint.method, endpoint.url, headers={"X-API-Key": KEYS[role]}
            )
            assert response.status_code not in (401, 403), (str(endpoint), response.text)
    # The spy sees handlers run, so its silence above meant something.
    assert "['GET'] /v1/audit" in calls
    assert "['POST'] /v1/admin/reload" in calls


def test_only_the_listed_routes_are_open_and_they_answer_without_a_key(root: Path) -> None:
    app = create_app(_settings(root / "open", *_configured_keys()), registry=CollectorRegistry())
    open_routes = {e.path for e in endpoints(app) if e.role is None}
    unprotected = open_routes - OPEN_PATHS
    assert not unprotected, f"routes without a require_role dependency: {sorted(unprotected)}"
    assert open_routes == OPEN_PATHS, f"listed as open but absent: {OPEN_PATHS - open_routes}"
    with TestClient(app) as client:
        for endpoint in endpoints(app):
            if endpoint.role is not None or endpoint.path in KEY_GUARDED_PATHS:
                continue
            response = client.request(endpoint.method, endpoint.url)
            assert response.status_code not in (401, 403), (str(endpoint), response.text)


# Floors that the roles read from the dependencies may not fall below: what a route
# there does (change the serving model, read who did what, spend solver time, queue or
# stop jobs) is not a viewer's, whatever the routers say.
ROLE_FLOORS: list[tuple[str, frozenset[str], Role]] = [
    ("/v1/admin/", frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"}), "admin"),
    ("/v1/audit", frozenset({"GET"}), "admin"),
    ("/v1/portfolios/", frozenset({"POST"}), "trader"),
    ("/v1/backtests", frozenset({"POST", "PUT", "PATCH", "DELETE"}), "trader"),
]


def test_state_changing_and_admin_routes_need_at_least_their_roles(root: Path) -> None:
    app = create_app(_settings(root / "floors", *_configured_keys()), registry=CollectorRegistry())
    checked = 0
    for endpoint in endpoints(app):
        for prefix, methods, floor in ROLE_FLOORS:
            if endpoint.path.startswith(prefix) and endpoint.method in methods:
                checked += 1
                assert endpoint.role is not None, str(endpoint)
                assert ROLES.index(endpoint.role) >= ROLES.index(floor), (str(endpoint), floor)
    assert checked >= 7


def test_a_route_added_later_is_walked_too(root: Path) -> None:
    # The walk sees routes the way requests find them: one added after create_app is
    # listed, and found unprotected.
    app = create_app(_settings(root / "new", *_configured_keys()), registry=CollectorRegistry())

    @app.get("/v1/new-thing")
    async def new_thing() -> dict[str, str]:
        return {}

    found = {str(e): e.role for e in endpoints(app)}
    assert found["GET /v1/new-thing"] is None
    assert found["DELETE /v1/backtests/{job_id}"] == "trader"
    assert found["GET /v1/audit"] == "admin"
