"""Walk-forward evaluation of the forecaster against honest baselines."""

from training.evaluation._report import compute_metrics, render_report, write_evaluation
from training.evaluation._walkforward import (
    Refit,
    WalkForwardConfig,
    evaluate_refit,
    refit_schedule,
    run_walk_forward,
)

__all__ = [
    "Refit",
    "WalkForwardConfig",
    "compute_metrics",
    "evaluate_refit",
    "refit_schedule",
    "render_report",
    "run_walk_forward",
    "write_evaluation",
]
