"""The audit trail of optimize, back-test and admin requests (admin role: see create_app)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from app.api.deps import AuditDep
from app.schemas.audit import AuditEvent, AuditPage
from app.schemas.problems import Problem
from app.services.audit import MAX_ROW_ID

router = APIRouter(prefix="/v1/audit", tags=["audit"])

_PROBLEMS: dict[int | str, dict[str, Any]] = {422: {"model": Problem}}


@router.get("", responses=_PROBLEMS)
def list_audit_events(
    audit: AuditDep,
    since: Annotated[
        datetime | None,
        Query(description="ISO 8601, inclusive, e.g. 2025-01-31T00:00:00Z (no offset: UTC)."),
    ] = None,
    until: Annotated[datetime | None, Query(description="ISO 8601, exclusive.")] = None,
    key_id: Annotated[str | None, Query(max_length=64, description="An API key's id.")] = None,
    action: Annotated[
        str | None,
        Query(
            max_length=64,
            description="The endpoint's action, e.g. portfolios.optimize; a trailing * "
            "matches a prefix (admin.*).",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[
        int | None, Query(ge=1, le=MAX_ROW_ID, description="next_cursor of the previous page.")
    ] = None,
) -> AuditPage:
    """Recorded actions, newest first, filtered by time, API key and action."""
    page = audit.query(
        since=since, until=until, key_id=key_id, action=action, limit=limit, before_id=cursor
    )
    return AuditPage(
        events=[AuditEvent.model_validate(record) for record in page.records],
        next_cursor=page.next_before_id,
    )
