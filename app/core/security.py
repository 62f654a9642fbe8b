"""API keys, roles and the per-key rate limit: who is calling, and whether they may.

Keys
    A key is ``qs_`` + 43 URL-safe characters (256 random bits), sent in ``X-API-Key``
    or ``Authorization: Bearer <key>``. The server stores only the SHA-256 of each key
    (``api_keys`` in the settings), so a leaked config file or environment leaks no key.
    Keys, and hashes of presented keys, are never logged or echoed in a response.
Roles
    ``viewer`` (forecasts, models, TensorFlow Serving) < ``trader`` (optimize, back-tests)
    < ``admin`` (reload, promote, audit); a role may do all that the roles below it may.
    Routers are protected where ``app.main`` includes them:
    ``dependencies=[Depends(require_role("trader"))]``. The dependency sets
    ``request.state.principal`` to the caller's :class:`Principal`.
Development mode
    With no keys configured the server refuses to start, unless ``dev_mode`` is set:
    then every request is ``Principal("dev", "admin")``, and start-up logs a warning.
    In production (``environment: production``) it refuses even then: development mode
    is for development and tests only.
Rate limit
    A token bucket per key id (``limits.rate_per_second`` refill, ``limits.burst``
    size); a request finding it empty gets 429 with ``Retry-After``. The buckets live
    in the worker process: with N gunicorn workers (and R replicas) a key may make up
    to N x R times the configured rate, because each worker counts only the requests
    it serves. A shared store (Redis) would make the limit global at the price of a
    network round trip per request; per process is a guard against runaway clients,
    not a quota.

Refusals are :class:`AccessDenied` errors (Starlette ``HTTPException`` subclasses, so
the TensorFlow Serving routes can answer them in their own error shape);
``app.api.problems`` turns them into problem+json.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Final

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.config import ROLES, ApiKey, Role, Settings
from app.core.rate_limit import RateLimiter

logger = logging.getLogger(__name__)

KEY_PREFIX: Final = "qs_"
"""Marks quantserve keys, so secret scanners and people recognise a leaked one."""

API_KEY_HEADER: Final = "X-API-Key"
DEV_PRINCIPAL_ID: Final = "dev"
DEV_MODE_WARNING: Final = "development mode: no API keys, every request is admin"
NO_KEYS_MESSAGE: Final = (
    "no API keys are configured, so the server would be open to anyone. Create one with "
    "`quantserve keys create --id NAME --role viewer|trader|admin` and set "
    "QUANTSERVE_API_KEYS (or api_keys in the config file); or, for development only, set "
    "QUANTSERVE_DEV_MODE=1 to serve without keys, every caller being admin."
)

DEV_MODE_IN_PRODUCTION_MESSAGE: Final = (
    "development mode is on (QUANTSERVE_DEV_MODE) in production (environment: production) "
    "with no API keys configured, so every caller would be admin. Create keys with "
    "`quantserve keys create --id NAME --role viewer|trader|admin`, set QUANTSERVE_API_KEYS "
    "(or api_keys in the config file) and unset QUANTSERVE_DEV_MODE; or, if this server is "
    "not production, set QUANTSERVE_ENVIRONMENT=development."
)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: the key's id (shown in logs and audit) and its role."""

    key_id: str
    role: Role

    def allows(self, role: Role) -> bool:
        """Whether this caller's role is ``role`` or above it."""
        return ROLES.index(self.role) >= ROLES.index(role)


