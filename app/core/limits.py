"""Request limits: the body-size middleware (the count checks are in ``app.services.limits``).

Body size
    :class:`BodySizeLimit` is a pure ASGI middleware. A ``Content-Length`` above
    ``limits.max_body_bytes`` is refused at once, before a byte of the body is read; a
    body without one (chunked) is counted as it streams in, and the request is refused
    as soon as the count passes the limit, whatever the route was doing with it. Both
    answer 413 problem+json naming the limit and its value, on every path (the
    TensorFlow Serving ones included: the answer comes before routing).
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """413: the request body is larger than ``limits.max_body_bytes``."""

    slug = "body-too-large"
    title = "Request body too large"

    def __init__(self, max_body_bytes: int, received: int, *, declared: bool) -> None:
        size = (
            f"the body declares {received} bytes (Content-Length)"
            if declared
            else f"the body passed {max_body_bytes} bytes while streaming"
        )
        super().__init__(
            413,
            f"{size}; limits.max_body_bytes = {max_body_bytes} bytes. Send a smaller body: "
            "fewer tickers, fewer rows of returns, or fewer instances per request.",
        )
        self.extensions = {"limit": "limits.max_body_bytes", "value": max_body_bytes}


class BodySizeLimit:
    """Refuse request bodies larger than ``max_body_bytes`` with 413.

    Parameters
    ----------
    app : ASGIApp
    max_body_bytes : int
    refuse : callable
        Builds the 413 response (``app.api.problems.exception_problem``).
    """

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        refuse: Callable[[Request, BodyTooLarge], Response],
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one connection, counting the bytes of its request body."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await self._refuse(
                scope, receive, send, BodyTooLarge(self.max_body_bytes, declared, declared=True)
            )
            return

        received = 0
        exceeded: BodyTooLarge | None = None
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    exceeded = BodyTooLarge(self.max_body_bytes, received, declared=False)
                    # Stops the route reading; whatever it answers is replaced below.
                    raise exceeded
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if exceeded is not None and not response_started:
                return  # the app's answer to the exception; the 413 goes out instead
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyTooLarge:
            if response_started:
                raise
        if exceeded is not None and not response_started:
            await self._refuse(scope, receive, send, exceeded)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, error: BodyTooLarge
    ) -> None:
        response = self.refuse(Request(scope, receive), error)
        # The unread rest of the body is not waited for: the connection closes after.
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    try:
        return None if value is None else int(value)
    except ValueError:
        return None
