"""Errors of the package that the command line turns into one line on stderr.

- `CSEInputError`: bad user input (a file, a column, a parameter value, a model
  name); exit status 2.
- `RunInterrupted`: a run stopped by Ctrl-C (SIGINT) or SIGTERM; its message says
  what was kept and how to resume; exit status 128 + the signal number (130, 143).
"""

from __future__ import annotations

import re
import signal


class CSEInputError(ValueError):
    """Bad user input: a file, a column, a parameter value, a model name.

    The message is one line that names the input and, where possible, the fix.
    `cse.cli` prints it without a traceback and exits with status 2.

    Examples
    --------
    >>> import cse
    >>> try:
    ...     cse.compute(["a text"], output="r.nc", resume=True, restart=True)
    ... except cse.CSEInputError as err:
    ...     print(err)
    give either resume=True (continue an interrupted run) or restart=True (discard it), not both
    """


class Terminated(KeyboardInterrupt):
    """Raised in the main thread by the command line's SIGTERM handler.

    A `KeyboardInterrupt`, so that every ``finally`` and interrupt handler of a run
    treats SIGTERM like Ctrl-C.

    Parameters
    ----------
    signum : int
        The signal number (``signal.SIGTERM``), kept as the attribute ``signum``.
    """

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(f"terminated by signal {signum}")
        self.signum = int(signum)


class RunInterrupted(KeyboardInterrupt):
    """A run was interrupted; the message says what was kept and how to continue.

    Parameters
    ----------
    message : str
        One line, e.g. ``"interrupted: 12 of 40 batches of out.nc are kept in
        .out.nc.partial; rerun the same command with --resume to continue"``.
    signum : int
        The signal that stopped the run (SIGINT for Ctrl-C, SIGTERM).
    """

    def __init__(self, message: str, signum: int = signal.SIGINT):
        super().__init__(message)
        self.message = message
        self.signum = int(signum)

    def __str__(self) -> str:
        return self.message


#: Keyword arguments that messages name in Python (``resume=True``, ``window=N``); the
#: command line shows them as its flags (``--resume``, ``--window N``) through `as_flags`.
FLAG_PARAMETERS = ("resume", "restart", "overwrite", "window", "text_column", "columns", "split", "encoding",
                   "null_permutations", "save", "wide", "level")
_KEYWORD = re.compile(r"\b(" + "|".join(FLAG_PARAMETERS) + r")=(True\b|[A-Z]+\b|\d+\b|'[^'\s]*')")
_NAMED = re.compile(r"(Invalid value for )'(" + "|".join(FLAG_PARAMETERS) + r")'")


def as_flags(message: str) -> str:
    """A message of the Python API, with its keyword arguments spelled as command-line flags.

    The Python API names its own parameters (``"pass resume=True"``); the command line
    prints the same message through this one translation (``"pass --resume"``), so
    each error is written once and reads right in both places.

    Parameters
    ----------
    message : str
        An error message naming parameters as ``name=True``, ``name=VALUE`` (an
        upper-case placeholder, an integer or a quoted word) or ``Invalid value for 'name'``.

    Returns
    -------
    str
        The message with ``--name`` (underscores as hyphens) and ``--name VALUE``.

    Examples
    --------
    >>> as_flags("add resume=True to continue it or restart=True to discard it")
    'add --resume to continue it or --restart to discard it'
    >>> as_flags("shorten it or pass window=N; Invalid value for 'text_column': 'x'")
    "shorten it or pass --window N; Invalid value for '--text-column': 'x'"
    >>> as_flags("use level=2 or lower; try encoding='cp1252'")
    'use --level 2 or lower; try --encoding cp1252'
    """
    def flag(name: str) -> str:
        return "--" + name.replace("_", "-")

    message = _KEYWORD.sub(lambda m: flag(m[1]) + ("" if m[2] == "True" else f" {m[2].strip(chr(39))}"), str(message))
    return _NAMED.sub(lambda m: f"{m[1]}'{flag(m[2])}'", message)
