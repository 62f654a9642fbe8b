"""A SavedModel version's ``serving_default`` signature, as TensorFlow Serving reports it.

Read from ``saved_model.pb`` with TensorFlow's protobuf classes (no graph is loaded), and
printed in the JSON of TensorFlow Serving's ``GetModelMetadata``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.services._tfserving_request import SIGNATURE_NAME

PREDICT_METHOD = "tensorflow/serving/predict"


@dataclass(frozen=True)
class TensorInfo:
    """One input or output of a signature, as its ``SignatureDef`` records it."""

    name: str
    """The graph tensor, e.g. ``serving_default_features:0``."""
    dtype: str
    """The ``DataType`` enum name, e.g. ``DT_FLOAT``."""
    shape: tuple[int, ...] | None
    """Dimensions, -1 where unknown; None when even the rank is unknown."""

    def as_json(self) -> dict[str, Any]:
        """The protobuf JSON TensorFlow Serving prints (int64 sizes as strings)."""
        dims = [{"size": str(size), "name": ""} for size in self.shape or ()]
        return {
            "dtype": self.dtype,
            "tensor_shape": {"dim": dims, "unknown_rank": self.shape is None},
            "name": self.name,
        }


@dataclass(frozen=True)
class Signature:
    """The ``serving_default`` signature of one SavedModel version."""

    inputs: Mapping[str, TensorInfo]
    outputs: Mapping[str, TensorInfo]
    method_name: str

    @property
    def input_name(self) -> str:
        """The only input (the forecaster takes one tensor, ``features``)."""
        (name,) = self.inputs
        return name

    def as_json(self) -> dict[str, Any]:
        """One ``SignatureDef`` in TensorFlow Serving's metadata JSON."""
        return {
            "inputs": {k: v.as_json() for k, v in self.inputs.items()},
            "outputs": {k: v.as_json() for k, v in self.outputs.items()},
            "method_name": self.method_name,
        }


def read_signature(version_dir: Path) -> Signature:
    """The ``serving_default`` SignatureDef recorded in ``saved_model.pb``.

    Read from the protobuf rather than the loaded function, so tensor names and
    ``method_name`` are the ones TensorFlow Serving reports for the same SavedModel.
    """
    from tensorflow.core.framework import types_pb2
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((version_dir / "saved_model.pb").read_bytes())
    signature_def = saved.meta_graphs[0].signature_def[SIGNATURE_NAME]

    def info(proto: Any) -> TensorInfo:
        shape = None
        if not proto.tensor_shape.unknown_rank:
            shape = tuple(int(d.size) for d in proto.tensor_shape.dim)
        return TensorInfo(proto.name, types_pb2.DataType.Name(proto.dtype), shape)

    return Signature(
        inputs={k: info(signature_def.inputs[k]) for k in sorted(signature_def.inputs)},
        outputs={k: info(signature_def.outputs[k]) for k in sorted(signature_def.outputs)},
        method_name=signature_def.method_name or PREDICT_METHOD,
    )
