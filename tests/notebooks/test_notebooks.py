"""The notebooks: committed without outputs, and each runs on small data to its key outputs.

Each notebook runs in a real ``python3`` kernel of this venv (nbclient), started in
``notebooks/`` as Jupyter starts it, with ``QUANTSERVE_DATA_DIR`` and
``QUANTSERVE_MODELS_DIR`` pointing at the tiny data of ``conftest.py``. The executed
copies go to ``test-artifacts/notebooks/small-data/`` for a look after a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.notebooks.conftest import BAD_PRINT, FIRST_TEST_YEAR, QUARANTINED, STALE

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
ARTIFACTS = (
    Path(os.environ.get("QUANTSERVE_TEST_ARTIFACTS", REPO / "test-artifacts"))
    / "notebooks"
    / "small-data"
)
NAMES = ("01_data_quality.ipynb", "02_model_evaluation.ipynb", "03_backtest.ipynb")
for module in ("nbclient", "ipykernel", "nbstripout"):
    pytest.importorskip(module, reason="the notebooks' tools come with `make mlops`")


def execute(name: str, root: Path, output: Path) -> Any:
    """Run ``notebooks/name`` against ``root``'s data and models; the executed notebook."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    env = {
        **os.environ,
        "QUANTSERVE_DATA_DIR": str(root / "data"),
        "QUANTSERVE_MODELS_DIR": str(root / "models"),
    }
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=300,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    try:
        client.execute(env=env)
    finally:
        output.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, output)
    return notebook


