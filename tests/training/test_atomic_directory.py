"""Directories swapped in whole, and what a writer killed at any point leaves behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from training._io import atomic_directory


def _write(directory: Path, text: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "part-0.txt").write_text(text)


def _dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(done.stdout)


def test_a_block_that_raises_leaves_the_old_directory(tmp_path: Path) -> None:
    final = tmp_path / "features"
    _write(final, "old")

    def failing_job() -> None:
        with atomic_directory(final) as staging:
            _write(staging, "new")
            raise RuntimeError("the job failed")

    with pytest.raises(RuntimeError):
        failing_job()
    assert (final / "part-0.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features"]


def test_a_killed_writers_staging_is_removed_by_the_next_write(tmp_path: Path) -> None:
    final = tmp_path / "features"
    _write(final, "old")
    # What a writer SIGKILLed in the middle of its write leaves: its staging directory.
    leftover = tmp_path / f".features.tmp-{_dead_pid()}-0123abcd"
    _write(leftover, "half")
    with atomic_directory(final) as staging:
        _write(staging, "new")
    assert (final / "part-0.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features"]


def test_a_live_writers_staging_is_left_alone(tmp_path: Path) -> None:
    final = tmp_path / "features"
    live = tmp_path / f".features.tmp-{os.getppid()}-0123abcd"  # a running process's
    _write(live, "in progress")
    with atomic_directory(final) as staging:
        _write(staging, "new")
    assert live.exists()


def test_a_writer_killed_between_its_two_renames_loses_nothing(tmp_path: Path) -> None:
    # Killed after the old directory was moved aside and before the new one moved in:
    # the previous data is put back, then the new write goes on.
    final = tmp_path / "features"
    pid = _dead_pid()
    _write(tmp_path / f".features.old-{pid}-0123abcd", "old")
    _write(tmp_path / f".features.tmp-{pid}-4567ef01", "complete but never swapped in")
    with atomic_directory(final) as staging:
        assert (final / "part-0.txt").read_text() == "old"  # restored before the write
        _write(staging, "new")
    assert (final / "part-0.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features"]
