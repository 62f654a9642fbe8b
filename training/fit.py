"""Fitting the forecaster on windowed samples: shared by ``train`` and the walk-forward."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.config import TrainingConfig
from training.dataset import WindowedSamples
from training.metrics import VARIANCE_FLOOR


@dataclass(frozen=True)
class FittedForecaster:
    """The serving model (outputs in target units) and how training went."""

    serving: Any
    """Keras model; outputs ``expected_log_return_5d``, ``variance_21d``, ``volatility_21d``."""
    history: dict[str, list[float]]
    log_variance_bias: float

    def predict(self, features: np.ndarray) -> dict[str, np.ndarray]:
        """Outputs for a ``(n, lookback, n_features)`` array, in batches."""
        return predict_batches(self.serving, features)


def fit_forecaster(
    train: WindowedSamples,
    validation: WindowedSamples,
    config: TrainingConfig,
    *,
    verbose: int = 0,
    log_dir: Path | None = None,
) -> FittedForecaster:
    """Fit on ``train``, stop early on ``validation``'s loss; seeds from ``config``.

    Normalisation statistics and target scales come from ``train`` only. ``log_dir``,
    when given, receives TensorBoard logs of the losses.
    """
    import keras

    from training.model import (
        LOG_VARIANCE_OUTPUT,
        QUANTILES_OUTPUT,
        RETURN_OUTPUT,
        build_serving_model,
        build_training_model,
        pinball_loss,
        qlike_log_loss,
    )

    keras.utils.set_random_seed(config.seed)
    normalizer = keras.layers.Normalization(axis=-1, name="normalize")
    normalizer.adapt(train.features.reshape(-1, train.features.shape[-1]))
    log_var_train = np.log(np.maximum(train.target_variance, VARIANCE_FLOOR))
    return_scale = float(np.std(train.target_log_return))
    model = build_training_model(
        train.features.shape[1],
        train.features.shape[-1],
        normalizer,
        hidden_units=config.hidden_units,
        dropout=config.dropout,
        return_scale=return_scale,
        log_variance_mean=float(log_var_train.mean()),
        log_variance_scale=float(log_var_train.std()),
    )
    qlike = config.volatility_loss == "qlike"
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        # Huber: daily returns have fat tails.
        loss={
            RETURN_OUTPUT: keras.losses.Huber(delta=2.0 * return_scale),
            QUANTILES_OUTPUT: pinball_loss,
            LOG_VARIANCE_OUTPUT: qlike_log_loss if qlike else keras.losses.MeanSquaredError(),
        },
        # Scale each head's loss to order one, so no head drowns the others: the
        # return losses by the target's variance (pinball by its spread), QLIKE is
        # already unit-free, the log MSE by the log target's variance.
        loss_weights={
            RETURN_OUTPUT: 1.0 / return_scale**2,
            QUANTILES_OUTPUT: 1.0 / return_scale,
            LOG_VARIANCE_OUTPUT: 1.0 if qlike else 1.0 / float(log_var_train.var()),
        },
    )

    def targets(part: WindowedSamples) -> dict[str, np.ndarray]:
        log_variance = np.log(np.maximum(part.target_variance, VARIANCE_FLOOR))
        returns = part.target_log_return.astype("float32")[:, None]
        return {
            RETURN_OUTPUT: returns,
            QUANTILES_OUTPUT: returns,
            LOG_VARIANCE_OUTPUT: log_variance.astype("float32")[:, None],
        }

    callbacks: list[Any] = [
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=config.patience, restore_best_weights=True
        )
    ]
    if log_dir is not None:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(log_dir), write_graph=False))
    history = model.fit(
        train.features,
        targets(train),
        validation_data=(validation.features, targets(validation)),
        epochs=config.epochs,
        batch_size=config.batch_size,
        shuffle=True,
        verbose=verbose,
        callbacks=callbacks,
    )
    if qlike:
        bias = 0.0  # QLIKE's minimiser is already the conditional mean of the variance
    else:
        fitted_log_var = predict_batches(model, train.features)[LOG_VARIANCE_OUTPUT]
        residuals = targets(train)[LOG_VARIANCE_OUTPUT][:, 0] - fitted_log_var
        bias = 0.5 * float(np.var(residuals))
    return FittedForecaster(
        serving=build_serving_model(model, log_variance_bias=bias),
        history={key: [float(v) for v in values] for key, values in history.history.items()},
        log_variance_bias=bias,
    )


def predict_batches(
    model: Any, features: np.ndarray, batch_size: int = 4096
) -> dict[str, np.ndarray]:
    """Call the model on batches (never ``model.predict`` in a loop: it is slow)."""
    outputs: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(features), batch_size):
        batch = model(features[start : start + batch_size], training=False)
        for key, value in batch.items():
            array = np.asarray(value)
            # (n, 1) heads become (n,); the quantile head stays (n, 3)
            outputs.setdefault(key, []).append(array[:, 0] if array.shape[-1] == 1 else array)
    return {key: np.concatenate(parts) for key, parts in outputs.items()}
