"""The server refuses to start open to anyone: development mode is for development only.

With no API keys, development mode makes every caller admin. That is what ``make serve``
wants on a laptop (environment ``development``, the default) and what the tests use
(``test``), but a production server in that state would hand admin to the internet, so
``create_app`` and ``quantserve serve`` refuse it and say how to fix the configuration.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from app.cli import cli
from app.core.config import ApiKey, Settings, get_settings
from app.core.security import KeyRing, MissingApiKeys, check_can_start, generate_key, hash_key
from app.main import create_app


def _settings(folder: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"data_dir": folder, "models_dir": folder, "api_keys": ()}
    return Settings(**(values | overrides))


def _assert_says_how_to_fix(message: str) -> None:
    assert "production" in message
    assert "every caller would be admin" in message
    assert "quantserve keys create" in message  # configure keys...
    assert "unset QUANTSERVE_DEV_MODE" in message  # ...and drop dev mode,
    assert "QUANTSERVE_ENVIRONMENT=development" in message  # or it is not production


def test_dev_mode_without_keys_is_refused_in_production(tmp_path: Path) -> None:
    settings = _settings(tmp_path, environment="production", dev_mode=True)
    with pytest.raises(MissingApiKeys) as caught:
        create_app(settings, registry=CollectorRegistry())
    _assert_says_how_to_fix(str(caught.value))


def test_quantserve_serve_refuses_dev_mode_in_production_with_exit_code_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def no_server(*args: object, **kwargs: object) -> None:
        raise AssertionError("the server must not start open to anyone in production")

    monkeypatch.setattr(os, "execv", no_server)  # gunicorn would replace this process
    monkeypatch.setattr("uvicorn.run", no_server)
    monkeypatch.setenv("QUANTSERVE_ENVIRONMENT", "production")
    monkeypatch.setenv("QUANTSERVE_DEV_MODE", "1")
    monkeypatch.delenv("QUANTSERVE_API_KEYS", raising=False)
    monkeypatch.setenv("QUANTSERVE_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["serve"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2, result.output
    assert "serve refused:" in result.output
    _assert_says_how_to_fix(" ".join(result.output.split()))


@pytest.mark.parametrize("environment", ["development", "test"])
def test_dev_mode_without_keys_starts_outside_production(environment: str, tmp_path: Path) -> None:
    settings = _settings(tmp_path, environment=environment, dev_mode=True)
    check_can_start(settings)
    create_app(settings, registry=CollectorRegistry())
    assert KeyRing.from_settings(settings).open


def test_make_serve_starts_with_the_default_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``make serve`` sets only QUANTSERVE_DEV_MODE=1; config/default.yaml says development."""
    monkeypatch.delenv("QUANTSERVE_ENVIRONMENT", raising=False)
    monkeypatch.delenv("QUANTSERVE_CONFIG_FILE", raising=False)
    monkeypatch.setenv("QUANTSERVE_DEV_MODE", "1")
    settings = Settings(data_dir=tmp_path, models_dir=tmp_path, api_keys=())
    assert settings.environment == "development"
    check_can_start(settings)


def test_production_with_keys_starts_and_requires_them_even_in_dev_mode(tmp_path: Path) -> None:
    key = ApiKey(id="ops", role="admin", sha256=hash_key(generate_key()))
    settings = _settings(tmp_path, environment="production", dev_mode=True, api_keys=[key])
    check_can_start(settings)
    assert not KeyRing.from_settings(settings).open


def test_production_without_keys_or_dev_mode_is_refused_as_before(tmp_path: Path) -> None:
    settings = _settings(tmp_path, environment="production", dev_mode=False)
    with pytest.raises(MissingApiKeys, match="no API keys are configured"):
        check_can_start(settings)
