"""Admin endpoints on real tiny SavedModels: reload, promote and roll back, and their problems."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from app.main import create_app
from tests.app.test_lifecycle import forecast, sample, settings_for
from tests.model_store import fresh_root, make_broken, publish_version, tiny_store
from tests.read_only import read_only
from training.registry import ModelRegistry, Stage

PROBLEM_JSON = "application/problem+json"


@pytest.fixture
def root(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    """Versions 1 and 2 in the store, none promoted: version 2 serves."""
    return fresh_root(tiny_store(tmp_path_factory), tmp_path, versions=(1, 2))


@pytest.fixture
def client(root: Path) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(root), registry=CollectorRegistry())) as client:
        yield client


def registry_of(root: Path) -> ModelRegistry:
    return ModelRegistry(root / "models" / "forecaster")


def problem(response, status: int, slug: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["type"] == f"/problems/{slug}"
    return body


def test_reload_rebuilds_and_reports_what_serves(client: TestClient) -> None:
    response = client.post("/v1/admin/reload")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["action"] == "reload"
    assert body["outcome"] == "swapped"
    assert body["ready"] is True
    assert body["serving"]["version"] == 2
    assert body["serving"]["stage"] == "candidate"
    assert body["serving"]["as_of"] == forecast(client)["as_of"]
    assert body["previous"]["version"] == 2
    assert body["registry"] is None
    assert sample(client, "quantserve_model_reloads_total", outcome="swapped") == 1


def test_reload_of_a_broken_serving_version_is_a_422_and_the_old_one_serves(
    client: TestClient, root: Path
) -> None:
    publish_version(root, make_broken(root, "nan-outputs"), 3)

    body = problem(client.post("/v1/admin/reload"), 422, "model-version-refused")

    assert body["version"] == 3
    assert body["serving_version"] == 2
    assert body["failure"] == "invalid"
    assert "non-finite" in body["detail"]
    assert forecast(client)["model"]["version"] == 2


def test_promote_verifies_then_promotes_then_serves(client: TestClient, root: Path) -> None:
    response = client.post("/v1/admin/models/forecaster/versions/1/promote")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["outcome"] == "swapped"
    assert body["serving"]["version"] == 1
    assert body["serving"]["stage"] == "production"
    assert body["previous"]["version"] == 2
    assert body["registry"] == {"action": "promote", "version": 1, "previous": None}
    assert registry_of(root).production() == 1
    assert forecast(client)["model"]["version"] == 1
    assert sample(client, "quantserve_model_info", version="1", stage="production") == 1
    assert sample(client, "quantserve_model_info", version="2") is None


def test_a_broken_version_is_refused_before_it_is_promoted(client: TestClient, root: Path) -> None:
    registry_of(root).promote(2)
    publish_version(root, make_broken(root, "metadata-mismatch"), 3)
    before = forecast(client)

    body = problem(
        client.post("/v1/admin/models/forecaster/versions/3/promote"), 422, "model-version-refused"
    )

    assert body["version"] == 3
    assert body["model"] == "forecaster"
    assert "lookback_days=7" in body["detail"]
    assert registry_of(root).production() == 2  # the registry was not touched
    assert registry_of(root).stage(3) is Stage.CANDIDATE
    assert forecast(client) == before
    assert sample(client, "quantserve_model_reloads_total", outcome="refused") == 1


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        ("/v1/admin/models/forecaster/versions/9/promote", "versions: 1, 2"),
        ("/v1/admin/models/other/versions/1/promote", "serves model 'forecaster' only"),
        ("/v1/admin/models/other/rollback", "serves model 'forecaster' only"),
    ],
)
def test_unknown_models_and_versions_are_404_problems(
    client: TestClient, root: Path, path: str, detail: str
) -> None:
    body = problem(client.post(path), 404, "model-version-not-found")

    assert detail in body["detail"]
    assert body["instance"] == path
    assert registry_of(root).production() is None


def test_rollback_verifies_and_serves_the_version_production_replaced(
    client: TestClient, root: Path
) -> None:
    assert client.post("/v1/admin/models/forecaster/versions/1/promote").status_code == 200
    assert client.post("/v1/admin/models/forecaster/versions/2/promote").status_code == 200
    assert forecast(client)["model"]["version"] == 2

    response = client.post("/v1/admin/models/forecaster/rollback")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["serving"] == {**body["serving"], "version": 1, "stage": "production"}
    assert body["previous"]["version"] == 2
    assert body["registry"] == {"action": "rollback", "version": 1, "previous": 2}
    assert registry_of(root).production() == 1
    assert registry_of(root).stage(2) is Stage.ARCHIVED
    assert forecast(client)["model"]["version"] == 1


def test_rollback_with_nothing_to_roll_back_to_is_a_409(client: TestClient, root: Path) -> None:
    body = problem(client.post("/v1/admin/models/forecaster/rollback"), 409, "registry-conflict")
    assert "promote one first" in body["detail"]

    registry_of(root).promote(2)
    body = problem(client.post("/v1/admin/models/forecaster/rollback"), 409, "registry-conflict")
    assert "no earlier production version" in body["detail"]
    assert registry_of(root).production() == 2


def test_rollback_to_a_broken_version_is_refused_and_the_registry_kept(
    client: TestClient, root: Path
) -> None:
    registry = registry_of(root)
    registry.promote(1)
    registry.promote(2)
    assert client.post("/v1/admin/reload").json()["serving"]["stage"] == "production"
    # Version 1 was damaged on disk since it last served.
    broken = make_broken(root, "corrupt-graph")
    shutil.copy(broken / "saved_model.pb", root / "models" / "forecaster" / "1" / "saved_model.pb")

    body = problem(
        client.post("/v1/admin/models/forecaster/rollback"), 422, "model-version-refused"
    )

    assert body["version"] == 1
    assert body["failure"] == "error"
    assert registry.production() == 2
    assert forecast(client)["model"]["version"] == 2


def test_a_version_that_is_not_a_number_is_an_invalid_request(client: TestClient) -> None:
    problem(
        client.post("/v1/admin/models/forecaster/versions/latest/promote"), 422, "invalid-request"
    )


def test_every_admin_action_leaves_an_audit_row_with_its_outcome(
    client: TestClient, root: Path
) -> None:
    publish_version(root, make_broken(root, "nan-outputs"), 3)
    ok = client.post("/v1/admin/models/forecaster/versions/1/promote")
    refused = client.post("/v1/admin/models/forecaster/versions/3/promote")
    rolled = client.post("/v1/admin/models/forecaster/rollback")  # nothing before version 1
    assert (ok.status_code, refused.status_code, rolled.status_code) == (200, 422, 409)

    events = client.get("/v1/audit", params={"action": "admin.*"}).json()["events"]

    # newest first; each row holds the request id the response carried
    assert [(e["action"], e["status"], e["outcome"]) for e in events] == [
        ("admin.rollback", 409, "registry-conflict"),
        ("admin.promote", 422, "model-version-refused"),
        ("admin.promote", 200, "success"),
    ]
    assert [e["request_id"] for e in events] == [
        r.headers["X-Request-ID"] for r in (rolled, refused, ok)
    ]
    assert events[2]["inputs"] == {"name": "forecaster", "version": 1}
    assert events[2]["model_versions"] == {"forecaster": 1}
    assert events[2]["key_id"] == "dev"
    assert any("by key dev" in str(change.get("reason")) for change in registry_of(root).history())


def test_promote_and_rollback_on_a_read_only_store_are_409s_that_say_where_to_do_it(
    client: TestClient, root: Path
) -> None:
    """As the Compose and Kubernetes deployments mount it: a 409 problem, never a 500."""
    assert client.post("/v1/admin/models/forecaster/versions/1/promote").status_code == 200
    assert client.post("/v1/admin/models/forecaster/versions/2/promote").status_code == 200
    history = registry_of(root).path.read_text()
    with read_only(root / "models" / "forecaster"):
        body = problem(
            client.post("/v1/admin/models/forecaster/versions/1/promote"), 409, "registry-conflict"
        )
        assert "read-only file system" in body["detail"]
        assert "quantserve models promote VERSION" in body["detail"]
        body = problem(
            client.post("/v1/admin/models/forecaster/rollback"), 409, "registry-conflict"
        )
        assert "nothing was changed" in body["detail"]
        assert forecast(client)["model"]["version"] == 2  # still serving production
    assert registry_of(root).path.read_text() == history
