"""Bodies of TensorFlow Serving's REST API, in its protobuf JSON shapes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Status(BaseModel):
    """A ``StatusProto``: ``OK`` and an empty message for a healthy version."""

    error_code: str = "OK"
    error_message: str = ""


class ModelVersionStatus(BaseModel):
    """One version's state: ``AVAILABLE`` when loaded, ``END`` when not."""

    version: str = Field(description="The version number (int64, so a string in JSON).")
    state: str
    status: Status = Field(default_factory=Status)


class ModelStatusResponse(BaseModel):
    """``GetModelStatusResponse``."""

    model_version_status: list[ModelVersionStatus]


class ModelSpec(BaseModel):
    """``ModelSpec``: which model and version answered."""

    name: str
    signature_name: str = ""
    version: str


class ModelMetadataResponse(BaseModel):
    """``GetModelMetadataResponse`` with the ``signature_def`` metadata."""

    model_spec: ModelSpec
    metadata: dict[str, Any] = Field(
        description='{"signature_def": {"signature_def": {"serving_default": SignatureDef}}}'
    )


class PredictRequest(BaseModel):
    """A predict body: ``instances`` (row format) or ``inputs`` (columnar), not both."""

    signature_name: str | None = Field(None, description='Only "serving_default".')
    instances: list[Any] | None = Field(
        None,
        description='Row format: one lookback x features list (or {"features": ...}) per '
        "instance; at most 1,024.",
    )
    inputs: Any | None = Field(
        None, description='Columnar format: the batch, or {"features": batch}.'
    )


class ErrorResponse(BaseModel):
    """TensorFlow Serving's error body."""

    error: str
