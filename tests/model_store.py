"""Tiny real model stores the serving tests share: versions trained once per test run,
copied per test, published the way the pipeline publishes, and broken on purpose.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.training.synthetic import build_model_store
from training import schema
from training.model_store import METADATA_FILE, read_metadata

LOOKBACK = 5  # build_model_store's tiny versions
N_FEATURES = len(schema.FEATURE_COLUMNS)
BROKEN_KINDS = ("metadata-mismatch", "corrupt-graph", "nan-outputs")
_BUILT: dict[str, Path] = {}


def tiny_store(factory: pytest.TempPathFactory) -> Path:
    """Versions 1 and 2 of "forecaster" and their features, trained once per test run.

    Tests never write here: each copies it with ``fresh_root``.
    """
    if "store" not in _BUILT:
        from training.config import TrainingConfig
        from training.features import load_features
        from training.train import train_and_export

        root = build_model_store(factory.mktemp("lifecycle-store"), versions=1)
        # Another seed, so that version 2's forecasts differ from version 1's.
        other = TrainingConfig(lookback_days=LOOKBACK, hidden_units=4, epochs=1, seed=8)
        train_and_export(
            load_features(root / "data" / "features"), root / "models", "forecaster", other
        )
        _BUILT["store"] = root
    return _BUILT["store"]


def fresh_root(store: Path, tmp_path: Path, versions: tuple[int, ...] = (1,)) -> Path:
    """A writable copy of ``store`` holding only ``versions``; the others wait in staged/."""
    root = tmp_path / "root"
    shutil.copytree(store / "data", root / "data")
    model_dir = root / "models" / "forecaster"
    model_dir.mkdir(parents=True)
    for source in (store / "models" / "forecaster").iterdir():
        if source.name.isdigit():
            kept = int(source.name) in versions
            shutil.copytree(source, (model_dir if kept else root / "staged") / source.name)
    return root


def publish_version(root: Path, source: Path, version: int) -> Path:
    """Export ``source`` as ``version`` the way the pipeline does: whole, by one rename."""
    model_dir = root / "models" / "forecaster"
    tmp = model_dir / f".export-{version}"
    shutil.copytree(source, tmp)
    final = model_dir / str(version)
    os.rename(tmp, final)
    return final


def make_broken(root: Path, kind: str, source: Path | None = None) -> Path:
    """A copy of ``source`` (version 1) that must not serve, in staged/.

    ``metadata-mismatch``: metadata.json says another look-back than the signature;
    ``corrupt-graph``: saved_model.pb does not parse; ``nan-outputs``: every float
    variable is NaN, so the model loads and runs but answers NaN.
    """
    good = source if source is not None else root / "models" / "forecaster" / "1"
    broken = root / "staged" / f"broken-{kind}-{good.name}"
    shutil.copytree(good, broken)
    if kind == "metadata-mismatch":
        metadata = read_metadata(broken)
        metadata["lookback_days"] = LOOKBACK + 2
        (broken / METADATA_FILE).write_text(json.dumps(metadata))
    elif kind == "corrupt-graph":
        (broken / "saved_model.pb").write_bytes(b"\x08\x01not a SavedModel at all")
    elif kind == "nan-outputs":
        import tensorflow as tf

        loaded = tf.saved_model.load(str(good))
        for variable in loaded.variables:
            if variable.dtype.is_floating:
                variable.assign(tf.fill(variable.shape, float("nan")))
        shutil.rmtree(broken)
        tf.saved_model.save(loaded, str(broken), signatures=loaded.signatures)
        shutil.copy(good / METADATA_FILE, broken / METADATA_FILE)
    else:
        raise ValueError(kind)
    return broken


OTHER_LOOKBACK = 8
"""The look-back of ``other_lookback_version``: its signature differs from version 1's."""


def other_lookback_version(factory: pytest.TempPathFactory) -> Path:
    """A version folder of a model with another look-back, trained once per test run."""
    if "other-lookback" not in _BUILT:
        from training.config import TrainingConfig
        from training.features import load_features
        from training.train import train_and_export

        store = tiny_store(factory)
        models = factory.mktemp("other-lookback") / "models"
        config = TrainingConfig(lookback_days=OTHER_LOOKBACK, hidden_units=4, epochs=1, seed=3)
        train_and_export(load_features(store / "data" / "features"), models, "forecaster", config)
        _BUILT["other-lookback"] = models / "forecaster" / "1"
    return _BUILT["other-lookback"]


def rewrite_in_place(version_dir: Path, source: Path) -> None:
    """Replace ``version_dir``'s files by ``source``'s, keeping the folder (a hand-made fix)."""
    for child in version_dir.iterdir():
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()
    shutil.copytree(source, version_dir, dirs_exist_ok=True)
