"""Type aliases shared by the optimizer modules."""

from __future__ import annotations

from typing import TypeAlias

import numpy as np
import numpy.typing as npt

FloatArray: TypeAlias = npt.NDArray[np.float64]
"""A float64 NumPy array (vector of weights or returns, or a matrix)."""

ParameterValue: TypeAlias = float | FloatArray
"""A value assigned to a ``cvxpy.Parameter``."""
