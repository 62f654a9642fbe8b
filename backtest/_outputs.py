"""Writing a back-test's outputs into one folder, swapped in whole.

``metrics.json``, ``returns.parquet``, ``weights.parquet``, ``report.html`` and, when the
input had refused rows, ``quarantine.csv``. The folder is written beside its final place
and renamed into it, so a reader (or a restart mid-way) sees all of a run or none of it.
"""

from __future__ import annotations

import json
from pathlib import Path

from backtest._report import render_report
from backtest._run import BacktestResult
from training._io import atomic_directory

METRICS_FILE = "metrics.json"
RETURNS_FILE = "returns.parquet"
WEIGHTS_FILE = "weights.parquet"
REPORT_FILE = "report.html"
QUARANTINE_FILE = "quarantine.csv"


def write_outputs(result: BacktestResult, output_dir: Path) -> Path:
    """Write every output of ``result`` into ``output_dir`` atomically; returns it."""
    document = result.metrics_document()
    returns = result.returns_frame()
    weights = result.weights_frame()
    html = render_report(returns, weights, result.turnover_frame(), document)
    with atomic_directory(output_dir) as staging:
        staging.mkdir(parents=True)
        (staging / METRICS_FILE).write_text(
            json.dumps(document, indent=2, allow_nan=False, default=str) + "\n"
        )
        returns.to_parquet(staging / RETURNS_FILE, index=False)
        weights.to_parquet(staging / WEIGHTS_FILE, index=False)
        (staging / REPORT_FILE).write_text(html, encoding="utf-8")
        if not result.market.quarantine.empty:
            result.market.quarantine.to_csv(staging / QUARANTINE_FILE, index=False)
    return output_dir
