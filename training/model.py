"""The forecaster: one Keras model pooled across tickers, two targets out.

Input ``features``: ``(batch, lookback, n_features)`` float32, the rows of
:data:`training.schema.FEATURE_COLUMNS` ending at the forecast date. Normalisation is a
layer inside the model (adapted on the training split only), so the exported SavedModel
takes raw features.

The trained network has two heads:

- ``expected_log_return_5d``: the forward 5-day log return;
- ``log_variance_21d``: the log of the forward 21-day realized variance. Fitting the
  log keeps the loss from being dominated by crisis days; the exported model turns it
  back into a variance with the lognormal mean correction ``exp(m + s^2/2)``, ``s^2``
  the residual variance of the log on the training split.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers, ops

INPUT_NAME = "features"
RETURN_OUTPUT = "expected_log_return_5d"
LOG_VARIANCE_OUTPUT = "log_variance_21d"
VARIANCE_OUTPUT = "variance_21d"
VOLATILITY_OUTPUT = "volatility_21d"
SERVING_OUTPUTS = (RETURN_OUTPUT, VARIANCE_OUTPUT, VOLATILITY_OUTPUT)


class LogVarianceToVariance(layers.Layer):  # type: ignore[misc]
    """``exp(log_variance + bias)``, the lognormal mean of the variance."""

    def __init__(self, bias: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bias = float(bias)

    def call(self, log_variance: Any) -> Any:
        return ops.exp(log_variance + self.bias)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "bias": self.bias}


def build_training_model(
    lookback: int,
    n_features: int,
    normalizer: layers.Normalization,
    *,
    hidden_units: int,
    dropout: float,
    return_scale: float,
    log_variance_mean: float,
    log_variance_scale: float,
) -> keras.Model:
    """The trainable network: features in, return and log-variance heads out.

    The heads end in fixed rescalings to the targets' training mean and spread, so the
    dense layers work on unit-scale numbers while the outputs are in target units.
    """
    inputs = keras.Input(shape=(lookback, n_features), name=INPUT_NAME, dtype="float32")
    x = normalizer(inputs)
    x = layers.GRU(hidden_units, name="encoder")(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(hidden_units, activation="gelu", name="shared")(x)
    ret = layers.Dense(1, name="return_dense")(x)
    ret = layers.Rescaling(return_scale, name=RETURN_OUTPUT)(ret)
    log_var = layers.Dense(1, name="log_variance_dense")(x)
    log_var = layers.Rescaling(
        log_variance_scale, offset=log_variance_mean, name=LOG_VARIANCE_OUTPUT
    )(log_var)
    return keras.Model(
        inputs, {RETURN_OUTPUT: ret, LOG_VARIANCE_OUTPUT: log_var}, name="forecaster"
    )


def build_serving_model(trained: keras.Model, log_variance_bias: float) -> keras.Model:
    """Wrap the trained network with outputs in the units the API serves.

    Outputs (each ``(batch, 1)``): ``expected_log_return_5d``; ``variance_21d`` (sum of
    squared daily log returns over the next 21 days); ``volatility_21d`` (its square
    root, not annualised).
    """
    inputs = keras.Input(shape=trained.input_shape[1:], name=INPUT_NAME, dtype="float32")
    heads = trained(inputs)
    variance = LogVarianceToVariance(log_variance_bias, name=VARIANCE_OUTPUT)(
        heads[LOG_VARIANCE_OUTPUT]
    )
    volatility = layers.Activation(ops.sqrt, name=VOLATILITY_OUTPUT)(variance)
    return keras.Model(
        inputs,
        {
            RETURN_OUTPUT: heads[RETURN_OUTPUT],
            VARIANCE_OUTPUT: variance,
            VOLATILITY_OUTPUT: volatility,
        },
        name="forecaster_serving",
    )