def hash_key(key: str) -> str:
    """The hex SHA-256 of ``key``, as stored in ``api_keys``.

    A fast, unsalted hash is the right tool here, as for GitHub's and Stripe's tokens:
    the keys are 256 random bits, not passwords a person chose, so there is no
    dictionary to try and a brute-force search is hopeless at any hashing speed. A slow
    password hash (bcrypt, Argon2) would add tens of milliseconds to every request for
    no gain, and a salt would prevent looking a key up by its hash.
    """
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def generate_key() -> str:
    """A new random key: ``qs_`` and 256 bits from :mod:`secrets`, URL-safe base64."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


class MissingApiKeys(RuntimeError):
    """No API keys, and either no development mode or development mode in production."""


def check_can_start(settings: Settings) -> None:
    """Refuse a server that would be open to anyone.

    No keys and no ``dev_mode``: :data:`NO_KEYS_MESSAGE`. No keys and ``dev_mode`` in
    production: :data:`DEV_MODE_IN_PRODUCTION_MESSAGE`. Checked here, where the server
    starts, rather than in ``Settings``: only a server is opened by the combination, and
    the pipeline commands, which need no keys, read the same settings.
    """
    if settings.api_keys:
        return
    if not settings.dev_mode:
        raise MissingApiKeys(NO_KEYS_MESSAGE)
    if settings.environment == "production":
        raise MissingApiKeys(DEV_MODE_IN_PRODUCTION_MESSAGE)


class KeyRing:
    """The configured keys, looked up by the hash of a presented key.

    The lookup is a dict access on the SHA-256 of the presented key. That needs no
    constant-time comparison (``hmac.compare_digest``): a timing difference could at
    most reveal how the *hash* of a guess compares with stored hashes, and learning
    prefixes of SHA-256 outputs brings an attacker no closer to a key that produces one.

    Parameters
    ----------
    keys : iterable of ApiKey
        Ids and hashes must be unique (the settings check this).
    dev_mode : bool
        With no keys: everyone is ``Principal("dev", "admin")``. With keys it changes
        nothing: configured keys are always required.
    """

    def __init__(self, keys: Iterable[ApiKey], *, dev_mode: bool = False) -> None:
        self._by_hash = {key.sha256: Principal(key.id, key.role) for key in keys}
        self.open = dev_mode and not self._by_hash

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        """The key ring of ``settings.api_keys`` and ``settings.dev_mode``."""
        return cls(settings.api_keys, dev_mode=settings.dev_mode)

    def __len__(self) -> int:
        return len(self._by_hash)

    def lookup(self, key: str) -> Principal | None:
        """The principal whose key is ``key``, or None."""
        return self._by_hash.get(hash_key(key))


class AccessDenied(HTTPException):
    """A refused request; ``slug``, ``title`` and ``extensions`` shape its problem."""

    slug = "access-denied"
    title = "Access denied"

    def __init__(
        self,
        status_code: int,
        detail: str,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(status_code, detail, dict(headers) if headers else None)
        self.extensions = extensions


class NotAuthenticated(AccessDenied):
    """401: no key, or a key the server does not know."""

    slug = "unauthorized"
    title = "Missing or unknown API key"

    def __init__(self, detail: str) -> None:
        super().__init__(401, detail, {"WWW-Authenticate": "Bearer"})


class RoleTooLow(AccessDenied):
    """403: a valid key whose role is below the endpoint's."""

    slug = "forbidden"
    title = "Role not allowed"

    def __init__(self, principal: Principal, required: Role) -> None:
        allowed = " or ".join(ROLES[ROLES.index(required) :])
        super().__init__(
            403,
            f"this endpoint needs the {required} role; key {principal.key_id!r} has the "
            f"{principal.role} role. Call it with a {allowed} key.",
            required_role=required,
            role=principal.role,
            key_id=principal.key_id,
        )


