"""Errors the command line turns into one line on stderr and exit status 2."""


class CSEInputError(ValueError):
    """Bad user input: a file, a column, a parameter value, a model name.

    The message is one line that names the input and, where possible, the fix.
    `cse.cli` prints it without a traceback and exits with status 2.
    """
