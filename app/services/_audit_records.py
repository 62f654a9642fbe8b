"""What the audit trail records and reads back: one action's row in progress, a read row,
a page of rows, and the error that withholds an answer whose row could not be written."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import Request

from app.core.logging import request_id_var
from app.services.errors import ServiceError


@dataclass(frozen=True)
class AuditRecord:
    """One recorded action, as read back."""

    id: int
    occurred_at: datetime
    request_id: str | None
    key_id: str
    action: str
    method: str
    path: str
    status: int | None
    outcome: str
    inputs: Any
    inputs_sha256: str | None
    model_versions: dict[str, int] | None
    outputs: Any
    duration_ms: float | None


@dataclass(frozen=True)
class AuditPage:
    """Records newest first, and the cursor of the next (older) page, if there is one."""

    records: list[AuditRecord]
    next_before_id: int | None


class AuditUnavailable(ServiceError):
    """The audit row could not be committed, so the request is not answered with success."""

    def __init__(self, action: str, *, performed: bool) -> None:
        self.action = action
        self.performed = performed
        if performed:
            message = (
                f"{action} was carried out and its start is recorded, but its outcome could "
                "not be recorded. Check the current state (GET /v1/models, GET /v1/backtests) "
                "before retrying."
            )
        else:
            message = (
                f"{action} could not be recorded in the audit trail, so it was not answered "
                "(nothing was changed). Retry shortly; if it persists, the audit database "
                "is down or full."
            )
        super().__init__(message)


class AuditEntry:
    """The row of one action in progress; the handler says how it went with ``succeeded``."""

    def __init__(self, request: Request, action: str, inputs: Any) -> None:
        self.occurred_at = datetime.now(UTC)
        self.started = time.perf_counter()
        principal = getattr(request.state, "principal", None)
        self.values: dict[str, Any] = {
            "occurred_at": self.occurred_at,
            "request_id": request_id_var.get(),
            "key_id": getattr(principal, "key_id", None) or "anonymous",
            "action": action,
            "method": request.method,
            # Without the query string, which can carry secrets.
            "path": request.url.path,
            "inputs": inputs,
        }
        self.status = 200
        self.outputs: Any = None
        self.model_versions: Mapping[str, int] | None = None

    def succeeded(
        self,
        outputs: Any = None,
        model_versions: Mapping[str, int] | None = None,
        status: int = 200,
    ) -> None:
        """Record the response (a pydantic model or JSON-able value) and the models used."""
        self.outputs = outputs
        self.model_versions = model_versions
        self.status = status

    def _ended(self, status: int | None, outcome: str, outputs: Any) -> dict[str, Any]:
        return {
            "status": status,
            "outcome": outcome,
            "outputs": outputs,
            "model_versions": dict(self.model_versions) if self.model_versions else None,
            "duration_ms": (time.perf_counter() - self.started) * 1000.0,
        }
