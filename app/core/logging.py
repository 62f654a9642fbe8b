"""Structured logs: one JSON object a line on stderr, ready for Fluentd, Logstash or Loki.

Every line has ``timestamp`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``;
the request id of the request being served, when there is one; the fields a caller
passed with ``extra=``; and ``exception`` with the traceback when one was logged.
Request bodies and headers are never logged, so neither are keys or tokens they carry.

``logging_config`` is a :func:`logging.config.dictConfig` dictionary: uvicorn takes it
as ``log_config`` and gunicorn as ``logconfig_dict``, so the servers' own lines are JSON
too.
"""

from __future__ import annotations

import json
import logging
import logging.config
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

# The id of the request this task or thread is serving (set by the request-id middleware).
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()
    | {"message", "asctime", "taskName", "color_message"}
)


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON object on one line."""
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def logging_config(level: str = "info") -> dict[str, Any]:
    """A ``dictConfig`` that sends every logger, the servers' included, through JSON."""
    json_handler = {
        "class": "logging.StreamHandler",
        "formatter": "json",
        "stream": "ext://sys.stderr",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"json": json_handler},
        "root": {"level": level.upper(), "handlers": ["json"]},
        "loggers": {
            # The request-id middleware writes the access log, with the request id;
            # the servers' own access lines would repeat it without.
            "uvicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
            "uvicorn": {"level": level.upper(), "handlers": ["json"], "propagate": False},
            "uvicorn.error": {"level": level.upper(), "handlers": ["json"], "propagate": False},
            "gunicorn.error": {"level": level.upper(), "handlers": ["json"], "propagate": False},
        },
    }


def configure_logging(level: str = "info") -> None:
    """Apply :func:`logging_config` to this process."""
    logging.config.dictConfig(logging_config(level))
