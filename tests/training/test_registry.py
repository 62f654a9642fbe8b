"""The file-based registry: stages, promotion, rollback, atomic and concurrent updates."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from tests.read_only import read_only
from training.errors import ArtifactNotFound
from training.registry import ModelRegistry, RegistryError, RegistryNotWritable, Stage


def _store(tmp_path: Path, versions: int) -> ModelRegistry:
    model_dir = tmp_path / "forecaster"
    for version in range(1, versions + 1):
        (model_dir / str(version)).mkdir(parents=True)
        (model_dir / str(version) / "metadata.json").write_text("{}")
    return ModelRegistry(model_dir)


def test_unrecorded_versions_are_candidates_and_nothing_is_in_production(tmp_path: Path) -> None:
    registry = _store(tmp_path, 2)
    assert [(r.version, r.stage) for r in registry.records()] == [
        (1, Stage.CANDIDATE),
        (2, Stage.CANDIDATE),
    ]
    assert registry.production() is None


def test_promote_archives_the_previous_production_version(tmp_path: Path) -> None:
    registry = _store(tmp_path, 3)
    assert registry.promote(1) is None
    assert registry.promote(2) == 1
    assert {r.version: r.stage for r in registry.records()} == {
        1: Stage.ARCHIVED,
        2: Stage.PRODUCTION,
        3: Stage.CANDIDATE,
    }
    assert registry.promote(2) == 2  # idempotent
    assert [e["action"] for e in registry.history()] == ["promote", "promote"]


def test_rollback_walks_back_the_promotion_chain(tmp_path: Path) -> None:
    registry = _store(tmp_path, 3)
    for version in (1, 2, 3):
        registry.promote(version)
    assert registry.rollback() == 2
    assert registry.production() == 2
    assert registry.stage(3) is Stage.ARCHIVED
    assert registry.rollback() == 1
    with pytest.raises(RegistryError, match="no earlier production version"):
        registry.rollback()
    assert registry.production() == 1


def test_errors_say_what_to_do(tmp_path: Path) -> None:
    registry = _store(tmp_path, 1)
    with pytest.raises(RegistryError, match="promote one first"):
        registry.rollback()
    with pytest.raises(ArtifactNotFound, match="version 7 is not in"):
        registry.promote(7)
    registry.promote(1)
    with pytest.raises(RegistryError, match="is in production"):
        registry.archive(1, "lost")


def test_the_file_is_valid_json_after_every_update_and_registers_once(tmp_path: Path) -> None:
    registry = _store(tmp_path, 2)
    registry.register(1)
    registry.register(1, reason="again")  # a no-op
    registry.archive(2, "lost to production")
    data = json.loads(registry.path.read_text())
    assert data["versions"]["1"]["reason"] == "trained"
    assert data["versions"]["2"]["stage"] == "archived"


def _register_range(model_dir: str, first: int) -> None:
    registry = ModelRegistry(Path(model_dir))
    for version in range(first, first + 20):
        registry.register(version)


def test_concurrent_updates_from_processes_lose_nothing(tmp_path: Path) -> None:
    # Each process records 20 versions of its own: without the lock, read-modify-write
    # races would drop some of them, and nothing would write them back.
    registry = _store(tmp_path, 80)
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_register_range, args=(str(registry.model_dir), first))
        for first in (1, 21, 41, 61)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    data = json.loads(registry.path.read_text())
    assert sorted(map(int, data["versions"])) == list(range(1, 81))


def test_a_read_only_store_refuses_changes_and_says_where_to_make_them(tmp_path: Path) -> None:
    registry = _store(tmp_path, 2)
    registry.promote(1)
    before = registry.path.read_text()
    with read_only(registry.model_dir):
        with pytest.raises(RegistryNotWritable, match="quantserve models promote VERSION"):
            registry.promote(2)
        with pytest.raises(RegistryNotWritable, match="read-only file system"):
            registry.rollback()
        assert registry.production() == 1  # reading still works
    assert registry.path.read_text() == before  # nothing was changed
