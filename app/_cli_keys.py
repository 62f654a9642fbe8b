"""``quantserve keys``: make API keys and the SHA-256 hashes the server is configured with."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from app.core.config import Role

keys_cli = typer.Typer(
    help="Make API keys and the hashes the server is configured with.", no_args_is_help=True
)


@keys_cli.command("create")
def keys_create(
    key_id: Annotated[
        str, typer.Option("--id", help="Who holds the key; shown in logs and the audit trail.")
    ],
    role: Annotated[
        Role,
        typer.Option(help="viewer: forecasts, models; trader: also optimize; admin: everything."),
    ],
) -> None:
    """Make a new key: print it once, with the config entries that hold its hash."""
    from pydantic import ValidationError

    from app.core.config import ApiKey
    from app.core.security import generate_key, hash_key

    key = generate_key()
    try:
        entry = ApiKey.model_validate({"id": key_id, "role": role, "sha256": hash_key(key)})
    except ValidationError:
        typer.echo(f"invalid --id {key_id!r}: use 1 to 64 letters, digits and . _ @ -", err=True)
        raise typer.Exit(code=2) from None
    # Plain echo, not rich: a wrapped line would break a copied key.
    typer.echo("API key (shown once: store it now; the server keeps only its SHA-256):")
    typer.echo(f"  {key}")
    typer.echo("In the config file (api_keys):")
    typer.echo(f"  - {{id: {entry.id}, role: {entry.role}, sha256: {entry.sha256}}}")
    typer.echo("Or in the environment (append to QUANTSERVE_API_KEYS, comma-separated):")
    typer.echo(f"  QUANTSERVE_API_KEYS='{entry.id}:{entry.role}:{entry.sha256}'")


@keys_cli.command("hash")
def keys_hash() -> None:
    """Read a key from stdin and print its SHA-256, the value api_keys holds."""
    from app.core.security import hash_key

    interactive = sys.stdin.isatty()
    key = (
        typer.prompt("API key", hide_input=True) if interactive else sys.stdin.readline()
    ).strip()
    if not key:
        typer.echo("no key on stdin: pipe one in, e.g. `quantserve keys hash < key.txt`", err=True)
        raise typer.Exit(code=2)
    typer.echo(hash_key(key))
