"""Bodies of the admin endpoints (``/v1/admin``): reload, promote, rollback."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field


class ServedModel(BaseModel):
    """The model version that serves, with its registry stage and data cutoff."""

    name: str
    version: int
    stage: str | None = Field(
        description="Registry stage: production, or candidate for a newest unpromoted version."
    )
    as_of: date | None = Field(description="Latest date of the features it forecasts from.")


class RegistryChangeResponse(BaseModel):
    """What a promotion or rollback changed in the registry."""

    action: Literal["promote", "rollback"]
    version: int = Field(description="The production version now.")
    previous: int | None = Field(description="The production version before, if any.")


class LifecycleResponse(BaseModel):
    """What an admin action did to the serving model."""

    action: Literal["reload", "promote", "rollback"]
    outcome: Literal["swapped", "unchanged"] = Field(
        description="swapped: a freshly loaded and verified state now serves."
    )
    ready: bool = Field(description="A model is loaded and forecasting.")
    serving: ServedModel | None = Field(description="What serves now.")
    previous: ServedModel | None = Field(description="What served before the action.")
    registry: RegistryChangeResponse | None = Field(
        None, description="The registry change (promote and rollback only)."
    )
