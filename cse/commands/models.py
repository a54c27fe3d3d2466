"""`cse models`: the models that load offline on this machine."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("models")
def models_command():
    """List the models cse can load offline: the named models (installed or not) and the local Hugging Face cache."""
    from ..models import DEFAULT_MODEL, list_models

    rows = list_models()
    click.echo(f"{'name':<28} {'status':<14} {'blocks':>6} {'d_model':>7}  sha256 / how to install")
    for row in rows:
        status = ("installed" if row["installed"] else "not installed") if row["source"] == "named" else "HF cache"
        note = row["sha256"][:16] + "..." if row["sha256"] else ""
        if not row["installed"]:
            note = row["install"]
        name = row["name"] + (" (default)" if row["name"] == DEFAULT_MODEL else "")
        click.echo(f"{name:<28} {status:<14} {row['n_layers'] or '?':>6} {row['d_model'] or '?':>7}  {note}")
        if row.get("path"):
            where = row["path"] if Path(row["path"]).is_file() else f"{row['path']} (assembled on first use)"
            click.echo(f"    file: {where}")
    click.echo("Any local folder with config.json, a .gguf file, or a Hugging Face id in the local cache also loads "
               "(--model PATH_OR_ID).")
