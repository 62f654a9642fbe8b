"""``dvc repro`` of dvc.yaml: every stage, then only what a change reaches; push and pull.

One reproduction on tiny data is shared by the tests (``pipeline_repo``); each test that
changes it commits the result or puts it back, so the next finds ``dvc status`` clean.
"""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import yaml

from tests.dvc._repo import STAGES, PipelineRepo, stages_run

pytestmark = pytest.mark.slow

UPSTREAM_OF_BACKTEST = {
    "ingest": "data/raw/prices.parquet",
    "features": "data/features/_manifest.json",
    "train": "models/forecaster/1/saved_model.pb",
    "evaluate": "data/evaluation/predictions.parquet",
}
"""A file each stage before the back-test wrote."""


def outputs(lock: dict, stage: str) -> dict[str, str]:
    """Each output of ``stage`` in ``dvc.lock``, with its hash."""
    return {out["path"]: out["md5"] for out in lock["stages"][stage]["outs"]}


def test_repro_runs_every_stage_in_order_and_leaves_the_status_clean(
    pipeline_repo: PipelineRepo,
) -> None:
    assert stages_run(pipeline_repo.first_repro) == STAGES
    assert pipeline_repo.status() == {}
    lock = pipeline_repo.lock()
    assert list(lock["stages"]) == STAGES
    # The stage reads the config DVC tracks, and the training settings it tracks are the
    # ones the version was trained with.
    metadata = json.loads((pipeline_repo.root / "models/forecaster/1/metadata.json").read_text())
    tracked = lock["stages"]["train"]["params"]["config/default.yaml"]["training"]
    assert metadata["training"]["hidden_units"] == tracked["hidden_units"] == 8
    # Outputs are git-ignored already (/data/, /models/*): DVC wrote no .gitignore.
    assert pipeline_repo.run("git", "status", "--porcelain").stdout == ""
    assert not list(pipeline_repo.root.glob("data/**/.gitignore"))
    assert not (pipeline_repo.root / "models" / ".gitignore").exists()


def test_evaluation_is_tracked_as_a_copy_outside_the_model_store(
    pipeline_repo: PipelineRepo,
) -> None:
    root = pipeline_repo.root
    in_store = root / "models/forecaster/1/evaluation"
    assert (in_store / "metrics.json").read_bytes() == (
        root / "data/evaluation/metrics.json"
    ).read_bytes()
    # .dvcignore leaves the versions' evaluation folders out of train's output, and
    # only them.
    (in_store / "notes.txt").write_text("written by hand")
    assert pipeline_repo.status() == {}
    (in_store / "notes.txt").unlink()
    (in_store.parent / "notes.txt").write_text("written by hand")
    assert "train" in pipeline_repo.status()
    (in_store.parent / "notes.txt").unlink()
    assert pipeline_repo.status() == {}
    metrics = json.loads(pipeline_repo.dvc("metrics", "show", "--json"))
    shown = next(iter(metrics.values()))["data"]
    assert "data/evaluation/metrics.json" in shown
    assert "data/backtests/latest/metrics.json" in shown
    # The back-test read evaluate's copy of the predictions, a tracked dependency.
    backtest_deps = [dep["path"] for dep in pipeline_repo.lock()["stages"]["backtest"]["deps"]]
    assert "data/evaluation/predictions.parquet" in backtest_deps


def test_a_backtest_parameter_reruns_only_the_backtest(pipeline_repo: PipelineRepo) -> None:
    root = pipeline_repo.root
    before = pipeline_repo.lock()
    mtimes = {
        stage: (root / path).stat().st_mtime_ns for stage, path in UPSTREAM_OF_BACKTEST.items()
    }
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["backtest"]["cost-bps"] += 15
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    ran, output = pipeline_repo.repro()

    assert ran == ["backtest"], output
    after = pipeline_repo.lock()
    for stage in UPSTREAM_OF_BACKTEST:
        assert outputs(after, stage) == outputs(before, stage)
        assert (root / UPSTREAM_OF_BACKTEST[stage]).stat().st_mtime_ns == mtimes[stage]
    assert outputs(after, "backtest") != outputs(before, "backtest")
    written = json.loads((root / "data/backtests/latest/metrics.json").read_text())
    assert written["settings"]["cost_bps"] == params["backtest"]["cost-bps"]
    assert pipeline_repo.status() == {}
    pipeline_repo.commit("back-test costs")


def test_a_training_parameter_reruns_train_and_the_stages_after_it(
    pipeline_repo: PipelineRepo,
) -> None:
    root = pipeline_repo.root
    before = pipeline_repo.lock()
    data_mtimes = {
        path: (root / path).stat().st_mtime_ns
        for path in ("data/raw/prices.parquet", "data/features/_manifest.json")
    }
    config_path = root / "config/default.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["training"]["seed"] += 1
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    ran, output = pipeline_repo.repro()

    assert ran == ["train", "evaluate", "backtest"], output
    after = pipeline_repo.lock()
    for stage in ("ingest", "features"):
        assert outputs(after, stage) == outputs(before, stage)
    for path, mtime in data_mtimes.items():
        assert (root / path).stat().st_mtime_ns == mtime
    for stage in ("train", "evaluate", "backtest"):
        assert outputs(after, stage) != outputs(before, stage)
    # The store grew (persist), and the new version was trained with the new seed.
    versions = sorted(
        int(p.name) for p in (root / "models/forecaster").iterdir() if p.name.isdigit()
    )
    newest = json.loads((root / f"models/forecaster/{versions[-1]}/metadata.json").read_text())
    assert versions[0] == 1
    assert newest["training"]["seed"] == config["training"]["seed"]
    assert pipeline_repo.status() == {}
    pipeline_repo.commit("another seed")


def test_push_then_pull_restores_the_data_and_the_models(
    pipeline_repo: PipelineRepo, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = pipeline_repo.root
    remote = tmp_path_factory.mktemp("dvc-remote")
    pipeline_repo.dvc("remote", "add", "--default", "local", str(remote))
    pipeline_repo.commit("a local DVC remote")
    tracked = sorted(
        path for path in (root / "data").rglob("*") if path.is_file() and "mlflow" not in path.parts
    ) + sorted(
        path
        for path in (root / "models").rglob("*")
        if path.is_file() and "evaluation" not in path.parts
    )
    digests = {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in tracked}

    pipeline_repo.dvc("push")
    shutil.rmtree(root / "data")
    shutil.rmtree(root / "models")
    shutil.rmtree(root / ".dvc" / "cache")
    pipeline_repo.dvc("pull")

    assert pipeline_repo.status() == {}
    assert {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in tracked} == digests
