"""Reading texts and writing result files.

Inputs: plain text (one text per line), JSON Lines, or CSV. Outputs: netCDF4 via
``h5netcdf`` or Zarr, always written to a temporary path beside the target and
renamed into place, so an interrupted run never leaves a file that looks complete.
"""

from __future__ import annotations

import ast
import contextlib
import csv
import io
import json
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .errors import CSEInputError

TEXT_FORMATS = ("txt", "jsonl", "csv")
_SUFFIX_FORMAT = {
    ".txt": "txt",
    ".text": "txt",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "csv",
}
_WORDS = re.compile(r"\S+")


def _decode(raw: bytes, path: Path, encoding: str) -> str:
    try:
        return raw.decode(encoding)
    except LookupError:
        raise CSEInputError(f"Invalid value for 'encoding': unknown codec {encoding!r}") from None
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        other = "cp1252" if encoding.replace("-", "").lower() in ("utf8", "utf8sig") else "utf-8"
        raise CSEInputError(
            f"{path}: line {line} is not valid {encoding} (byte 0x{raw[exc.start]:02x}); "
            f"try --encoding {other}"
        ) from None


def read_texts(path, text_column=None, encoding="utf-8", format=None) -> pd.DataFrame:
    """Read texts and their per-text fields from a file.

    Parameters
    ----------
    path : str or Path
        Plain text (one text per line), JSON Lines (one object per line) or CSV.
    text_column : str, optional
        Column (CSV) or key (JSON Lines) holding the text. Defaults to ``text``,
        then ``sentence``, when present.
    encoding : str
        Text encoding of the file, e.g. ``utf-8`` or ``cp1252``.
    format : {'txt', 'jsonl', 'csv'}, optional
        Overrides the format inferred from the file suffix (unknown suffixes are
        read as plain text).

    Returns
    -------
    pandas.DataFrame
        One row per non-empty text: column ``text`` (str) and every other input
        column, indexed by the 0-based row number in the input (the ``text``
        coordinate of results), so skipped rows do not shift indices.

    Raises
    ------
    CSEInputError
        Missing or empty file, unknown column, undecodable bytes (names the
        line and an encoding to try), malformed JSON, or no non-empty text.

    Warns
    -----
    UserWarning
        When empty or whitespace-only texts are skipped (their rows keep their
        indices; they produce no tokens).
    """
    path = Path(path)
    if not path.is_file():
        raise CSEInputError(f"Input file {str(path)!r} does not exist or is not a file")
    fmt = format or _SUFFIX_FORMAT.get(path.suffix.lower(), "txt")
    if fmt not in TEXT_FORMATS:
        raise CSEInputError(f"Invalid value for 'format': expected one of {TEXT_FORMATS}, got {fmt!r}")
    raw = path.read_bytes()
    if not raw.strip():
        raise CSEInputError(f"Input file {str(path)!r} is empty")
    content = _decode(raw, path, encoding)
    if content.startswith("\ufeff"):
        content = content[1:]
    if not content.strip():  # e.g. a lone UTF-16 byte-order mark
        raise CSEInputError(f"Input file {str(path)!r} is empty")

    if fmt == "txt":
        if text_column is not None:
            raise CSEInputError("--text-column applies to CSV and JSON Lines input, not to plain text")
        frame = pd.DataFrame({"text": content.splitlines()})
    elif fmt == "jsonl":
        records = []
        for number, line in enumerate(content.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CSEInputError(f"{path}: line {number} is not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise CSEInputError(f"{path}: line {number} is a JSON {type(record).__name__}, expected an object")
            records.append(record)
        frame = pd.DataFrame.from_records(records)
    else:
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        try:
            frame = pd.read_csv(io.StringIO(content), sep=delimiter, dtype=None, keep_default_na=False)
        except (pd.errors.ParserError, csv.Error) as exc:
            raise CSEInputError(f"{path}: not valid CSV ({str(exc).splitlines()[0]})") from None

    if fmt != "txt":
        column = text_column
        if column is None:
            column = next((c for c in ("text", "sentence") if c in frame.columns), None)
            if column is None:
                raise CSEInputError(
                    f"{path}: no 'text' or 'sentence' column; name the text column with --text-column "
                    f"(columns: {_column_list(frame.columns)})"
                )
        if column not in frame.columns:
            raise CSEInputError(
                f"Invalid value for '--text-column': {column!r} is not a column of {path} "
                f"(columns: {_column_list(frame.columns)})"
            )
        texts = frame.pop(column)
        if "text" in frame.columns:
            frame = frame.rename(columns={"text": "text_field"})
        frame.insert(0, "text", texts)

    frame["text"] = frame["text"].map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    return _drop_empty(frame, str(path))


def _column_list(columns, limit: int = 20) -> str:
    # A name with a newline, other unprintable characters or edge spaces is shown as repr,
    # so the error stays one line.
    names = [n if n and n.isprintable() and n.strip() == n else repr(n) for n in map(str, columns)]
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def texts_frame(texts) -> pd.DataFrame:
    """Turn the ``texts`` argument of `cse.compute` into the frame `read_texts` returns.

    Accepts a sequence of str, a pandas DataFrame with a ``text`` column, or a
    DataFrame plus ``text_column`` handled by the caller.
    """
    if isinstance(texts, str):
        raise TypeError("Invalid type for 'texts': expected a sequence of str or a DataFrame, got one str; wrap it in a list")
    if isinstance(texts, pd.DataFrame):
        if "text" not in texts.columns:
            raise CSEInputError(
                f"Invalid value for 'texts': the DataFrame has no 'text' column (columns: {_column_list(texts.columns)}); "
                f"pass text_column="
            )
        frame = texts.reset_index(drop=True).copy()
    else:
        texts = list(texts)
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            raise TypeError(f"Invalid type for 'texts': item {bad[0]} is {type(texts[bad[0]]).__name__}, expected str")
        frame = pd.DataFrame({"text": texts})
    if frame.empty:
        raise CSEInputError("Invalid value for 'texts': no texts given")
    return _drop_empty(frame, "texts")


def _drop_empty(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    empty = frame["text"].str.strip() == ""
    if empty.all():
        raise CSEInputError(f"{source}: every text is empty")
    if empty.any():
        rows = np.flatnonzero(empty.to_numpy())
        shown = ", ".join(map(str, rows[:5])) + (" ..." if len(rows) > 5 else "")
        warnings.warn(f"{source}: skipped {len(rows)} empty text(s) at row(s) {shown}", stacklevel=3)
    return frame.loc[~empty]


def word_spans(text: str) -> np.ndarray:
    """Character spans of the whitespace-separated words of ``text``.

    Returns
    -------
    ndarray of int64, shape (n_words, 2)
        ``[start, stop)`` of word i in ``text``, in the order of ``text.split()``.
    """
    spans = [m.span() for m in _WORDS.finditer(text)]
    return np.asarray(spans, dtype=np.int64).reshape(-1, 2)


def per_word_columns(frame: pd.DataFrame) -> list[str]:
    """Columns holding one list entry per whitespace word of each text.

    A column qualifies when every value is a list (or a Python/JSON literal of
    one, as in the VUA ``label_seq`` and ``pos_seq`` fields) whose length equals
    the text's number of words.
    """
    n_words = frame["text"].map(lambda t: len(t.split()))
    found = []
    for column in frame.columns:
        if column == "text":
            continue
        values = frame[column]
        if not values.map(lambda v: isinstance(v, (list, tuple)) or (isinstance(v, str) and v[:1] == "[")).all():
            continue
        try:
            parsed = values.map(lambda v: list(v) if isinstance(v, (list, tuple)) else ast.literal_eval(v))
        except (ValueError, SyntaxError):
            continue
        if (parsed.map(len) == n_words).all():
            frame[column] = parsed
            found.append(column)
    return found


#: Attribute that marks a file or store as a result written by this package.
RESULT_MARKER = "cse_version"


def is_package_result(path) -> bool:
    """True if `path` is a netCDF file or Zarr store written by this package.

    Recognised by the `RESULT_MARKER` attribute in the file's (or the store's root)
    attributes, read without decoding any data: an HDF5 file's root attributes, a
    Zarr v3 store's ``zarr.json`` or a v2 store's ``.zattrs``.
    """
    import json

    path = Path(path)
    try:
        if path.is_dir() and not path.is_symlink():
            for name in ("zarr.json", ".zattrs"):
                meta = path / name
                if meta.is_file():
                    doc = json.loads(meta.read_text(encoding="utf-8"))
                    attrs = doc.get("attributes", doc) if name == "zarr.json" else doc
                    return isinstance(attrs, dict) and RESULT_MARKER in attrs
            return False
        if path.is_file() and not path.is_symlink():
            import h5py

            with h5py.File(path, "r") as handle:
                return RESULT_MARKER in handle.attrs
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return False


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output(path, *, inputs=(), overwrite: bool = False, name: str = "output", result: bool = True) -> Path:
    """Check an output path before any work starts; the user's files are never replaced silently.

    Parameters
    ----------
    path : str or Path
        The output the command will write.
    inputs : sequence of str or Path
        Files the command reads; the output may not be one of them.
    overwrite : bool
        Allow replacing an existing output: any regular file, or a directory that
        is a result of this package (`is_package_result`). A directory that is not
        is never replaced, with or without it.
    name : str
        The parameter named in messages (``'output'``, ``'--output'`` ...).
    result : bool
        The output is a result file (``.nc`` or ``.zarr``): check its suffix.

    Returns
    -------
    Path

    Raises
    ------
    CSEInputError
        One line: a wrong suffix, a missing or non-writable parent folder, the output
        is an input, it exists without `overwrite`, or it is a directory (or a file
        in place of a store) that this package did not write.
    """
    path = Path(path)
    if result:
        output_format(path, name)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise CSEInputError(f"Invalid value for {name!r}: the folder {str(parent)!r} does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CSEInputError(f"Invalid value for {name!r}: the folder {str(parent)!r} is not writable; "
                            f"choose another output path")
    for item in inputs:
        if item is not None and isinstance(item, (str, os.PathLike)) and _same_file(path, Path(item)):
            raise CSEInputError(f"Invalid value for {name!r}: {str(path)!r} is an input of this command; "
                                f"write the output to another path")
    if not (path.exists() or path.is_symlink()):
        return path
    is_dir = path.is_dir() and not path.is_symlink()
    if is_dir and not is_package_result(path):
        raise CSEInputError(f"Invalid value for {name!r}: {str(path)!r} is an existing folder that cse did not write; "
                            f"it is never replaced: choose another output path")
    if not overwrite:
        raise CSEInputError(f"Invalid value for {name!r}: {str(path)!r} exists; pass --overwrite (overwrite=True) "
                            f"to replace it, or choose another output path")
    return path


def atomic_path(target, overwrite: bool = False) -> contextlib.AbstractContextManager:
    """Context manager yielding a temporary path beside ``target``.

    On normal exit the temporary path (file or directory) replaces ``target``; on
    any error it is removed and ``target`` is left untouched. An existing ``target``
    is replaced only with ``overwrite=True`` and, if it is a directory, only if it
    is a result of this package (see `check_output`, which is called on entry).
    """
    return _AtomicPath(Path(target), overwrite)


class _AtomicPath(contextlib.AbstractContextManager):
    def __init__(self, target: Path, overwrite: bool):
        self.target = target
        self.overwrite = overwrite

    def __enter__(self) -> Path:
        check_output(self.target, overwrite=self.overwrite, result=False)
        fd, name = tempfile.mkstemp(prefix=f".{self.target.name}.", suffix=".partial", dir=self.target.parent)
        os.close(fd)
        os.unlink(name)
        self.tmp = Path(name)
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            remove_path(self.tmp)
            return False
        try:
            check_output(self.target, overwrite=self.overwrite, result=False)  # it may have appeared meanwhile
            if self.target.is_dir() and not self.target.is_symlink():
                # A previous result store (checked above): move it aside, then drop it.
                old = self.target.with_name(f".{self.target.name}.{os.getpid()}.old")
                os.replace(self.target, old)
                os.replace(self.tmp, self.target)
                remove_path(old)
            else:
                os.replace(self.tmp, self.target)
        except BaseException:
            remove_path(self.tmp)
            raise
        return False


def remove_path(path) -> None:
    """Remove a file or directory tree that this package created (staging, temporary outputs)."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def output_format(path, name: str = "output") -> str:
    """``'netcdf'`` for ``.nc``/``.nc4``/``.h5``, ``'zarr'`` for ``.zarr``.

    ``name`` is the parameter named in the error message.

    Raises
    ------
    CSEInputError
        For any other suffix.
    """
    suffix = Path(path).suffix.lower()
    if suffix in (".nc", ".nc4", ".netcdf", ".h5"):
        return "netcdf"
    if suffix == ".zarr":
        return "zarr"
    raise CSEInputError(f"Invalid value for {name!r}: {str(path)!r} must end in .nc (netCDF4) or .zarr (Zarr)")


def write_result(ds: xr.Dataset, path, overwrite: bool = False) -> Path:
    """Write a result Dataset atomically to netCDF4 (h5netcdf) or Zarr.

    Parameters
    ----------
    ds : xarray.Dataset
        A result of `cse.compute`, `cse.stats` or a study (NumPy- or Dask-backed).
        The written file carries the `RESULT_MARKER` attribute (the package version).
    path : str or Path
        Target ending in ``.nc`` or ``.zarr``.
    overwrite : bool
        Replace an existing file or result store (see `check_output`).

    Returns
    -------
    Path
        The written path.

    Raises
    ------
    CSEInputError
        As `check_output`.
    """
    from . import __version__

    path = Path(path)
    fmt = output_format(path)
    check_output(path, overwrite=overwrite)
    if RESULT_MARKER not in ds.attrs:
        ds = ds.copy()
        ds.attrs[RESULT_MARKER] = __version__
    with atomic_path(path, overwrite=overwrite) as tmp:
        if fmt == "netcdf":
            write_netcdf(ds, tmp)
        else:
            ds.to_zarr(tmp, mode="w", consolidated=True)
    return path


def write_netcdf(ds: xr.Dataset, path) -> None:
    """Write `ds` to netCDF4 at `path` with h5netcdf (variable-length UTF-8 strings); not atomic."""
    ds.to_netcdf(path, engine="h5netcdf", encoding=_string_encoding(ds))


def _string_encoding(ds: xr.Dataset) -> dict:
    # Variable-length UTF-8 strings in netCDF4, whatever the in-memory string dtype.
    encoding = {}
    for name, var in ds.variables.items():
        if var.dtype.kind in ("U", "O", "T"):
            encoding[name] = {"dtype": str}
    return encoding


def open_result(path, chunks=None) -> xr.Dataset:
    """Open a result file written by ``cse compute``.

    Parameters
    ----------
    path : str or Path
        A ``.nc`` (netCDF4) or ``.zarr`` result.
    chunks : dict or 'auto', optional
        Open lazily with Dask chunks (e.g. ``{"token": 100_000}``).

    Returns
    -------
    xarray.Dataset
        The result, with the schema of SPEC section 4.

    Raises
    ------
    CSEInputError
        If the path does not exist or is not a result file.
    """
    path = Path(path)
    if not path.exists():
        raise CSEInputError(f"Result {str(path)!r} does not exist")
    fmt = output_format(path, "result")
    try:
        if fmt == "zarr":
            ds = xr.open_zarr(path, chunks=chunks if chunks is not None else None)
            if chunks is None:
                ds = ds.load()
        else:
            ds = xr.open_dataset(path, engine="h5netcdf", chunks=chunks)
    except (OSError, ValueError, KeyError) as exc:
        raise CSEInputError(f"{path}: not a readable result file ({str(exc).splitlines()[0]})") from None
    if "cse" not in ds.data_vars:
        raise CSEInputError(f"{path}: has no 'cse' variable; is it a result of 'cse compute'?")
    return ds
