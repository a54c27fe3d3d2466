"""Input columns: names that cannot rewrite the schema, and per-word list fields.

Every input column other than the text becomes a token coordinate of the result, so its
name must not be one of the package's own (`cse.schema.reserved_names`) and must be a
valid variable name in netCDF and Zarr. `rename_columns` renames the others
predictably and says so in one warning; nothing is substituted or dropped.
"""

from __future__ import annotations

import ast
import hashlib
import re
import warnings

import numpy as np
import pandas as pd

from ..errors import CSEInputError
from ..schema import reserved_names
from .encoding import is_utf8

#: Longest column name kept (UTF-8 bytes): a Zarr array is a folder, and file names stop at 255 bytes.
MAX_NAME_BYTES = 200

#: Prefix of a renamed column.
PREFIX = "input_"

_WORDS = re.compile(r"\S+")
_UNSAFE = re.compile(r"[/\\]")
# One flat list literal of str, number, True/False/None items (no nesting), as in VUA's
# label_seq/pos_seq; possessive quantifiers keep the match linear on any input.
_ITEM = r"""(?:'(?:[^'\\\n]|\\.)*+'|"(?:[^"\\\n]|\\.)*+"|[-+]?(?:\d++\.?\d*+|\.\d++)(?:[eE][-+]?\d++)?|True|False|None)"""
_FLAT_LIST = re.compile(rf"\[\s*+(?:{_ITEM}\s*+(?:,\s*+{_ITEM}\s*+)*+(?:,\s*+)?)?\]")


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a variable name in netCDF and Zarr, or None if it can."""
    if name == "":
        return "empty"
    if _UNSAFE.search(name):
        return "holds a path separator"
    if not name.isprintable():
        return "holds control or other unprintable characters"
    if any(ch.isspace() for ch in name):
        return "holds whitespace (netCDF and Zarr list coordinates separated by spaces)"
    if name.startswith("."):
        return "starts with '.'"
    if name.startswith("__"):
        return "starts with '__' (reserved by Zarr)"
    if not is_utf8(name):
        return "holds an unpaired surrogate"
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        return f"is longer than {MAX_NAME_BYTES} bytes"
    return None


def _sanitised(name: str, position: int) -> str:
    clean = "".join("_" if (not ch.isprintable() or ch.isspace() or ch in "/\\") else ch for ch in name)
    if not clean:
        return f"{PREFIX}column{position}"
    base = PREFIX + clean
    if len(base.encode("utf-8")) > MAX_NAME_BYTES:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        base = _cut(base, MAX_NAME_BYTES - 9) + "_" + digest
    return base


def _cut(name: str, n_bytes: int) -> str:
    """`name` cut to at most `n_bytes` UTF-8 bytes, on a character boundary."""
    return name.encode("utf-8")[:n_bytes].decode("utf-8", "ignore")


def rename_columns(frame: pd.DataFrame, source: str, *, keep=(), taken=()) -> pd.DataFrame:
    """Rename the columns that are reserved or invalid names; one warning lists the renames.

    Parameters
    ----------
    frame : pandas.DataFrame
        The input's columns (names of any type: they are compared as ``str``).
    source : str
        The input, named in the warning.
    keep : sequence of str
        Columns left as they are (none by default: the caller takes the text column out first).
    taken : sequence of str
        Names already used, so a column of that name is renamed as a repeat (e.g. the text
        column's name in the file, which the caller has taken out).

    Returns
    -------
    pandas.DataFrame
        The same data; a column whose name is one of `cse.schema.reserved_names`
        (ignoring case) or fails `name_problem` is renamed ``input_<name>`` with path
        separators, whitespace and unprintable characters replaced by ``_``
        (``input_column<i>`` for an empty name, ``i`` its 0-based position), cut to
        `MAX_NAME_BYTES` with a hash. A repeated name, or names equal ignoring case (a
        case-insensitive file system would merge their Zarr arrays), keep the first and
        rename the others. A renamed name already taken gets ``_2``, ``_3`` ... in column
        order, so the result depends only on the columns.

    Warns
    -----
    UserWarning
        One warning listing every rename, when there is one.
    """
    names = [str(c) for c in frame.columns]
    taken = {name.casefold() for name in [*reserved_names(), *map(str, taken)] if name not in keep}
    new: list[str | None] = [None] * len(names)
    for i, name in enumerate(names):
        if name in keep or (name_problem(name) is None and name.casefold() not in taken):
            new[i] = name
            taken.add(name.casefold())
    renames = []
    for i, name in enumerate(names):
        if new[i] is not None:
            continue
        base = _sanitised(name, i)
        candidate, k = base, 2
        while candidate.casefold() in taken:
            candidate, k = _cut(base, MAX_NAME_BYTES - len(f"_{k}")) + f"_{k}", k + 1
        new[i] = candidate
        taken.add(candidate.casefold())
        renames.append(f"{name!r} -> {candidate!r}")
    if renames:
        shown = ", ".join(renames[:20]) + (f", ... ({len(renames)} in all)" if len(renames) > 20 else "")
        warnings.warn(f"{source}: renamed {len(renames)} input column(s) whose names are repeated, empty, not valid "
                      f"netCDF/Zarr coordinate names or cse's own: {shown}", UserWarning, stacklevel=3)
    out = frame.copy(deep=False)
    out.columns = new
    return out


def column_list(columns, limit: int = 20) -> str:
    """Column names for a one-line message (repr where a name is unprintable or has edge spaces).

    Parameters
    ----------
    columns : iterable
        Column names.
    limit : int
        Most names listed (the count of the rest follows).

    Returns
    -------
    str
    """
    names = [n if n and n.isprintable() and n.strip() == n else repr(n) for n in map(str, columns)]
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def word_spans(text: str) -> np.ndarray:
    """Character spans of the whitespace-separated words of ``text``.

    Parameters
    ----------
    text : str

    Returns
    -------
    ndarray of int64, shape (n_words, 2)
        ``[start, stop)`` of word i in ``text``, in the order of ``text.split()``.
    """
    spans = [m.span() for m in _WORDS.finditer(text)]
    return np.asarray(spans, dtype=np.int64).reshape(-1, 2)


def parse_word_list(value) -> list | None:
    """A flat list of scalars from a list, tuple or list literal (``"[0, 1]"``, ``"['DET', 'NOUN']"``).

    The literal must match a flat-list grammar before `ast.literal_eval` sees it, so a
    cell of any size or nesting (``"[[[[..."``, 5,000 signs) costs linear time and
    returns None, never a RecursionError. User text is never evaluated as code.

    Parameters
    ----------
    value : list, tuple, str or object
        A cell of a per-word column.

    Returns
    -------
    list or None
        None when `value` is not a flat list of str, int, float, bool or None.
    """
    if isinstance(value, (list, tuple)):
        items = list(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text.startswith("[") or not _FLAT_LIST.fullmatch(text):
            return None
        try:
            items = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return None
    else:
        return None
    if not all(v is None or isinstance(v, (str, int, float, bool, np.number, np.bool_)) for v in items):
        return None
    return items


def per_word_columns(frame: pd.DataFrame) -> list[str]:
    """Columns holding one list entry per whitespace word of each text.

    A column qualifies when every value is a flat list (or a list literal, as in the VUA
    ``label_seq`` and ``pos_seq`` fields; see `parse_word_list`) whose length equals the
    text's number of words. Qualifying columns are replaced in `frame` by the parsed lists.
    A column of lists whose length is the number of words in more than half of the rows
    but not in all is an error naming the rows (a column of lists that fits in half the
    rows or fewer is a per-text column).

    Parameters
    ----------
    frame : pandas.DataFrame
        Column ``text`` (str) and the input's other columns; modified in place.

    Returns
    -------
    list of str
        The names of the per-word columns.

    Raises
    ------
    CSEInputError
        A column that is per-word in most rows but not in all (the first five rows named).
    """
    n_words = frame["text"].map(lambda t: len(t.split()))
    found = []
    for column in frame.columns:
        if column == "text" or frame[column].dtype.kind in "biufM":
            continue
        values = frame[column]
        if not len(values) or parse_word_list(values.iloc[0]) is None:
            continue
        parsed = values.map(parse_word_list)
        if not parsed.map(lambda v: v is not None).all():
            continue
        fits = parsed.map(len) == n_words
        if fits.all():
            frame[column] = parsed
            found.append(column)
        elif 2 * int(fits.sum()) > len(fits):  # a per-word column with wrong rows: never a silent per-text column
            bad = np.flatnonzero(~fits.to_numpy())
            rows = ", ".join(f"{frame.index[k]} ({len(parsed.iloc[k])} entries, {n_words.iloc[k]} words)"
                             for k in bad[:5])
            raise CSEInputError(f"column {str(column)[:80]!r} holds one entry per word in {int(fits.sum())} of "
                                f"{len(fits)} rows but not in data row(s) {rows}"
                                + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
                                + "; fix those rows or leave the column out with --columns")
    return found
