"""Checks of RFC 9457 problem answers shared by the API tests."""

from __future__ import annotations

from typing import Any

PROBLEM = "application/problem+json"


def assert_problem(response: Any, status: int, kind: str) -> dict[str, Any]:
    """The problem document of ``response``, checked to be a ``status`` of type ``kind``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem: dict[str, Any] = response.json()
    assert problem["type"] == f"/problems/{kind}", problem
    assert problem["status"] == status
    return problem
