"""Errors of the package that the command line turns into one line on stderr.

- `CSEInputError`: bad user input (a file, a column, a parameter value, a model
  name); exit status 2.
- `RunInterrupted`: a run stopped by Ctrl-C (SIGINT) or SIGTERM; its message says
  what was kept and how to resume; exit status 128 + the signal number (130, 143).
"""

from __future__ import annotations

import signal


class CSEInputError(ValueError):
    """Bad user input: a file, a column, a parameter value, a model name.

    The message is one line that names the input and, where possible, the fix.
    `cse.cli` prints it without a traceback and exits with status 2.
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
