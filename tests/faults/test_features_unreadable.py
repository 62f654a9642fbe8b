"""The feature store missing or unreadable at start-up: the server starts, is not ready,
answers 503s that say why under load, and recovers when the data comes back."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import httpx
import pytest

from tests.faults._load import Load, Request
from tests.faults.conftest import (
    Keys,
    eventually,
    fault_seconds,
    headers,
    metric_samples,
    model_requests,
)

PROBLEM = "application/problem+json"


def _break_features(features: Path, kind: str) -> None:
    if kind == "missing":
        shutil.rmtree(features)
    else:  # every Parquet file cut to garbage: the folder is there, nothing reads
        for part in features.rglob("*.parquet"):
            part.write_bytes(b"PAR1 not parquet at all")


@pytest.mark.parametrize("kind", ["missing", "unreadable"])
def test_unreadable_features_at_start_are_503s_that_say_why_until_they_return(
    serve, root: Path, keys: Keys, kind: str, report
) -> None:
    features = root / "data" / "features"
    good = root / "good-features"
    shutil.copytree(features, good)
    _break_features(features, kind)
    # Forecasts, allocations and /readyz are 503s that say why. :predict takes its
    # windows in the request, needs no feature table and keeps answering.
    requests = [
        r if r.path.endswith(":predict") else Request(r.method, r.path, r.json, frozenset({503}))
        for r in model_requests()
    ]
    with serve(ready_path="/healthz") as server:
        ready = httpx.get(server.url + "/readyz", timeout=10)
        assert ready.status_code == 503
        assert ready.json()["reason"] == (
            "the feature table is missing or cannot be read, so nothing serves yet: "
            "`quantserve features` (or `quantserve pipeline`) writes it; see the server "
            "log for the details"
        )
        assert str(root) not in ready.text

        with Load(server.url, requests, headers=headers(keys.trader)) as load:
            time.sleep(fault_seconds())
        not_ready = load.tally()
        # Put the data back the way the pipeline writes it: whole, by one rename.
        staging = features.parent / ".features.restore"
        shutil.copytree(good, staging)
        if features.exists():
            shutil.rmtree(features)
        os.rename(staging, features)
        # Each worker polls on its own: wait until every live worker is ready (the
        # gauge is the minimum over them), not just the one that answers a probe.
        eventually(
            lambda: metric_samples(server, "quantserve_model_ready") == [({}, 1.0)],
            timeout=60,
            what="every worker ready once the features are back",
        )
        assert httpx.get(server.url + "/readyz", timeout=10).status_code == 200
        with Load(server.url, model_requests(), headers=headers(keys.trader)) as load_after:
            time.sleep(fault_seconds())
        assert server.running()

    report(f"features {kind} at start", f"{not_ready}; then {load_after.tally()}")
    assert not_ready.failed == 0, not_ready.failures[:5]
    assert not_ready.sent > 20
    for outcome in load.outcomes():
        if outcome.request.path.startswith(("/v1/forecasts", "/v1/portfolios")):
            assert "the feature table is missing" in outcome.body["detail"], outcome.body
    after = load_after.tally()
    assert after.failed == 0, after.failures[:5]
    assert after.answered > 10
