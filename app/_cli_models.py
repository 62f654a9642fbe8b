"""``quantserve models``: list the model's versions, promote one, roll back."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from app._cli_output import console, run_step
from app.core.config import get_settings

models_cli = typer.Typer(help="List model versions and change their stage.", no_args_is_help=True)


@models_cli.command("list")
def models_list() -> None:
    """Every version of the model with its stage, validation scores and MLflow run."""
    from training.model_store import read_metadata
    from training.registry import ModelRegistry

    settings = get_settings()
    model_dir = settings.models_dir / settings.model_name
    table = Table(title=f"{settings.model_name} in {settings.models_dir}")
    columns = ("version", "stage", "changed", "trained on", "validation", "vol QLIKE", "MLflow run")
    for column in columns:
        table.add_column(column, no_wrap=column == "MLflow run")
    for record in ModelRegistry(model_dir).records():
        metadata = read_metadata(model_dir / str(record.version))
        split = metadata.get("split", {})
        score = (metadata.get("validation_metrics", {}).get("volatility", {}).get("model", {})).get(
            "qlike"
        )
        table.add_row(
            str(record.version),
            record.stage.value,
            record.changed_at or "",
            "..".join(split.get("train", [])),
            "..".join(split.get("validation", [])),
            "" if score is None else f"{score:.4f}",
            (metadata.get("mlflow") or {}).get("run_id") or "",
        )
    console.print(table)


@models_cli.command("promote")
def models_promote(version: Annotated[int, typer.Argument(help="The version to serve.")]) -> None:
    """Make VERSION production; the current production version is archived."""
    from training.registry import ModelRegistry

    settings = get_settings()
    registry = ModelRegistry(settings.models_dir / settings.model_name)
    previous = run_step("promote", lambda: registry.promote(version, reason="promoted by hand"))
    console.print(f"version {version} is production (was {previous})")


@models_cli.command("rollback")
def models_rollback() -> None:
    """Serve again the version the current production version replaced."""
    from training.registry import ModelRegistry

    settings = get_settings()
    registry = ModelRegistry(settings.models_dir / settings.model_name)
    restored = run_step("rollback", lambda: registry.rollback())
    console.print(f"version {restored} is production again")
