"""RFC 9457 problem details."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Problem(BaseModel):
    """An ``application/problem+json`` body (RFC 9457); extension members allowed."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(
        "about:blank", description="URI reference naming the problem type (see docs/errors.md)."
    )
    title: str = Field(description="Short summary of the problem type.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What was wrong with this request and how to fix it.")
    instance: str | None = Field(None, description="The request path.")

    def body(self) -> dict[str, Any]:
        """The JSON body, without unset optional members."""
        return self.model_dump(exclude_none=True)
