"""Columnar inputs: Parquet files and Hugging Face ``datasets`` folders, read with pyarrow alone.

A ``datasets`` folder (``Dataset.save_to_disk``) is read as data, never as code: its JSON
documents (``state.json``, ``dataset_dict.json``) name the Arrow files of each split, and
those files are read with pyarrow's IPC reader. Nothing in the folder is imported or run
(no loading script, no ``datasets`` import), a file name that leaves the folder is
refused, and a ``DatasetDict`` folder needs a split (``split=``, ``--split``); without it
the error lists the splits.

`read_table` returns a pandas frame whose columns hold text, numbers and booleans, and
Python lists for Arrow list columns (per-word fields such as VUA's ``label_seq``); from
there `cse.io.read_texts` applies the same column rules, renames, bounds and errors as to
CSV and JSON Lines. Columns of other Arrow types (binary, structs, maps, nested lists)
are refused with one line; dates and times become their ISO text; dictionary-encoded
columns their values.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pandas as pd

from ..errors import CSEInputError
from ..hashing import file_sha256
from .limits import ResultLimits, format_bytes
from .paths import first_line

#: File suffixes read as Parquet.
TABLE_SUFFIXES = (".parquet", ".pq")

#: The JSON documents that make a folder a ``datasets`` folder: a Dataset, or a DatasetDict.
DATASETS_FILES = ("state.json", "dataset_dict.json")

_MAX_JSON_BYTES = 2**20


def table_format(path) -> str | None:
    """The columnar format of an input, from its suffix or its JSON documents.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    str or None
        ``'parquet'`` for a ``.parquet``/``.pq`` path, ``'datasets'`` for a folder holding
        one of `DATASETS_FILES`, else None.
    """
    path = Path(path)
    if path.is_dir():
        return "datasets" if any((path / name).is_file() for name in DATASETS_FILES) else None
    return "parquet" if path.suffix.lower() in TABLE_SUFFIXES else None


def _json(file: Path, source: str) -> dict:
    try:
        info = file.lstat()
        if not stat.S_ISREG(info.st_mode):
            raise CSEInputError(f"{source}: {file.name} is not a regular file")
        if info.st_size > _MAX_JSON_BYTES:
            raise CSEInputError(f"{source}: {file.name} is {info.st_size} bytes, more than a datasets folder holds")
        doc = json.loads(file.read_text(encoding="utf-8"))
    except CSEInputError:
        raise
    except (OSError, ValueError, RecursionError) as exc:
        raise CSEInputError(f"{source}: {file.name} is not readable JSON ({first_line(exc)})") from None
    if not isinstance(doc, dict):
        raise CSEInputError(f"{source}: {file.name} is not a JSON object")
    return doc


def datasets_files(folder, split=None) -> list[Path]:
    """The Arrow files of a ``datasets`` folder (of `split` for a DatasetDict folder), from its JSON alone.

    Parameters
    ----------
    folder : str or Path
        Written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``.
    split : str, optional
        The split of a DatasetDict folder (required there; refused for a Dataset folder).

    Returns
    -------
    list of Path
        In the order ``state.json`` lists them.

    Raises
    ------
    CSEInputError
        A DatasetDict without `split` (the message lists the splits), an unknown split,
        a split given for a plain Dataset, unreadable JSON, or a data file that is not a
        plain ``.arrow`` file name inside the folder.
    """
    folder = Path(folder)
    source = str(folder)
    if (folder / "dataset_dict.json").is_file():
        splits = _json(folder / "dataset_dict.json", source).get("splits")
        if not isinstance(splits, list) or not all(isinstance(s, str) for s in splits) or not splits:
            raise CSEInputError(f"{source}: dataset_dict.json lists no splits")
        if split is None:
            raise CSEInputError(f"{source} is a DatasetDict folder with the splits {_some(splits)}; choose one "
                                f"with split=NAME, e.g. split={splits[0][:80]!r}, or give the split's "
                                f"own folder, e.g. {folder / splits[0][:80]}")
        if split not in splits or not _plain_name(split):
            raise CSEInputError(f"Invalid value for 'split': {split[:80]!r} is not a split of {source} (splits: "
                                f"{_some(splits)})")
        if (folder / split).is_symlink():
            raise CSEInputError(f"{source}: its split folder {split!r} is a symbolic link; cse reads nothing outside "
                                f"a datasets folder: copy the split into it")
        return datasets_files(folder / split)
    if split is not None:
        raise CSEInputError(f"Invalid value for 'split': {source} is a single Dataset folder, not a DatasetDict; "
                            f"leave out --split")
    entries = _json(folder / "state.json", source).get("_data_files")
    if not isinstance(entries, list) or not entries:
        raise CSEInputError(f"{source}: state.json lists no data files")
    files = []
    for entry in entries:
        name = entry.get("filename") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not _plain_name(name) or not name.endswith(".arrow"):
            raise CSEInputError(f"{source}: state.json names the data file {str(name)[:80]!r}; cse reads only .arrow "
                                f"files inside the folder")
        file = folder / name
        try:
            mode = file.lstat().st_mode
        except OSError:
            raise CSEInputError(f"{source}: its data file {name} is missing") from None
        if not stat.S_ISREG(mode):
            raise CSEInputError(f"{source}: its data file {name} is not a regular file")
        files.append(file)
    return files


def _some(names: list, shown: int = 20) -> str:
    """`names` for a message: the first `shown` (each cut at 80 characters), then how many in all."""
    listed = ", ".join(name[:80] for name in names[:shown])
    return listed if len(names) <= shown else f"{listed}, ... ({len(names)} in all)"


def _plain_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name and "\x00" not in name


def read_table(path, fmt: str, *, split=None, max_columns: int | None = None, source: str = "") -> pd.DataFrame:
    """Read a Parquet file or a ``datasets`` folder into a frame (see the module docstring).

    Parameters
    ----------
    path : str or Path
    fmt : {'parquet', 'datasets'}
    split : str, optional
        For a DatasetDict folder.
    max_columns : int, optional
        Refuse a table of more columns before any of its data is read.
    source : str
        The input, named in messages (default: `path`).

    Returns
    -------
    pandas.DataFrame
        Column labels as in the file (duplicates kept for the caller to rename).

    Raises
    ------
    CSEInputError
        One line: unreadable or corrupt file, too many columns, more data than the memory
        limit (`cse.io.limits.ResultLimits`), a column of an unsupported Arrow type.
    """
    import pyarrow as pa

    path, source = Path(path), source or str(path)
    limit = ResultLimits.resolve()
    try:
        if fmt == "parquet":
            table = _parquet(path, source, max_columns, limit)
        else:
            table = _arrow_files(datasets_files(path, split), source, max_columns, limit)
        return _frame(table, source)
    except CSEInputError:
        raise
    except (pa.ArrowException, OSError, ValueError, TypeError, IndexError, KeyError, MemoryError) as exc:
        raise CSEInputError(f"{source}: not a readable {'Parquet file' if fmt == 'parquet' else 'datasets folder'} "
                            f"({first_line(exc)})") from None


def _check_width(names, source: str, max_columns) -> None:
    if max_columns is not None and len(names) > max_columns:
        raise CSEInputError(f"{source} has {len(names) - 1} columns besides the text, more than the "
                            f"{max_columns - 1} that cse keeps as token coordinates; keep only the ones you need "
                            f"(--columns A,B or columns=[...])")


def _check_size(nbytes: int, source: str, limit: ResultLimits) -> None:
    if nbytes > limit.max_bytes:
        raise CSEInputError(f"{source} holds {format_bytes(nbytes)} of column data, more than may be read at once; "
                            f"{limit.hint()}")


#: Rows decoded at a time: the memory limit is checked after every batch, before the next one is decoded.
_BATCH_ROWS = 16_384


def _parquet(path: Path, source: str, max_columns, limit: ResultLimits):
    """The table, decoded batch by batch within the limit; string columns stay dictionary-encoded until counted.

    The footer's sizes are those of the encoded data: a dictionary-encoded column of one
    long value repeated a million times declares kilobytes and decodes to gigabytes. Its
    strings are therefore read as a dictionary (their decoded size is computed from the
    dictionary's lengths, `_decoded_nbytes`) and every batch is counted before the next
    one is read.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as handle:
        metadata, schema = handle.metadata, handle.schema_arrow
    _check_width(schema.names, source, max_columns)
    _check_size(sum(metadata.row_group(k).total_byte_size for k in range(metadata.num_row_groups)), source, limit)
    _check_size(8 * metadata.num_rows * max(1, len(schema.names)), source, limit)  # a frame cell: 8 bytes or more
    strings = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    with pq.ParquetFile(path, read_dictionary=strings or None) as handle:
        batches, total = [], 0
        for batch in handle.iter_batches(batch_size=_BATCH_ROWS):
            total += _decoded_nbytes(batch)
            _check_size(total, source, limit)
            batches.append(batch)
        if not batches:
            return schema.empty_table()
        return pa.Table.from_batches(batches)


def _arrow_files(files: list, source: str, max_columns, limit: ResultLimits):
    import pyarrow as pa

    _check_size(sum(file.stat().st_size for file in files), source, limit)
    tables, total = [], 0
    for file in files:
        with pa.memory_map(str(file)) as handle:
            reader = pa.ipc.open_stream(handle)
            _check_width(reader.schema.names, source, max_columns)
            batches = []
            for batch in reader:  # compressed batches: counted one by one as they are decompressed
                total += _decoded_nbytes(batch)
                _check_size(total, source, limit)
                batches.append(batch)
            tables.append(pa.Table.from_batches(batches, schema=reader.schema))
    if len(tables) > 1 and any(t.schema != tables[0].schema for t in tables[1:]):
        raise CSEInputError(f"{source}: its data files have different columns")
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def _decoded_nbytes(batch) -> int:
    """Bytes of `batch` once every dictionary-encoded column is decoded to its values (as `_frame` does)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    total = 0
    for column in batch.columns:
        if pa.types.is_dictionary(column.type) and len(column):
            values = column.dictionary
            if pa.types.is_string(values.type) or pa.types.is_large_string(values.type) or \
                    pa.types.is_binary(values.type):
                lengths = pc.fill_null(pc.binary_length(values), 0)
                total += int(pc.sum(pc.take(lengths, column.indices)).as_py() or 0) + 8 * (len(column) + 1)
            else:
                total += len(column) * max(1, values.type.bit_width // 8 if hasattr(values.type, "bit_width") else 8)
        else:
            total += column.nbytes
    return total


def _frame(table, source: str) -> pd.DataFrame:
    """Arrow columns as pandas columns: scalars as pandas reads them, lists as Python lists."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = []
    for field, column in zip(table.schema, table.columns):
        kind = field.type
        if pa.types.is_dictionary(kind):
            column, kind = column.cast(kind.value_type), kind.value_type
        if pa.types.is_temporal(kind):
            column, kind = pc.cast(column, pa.string()), pa.string()
        elif pa.types.is_decimal(kind):
            column, kind = pc.cast(column, pa.float64()), pa.float64()
        if _is_list(kind):
            if not _is_scalar(kind.value_type):
                raise CSEInputError(_unsupported(source, field.name, kind))
            values = pd.Series(column.to_pylist(), dtype=object)
        elif _is_scalar(kind):
            values = column.to_pandas()
        else:
            raise CSEInputError(_unsupported(source, field.name, kind))
        columns.append(values.reset_index(drop=True))
    frame = pd.concat(columns, axis=1, ignore_index=True) if columns else pd.DataFrame(index=range(table.num_rows))
    frame.columns = list(table.schema.names)
    return frame


def _is_list(kind) -> bool:
    import pyarrow as pa

    return pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind) or (
        hasattr(pa.types, "is_list_view") and (pa.types.is_list_view(kind) or pa.types.is_large_list_view(kind)))


