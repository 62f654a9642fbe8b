"""The forecaster: one Keras model pooled across tickers, two targets out.

Input ``features``: ``(batch, lookback, n_features)`` float32, the rows of
:data:`training.schema.FEATURE_COLUMNS` ending at the forecast date. Normalisation is a
layer inside the model (adapted on the training split only), so the exported SavedModel
takes raw features.

The trained network has three heads on a shared GRU encoder:

- ``expected_log_return_5d``: the forward 5-day log return (Huber loss: fat tails);
- ``log_return_quantiles_5d``: its 5%, 50% and 95% quantiles (pinball loss), built
  so they cannot cross: the median plus or minus a softplus-positive spread;
- ``log_variance_21d``: the log of the forward 21-day realized variance ``h``, trained
  with QLIKE, ``y/h - ln(y/h) - 1``, the loss that ranks variance forecasts
  consistently (Patton 2011) and whose minimiser is the conditional mean of ``y``.
  With ``volatility_loss="mse_log"`` it fits the log instead, and the export turns it
  back into a variance with the lognormal mean correction ``exp(m + s^2/2)``.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers, ops

INPUT_NAME = "features"
RETURN_OUTPUT = "expected_log_return_5d"
QUANTILES_OUTPUT = "log_return_quantiles_5d"
QUANTILES = (0.05, 0.5, 0.95)
LOG_VARIANCE_OUTPUT = "log_variance_21d"
VARIANCE_OUTPUT = "variance_21d"
VOLATILITY_OUTPUT = "volatility_21d"
SERVING_OUTPUTS = (RETURN_OUTPUT, QUANTILES_OUTPUT, VARIANCE_OUTPUT, VOLATILITY_OUTPUT)


class OrderedQuantiles(layers.Layer):  # type: ignore[misc]
    """``(median - softplus(a), median, median + softplus(b))``: quantiles that never cross."""

    def call(self, raw: Any) -> Any:
        median = raw[:, 1:2]
        lower = median - ops.softplus(raw[:, 0:1])
        upper = median + ops.softplus(raw[:, 2:3])
        return ops.concatenate([lower, median, upper], axis=-1)


def pinball_loss(y_true: Any, y_pred: Any) -> Any:
    """Mean pinball loss over :data:`QUANTILES` (``y_pred`` has one column per quantile)."""
    levels = ops.convert_to_tensor(QUANTILES, dtype=y_pred.dtype)
    error = y_true - y_pred
    return ops.mean(ops.maximum(levels * error, (levels - 1.0) * error), axis=-1)


def qlike_log_loss(y_true_log: Any, log_forecast: Any) -> Any:
    """QLIKE of the variance forecast ``exp(log_forecast)`` for the log target.

    ``y/h - ln(y/h) - 1`` with ``y = exp(y_true_log)``, ``h = exp(log_forecast)``:
    ``exp(t - f) - (t - f) - 1``. The exponent is clipped so one extreme day cannot
    overflow a batch.
    """
    difference = ops.clip(y_true_log - log_forecast, -20.0, 20.0)
    return ops.mean(ops.exp(difference) - difference - 1.0, axis=-1)


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
    quantiles = layers.Dense(len(QUANTILES), name="quantile_dense")(x)
    quantiles = OrderedQuantiles(name="ordered_quantiles")(quantiles)
    quantiles = layers.Rescaling(return_scale, name=QUANTILES_OUTPUT)(quantiles)
    log_var = layers.Dense(1, name="log_variance_dense")(x)
    log_var = layers.Rescaling(
        log_variance_scale, offset=log_variance_mean, name=LOG_VARIANCE_OUTPUT
    )(log_var)
    return keras.Model(
        inputs,
        {RETURN_OUTPUT: ret, QUANTILES_OUTPUT: quantiles, LOG_VARIANCE_OUTPUT: log_var},
        name="forecaster",
    )


def build_serving_model(trained: keras.Model, log_variance_bias: float) -> keras.Model:
    """Wrap the trained network with outputs in the units the API serves.

    Outputs: ``expected_log_return_5d`` ``(batch, 1)``; ``log_return_quantiles_5d``
    ``(batch, 3)``, the 5%, 50% and 95% quantiles of the 5-day log return;
    ``variance_21d`` ``(batch, 1)``, the sum of squared daily log returns over the next
    21 days; ``volatility_21d`` ``(batch, 1)``, its square root, not annualised.
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
            QUANTILES_OUTPUT: heads[QUANTILES_OUTPUT],
            VARIANCE_OUTPUT: variance,
            VOLATILITY_OUTPUT: volatility,
        },
        name="forecaster_serving",
    )
