"""Forecasts for the latest date, computed once per (model version, feature table).

The forecasts cannot change while one ``ForecastService`` serves (a new model version or
feature table makes a new service), so neither can the JSON that answers
``POST /v1/forecasts``: it is rendered once, when the service is made, and each request
only joins ready-made bytes. Rendering the response model per request cost more than
the rest of the handler.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from app.schemas.forecasts import (
    ForecastResponse,
    ReturnQuantiles,
    TickerForecast,
    UnavailableForecast,
)
from app.schemas.models import ModelRef
from app.services.errors import UnknownTicker
from app.services.feature_store import FeatureStore
from app.services.model_registry import LoadedModel
from training import schema
from training.model import QUANTILES_OUTPUT, RETURN_OUTPUT, VOLATILITY_OUTPUT

ANNUALISE_RETURN = schema.ANNUALISE_RETURN
ANNUALISE_VARIANCE = schema.ANNUALISE_VARIANCE

HORIZONS = {
    "expected_return_days": schema.RETURN_HORIZON_DAYS,
    "volatility_days": schema.VOLATILITY_HORIZON_DAYS,
}
UNITS = {
    "expected_log_return": "log return over the next 5 trading days",
    "log_return_quantiles": "quantiles of the log return over the next 5 trading days",
    "volatility": "standard deviation of daily log returns summed over the next 21 trading "
    "days (square root of the 21-day realized variance), not annualised",
    "annualized_expected_return": "arithmetic return per year (252 trading days)",
    "annualized_volatility": "volatility per year (252 trading days)",
}


@dataclass(frozen=True)
class Forecast:
    """One ticker's forecast at its latest feature date."""

    ticker: str
    as_of: date
    expected_log_return: float
    """Forward 5-day log return."""
    volatility: float
    """Forward 21-day volatility (square root of the summed squared daily log returns)."""
    log_return_quantiles: tuple[float, float, float]
    """5%, 50% and 95% quantiles of the forward 5-day log return."""

    @property
    def annualized_volatility(self) -> float:
        """``volatility * sqrt(252 / 21)``."""
        return self.volatility * math.sqrt(ANNUALISE_VARIANCE)

    @property
    def annualized_expected_return(self) -> float:
        """Arithmetic annual return implied by the log forecasts.

        The 5-day log return scaled to a year, plus half the annual variance: for
        lognormal prices the arithmetic mean is ``exp(m + s^2/2) - 1 ≈ m + s^2/2``.
        Mean-variance optimisation works on arithmetic returns.
        """
        return schema.annualized_expected_return(
            self.expected_log_return, self.annualized_volatility**2
        )


