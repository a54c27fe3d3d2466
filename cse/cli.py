"""The `cse` command line: compute, info, stats, plot, study.

Every subcommand lives in `cse.commands.<name>`; this module only assembles the
group and turns user-input errors into one line on stderr with exit status 2.
"""

from __future__ import annotations

import sys
from importlib import import_module

import click

from .errors import CSEInputError

# name -> module holding a click command of that name
COMMANDS = {
    "compute": "cse.commands.compute",
    "info": "cse.commands.info",
    "stats": "cse.commands.stats",
    "plot": "cse.commands.plot",
    "study": "cse.commands.study",
    "models": "cse.commands.models",
}


class _LazyGroup(click.Group):
    """Import a subcommand's module only when it runs (torch imports are slow)."""

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        module = COMMANDS.get(name)
        if module is None:
            return None
        return getattr(import_module(module), f"{name}_command")


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cse")
def cli():
    """Conditional Scale Entropy (CSE) of transformer layer updates."""


def main(argv=None) -> None:
    """Entry point: run the group; bad input ends in one stderr line and exit 2."""
    try:
        cli.main(args=argv, prog_name="cse", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.exceptions.ClickException as exc:
        exc.show()
        sys.exit(2 if exc.exit_code in (1, 2) else exc.exit_code)
    except CSEInputError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("Interrupted; no output was written. Rerun the same command with --resume to continue.", err=True)
        sys.exit(130)
    sys.exit(0)


if __name__ == "__main__":
    main()
