"""A locust load test of a running quantserve: forecasts, ``:predict`` and optimize.

    locust -f bench/locustfile.py --host http://localhost:8000 --api-key "$KEY"
    locust -f bench/locustfile.py --host http://localhost:8000 --headless -u 16 -r 16 -t 1m

The key comes from ``--api-key`` or ``QUANTSERVE_API_KEY`` (a ``trader`` key: optimize
needs that role; ``quantserve keys create --id loadtest --role trader`` makes one). With
the per-key rate limit on (``limits.rate_per_second``, 50 by default), many users on
one key get 429s: raise it on the server under test or give each run its own key.

Each simulated user sends, by weight: 6 forecast requests for 5 random tickers, 3
``:predict`` calls with one random instance shaped as the model's signature asks, and 1
optimization over up to 20 tickers (min variance or max Sharpe with a 10% cap). The
tickers and the signature are read from the server when the test starts. A response
counts as failed unless it is a 200 whose body has the expected shape (for optimize:
weights that sum to 1). ``--think-time`` sets each user's pause between requests
(default 0: a closed loop, as ``make bench-load`` drives wrk).
"""

from __future__ import annotations

import logging
import os
import random
from typing import Any, ClassVar

from locust import FastHttpUser, events, task
from locust.argument_parser import LocustArgumentParser
from locust.env import Environment

SAMPLE_TICKERS = 5
OPTIMIZE_TICKERS = 20


@events.init_command_line_parser.add_listener
def _arguments(parser: LocustArgumentParser) -> None:
    parser.add_argument(
        "--api-key",
        default=os.environ.get("QUANTSERVE_API_KEY", ""),
        help="quantserve API key sent as X-API-Key (default: $QUANTSERVE_API_KEY)",
        include_in_web_ui=True,
        is_secret=True,
    )
    parser.add_argument(
        "--model", default="forecaster", help="model name for :predict (default forecaster)"
    )
    parser.add_argument(
        "--think-time",
        type=float,
        default=0.0,
        help="seconds each user waits between requests (default 0)",
    )


class _Served:
    """What the server serves, read once per locust process."""

    tickers: ClassVar[list[str]] = []
    lookback = 0
    n_features = 0

    @classmethod
    def discover(cls, user: QuantserveUser) -> None:
        if cls.tickers:
            return
        with user.client.post(
            "/v1/forecasts",
            json={},
            headers=user.headers,
            name="setup: tickers",
            catch_response=True,
        ) as answer:
            if answer.status_code != 200:
                answer.failure(f"{answer.status_code}: {answer.text[:200]}")
                raise RuntimeError(f"cannot list the served tickers: {answer.status_code}")
            cls.tickers = [f["ticker"] for f in answer.json()["forecasts"]]
        model = user.environment.parsed_options.model
        with user.client.get(
            f"/v1/models/{model}/metadata",
            headers=user.headers,
            name="setup: metadata",
            catch_response=True,
        ) as answer:
            if answer.status_code != 200:
                answer.failure(f"{answer.status_code}: {answer.text[:200]}")
                raise RuntimeError(f"cannot read model {model}'s signature")
            signature = answer.json()["metadata"]["signature_def"]["signature_def"]
            (tensor,) = signature["serving_default"]["inputs"].values()
            _, cls.lookback, cls.n_features = (
                int(d["size"]) for d in tensor["tensor_shape"]["dim"]
            )


class QuantserveUser(FastHttpUser):
    """One client of the API."""

    headers: dict[str, str]
    """X-API-Key, set when the user starts."""

    def wait_time(self) -> float:
        think: float = self.environment.parsed_options.think_time
        return think

    def on_start(self) -> None:
        self.headers = {"X-API-Key": self.environment.parsed_options.api_key}
        _Served.discover(self)

    def _post(self, path: str, body: dict[str, Any], name: str, check: str) -> None:
        with self.client.post(
            path, json=body, headers=self.headers, name=name, catch_response=True
        ) as answer:
            if answer.status_code != 200:
                answer.failure(f"{answer.status_code}: {(answer.text or '')[:200]}")
                return
            payload = answer.json()
            if check == "forecasts" and len(payload["forecasts"]) != len(body["tickers"]):
                answer.failure("not one forecast per ticker")
            elif check == "predict" and len(payload["predictions"]) != 1:
                answer.failure("not one prediction")
            elif check == "optimize" and abs(sum(payload["weights"].values()) - 1) > 1e-6:
                answer.failure("weights do not sum to 1")

    @task(6)
    def forecasts(self) -> None:
        """Forecasts for a few tickers."""
        tickers = random.sample(_Served.tickers, min(SAMPLE_TICKERS, len(_Served.tickers)))
        self._post("/v1/forecasts", {"tickers": tickers}, "/v1/forecasts", "forecasts")

    @task(3)
    def predict(self) -> None:
        """One instance through TensorFlow Serving's REST API."""
        instance = [
            [round(random.gauss(0.0, 1.0), 4) for _ in range(_Served.n_features)]
            for _ in range(_Served.lookback)
        ]
        model = self.environment.parsed_options.model
        self._post(
            f"/v1/models/{model}:predict",
            {"instances": [instance]},
            "/v1/models/{name}:predict",
            "predict",
        )

    @task(1)
    def optimize(self) -> None:
        """An allocation over up to 20 tickers from the model's forecasts."""
        # Sorted: a client allocates over its universe in one order, and the server
        # compiles a problem per ordered universe and keeps it (an LRU cache); shuffled
        # orders would measure compilation instead (~200 ms, not ~4 ms, a request).
        tickers = sorted(
            random.sample(_Served.tickers, min(OPTIMIZE_TICKERS, len(_Served.tickers)))
        )
        body: dict[str, Any] = {"tickers": tickers, "objective": "min_variance"}
        if random.random() < 0.5:
            body = {
                "tickers": tickers,
                "objective": "max_sharpe",
                "constraints": {"long_only": True, "max_weight": max(0.1, 1 / len(tickers))},
            }
        self._post("/v1/portfolios/optimize", body, "/v1/portfolios/optimize", "optimize")


@events.test_start.add_listener
def _warn_without_key(environment: Environment, **kwargs: Any) -> None:
    options = environment.parsed_options
    if options is not None and not options.api_key:
        logging.warning(
            "no API key (--api-key or QUANTSERVE_API_KEY): a server with keys answers 401 "
            "to every request"
        )
