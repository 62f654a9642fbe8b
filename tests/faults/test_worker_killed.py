"""A gunicorn worker SIGKILLed under load: the other serves, the master replaces it, and
only the requests in flight on the dead worker are lost."""

from __future__ import annotations

import os
import signal
import time

from tests.faults._load import Load
from tests.faults.conftest import (
    WORKERS,
    Keys,
    eventually,
    fault_seconds,
    headers,
    metric_sum,
    model_requests,
)

REQUESTS_TOTAL = "quantserve_http_requests_total"


def test_a_killed_worker_loses_at_most_its_requests_in_flight_and_is_replaced(
    serve, keys: Keys, report
) -> None:
    requests = model_requests()
    with serve() as server, Load(server.url, requests, headers=headers(keys.trader)) as load:
        time.sleep(fault_seconds())
        workers = server.worker_pids()
        assert len(workers) == WORKERS
        victim = min(workers)
        counted_before = metric_sum(server, REQUESTS_TOTAL)
        in_flight = load.in_flight()
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        survivor = workers - {victim}

        eventually(
            lambda: len(server.worker_pids()) == WORKERS and victim not in server.worker_pids(),
            timeout=30,
            what="the master starts a worker in the dead one's place",
        )
        (replacement,) = server.worker_pids() - survivor
        # The new worker loads the model before it accepts a connection; then both serve.
        time.sleep(fault_seconds())
        eventually(
            lambda: load.tally(since=time.monotonic() - 1).sent > 0,
            timeout=30,
            what="requests keep flowing",
        )
        recovered_at = time.monotonic()
        time.sleep(fault_seconds())
        answered_by_then = load.tally().answered
        counted_after = metric_sum(server, REQUESTS_TOTAL)
        ready_after = metric_sum(server, "quantserve_model_ready")
        assert server.running()

    tally = load.tally()
    report("worker SIGKILL", f"{tally}; {in_flight} in flight when killed")
    # Lost: at most one request per client, those in flight (or sent on a connection
    # the dead worker held) when it died.
    assert tally.failed <= load.clients, tally.failures
    assert all("Error" in failure or "disconnected" in failure for failure in tally.failures), (
        tally.failures
    )  # a broken connection, never an error answer
    lost_at = [o.started for o in load.outcomes() if not o.answered]
    assert all(killed_at - 1 <= t < recovered_at for t in lost_at)
    # Others kept serving while the replacement started, and after.
    assert load.tally(since=killed_at, until=recovered_at).answered > 0
    after = load.tally(since=recovered_at)
    assert after.failed == 0
    assert after.answered > 10
    # /metrics stays consistent: it parses, its counters never went back (the dead
    # worker's counts stay in the multiprocess folder), they count every request answered
    # (but those the dead worker answered without counting) and no more than were sent
    # (plus the server's own readiness probes at start-up and the scrapes).
    assert counted_before <= counted_after <= tally.sent + 200
    assert counted_after >= answered_by_then - load.clients
    # The gauges combine the live workers only: the replacement is ready, and nothing
    # of the dead worker's is left to say otherwise.
    assert ready_after == 1.0
    assert replacement != victim
