"""The model store as the server sees it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from app.api.deps import ServingStateDep, SettingsDep
from app.schemas.models import (
    EvaluationMetrics,
    ModelDescription,
    ModelEvaluation,
    ModelRef,
    ModelsResponse,
    VersionStage,
)
from app.schemas.problems import Problem
from app.services.evaluations import MODEL_NAME_PATTERN, read_evaluation
from app.services.model_registry import describe_model_store, model_names

router = APIRouter(prefix="/v1", tags=["models"])

ModelName = Annotated[
    str,
    Path(
        min_length=1,
        max_length=255,
        pattern=MODEL_NAME_PATTERN,
        description="A model in the store (letters, digits, _ . -).",
    ),
]
Version = Annotated[
    int, Path(ge=1, le=2**63 - 1, description="A complete version of the model (an integer).")
]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such model or version, or no evaluation yet."}
}


@router.get("/models")
def list_served_models(settings: SettingsDep, state: ServingStateDep) -> ModelsResponse:
    """Each model's name, versions, serving version and metadata."""
    described = []
    for name in model_names(settings.models_dir, settings.model_name):
        serving = state.model if state.model is not None and state.model.name == name else None
        records = describe_model_store(settings.models_dir, name)
        described.append(
            ModelDescription(
                name=name,
                versions=[r.version for r in records],
                stages=[
                    VersionStage(version=r.version, stage=r.stage.value, changed_at=r.changed_at)
                    for r in records
                ],
                serving_version=serving.version if serving else None,
                metadata=serving.metadata if serving else None,
            )
        )
    return ModelsResponse(models=described)


@router.get("/models/{name}/versions/{version}/evaluation", responses=_NOT_FOUND)
def get_model_evaluation(
    name: ModelName, version: Version, settings: SettingsDep
) -> ModelEvaluation:
    """A version's walk-forward evaluation (``quantserve evaluate``): metrics by forecaster."""
    evaluation = read_evaluation(settings.models_dir, name, version, settings.model_name)
    return ModelEvaluation(
        model=ModelRef(name=evaluation.name, version=evaluation.version),
        metrics=EvaluationMetrics(volatility=evaluation.volatility, returns=evaluation.returns),
        context=evaluation.context,
    )
