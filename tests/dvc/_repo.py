"""The project's DVC pipeline in a temporary Git repository, run once on tiny data.

The repository holds what the stages depend on, copied from this checkout (the code
packages, ``config/``, ``dvc.yaml``, ``params.yaml``, ``.dvcignore``, ``.dvc/``), plus
a tiny price file: three stocks and the index over 2015-2018 from the embedded set. The
commands the stages run are this checkout's ``quantserve`` (installed editable), reading
the temporary repository's ``config/default.yaml`` as ``dvc.yaml`` tells them to.

Tiny settings, changed where a user would change them: the training section of the
config (a small network, 2 epochs; MLflow tracking off), ``params.yaml`` (one
in-process evaluation year without GARCH, three strategies), and the price file as
ingest's source, listed under the ingest stage's deps as docs/dvc.md says to.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PIPELINE_PATHS = (
    "app",
    "training",
    "optimizer",
    "backtest",
    "config",
    "dvc.yaml",
    "params.yaml",
    ".dvcignore",
    ".dvc",
    ".gitignore",
)
"""What the stages depend on, copied as Git sees it (no caches, no data)."""
TICKERS = ["AAPL", "JNJ", "XOM"]
STAGES = ["ingest", "features", "train", "evaluate", "backtest"]
TINY_TRAINING = {"lookback_days": 10, "hidden_units": 8, "epochs": 2}
TINY_PARAMS = {
    "ingest": {"benchmark": "SP500", "source": "prices.csv"},
    "evaluate": {
        "first-year": 2018,
        "last-year": 2018,
        "epochs": 1,
        "garch": False,
        "in-process": True,
    },
    "backtest": {
        "strategies": "equal_weight,index,forecast_min_variance",
        "rebalance": "monthly",
        "cost-bps": 10,
    },
}


@dataclass
class PipelineRepo:
    """The temporary repository and how to run commands in it."""

    root: Path
    env: dict[str, str]
    first_repro: str
    """What the first ``dvc repro`` printed."""

    def run(self, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in the repository, with ``env`` added; a failure shows its output."""
        done = subprocess.run(
            argv,
            cwd=self.root,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            pytest.fail(f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def dvc(self, *args: str) -> str:
        return self.run(str(BIN / "dvc"), *args).stdout

    def quantserve(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A ``quantserve`` command reading the repository's config, as the stages do."""
        return self.run(
            str(BIN / "quantserve"), *args, QUANTSERVE_CONFIG_FILE="config/default.yaml"
        )

    def repro(self) -> tuple[list[str], str]:
        """Run ``dvc repro``: the stages it ran, in order, and what it printed."""
        output = self.dvc("repro")
        return stages_run(output), output

    def status(self) -> dict[str, Any]:
        """``dvc status``: empty when every stage is up to date."""
        status: dict[str, Any] = json.loads(self.dvc("status", "--json"))
        return status

    def lock(self) -> dict[str, Any]:
        lock: dict[str, Any] = yaml.safe_load((self.root / "dvc.lock").read_text())
        return lock

    def commit(self, message: str) -> None:
        self.run("git", "add", "-A")
        self.run("git", "commit", "--quiet", "--allow-empty", "-m", message)

    def restore(self) -> None:
        """Put the workspace back as the committed ``dvc.lock`` tracks it."""
        self.dvc("checkout", "--force")
        assert self.status() == {}


def stages_run(output: str) -> list[str]:
    """The stages a ``dvc repro`` output says it ran ("Running stage 'train':")."""
    return [
        line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")
    ]


def tiny_prices(path: Path) -> Path:
    """Three stocks and the index, 2015-2018, as a wide CSV."""
    from training.sources import embedded_dataset_files

    stocks_path, index_path = embedded_dataset_files()
    wide = pd.read_csv(stocks_path)[["Date", *TICKERS]].merge(pd.read_csv(index_path), on="Date")
    wide = wide[(wide["Date"] >= "2015-01-01") & (wide["Date"] <= "2018-12-31")]
    wide.to_csv(path, index=False)
    return path


def copy_pipeline(root: Path) -> None:
    """Copy what the stages depend on, as ``git ls-files`` lists it (untracked new files too)."""
    listed = subprocess.run(
        [
            "git",
            "ls-files",
            "--cached",
            "--others",
            "--exclude-standard",
            "-z",
            "--",
            *PIPELINE_PATHS,
        ],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in filter(None, listed.split("\0")):
        source = PROJECT / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)


def make_tiny(root: Path) -> None:
    """The tiny price file, training settings and params, set where a user sets them."""
    tiny_prices(root / "prices.csv")
    config_path = root / "config" / "default.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["training"].update(TINY_TRAINING)
    if "tracking" in config:
        # MLflow runs cost ~10 s a command here and write data/mlflow/, outside every
        # stage's outputs; tests/tracking checks them.
        config["tracking"]["enabled"] = False
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    (root / "params.yaml").write_text(yaml.safe_dump(TINY_PARAMS, sort_keys=False))
    pipeline = yaml.safe_load((root / "dvc.yaml").read_text())
    pipeline["stages"]["ingest"]["deps"].append("prices.csv")
    (root / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))


def pipeline_env(scratch: Path) -> dict[str, str]:
    """This venv first on PATH; DVC and Git configured by nothing outside the test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QUANTSERVE_", "DVC_"))}
    for folder in ("dvc-global", "dvc-system", "dvc-site-cache"):
        (scratch / folder).mkdir()
    return {
        **env,
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "QUANTSERVE_SPARK__MASTER": "local[1]",
        "DVC_NO_ANALYTICS": "1",
        "DVC_GLOBAL_CONFIG_DIR": str(scratch / "dvc-global"),
        "DVC_SYSTEM_CONFIG_DIR": str(scratch / "dvc-system"),
        "DVC_SITE_CACHE_DIR": str(scratch / "dvc-site-cache"),
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "quantserve tests",
        "GIT_AUTHOR_EMAIL": "tests@quantserve.invalid",
        "GIT_COMMITTER_NAME": "quantserve tests",
        "GIT_COMMITTER_EMAIL": "tests@quantserve.invalid",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
