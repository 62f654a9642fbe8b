"""A real Spark standalone cluster (one master, one worker, loopback) for this package."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.spark_cluster import (
    StandaloneCluster,
    descendants,
    standalone_cluster,
    unavailable_reason,
)


@pytest.fixture(scope="module")
def standalone_master() -> Iterator[StandaloneCluster]:
    """A master and a 2-core worker from the pyspark wheel; both stopped afterwards.

    Stopping is checked too: no process the daemons started may outlive the module.
    """
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with standalone_cluster() as cluster:
        yield cluster
        started = descendants(list(cluster.daemon_pids))
    left = [process.pid for process in started if process.running()]
    left += [pid for pid in cluster.daemon_pids if _group_exists(pid)]
    assert not left, f"processes of the Spark cluster outlived it: {left}"


def _group_exists(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True
