"""``quantserve rebuild VERSION`` fetches the version's data from DVC when it is not on disk."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.dvc._repo import PipelineRepo
from training.dvc_data import VersionDataUnavailable, data_mismatches, restore_version_data

pytestmark = pytest.mark.slow

VERSION_DIR = "models/forecaster/1"


def recorded_data(repo: PipelineRepo) -> dict:
    return json.loads((repo.root / VERSION_DIR / "metadata.json").read_text())["data"]


def test_rebuild_fetches_removed_data_from_dvc_and_reproduces_the_version(
    pipeline_repo: PipelineRepo,
) -> None:
    root = pipeline_repo.root
    shutil.rmtree(root / "data")
    try:
        done = pipeline_repo.quantserve("rebuild", "1")
        output = " ".join(done.stdout.split())  # rich wraps long lines
        assert "data/raw/manifest.json is missing" in output
        assert "fetched data/raw and data/features" in output
        assert "as the workspace's dvc.lock tracks them" in output
        assert "validation metrics identical" in output
        assert data_mismatches(root / "data", recorded_data(pipeline_repo)) == []
    finally:
        pipeline_repo.restore()


def test_the_data_comes_from_the_commit_whose_lock_tracked_it(
    pipeline_repo: PipelineRepo,
) -> None:
    """The workspace and HEAD hold other prices: an earlier dvc.lock has the version's."""
    root = pipeline_repo.root
    pipeline_repo.quantserve(
        "ingest", "--source", "prices.csv", "--benchmark", "SP500", "--until", "2018-06-29"
    )
    pipeline_repo.dvc("commit", "--force", "ingest")
    pipeline_repo.commit("prices up to 2018-06-29")
    lock_commits = pipeline_repo.run(
        "git", "log", "--all", "--format=%H", "--", "dvc.lock"
    ).stdout.split()
    try:
        assert data_mismatches(root / "data", recorded_data(pipeline_repo)) != []

        fetched = restore_version_data(root / "data", root / VERSION_DIR)

        assert fetched is not None
        assert fetched.revision == lock_commits[1]
        assert f"the dvc.lock of commit {lock_commits[1][:12]}" in fetched.describe()
        assert "data/raw holds prices SHA-256" in fetched.describe()
        assert data_mismatches(root / "data", recorded_data(pipeline_repo)) == []
    finally:
        pipeline_repo.run("git", "reset", "--quiet", "--hard", "HEAD~1")
        pipeline_repo.restore()


def test_data_no_lock_tracks_is_a_clear_error(
    pipeline_repo: PipelineRepo, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = pipeline_repo.root
    version_dir = tmp_path_factory.mktemp("other") / "7"
    version_dir.mkdir()
    metadata = {"version": 7, "data": {**recorded_data(pipeline_repo), "prices_sha256": "0" * 64}}
    (version_dir / "metadata.json").write_text(json.dumps(metadata))
    commits = len(pipeline_repo.run("git", "log", "--format=%H", "--", "dvc.lock").stdout.split())

    with pytest.raises(VersionDataUnavailable) as raised:
        restore_version_data(root / "data", version_dir)

    message = str(raised.value)
    assert "the data of version 7 is not on disk" in message
    assert "no DVC-tracked data matches it (prices SHA-256 000000000000…" in message
    assert f"the workspace's dvc.lock and {commits} committed one(s)" in message
    assert "commit dvc.lock after each `dvc repro`, then `dvc push`" in message
    assert "quantserve ingest" in message
    assert pipeline_repo.status() == {}
