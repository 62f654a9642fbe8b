"""Bodies of ``GET /v1/models``."""

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