class ForecastService:
    """Every ticker's forecast from one model over one feature table, kept in memory.

    Each ticker is forecast from its latest complete window (``Forecast.as_of`` is that
    window's date); a ticker of the table that gets no forecast is in ``unavailable``
    with the reason, never dropped silently.
    """

    def __init__(self, model: LoadedModel, store: FeatureStore) -> None:
        self.model = model
        self.store = store
        windows = store.latest_windows(model.lookback_days, model.feature_columns)
        outputs = model.predict(windows.features) if len(windows) else {}
        self._forecasts: dict[str, Forecast] = {}
        self._unavailable: dict[str, str] = {}
        for i, ticker in enumerate(windows.tickers):
            expected = float(outputs[RETURN_OUTPUT][i])
            volatility = float(outputs[VOLATILITY_OUTPUT][i])
            low, median, high = (float(q) for q in outputs[QUANTILES_OUTPUT][i])
            if not all(math.isfinite(v) for v in (expected, volatility, low, median, high)):
                self._unavailable[str(ticker)] = (
                    f"the model's forecast from the window ending "
                    f"{pd.Timestamp(windows.dates[i]).date()} is not finite"
                )
                continue
            self._forecasts[str(ticker)] = Forecast(
                ticker=str(ticker),
                as_of=pd.Timestamp(windows.dates[i]).date(),
                expected_log_return=expected,
                volatility=volatility,
                log_return_quantiles=(low, median, high),
            )
        for ticker in store.tickers:
            if ticker not in self._forecasts and ticker not in self._unavailable:
                self._unavailable[ticker] = (
                    f"no {model.lookback_days} consecutive rows of features with every "
                    "feature known (the model's look-back window)"
                )
        self._unavailable = dict(sorted(self._unavailable.items()))
        self._tickers = sorted(self._forecasts)
        self._as_of = max((f.as_of for f in self._forecasts.values()), default=None)
        self._json = _RenderedForecasts(self)

    @property
    def tickers(self) -> list[str]:
        """Tickers that have a forecast, sorted."""
        return list(self._tickers)

    @property
    def as_of(self) -> date | None:
        """The latest forecast date."""
        return self._as_of

    @property
    def unavailable(self) -> dict[str, str]:
        """Tickers of the feature table without a forecast, sorted, and why."""
        return dict(self._unavailable)

    def get(self, tickers: Sequence[str] | None = None) -> list[Forecast]:
        """Forecasts for ``tickers`` in the order given (all when None)."""
        if tickers is None:
            return [self._forecasts[t] for t in self._tickers]
        self._check_known(tickers)
        return [self._forecasts[t] for t in tickers]

    def response(self, tickers: Sequence[str] | None = None) -> ForecastResponse:
        """The ``POST /v1/forecasts`` body for ``tickers`` (all when None), as a model.

        All tickers come with the unavailable ones and why; named ``tickers`` are all
        available (``get`` raises otherwise), so they come with none.
        """
        forecasts = self.get(tickers)
        return self._response(forecasts, all_tickers=tickers is None)

    def _response(self, forecasts: list[Forecast], *, all_tickers: bool) -> ForecastResponse:
        unavailable = self._unavailable.items() if all_tickers else ()
        return ForecastResponse(
            model=ModelRef(name=self.model.name, version=self.model.version),
            as_of=self.as_of,
            horizons=HORIZONS,
            units=UNITS,
            unavailable=[UnavailableForecast(ticker=t, reason=r) for t, r in unavailable],
            forecasts=[_ticker_forecast(f) for f in forecasts],
        )

    def response_json(self, tickers: Sequence[str] | None = None) -> bytes:
        """``response(tickers)`` as JSON bytes, joined from fragments rendered once.

        Byte for byte what pydantic renders for ``response(tickers)``; unknown tickers
        raise ``UnknownTicker`` as ``get`` does.
        """
        if tickers is None:
            return self._json.everything
        self._check_known(tickers)
        return self._json.join(tickers)

    def _check_known(self, tickers: Sequence[str]) -> None:
        unknown = [t for t in tickers if t not in self._forecasts]
        if unknown:
            reasons = {t: self._unavailable[t] for t in unknown if t in self._unavailable}
            raise UnknownTicker(unknown, self.tickers, reasons)

    def annualized(self, tickers: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Annual arithmetic expected returns and volatilities of ``tickers``."""
        forecasts = self.get(tickers)
        return (
            np.array([f.annualized_expected_return for f in forecasts]),
            np.array([f.annualized_volatility for f in forecasts]),
        )


def _ticker_forecast(forecast: Forecast) -> TickerForecast:
    return TickerForecast(
        ticker=forecast.ticker,
        as_of=forecast.as_of,
        expected_log_return=forecast.expected_log_return,
        log_return_quantiles=ReturnQuantiles(
            q05=forecast.log_return_quantiles[0],
            q50=forecast.log_return_quantiles[1],
            q95=forecast.log_return_quantiles[2],
        ),
        volatility=forecast.volatility,
        annualized_expected_return=forecast.annualized_expected_return,
        annualized_volatility=forecast.annualized_volatility,
    )


class _RenderedForecasts:
    """The response's JSON in pieces: the envelope around ``"forecasts":[...]``, and
    each ticker's object, each rendered by pydantic once.

    ``forecasts`` is the response model's last field, so the envelope rendered with an
    empty list ends in ``[]}``: the pieces join back into exactly what pydantic renders
    for the whole response (``tests/app/test_forecasts_render.py`` checks it). There are
    two envelopes: the answer for all tickers lists the unavailable ones, the answer for
    named tickers does not.
    """

    _TAIL = b"]}"

    def __init__(self, service: ForecastService) -> None:
        self._head = self._envelope(service, all_tickers=False)
        self._fragments = {
            ticker: _ticker_forecast(forecast).model_dump_json().encode()
            for ticker, forecast in zip(service.tickers, service.get(), strict=True)
        }
        self.everything = self._join(self._envelope(service, all_tickers=True), service.tickers)

    def _envelope(self, service: ForecastService, *, all_tickers: bool) -> bytes:
        envelope = service._response([], all_tickers=all_tickers).model_dump_json().encode()
        if not envelope.endswith(b'"forecasts":[' + self._TAIL):
            raise RuntimeError(f"forecasts is no longer the response's last field: {envelope!r}")
        return envelope[: -len(self._TAIL)]

    def join(self, tickers: Sequence[str]) -> bytes:
        """The response for named ``tickers``, all of them known."""
        return self._join(self._head, tickers)

    def _join(self, head: bytes, tickers: Sequence[str]) -> bytes:
        return head + b",".join([self._fragments[t] for t in tickers]) + self._TAIL