def _is_scalar(kind) -> bool:
    import pyarrow as pa

    return (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_integer(kind)
            or pa.types.is_floating(kind) or pa.types.is_boolean(kind) or pa.types.is_null(kind)
            or (hasattr(pa.types, "is_string_view") and pa.types.is_string_view(kind)))


def _unsupported(source: str, name, kind) -> str:
    return (f"{source}: column {str(name)[:80]!r} holds {str(kind)[:60]} values; cse keeps text, numbers, booleans "
            f"and flat lists of them (per-word fields) as token coordinates: leave it out with columns=NAMES")


def input_sha256(path) -> str:
    """Hex SHA-256 of an input: a file's bytes (`cse.hashing.file_sha256`), or a ``datasets`` folder's files.

    Parameters
    ----------
    path : str or Path
        A file, or a ``datasets`` folder: its digest covers, in sorted order, the name and
        bytes of every ``.json`` and ``.arrow`` file in it and in its split folders (one
        level down), so that it changes when any of its data does.

    Returns
    -------
    str
        64 lowercase hex digits.
    """
    path = Path(path)
    if not path.is_dir():
        return file_sha256(path)
    digest = hashlib.sha256()
    # Symbolic links are not followed (a link in the folder may point at anything outside it, of any size).
    folders = [path, *(d for d in path.iterdir() if d.is_dir() and not d.is_symlink())]
    files = sorted(p for d in folders for p in d.iterdir()
                   if p.suffix in (".json", ".arrow") and p.is_file() and not p.is_symlink())
    for file in files:
        digest.update(os.fsencode(file.relative_to(path).as_posix()) + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
