"""Errors raised by the offline pipeline.

::

    PipelineError
     ├── DataError            input data cannot be used (format, columns, nothing left)
     ├── ArtifactNotFound     an expected upstream artifact is missing (run the step before)
     └── TrainingError        the model could not be trained or exported
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base class of every error raised by ``training``."""


class DataError(PipelineError):
    """Input data cannot be used; the message says what is wrong and how to fix it."""


class ArtifactNotFound(PipelineError):
    """An artifact of an earlier step (raw prices, features, a model) is missing."""


class TrainingError(PipelineError):
    """The model could not be trained or exported."""
