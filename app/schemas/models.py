"""Bodies of ``GET /v1/models`` and a version's ``/evaluation``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ModelRef(BaseModel):
    """The model version that produced a result."""

    name: str
    version: int


class VersionStage(BaseModel):
    """A version and its registry stage."""

    version: int
    stage: str = Field(description="candidate, production or archived.")
    changed_at: str | None = None


class ModelDescription(BaseModel):
    """One model in the store."""

    name: str
    versions: list[int] = Field(description="Complete versions in the store, ascending.")
    stages: list[VersionStage] = Field(description="Each version's registry stage.")
    serving_version: int | None = Field(description="The version loaded and answering requests.")
    metadata: dict[str, Any] | None = Field(description="metadata.json of the serving version.")


class ModelsResponse(BaseModel):
    """Every model the server knows of."""

    models: list[ModelDescription]


class EvaluationMetrics(BaseModel):
    """Out-of-sample metrics of the walk-forward evaluation, by forecaster."""

    volatility: dict[str, dict[str, Any]] = Field(
        description="By forecaster (model, baselines, challenger): qlike, rmse, samples; "
        "the model's Diebold-Mariano test against the best baseline."
    )
    returns: dict[str, dict[str, Any]] = Field(
        description="By forecaster: ic_mean, ic_t, ic_dates, r2_oos, hit_rate, rmse; the "
        "model's quantile_coverage."
    )


class ModelEvaluation(BaseModel):
    """A model version's walk-forward evaluation, as ``quantserve evaluate`` wrote it."""

    model: ModelRef
    metrics: EvaluationMetrics
    context: dict[str, Any] = Field(
        description="The run: test_start, test_end, refits, tickers, training settings, ..."
    )
