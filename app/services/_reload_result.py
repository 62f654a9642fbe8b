"""What a model-lifecycle check or admin action did: its outcome, states and registry change."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from app.services.errors import ModelVersionRefused
from app.services.serving import ServingState


class ReloadOutcome(StrEnum):
    """What a check or an admin action did."""

    SWAPPED = "swapped"
    UNCHANGED = "unchanged"
    REFUSED = "refused"


@dataclass(frozen=True)
class RegistryChange:
    """A promotion or rollback an admin action made."""

    action: str
    version: int
    """The production version now."""
    previous: int | None
    """The production version before (None when there was none)."""


@dataclass(frozen=True)
class ReloadResult:
    """The outcome of one check or admin action."""

    outcome: ReloadOutcome
    state: ServingState
    """What serves after it."""
    previous: ServingState
    """What served before it."""
    refused: ModelVersionRefused | None = None
    registry_change: RegistryChange | None = None
