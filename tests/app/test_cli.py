"""The command line: ingest reports what it kept and quarantined; errors exit 1."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli


def test_ingest_prints_kept_quarantined_and_quality(data_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["ingest"])
    assert result.exit_code == 0, result.output
    assert "kept 174,573 rows of 21 tickers (1990-01-02..2022-12-28)" in result.output
    assert "quarantined 0 rows" in result.output
    assert "stale stretches" in result.output
    assert (data_dir / "raw" / "prices.parquet").is_file()


def test_a_bad_file_exits_1_with_the_reason(data_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("date,ticker,close\nnot-a-date,AAA,1\n")
    result = CliRunner().invoke(cli, ["ingest", "--source", str(bad)])
    assert result.exit_code == 1
    assert "ingest failed" in result.output
    assert "no valid rows left" in result.output


def test_pipeline_if_missing_skips_when_a_model_exists(data_dir: Path, tmp_path: Path) -> None:
    version = tmp_path / "models" / "forecaster" / "3"
    version.mkdir(parents=True)
    (version / "metadata.json").write_text("{}")
    result = CliRunner().invoke(cli, ["pipeline", "--if-missing"])
    assert result.exit_code == 0
    assert "version 3 exists; pipeline skipped" in result.output


def _versions(tmp_path: Path, *versions: int) -> None:
    for version in versions:
        folder = tmp_path / "models" / "forecaster" / str(version)
        folder.mkdir(parents=True)
        (folder / "metadata.json").write_text(
            '{"split": {"train": ["2000-01-03", "2015-06-30"], "validation": ["2015-08-03",'
            ' "2022-11-28"]}, "validation_metrics": {"volatility": {"model": {"qlike": 0.39}}}}'
        )


def test_models_promote_list_and_rollback(data_dir: Path, tmp_path: Path) -> None:
    _versions(tmp_path, 1, 2)
    runner = CliRunner()
    assert runner.invoke(cli, ["models", "promote", "1"]).exit_code == 0
    promoted = runner.invoke(cli, ["models", "promote", "2"])
    assert "version 2 is production (was 1)" in promoted.output
    listing = runner.invoke(cli, ["models", "list"], env={"COLUMNS": "200"})
    assert listing.exit_code == 0
    lines = {
        line.split("│")[1].strip(): line
        for line in listing.output.splitlines()
        if line.count("│") > 3 and line.split("│")[1].strip().isdigit()
    }
    assert "archived" in lines["1"]
    assert "production" in lines["2"]
    assert "0.3900" in lines["2"]
    rolled = runner.invoke(cli, ["models", "rollback"])
    assert "version 1 is production again" in rolled.output
    again = runner.invoke(cli, ["models", "rollback"])
    assert again.exit_code == 1
    assert "no earlier production version" in again.output


def test_promoting_a_missing_version_fails_clearly(data_dir: Path, tmp_path: Path) -> None:
    _versions(tmp_path, 1)
    result = CliRunner().invoke(cli, ["models", "promote", "9"])
    assert result.exit_code == 1
    assert "version 9 is not in" in result.output


def test_serve_runs_gunicorn_workers_or_one_uvicorn() -> None:
    from app.cli import GUNICORN_CONFIG, gunicorn_command

    assert gunicorn_command("0.0.0.0", 8000, 1) is None
    command = gunicorn_command("127.0.0.1", 9000, 3)
    assert command is not None
    assert command[1:4] == ["-m", "gunicorn", "-c"]
    assert command[4] == str(GUNICORN_CONFIG)
    assert GUNICORN_CONFIG.is_file()
    assert command[5:] == ["--bind", "127.0.0.1:9000", "--workers", "3"]


def test_workers_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.core.config import Settings

    assert Settings().workers == 2  # config/default.yaml
    monkeypatch.setenv("QUANTSERVE_WORKERS", "4")
    assert Settings().workers == 4
