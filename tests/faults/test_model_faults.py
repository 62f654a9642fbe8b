"""A new model version, and a broken one, published while clients hammer the server."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.faults._load import Load
from tests.faults.conftest import (
    Keys,
    eventually,
    fault_seconds,
    headers,
    metric_sum,
    model_requests,
)
from tests.model_store import make_broken, publish_version


def _version(outcome_body: object) -> int | None:
    if isinstance(outcome_body, dict) and isinstance(outcome_body.get("model"), dict):
        version = outcome_body["model"].get("version")
        return version if isinstance(version, int) else None
    return None


def test_a_new_version_swapped_in_under_load_fails_no_request(
    serve, root: Path, keys: Keys, report
) -> None:
    with (
        serve() as server,
        Load(server.url, model_requests(), headers=headers(keys.trader)) as load,
    ):
        time.sleep(fault_seconds())
        publish_version(root, root / "staged" / "2", 2)
        swapped_at = time.monotonic()
        # Each worker polls the store on its own; both serve version 2 in the end.
        eventually(
            lambda: metric_sum(server, "quantserve_model_reloads_total", outcome="swapped") == 2,
            timeout=60,
            what="both workers swap to version 2",
        )
        both_swapped = time.monotonic()
        time.sleep(fault_seconds())

    tally = load.tally()
    report("model swap", tally)
    assert tally.failed == 0, tally.failures[:5]
    assert tally.sent > 20
    versions_before = {_version(o.body) for o in load.outcomes(until=swapped_at)}
    versions_after = {_version(o.body) for o in load.outcomes(since=both_swapped)}
    assert versions_before - {None} == {1}
    assert versions_after - {None} == {2}
    # Each worker compiled version 2 with XLA (both batch sizes warm) before its swap.
    log = server.log_path.read_text(errors="replace")
    assert log.count("model forecaster version 2 compiled with XLA") == 2, server.log_tail()


@pytest.mark.parametrize("kind", ["corrupt-graph", "half-written"])
def test_a_broken_version_is_refused_under_load_and_the_last_good_one_serves(
    serve, root: Path, keys: Keys, kind: str, report
) -> None:
    with (
        serve() as server,
        Load(server.url, model_requests(), headers=headers(keys.trader)) as load,
    ):
        time.sleep(fault_seconds())
        refusals_before = metric_sum(server, "quantserve_model_reloads_total", outcome="refused")
        assert refusals_before == 0
        version_dir = root / "models" / "forecaster" / "2"
        if kind == "corrupt-graph":
            publish_version(root, make_broken(root, "corrupt-graph"), 2)
        else:
            # A copy cut short: the folder is there, its variables are not (yet).
            good = root / "staged" / "2"
            version_dir.mkdir()
            for name in ("saved_model.pb", "metadata.json"):
                (version_dir / name).write_bytes((good / name).read_bytes()[:200])
        refused_at = time.monotonic()
        eventually(
            lambda: metric_sum(server, "quantserve_model_reloads_total", outcome="refused") == 2,
            timeout=60,
            what="both workers refuse version 2",
        )
        time.sleep(fault_seconds())
        failures = metric_sum(server, "quantserve_model_load_failures_total")
        ready = httpx.get(server.url + "/readyz", timeout=10)

    tally = load.tally()
    report(f"bad model ({kind})", tally)
    assert tally.failed == 0, tally.failures[:5]
    after = load.outcomes(since=refused_at)
    assert len(after) > 10
    assert {_version(o.body) for o in after} - {None} == {1}
    readiness = [o for o in load.outcomes() if o.request.path == "/readyz"]
    assert readiness
    assert all(o.status == 200 for o in readiness)
    assert ready.status_code == 200
    assert ready.json()["model"]["version"] == 1
    assert failures == 2  # each worker counts its own refusal
