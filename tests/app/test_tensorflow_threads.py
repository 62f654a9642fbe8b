"""The server gives TensorFlow the configured thread pools before it runs anything.

Run in a fresh interpreter: TensorFlow's pools can be sized only before its runtime
starts, and this test process has already run TensorFlow for other tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import asyncio, sys
from pathlib import Path
import tensorflow as tf
from prometheus_client import CollectorRegistry
from app.core.config import Settings
from app.main import create_app

root = Path(sys.argv[1])
settings = Settings(
    environment="test",
    data_dir=root / "data",
    models_dir=root / "models",
    tensorflow_threads=int(sys.argv[2]),
)
app = create_app(settings, registry=CollectorRegistry())

async def main():
    async with app.router.lifespan_context(app):
        pass

asyncio.run(main())
t = tf.config.threading
print(t.get_intra_op_parallelism_threads(), t.get_inter_op_parallelism_threads())
"""


@pytest.mark.parametrize(("threads", "expected"), [(1, "1 1"), (3, "3 3"), (0, "0 0")])
def test_the_lifespan_sizes_tensorflows_thread_pools(
    tmp_path: Path, threads: int, expected: str
) -> None:
    env = {**os.environ, "QUANTSERVE_DEV_MODE": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), str(threads)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr[-2000:]
    # 0 leaves TensorFlow's default, which it reports as 0 (one thread per core)
    assert result.stdout.strip().splitlines()[-1] == expected
