"""One reproduction of the project's DVC pipeline on tiny data, shared by tests/dvc."""

from __future__ import annotations

import pytest

from tests.dvc._repo import BIN, PipelineRepo, copy_pipeline, make_tiny, pipeline_env


@pytest.fixture(scope="session")
def pipeline_repo(tmp_path_factory: pytest.TempPathFactory) -> PipelineRepo:
    """The pipeline reproduced once, ``dvc.lock`` committed; tests leave it as they found it."""
    if not (BIN / "dvc").is_file():
        pytest.skip("DVC is not installed in this venv: `make mlops` installs it")
    scratch = tmp_path_factory.mktemp("dvc")
    root = scratch / "repo"
    root.mkdir()
    copy_pipeline(root)
    make_tiny(root)
    repo = PipelineRepo(root, pipeline_env(scratch), first_repro="")
    repo.run("git", "init", "--quiet")
    repo.commit("the project and its tiny data")
    _, repo.first_repro = repo.repro()
    repo.commit("dvc repro")
    return repo