class RateLimited(AccessDenied):
    """429: the key's token bucket is empty; ``Retry-After`` says when to come back."""

    slug = "rate-limited"
    title = "Too many requests"

    def __init__(self, key_id: str, wait_seconds: float, limits: RateLimiter) -> None:
        retry_after = max(1, math.ceil(wait_seconds))
        super().__init__(
            429,
            f"key {key_id!r} is over its rate limit: limits.rate_per_second = "
            f"{limits.rate:g} requests a second, in bursts of up to limits.burst = "
            f"{limits.burst}. Retry after {retry_after} s, and spread the requests out.",
            {"Retry-After": str(retry_after)},
            limit="limits.rate_per_second",
            value=limits.rate,
            burst=limits.burst,
            retry_after_seconds=retry_after,
            key_id=key_id,
        )


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key in ``X-API-Key``, else in ``Authorization: Bearer <key>``, else None."""
    key = headers.get(API_KEY_HEADER)
    if key:
        return key.strip() or None
    authorization = headers.get("Authorization")
    if authorization:
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    return None


class AccessControl:
    """Authentication, the rate limit and the role check, for one app.

    ``create_app`` stores one at ``app.state.access``; :func:`require_role` and
    :class:`MetricsKeyGuard` use it.
    """

    def __init__(self, keyring: KeyRing, limiter: RateLimiter) -> None:
        self.keyring = keyring
        self.limiter = limiter

    @classmethod
    def from_settings(cls, settings: Settings) -> AccessControl:
        """The access control ``settings`` describe."""
        return cls(KeyRing.from_settings(settings), RateLimiter(settings.limits))

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """The caller, or :class:`NotAuthenticated` (401)."""
        if self.keyring.open:
            return Principal(DEV_PRINCIPAL_ID, "admin")
        key = presented_key(headers)
        if key is None:
            raise NotAuthenticated(
                f"no API key: send it in the {API_KEY_HEADER} header or as "
                "'Authorization: Bearer <key>'. An admin creates keys with "
                "`quantserve keys create`."
            )
        principal = self.keyring.lookup(key)
        if principal is None:
            # Nothing about the key itself is logged: not the key, not its hash.
            logger.warning("refused an unknown API key", extra={"auth": "unknown_key"})
            raise NotAuthenticated(
                "the API key is not known to this server: check that it was copied whole, "
                "or ask an admin for a new one."
            )
        return principal

    def admit(self, headers: Mapping[str, str], role: Role, state: Any) -> Principal:
        """Authenticate, check ``role`` (403), then take a token (429).

        ``state`` is the request's state: the principal is kept there, and a request
        whose route has several role dependencies pays one token only.
        """
        principal: Principal | None = getattr(state, "principal", None)
        if principal is None:
            principal = self.authenticate(headers)
            state.principal = principal
        if not principal.allows(role):
            raise RoleTooLow(principal, role)
        if not getattr(state, "rate_limit_checked", False):
            state.rate_limit_checked = True
            wait = self.limiter.wait_seconds(principal.key_id)
            if wait > 0:
                raise RateLimited(principal.key_id, wait, self.limiter)
        return principal


# Declared for the OpenAPI document only (/docs gets an "Authorize" button for either
# form); AccessControl reads the headers itself, so its errors stay problem+json.
_API_KEY_SCHEME = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)
_BEARER_SCHEME = HTTPBearer(auto_error=False)


@cache
def require_role(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting callers with ``role`` or above; it returns the principal.

    One function per role (cached), so FastAPI runs it once per request however many
    routers and routes list it.
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; choose among {', '.join(ROLES)}")

    async def dependency(
        request: Request,
        _api_key: Annotated[str | None, Security(_API_KEY_SCHEME)],
        _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER_SCHEME)],
    ) -> Principal:
        access: AccessControl = request.app.state.access
        return access.admit(request.headers, role, request.state)

    dependency.__name__ = f"require_{role}"
    dependency.__qualname__ = dependency.__name__
    return dependency


class MetricsKeyGuard:
    """ASGI middleware: ``/metrics`` answers only requests with a valid key (any role).

    A wrapper rather than a dependency, so the Prometheus instrumentation that exposes
    the route stays untouched. Scrapes are not rate-limited.

    Parameters
    ----------
    app : ASGIApp
    access : AccessControl
    refuse : callable
        Builds the response for a refusal (``app.api.problems.access_denied_problem``).
    path : str, optional
    """

    def __init__(
        self,
        app: ASGIApp,
        access: AccessControl,
        refuse: Callable[[Request, AccessDenied], Response],
        path: str = "/metrics",
    ) -> None:
        self.app = app
        self.access = access
        self.refuse = refuse
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse ``path`` without a valid key; pass everything else through."""
        if scope["type"] == "http" and scope["path"] == self.path:
            request = Request(scope, receive)
            try:
                self.access.authenticate(request.headers)
            except AccessDenied as exc:
                await self.refuse(request, exc)(scope, receive, send)
                return
        await self.app(scope, receive, send)
