"""Liveness and readiness probes (open, never authenticated).

Both are ``async``: they answer on the event loop even when solves fill the thread pool.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.deps import ServingStateDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses={503: {"description": "No model loaded yet; `reason` says why in plain words."}},
)
async def readyz(state: ServingStateDep) -> JSONResponse:
    """200 once a model is loaded and forecasting, 503 before (details in the server log)."""
    if state.ready and state.model is not None:
        return JSONResponse(
            {"status": "ready", "model": {"name": state.model.name, "version": state.model.version}}
        )
    return JSONResponse(
        {"status": "not ready", "reason": state.not_ready_reason or "loading"},
        status_code=503,
    )
