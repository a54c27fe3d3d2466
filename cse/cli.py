"""The `cse` command line: compute, info, stats, plot, models, and the commands of plugins (study).

Every built-in subcommand lives in `cse.commands.<name>`; other packages add theirs
through the ``cse.commands`` entry-point group (the studies register ``cse study``), so
no module of `cse` imports a package above it. This module only assembles the group
and turns what ends a run into one line on stderr and an exit status:

- 0: done;
- 2: bad input — a `cse.errors.CSEInputError` or one of click's usage errors (unknown
  option, invalid choice ...), printed as one ``Error: ...`` line without the usage block;
- 130 / 143: interrupted by Ctrl-C (SIGINT) / SIGTERM (128 + the signal number). SIGTERM
  is turned into `cse.errors.Terminated`, a KeyboardInterrupt, so every run cleans up
  the same way for both; a `cse.errors.RunInterrupted` says what was kept and how to
  resume, any other interrupt gets a generic line.
"""

from __future__ import annotations

import os
import signal
import sys
from importlib import import_module
from importlib.metadata import entry_points

import click

from .errors import CSEInputError, RunInterrupted, Terminated, as_flags

# name -> module holding a click command of that name
COMMANDS = {
    "compute": "cse.commands.compute",
    "info": "cse.commands.info",
    "stats": "cse.commands.stats",
    "plot": "cse.commands.plot",
    "models": "cse.commands.models",
    "remeasure": "cse.commands.remeasure",
}

#: The entry-point group through which other packages add subcommands (a click command each).
PLUGIN_GROUP = "cse.commands"

#: Printed on an interrupt that is not a `RunInterrupted` (which says more).
INTERRUPTED = ("interrupted by {name}; no output was written (an interrupted 'cse compute' keeps its finished "
               "batches: rerun the same command with --resume to continue)")


# click >= 8.2 raises this for a bare group invocation; older versions print the help themselves.
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


def plugin_commands() -> dict:
    """The subcommands that installed packages register in the ``cse.commands`` entry-point group.

    Returns
    -------
    dict of str to importlib.metadata.EntryPoint
        By command name; a plugin never replaces a built-in command.
    """
    return {ep.name: ep for ep in entry_points(group=PLUGIN_GROUP) if ep.name not in COMMANDS}


class _LazyGroup(click.Group):
    """Import a subcommand's module only when it runs (torch imports are slow)."""

    def list_commands(self, ctx):
        return list(COMMANDS) + sorted(plugin_commands())

    def get_command(self, ctx, name):
        module = COMMANDS.get(name)
        if module is not None:
            return getattr(import_module(module), f"{name}_command")
        plugin = plugin_commands().get(name)
        return None if plugin is None else _load_plugin(plugin)


def _load_plugin(plugin) -> click.Command:
    """The plugin's click command; one that fails to import is a stand-in that says so in one line.

    A broken plugin (its package missing a dependency, a syntax error) must not break
    ``cse --help`` or the built-in commands: ``--help`` lists it with the reason, and
    running it exits with status 2 and that line.
    """
    try:
        command = plugin.load()
        if not isinstance(command, click.Command):
            raise TypeError(f"it is a {type(command).__name__}, not a click command")
    except Exception as exc:  # noqa: BLE001  any import failure of another package
        reason = one_line(f"{type(exc).__name__}: {exc}")[:300]
        message = (f"the command {plugin.name!r} (plugin {plugin.value!r} of the entry-point group {PLUGIN_GROUP!r}) "
                   f"failed to import: {reason}; reinstall or fix the package that provides it")

        def broken(args):
            raise CSEInputError(message)

        return click.Command(plugin.name, callback=broken, help=message, short_help=f"(broken plugin: {reason})"[:120],
                             add_help_option=False,
                             params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
                             context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
    return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cse")
def cli():
    """Conditional Scale Entropy (CSE) of transformer layer updates."""


def _raise_terminated(signum, frame):
    raise Terminated(signum)


def install_signal_handlers() -> None:
    """Make SIGTERM raise `cse.errors.Terminated` and ignore SIGXFSZ in the main thread (no-op in other threads)."""
    try:
        signal.signal(signal.SIGTERM, _raise_terminated)
        if hasattr(signal, "SIGXFSZ"):  # past `ulimit -f` a write fails with EFBIG (one line), not a core dump
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    except ValueError:  # not the main thread of the main interpreter
        pass


def one_line(message: str) -> str:
    """`message` with its lines joined by spaces.

    Parameters
    ----------
    message : str or Exception
        Any text (an exception is turned into its message).

    Returns
    -------
    str
        One line, blank lines dropped, each line stripped.
    """
    return " ".join(line.strip() for line in str(message).splitlines() if line.strip())


def interrupt_status(exc: KeyboardInterrupt) -> tuple[str, int]:
    """The line to print and the exit status (128 + signal number) for an interrupt.

    Parameters
    ----------
    exc : KeyboardInterrupt
        Ctrl-C, `cse.errors.Terminated` (SIGTERM) or `cse.errors.RunInterrupted`
        (whose message says what was kept).

    Returns
    -------
    line : str
    status : int
        130 for SIGINT, 143 for SIGTERM.
    """
    signum = int(getattr(exc, "signum", signal.SIGINT))
    if isinstance(exc, RunInterrupted):
        line = as_flags(one_line(exc.message))
    else:
        name = "Ctrl-C (SIGINT)" if signum == signal.SIGINT else signal.Signals(signum).name
        line = INTERRUPTED.format(name=name)
    return line, 128 + signum


def run(argv=None) -> int:
    """Run the group on `argv` (default ``sys.argv[1:]``) and return the exit status.

    What ends the run is printed here as one line on stderr (see the module docstring).

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after ``cse``.

    Returns
    -------
    int
        0 done, 2 bad input, 1 aborted or a broken pipe, 130/143 interrupted.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        with cli.make_context("cse", args) as ctx:
            cli.invoke(ctx)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.UsageError as exc:
        if isinstance(exc, _NO_ARGS_IS_HELP):  # bare `cse`: the help, as click prints it
            click.echo(exc.ctx.get_help(), err=True)
            return 2
        where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        click.echo(f"Error: {one_line(exc.format_message())}{where}", err=True)
        return 2
    except click.exceptions.ClickException as exc:
        click.echo(f"Error: {one_line(exc.format_message())}", err=True)
        return 2 if exc.exit_code in (1, 2) else exc.exit_code
    except click.exceptions.Abort:
        click.echo("Error: aborted", err=True)
        return 1
    except CSEInputError as exc:  # the Python API's keyword arguments, spelled as this command's flags
        click.echo(f"Error: {as_flags(one_line(exc))}", err=True)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C, Terminated (SIGTERM), RunInterrupted
        line, status = interrupt_status(exc)
        click.echo(line, err=True)
        return status
    except BrokenPipeError:  # e.g. `cse info r.nc | head -1`: the reader has gone, say nothing
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return 0


def main(argv=None) -> None:
    """Entry point: SIGTERM handling, then `run`; exits with its status.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after ``cse`` (default ``sys.argv[1:]``).
    """
    install_signal_handlers()
    status = run(argv)
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        pass
    sys.exit(status)



if __name__ == "__main__":
    main()
