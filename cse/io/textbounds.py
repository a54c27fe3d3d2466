"""Bounds of text inputs: their size checked before they are read, their lines read without a copy.

A text input (plain text, JSON Lines, CSV) is read whole; these keep the memory of a
hostile or mistaken file near a small multiple of its size: a file larger than the memory limit of
result files (`cse.io.limits.ResultLimits`, ``CSE_MAX_RESULT_BYTES``) is refused from
its size, and the text is handed to the CSV parser as UTF-8 bytes, line by line to
the header's reader, never as a whole-text ``StringIO`` (4 bytes a character).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import CSEInputError
from .limits import ResultLimits, format_bytes


def check_input_size(path: Path) -> None:
    """Refuse a text input larger than the memory limit of result files (`cse.io.limits.ResultLimits`).

    Raises
    ------
    CSEInputError
        Naming the size and the limit, with the hint to raise it.
    """
    limit = ResultLimits.resolve()
    try:
        size = path.stat().st_size
    except OSError:
        return  # reported by the read
    if size > limit.max_bytes:
        raise CSEInputError(f"{path} holds {format_bytes(size)} of text, more than may be read at once; "
                            f"{limit.hint()}")


def iter_lines(content: str):
    """The lines of `content`, with their endings, one at a time (no copy of the whole text)."""
    start, n = 0, len(content)
    while start < n:
        stop = content.find("\n", start)
        stop = n if stop < 0 else stop + 1
        yield content[start:stop]
        start = stop