def tagged(notebook: Any, tag: str) -> tuple[str, int]:
    """The text outputs of the cell tagged ``tag``, and how many images it drew."""
    cells = [c for c in notebook.cells if tag in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"one cell must be tagged {tag!r}"
    text, images = [], 0
    for output in cells[0].get("outputs", []):
        if output["output_type"] == "stream":
            text.append(output["text"])
        elif output["output_type"] in {"execute_result", "display_data"}:
            text.append(output["data"].get("text/plain", ""))
            images += "image/png" in output["data"]
    return "\n".join(text), images


def warnings_printed(notebook: Any) -> list[str]:
    """Anything a cell printed to stderr that mentions a warning."""
    return [
        output["text"]
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output["output_type"] == "stream"
        and output["name"] == "stderr"
        and "Warning" in output["text"]
    ]


def test_every_notebook_is_committed_without_outputs() -> None:
    import nbformat

    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert [p.name for p in paths] == sorted(NAMES)
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        assert notebook.metadata["kernelspec"]["name"] == "python3"
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [], f"{path.name} cell {cell.id} has outputs"
                assert cell.execution_count is None, f"{path.name} cell {cell.id} has a count"
    # nbstripout's own check, with the defaults of its git filter (metadata, cell ids).
    verify = subprocess.run(
        [sys.executable, "-m", "nbstripout", "--verify", *map(str, paths)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, (
        f"{verify.stdout}{verify.stderr}: strip them with `.venv/bin/nbstripout notebooks/*.ipynb` "
        "(`.venv/bin/nbstripout --install` does it on every commit)"
    )


def test_data_quality_notebook(notebook_data: Path) -> None:
    notebook = execute(NAMES[0], notebook_data, ARTIFACTS / NAMES[0])
    manifest = json.loads((notebook_data / "data" / "raw" / "manifest.json").read_text())

    summary, _ = tagged(notebook, "ingest-summary")
    assert re.search(rf"rows kept +{manifest['rows']}\n", summary)
    assert re.search(rf"rows quarantined +{len(QUARANTINED)}\n", summary)
    per_ticker, _ = tagged(notebook, "per-ticker")
    rows = {line.split()[0]: line.split()[1:] for line in per_ticker.splitlines()[2:]}
    ticker, first, days = STALE
    # first, last, rows, quarantined, stale days, jumps
    assert rows[ticker][4] == str(days)
    assert rows[BAD_PRINT[0]][5] == "1"
    quarantine, _ = tagged(notebook, "quarantine")
    assert "non-positive close: -1" in quarantine
    assert "close is not a number: abc" in quarantine
    stale, _ = tagged(notebook, "stale-table")
    assert f"{ticker}  {first}" in stale
    jumps, _ = tagged(notebook, "jumps-table")
    assert f"{BAD_PRINT[0]}  {BAD_PRINT[1]}" in jumps
    assert "True" in jumps  # undone the next day
    thresholds, _ = tagged(notebook, "thresholds-table")
    assert "stale_min_days" in thresholds
    for tag in ("prices-plot", "stale-plot", "jumps-plot", "features"):
        assert tagged(notebook, tag)[1] >= 1, f"{tag} drew no figure"
    assert warnings_printed(notebook) == []


def test_model_evaluation_notebook(notebook_data: Path) -> None:
    notebook = execute(NAMES[1], notebook_data, ARTIFACTS / NAMES[1])
    evaluation = notebook_data / "models" / "forecaster" / "1" / "evaluation"
    metrics = json.loads((evaluation / "metrics.json").read_text())

    split, _ = tagged(notebook, "version-split")
    assert "forecaster version 1 (serving)" in split
    assert "holdout" in split
    scores, _ = tagged(notebook, "version-scores")
    assert "trailing_21d" in scores
    assert "holdout" in scores
    table, _ = tagged(notebook, "qlike-table")
    for name, row in metrics["volatility"].items():
        assert f"{row['qlike']:.4f}" in table, f"{name}'s QLIKE is not in the table"
    verdict, _ = tagged(notebook, "qlike-verdict")
    best = metrics["volatility"]["model"]["dm_baseline"]
    assert f"Out of sample {FIRST_TEST_YEAR}-" in verdict
    assert best in verdict
    model_wins = metrics["volatility"]["model"]["qlike"] < metrics["volatility"][best]["qlike"]
    assert ("the model beats every baseline" in verdict) == model_wins
    returns, _ = tagged(notebook, "returns-table")
    assert "momentum_12_1" in returns
    coverage, _ = tagged(notebook, "quantile-coverage")
    assert "0.95" in coverage
    for tag in ("training-curve", "qlike-by-year", "volatility-plot"):
        assert tagged(notebook, tag)[1] >= 1, f"{tag} drew no figure"
    assert warnings_printed(notebook) == []


def test_backtest_notebook(notebook_data: Path) -> None:
    notebook = execute(NAMES[2], notebook_data, ARTIFACTS / NAMES[2])
    predictions = pd.read_parquet(
        notebook_data / "models" / "forecaster" / "1" / "evaluation" / "predictions.parquet"
    )

    market, _ = tagged(notebook, "market")
    assert "version 1" in market
    run, _ = tagged(notebook, "run")
    # Every strategy over the days the walk-forward forecasts cover, the same for all.
    first, last = predictions["date"].min().date(), predictions["date"].max().date()
    assert f"{first}..{last}" in run
    table, _ = tagged(notebook, "metrics-table")
    for name in (
        "equal_weight",
        "index",
        "min_variance",
        "max_sharpe",
        "risk_parity",
        "hrp",
        "forecast_min_variance",
        "forecast_mean_variance",
    ):
        assert name in table
    verdict, _ = tagged(notebook, "verdict")
    assert "1/N's" in verdict
    assert "on the model's forecasts" in verdict
    costs, _ = tagged(notebook, "cost-table")
    assert "50 bps" in costs
    for tag in ("equity-plot", "weights-plot"):
        assert tagged(notebook, tag)[1] >= 1, f"{tag} drew no figure"
    assert warnings_printed(notebook) == []


def test_a_missing_evaluation_names_the_command_that_builds_it(
    notebook_data: Path, tmp_path: Path
) -> None:
    """Without `quantserve evaluate`'s output, the notebook shows the version and stops."""
    import nbformat
    from nbclient.exceptions import CellExecutionError

    root = tmp_path / "root"
    shutil.copytree(notebook_data / "data", root / "data")
    shutil.copytree(
        notebook_data / "models",
        root / "models",
        ignore=shutil.ignore_patterns("evaluation"),
    )
    with pytest.raises(CellExecutionError) as stopped:
        execute(NAMES[1], root, tmp_path / NAMES[1])
    assert "Stopped: version 1 has no walk-forward evaluation" in str(stopped.value)
    assert "run `quantserve evaluate`" in str(stopped.value)
    executed = nbformat.read(tmp_path / NAMES[1], as_version=4)
    assert "trailing_21d" in tagged(executed, "version-scores")[0]
    assert tagged(executed, "training-curve")[1] == 1
    assert tagged(executed, "qlike-table")[0] == ""  # never reached
