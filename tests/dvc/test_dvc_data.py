"""The DVC side of a version's data, without the pipeline: what differs, when DVC is asked,
what a missing DVC says, and the evaluation copy the evaluate stage tracks."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.core.config import get_settings
from training.dvc_data import (
    copy_evaluation,
    data_mismatches,
    find_dvc_root,
    restore_version_data,
)
from training.errors import ArtifactNotFound

PRICES = "a" * 64
CODE = "29cf85cd7602"
RECORDED = {"prices_sha256": PRICES, "feature_code_version": CODE}


def write_data(
    data_dir: Path, prices: str = PRICES, code: str = CODE, features_from: str = PRICES
) -> None:
    (data_dir / "raw").mkdir(parents=True, exist_ok=True)
    (data_dir / "features").mkdir(parents=True, exist_ok=True)
    (data_dir / "raw" / "manifest.json").write_text(json.dumps({"prices_sha256": prices}))
    (data_dir / "features" / "_manifest.json").write_text(
        json.dumps({"feature_code_version": code, "input_sha256": features_from})
    )


def write_version(models_dir: Path, version: int = 1) -> Path:
    folder = models_dir / "forecaster" / str(version)
    folder.mkdir(parents=True)
    (folder / "metadata.json").write_text(json.dumps({"version": version, "data": RECORDED}))
    return folder


def test_the_version_s_own_data_has_no_mismatch(tmp_path: Path) -> None:
    write_data(tmp_path)
    assert data_mismatches(tmp_path, RECORDED) == []


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (None, ["raw/manifest.json is missing", "features/_manifest.json is missing"]),
        (
            {"prices": "b" * 64},
            ["holds prices SHA-256 bbbbbbbbbbbb…, the version's is aaaaaaaaaaaa…"],
        ),
        ({"code": "0123456789ab"}, ["feature code version 0123456789ab, the version's is " + CODE]),
        ({"features_from": "c" * 64}, ["computed from prices SHA-256 cccccccccccc…"]),
    ],
)
def test_each_difference_is_named(tmp_path: Path, data: dict | None, expected: list[str]) -> None:
    if data is not None:
        write_data(tmp_path, **data)
    reasons = data_mismatches(tmp_path, RECORDED)
    assert len(reasons) == len(expected)
    for reason, part in zip(reasons, expected, strict=True):
        assert part in reason


def test_the_dvc_root_is_the_nearest_folder_with_dot_dvc(tmp_path: Path) -> None:
    (tmp_path / "project" / ".dvc").mkdir(parents=True)
    assert find_dvc_root(tmp_path / "project" / "data" / "not-yet") == tmp_path / "project"
    assert find_dvc_root(tmp_path / "elsewhere") is None


def test_outside_a_dvc_repository_nothing_is_fetched(tmp_path: Path) -> None:
    version_dir = write_version(tmp_path / "models")
    assert restore_version_data(tmp_path / "data", version_dir) is None


def test_data_on_disk_is_used_as_it_is(tmp_path: Path) -> None:
    (tmp_path / ".dvc").mkdir()
    write_data(tmp_path / "data")
    version_dir = write_version(tmp_path / "models")
    assert restore_version_data(tmp_path / "data", version_dir) is None


@pytest.fixture
def dvc_project(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """A DVC project's folders (``.dvc/``, data, models) as the CLI's settings."""
    (tmp_path / ".dvc").mkdir()
    monkeypatch.setenv("QUANTSERVE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("QUANTSERVE_MODELS_DIR", str(tmp_path / "models"))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_without_dvc_rebuild_says_how_to_install_it(
    dvc_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_version(dvc_project / "models")
    monkeypatch.setitem(sys.modules, "dvc.api", None)  # `import dvc.api` raises ImportError

    result = CliRunner().invoke(cli, ["rebuild", "1"], env={"COLUMNS": "400"})

    assert result.exit_code == 1
    assert "rebuild failed: the data of version 1 is not on disk" in result.output
    assert "raw/manifest.json is missing" in result.output
    assert "DVC is not installed: `make mlops`" in result.output
    assert "or run `quantserve ingest` on the source that version was trained on" in result.output


def test_the_evaluation_copy_replaces_the_target_whole(tmp_path: Path) -> None:
    evaluation = tmp_path / "models" / "forecaster" / "1" / "evaluation"
    evaluation.mkdir(parents=True)
    (evaluation / "metrics.json").write_text('{"qlike": 0.4}')
    target = tmp_path / "data" / "evaluation"
    target.mkdir(parents=True)
    (target / "stale.png").write_text("from an earlier run")

    assert copy_evaluation(evaluation, target) == target

    assert sorted(p.name for p in target.iterdir()) == ["metrics.json"]
    assert (target / "metrics.json").read_text() == '{"qlike": 0.4}'


def test_no_evaluation_to_copy_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(ArtifactNotFound, match="run `quantserve evaluate` first"):
        copy_evaluation(tmp_path / "missing", tmp_path / "target")
