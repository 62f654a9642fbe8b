"""Errors the services raise; ``app.api.problems`` turns each into a problem response.

::

    ServiceError
     ├── ModelNotLoaded     no model version is loaded yet (or the features are missing)
     └── UnknownTicker      a requested ticker has no features or forecast
"""

from __future__ import annotations

from collections.abc import Sequence


class ServiceError(Exception):
    """Base class of the service errors."""


class ModelNotLoaded(ServiceError):
    """No model is serving; the message says how to build one."""


class UnknownTicker(ServiceError):
    """Tickers that the served data set does not hold."""

    def __init__(self, unknown: Sequence[str], available: Sequence[str]) -> None:
        self.unknown = list(unknown)
        self.available = list(available)
        names = ", ".join(self.unknown)
        super().__init__(
            f"unknown ticker{'s' if len(self.unknown) > 1 else ''}: {names}; the served data "
            f"set holds {len(self.available)} tickers: {', '.join(self.available)}"
        )
