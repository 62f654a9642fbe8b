"""The model store as the server sees it."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import ServingStateDep, SettingsDep
from app.schemas.models import ModelDescription, ModelsResponse, VersionStage
from app.services.model_registry import describe_model_store, model_names

router = APIRouter(prefix="/v1", tags=["models"])


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
