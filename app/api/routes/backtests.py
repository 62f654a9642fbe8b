"""Walk-forward back-tests as jobs: submit and cancel (trader), follow and read (viewer)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import FileResponse, HTMLResponse
from starlette.concurrency import run_in_threadpool

from app.api.deps import AuditDep, BacktestServiceDep
from app.schemas._backtest_equity import (
    DEFAULT_EQUITY_POINTS,
    MAX_EQUITY_POINTS,
    MIN_EQUITY_POINTS,
    BacktestEquity,
)
from app.schemas.backtests import (
    BacktestAccepted,
    BacktestJob,
    BacktestPage,
    BacktestProgress,
    BacktestRequest,
    BacktestSummary,
)
from app.schemas.problems import Problem
from app.services.audit import MAX_ROW_ID
from app.services.backtests import JobRecord, JobStatus
from backtest import EquityCurves, significant_digits

PREFIX = "/v1/backtests"

# Two routers over one path: create_app gives each its role.
router = APIRouter(prefix=PREFIX, tags=["backtests"])
"""Reading jobs: the viewer role."""
trader_router = APIRouter(prefix=PREFIX, tags=["backtests"])
"""Submitting and cancelling jobs: the trader role."""

JobId = Annotated[str, Path(min_length=1, max_length=64, description="The job's id.")]

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem}}
_NOT_FOUND_OR_CONFLICT: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem},
    409: {"model": Problem, "description": "It has not succeeded (yet)."},
}
EQUITY_DIGITS = 9
"""Significant digits of the curves: a drawdown of -0.25 keeps 1e-9, a growth of 1 1e-8."""


# OpenAPI links: what a client (or schemathesis's stateful tests) does with a new job's id.
_JOB_LINKS = {
    name: {
        "operationRef": f"#/paths/~1v1~1backtests~1{{job_id}}{suffix}/{method}",
        "parameters": {"job_id": "$response.body#/id"},
    }
    for name, suffix, method in (
        ("follow", "", "get"),
        ("equity", "~1equity", "get"),
        ("report", "~1report", "get"),
        ("cancel", "", "delete"),
    )
}


@trader_router.post(
    "",
    status_code=202,
    responses={
        202: {"links": _JOB_LINKS},
        422: {"model": Problem},
        429: {"model": Problem, "description": "Too many queued; see Retry-After."},
    },
)
async def submit_backtest(
    body: BacktestRequest,
    request: Request,
    response: Response,
    service: BacktestServiceDep,
    audit: AuditDep,
) -> BacktestAccepted:
    """Queue a back-test; poll the Location for its progress and metrics."""
    # Recorded before queueing, like an admin action: no job is queued unrecorded.
    async with audit.action(request, "backtests.create", inputs=body, record_intent=True) as entry:
        job = await run_in_threadpool(service.submit, body, _key_id(request))
        accepted = BacktestAccepted(id=job.id, status=job.status.value, location=_location(job))
        entry.succeeded(outputs=accepted, status=202)
    response.headers["Location"] = accepted.location
    return accepted


@router.get("")
def list_backtests(
    service: BacktestServiceDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[
        int | None, Query(ge=1, le=MAX_ROW_ID, description="next_cursor of the previous page.")
    ] = None,
) -> BacktestPage:
    """Back-test jobs, newest first."""
    page = service.page(limit, cursor)
    return BacktestPage(
        backtests=[_summary(job) for job in page.records], next_cursor=page.next_before
    )


@router.get("/{job_id}", responses=_NOT_FOUND)
def get_backtest(job_id: JobId, service: BacktestServiceDep) -> BacktestJob:
    """A back-test's status and progress; its metrics once it succeeded, its error if it failed."""
    return _job(service.get(job_id))


@router.get("/{job_id}/report", response_class=HTMLResponse, responses=_NOT_FOUND_OR_CONFLICT)
def get_backtest_report(job_id: JobId, service: BacktestServiceDep) -> FileResponse:
    """The self-contained HTML report of a succeeded back-test."""
    return FileResponse(service.report(job_id), media_type="text/html; charset=utf-8")


@router.get("/{job_id}/equity", responses=_NOT_FOUND_OR_CONFLICT)
def get_backtest_equity(
    job_id: JobId,
    service: BacktestServiceDep,
    points: Annotated[
        int,
        Query(
            ge=MIN_EQUITY_POINTS,
            le=MAX_EQUITY_POINTS,
            description="Most points per curve; more days are thinned into this many buckets.",
        ),
    ] = DEFAULT_EQUITY_POINTS,
) -> BacktestEquity:
    """A succeeded back-test's equity (growth of 1, net of costs) and drawdown curves."""
    return _equity(job_id, service.equity(job_id, points))


@trader_router.delete(
    "/{job_id}",
    responses={
        202: {"model": BacktestJob, "description": "Was running: it stops at its next step."},
        404: {"model": Problem},
        409: {"model": Problem},
    },
)
async def cancel_backtest(
    job_id: JobId,
    request: Request,
    response: Response,
    service: BacktestServiceDep,
    audit: AuditDep,
) -> BacktestJob:
    """Cancel a queued (200) or running (202) back-test; a finished one is 409."""
    inputs = {"id": job_id}
    async with audit.action(
        request, "backtests.cancel", inputs=inputs, record_intent=True
    ) as entry:
        job, before = await run_in_threadpool(service.cancel, job_id)
        response.status_code = 202 if before is JobStatus.RUNNING else 200
        view = _job(job)
        entry.succeeded(outputs=view, status=response.status_code)
    return view


def _key_id(request: Request) -> str:
    principal = getattr(request.state, "principal", None)
    return getattr(principal, "key_id", None) or "anonymous"


def _location(job: JobRecord) -> str:
    return f"{PREFIX}/{job.id}"


def _progress(job: JobRecord) -> BacktestProgress:
    total = job.total
    done = total if job.status is JobStatus.SUCCEEDED and total is not None else job.done
    return BacktestProgress(done=done, total=total, fraction=job.fraction)


def _job(job: JobRecord) -> BacktestJob:
    succeeded = job.status is JobStatus.SUCCEEDED
    return BacktestJob(
        id=job.id,
        status=job.status.value,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        attempts=job.attempts,
        progress=_progress(job),
        location=_location(job),
        report=f"{_location(job)}/report" if succeeded else None,
        request=BacktestRequest.model_validate(job.request),
        error=None if job.error is None else Problem.model_validate(job.error),
        metrics=job.metrics if succeeded else None,
    )


def _equity(job_id: str, curves: EquityCurves) -> BacktestEquity:
    return BacktestEquity(
        id=job_id,
        points=len(curves.dates),
        days=curves.days,
        dates=list(curves.dates),
        equity={k: significant_digits(v, EQUITY_DIGITS) for k, v in curves.equity.items()},
        drawdown={k: significant_digits(v, EQUITY_DIGITS) for k, v in curves.drawdown.items()},
    )


def _summary(job: JobRecord) -> BacktestSummary:
    request = BacktestRequest.model_validate(job.request)
    return BacktestSummary(
        id=job.id,
        status=job.status.value,
        created_at=job.created_at,
        finished_at=job.finished_at,
        strategies=request.result_names(),
        progress=_progress(job),
        location=_location(job),
    )
