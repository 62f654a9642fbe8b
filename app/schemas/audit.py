"""Bodies of ``GET /v1/audit``."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, JsonValue


class AuditEvent(BaseModel):
    """One recorded optimize, back-test or admin request."""

    model_config = ConfigDict(from_attributes=True)

    id: int = Field(description="Grows with each record; the order of the list.")
    occurred_at: datetime = Field(description="When the action started (UTC).")
    request_id: str | None = Field(description="The X-Request-ID of the request.")
    key_id: str = Field(description="The id of the API key that asked (never the key).")
    action: str = Field(description="What was asked, e.g. portfolios.optimize, admin.promote.")
    method: str
    path: str = Field(description="The request path, without the query string.")
    status: int | None = Field(description="The HTTP status answered; null while started.")
    outcome: str = Field(
        description="success, the problem type's slug of an error (e.g. infeasible), "
        "started (an admin action whose outcome was not recorded), or cancelled."
    )
    inputs: JsonValue = Field(
        description="The request body; one over audit.max_stored_bytes is replaced by "
        '{"truncated": true, "sha256", "size_bytes", "note"}.'
    )
    inputs_sha256: str | None = Field(
        description="SHA-256 (hex) of the whole request body's compact JSON, even when "
        "inputs is truncated; null without inputs or for rows older than this column."
    )
    model_versions: dict[str, int] | None = Field(
        description="Model name to the version used; null when no model was used."
    )
    outputs: JsonValue = Field(
        description="The response body, or the problem document of an error; truncated "
        "like inputs past audit.max_stored_bytes."
    )
    duration_ms: float | None = Field(description="From the start of the action to its record.")


class AuditPage(BaseModel):
    """Recorded actions, newest first."""

    events: list[AuditEvent]
    next_cursor: int | None = Field(
        description="Pass as cursor for the next (older) page; null on the last page."
    )
