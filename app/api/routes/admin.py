"""Admin actions on the serving model: reload, promote, roll back.

Each loads and verifies a version before it serves; a broken one is refused with a 422
problem and the last good version keeps serving. Each is in the audit trail, recorded
before it acts (``admin.*`` actions record their intent first).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from app.api.deps import AuditDep, LifecycleDep
from app.schemas.admin import LifecycleResponse, RegistryChangeResponse, ServedModel
from app.schemas.problems import Problem
from app.services.lifecycle import ReloadResult
from app.services.serving import ServingState

router = APIRouter(prefix="/v1/admin", tags=["admin"])  # admin role: see create_app

_Responses = dict[int | str, dict[str, Any]]
_REFUSED: _Responses = {
    422: {"model": Problem, "description": "The version failed to load or verify."}
}
_NOT_FOUND: _Responses = {404: {"model": Problem, "description": "No such model or version."}}
_CONFLICT: _Responses = {409: {"model": Problem, "description": "Nothing to roll back to."}}


@router.post("/reload", responses=_REFUSED)
async def reload(request: Request, lifecycle: LifecycleDep, audit: AuditDep) -> LifecycleResponse:
    """Load, verify and swap in the serving version and features now, even if unchanged."""
    async with audit.action(request, "admin.reload") as entry:
        response = _response("reload", await run_in_threadpool(lifecycle.reload))
        entry.succeeded(outputs=response, model_versions=_versions(response))
    return response


@router.post("/models/{name}/versions/{version}/promote", responses=_REFUSED | _NOT_FOUND)
async def promote(
    name: str, version: int, request: Request, lifecycle: LifecycleDep, audit: AuditDep
) -> LifecycleResponse:
    """Verify a version, make it production in the registry, and serve it."""
    inputs = {"name": name, "version": version}
    async with audit.action(request, "admin.promote", inputs=inputs) as entry:
        reason = f"promoted through the admin API by key {_key_id(request)}"
        result = await run_in_threadpool(lifecycle.promote, name, version, reason)
        response = _response("promote", result)
        entry.succeeded(outputs=response, model_versions=_versions(response))
    return response


@router.post("/models/{name}/rollback", responses=_REFUSED | _NOT_FOUND | _CONFLICT)
async def rollback(
    name: str, request: Request, lifecycle: LifecycleDep, audit: AuditDep
) -> LifecycleResponse:
    """Verify the version production replaced, roll the registry back to it, and serve it."""
    async with audit.action(request, "admin.rollback", inputs={"name": name}) as entry:
        reason = f"rolled back through the admin API by key {_key_id(request)}"
        response = _response("rollback", await run_in_threadpool(lifecycle.rollback, name, reason))
        entry.succeeded(outputs=response, model_versions=_versions(response))
    return response


def _key_id(request: Request) -> str:
    """The id of the key that asked (set by the role dependency), for the registry's log."""
    return str(getattr(getattr(request.state, "principal", None), "key_id", "unknown"))


def _versions(response: LifecycleResponse) -> dict[str, int] | None:
    served = response.serving
    return None if served is None else {served.name: served.version}


def _response(action: str, result: ReloadResult) -> LifecycleResponse:
    change = result.registry_change
    return LifecycleResponse.model_validate(
        {
            "action": action,
            "outcome": result.outcome.value,
            "ready": result.state.ready,
            "serving": _served(result.state),
            "previous": _served(result.previous),
            "registry": None
            if change is None
            else RegistryChangeResponse.model_validate(
                {"action": change.action, "version": change.version, "previous": change.previous}
            ),
        }
    )


def _served(state: ServingState) -> ServedModel | None:
    if state.model is None:
        return None
    return ServedModel(
        name=state.model.name,
        version=state.model.version,
        stage=state.monitoring.stage,
        as_of=state.monitoring.data_cutoff,
    )
