"""Reading texts: plain text (one text per line), JSON Lines, CSV, Parquet, ``datasets`` folders, in-memory texts.

Each format is read into a table (CSV and JSON Lines here, Parquet and ``datasets``
folders by `cse.io.tables`), and every table then takes one path: the text column is
found, the other columns are selected, bounded and renamed where their names are
repeated, empty, invalid or the package's own (`cse.io.columns.rename_columns`, one
warning), empty texts are skipped, and per-word list fields are recognised. The frame
returned holds column ``text`` (str) and the input's other columns, which become token
coordinates of the result. Rows are indexed by their 0-based row in the input (the
``text`` coordinate of results).
"""

from __future__ import annotations

import csv
import io
import json
import math
import warnings
from pathlib import Path

import pandas as pd

from ..errors import CSEInputError
from .columns import column_list, per_word_columns, rename_columns
from .encoding import decode_text, is_utf8
from .textbounds import check_input_size, iter_lines
from .paths import check_file_kind
from .tables import TABLE_SUFFIXES, read_table, table_format

TEXT_FORMATS = ("txt", "jsonl", "csv", "parquet", "datasets")

#: Longest cell of an input column other than the text (characters, or items of a list):
#: every field is copied to each token of its text, so a longer one is an error naming it.
MAX_FIELD_CHARS = 1_000_000

#: Most input columns (besides the text) kept as token coordinates. Every coordinate costs
#: a Zarr array and a netCDF variable, and xarray's and h5netcdf's handling of many
#: variables grows faster than linearly (2,000 columns: minutes), so wider inputs are an
#: error that names the fix (keep the columns you need).
MAX_INPUT_COLUMNS = 256

_SUFFIX_FORMAT = {".txt": "txt", ".text": "txt", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "csv",
                  **{suffix: "parquet" for suffix in TABLE_SUFFIXES}}
_JSON_KINDS = {bool: "boolean", int: "number", float: "number", list: "array", dict: "object"}


def split_lines(content: str) -> list[str]:
    """Lines of plain text split at ``\\n`` and ``\\r\\n`` only (not at U+2028, U+0085, form feed ...).

    A final newline ends the last line rather than starting an empty one.

    Parameters
    ----------
    content : str
        A decoded text file.

    Returns
    -------
    list of str
    """
    lines = content.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CSEInputError(f"Invalid value for 'INPUT': {str(path)!r} cannot be read ({exc.strerror})") from None


def read_texts(path, text_column=None, encoding="utf-8", format=None, *, columns=None, split=None) -> pd.DataFrame:
    """Read texts and their per-text fields from a file or a ``datasets`` folder.

    Parameters
    ----------
    path : str or Path
        Plain text (one text per line), JSON Lines (one object per line), CSV/TSV,
        Parquet (``.parquet``), or a folder written by ``datasets``' ``save_to_disk``
        (read with pyarrow, never by running anything in it).
    text_column : str, optional
        Column (CSV, Parquet, datasets) or key (JSON Lines) holding the text. Defaults
        to ``text``, then ``sentence``, when present.
    encoding : str
        Text encoding of a text file, e.g. ``utf-8`` or ``cp1252``; a byte-order mark
        decides between UTF encodings (see `cse.io.encoding`). Parquet and ``datasets``
        hold UTF-8 by definition.
    format : {'txt', 'jsonl', 'csv', 'parquet', 'datasets'}, optional
        Overrides the format inferred from the path (a folder holding ``state.json`` or
        ``dataset_dict.json`` is a ``datasets`` folder; unknown suffixes are read as
        plain text).
    columns : sequence of str or str, optional
        The input columns to keep besides the text, as names or one comma-separated
        string (default: all, at most `MAX_INPUT_COLUMNS`).
    split : str, optional
        The split of a ``DatasetDict`` folder (required there; the error without it
        lists the splits).

    Returns
    -------
    pandas.DataFrame
        One row per non-empty text: column ``text`` (str) and every other kept input
        column, indexed by the 0-based line (plain text, JSON Lines) or data row (CSV,
        Parquet, datasets) of the input, so skipped rows do not shift indices. A column
        whose name is repeated (after its first), empty, not a valid netCDF/Zarr name or
        one of the package's own is renamed ``input_<name>`` (`rename_columns`). Columns
        holding one list item per whitespace word of every text (list literals in CSV
        and JSON Lines, list columns in Parquet and datasets) hold Python lists.

    Raises
    ------
    CSEInputError
        Missing, empty or non-regular file (FIFOs are refused before any ``open``),
        unknown column, undecodable bytes or NUL characters, malformed JSON, a text
        value that is not a string, an unpaired surrogate escape, too many columns, a
        field cell over `MAX_FIELD_CHARS`, an unreadable Parquet file or ``datasets``
        folder (or a column of an unsupported type), a missing or unknown split, or no
        non-empty text.

    Warns
    -----
    UserWarning
        When empty or whitespace-only texts are skipped (their rows keep their
        indices; they produce no tokens), and when columns are renamed.

    Examples
    --------
    >>> import cse, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "texts.csv"
    >>> _ = path.write_text("sentence,label\\nThe senator attacked the plan .,metaphorical\\n")
    >>> cse.io.read_texts(path, text_column="sentence").columns.tolist()
    ['text', 'label']
    """
    path = Path(path)
    fmt = format or table_format(path) or _SUFFIX_FORMAT.get(path.suffix.lower(), "txt")
    if fmt not in TEXT_FORMATS:
        raise CSEInputError(f"Invalid value for 'format': expected one of {TEXT_FORMATS}, got {fmt!r}")
    path = check_file_kind(path, "INPUT", folder=fmt == "datasets")
    if split is not None and fmt != "datasets":
        raise CSEInputError(f"Invalid value for 'split': {str(path)!r} is not a datasets folder; --split applies to "
                            f"a DatasetDict folder written by save_to_disk")
    if fmt in ("parquet", "datasets"):
        width = MAX_INPUT_COLUMNS + 1 if columns is None else None
        frame = read_table(path, fmt, split=split, max_columns=width, source=str(path))
        if frame.empty:
            raise CSEInputError(f"Input {str(path)!r} is empty")
        return _texts(frame, str(path), text_column, columns)
    check_input_size(path)
    raw = _read_bytes(path)
    if not raw.strip():
        raise CSEInputError(f"Input file {str(path)!r} is empty")
    content = decode_text(raw, path, encoding)
    del raw  # the text is held once
    if not content.strip():  # e.g. a lone UTF-16 byte-order mark
        raise CSEInputError(f"Input file {str(path)!r} is empty")
    if fmt == "txt":
        if text_column is not None or columns is not None:
            raise CSEInputError("text_column=NAME and columns=NAMES apply to CSV and JSON Lines input, not to plain text")
        return drop_empty(pd.DataFrame({"text": split_lines(content)}), str(path))
    if fmt == "jsonl":
        frame = _json_frame(content, path, text_column)
    else:
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        header = _csv_header(content, delimiter, path)
        data = content.encode("utf-8", "surrogatepass")  # the parser's input as bytes; the text is let go
        del content
        frame = _csv_frame(data, header, delimiter, path, text_column)
    return _texts(frame, str(path), text_column, columns)


def _texts(frame: pd.DataFrame, source: str, text_column, columns) -> pd.DataFrame:
    """The one path of every table: text column, kept and bounded columns, renames, empty texts, per-word lists."""
    column = _text_column(frame.columns, source, text_column)
    position = list(frame.columns).index(column)  # a repeated name: the first is the text, the others renamed
    texts = _text_values(frame.iloc[:, position], source, column)
    others = _kept_columns(frame.iloc[:, [i for i in range(frame.shape[1]) if i != position]], source, columns,
                           text_name=column)
    _check_fields(others, source)
    others.insert(0, "text", texts)
    kept = drop_empty(others, source)
    listed = set(per_word_columns(kept))
    for name in kept.columns:  # a list that is not one item per word is kept as the text a CSV would hold
        if name not in listed and kept[name].dtype == object and kept[name].map(lambda v: isinstance(v, list)).any():
            kept[name] = kept[name].map(lambda v: str(v) if isinstance(v, list) else v)
    return kept


def _text_values(values: pd.Series, source: str, column) -> pd.Series:
    """The text column as str (missing values as ""); any other value is an error naming its row."""
    texts = values.map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else v)
    bad = next((i for i, v in enumerate(texts) if not isinstance(v, str)), None)
    if bad is not None:
        raise CSEInputError(f"{source}: data row {bad}: the text column {str(column)!r} holds "
                            f"{type(texts.iloc[bad]).__name__} {str(texts.iloc[bad])[:40]!r}, expected text")
    return texts.astype(object)


def _check_fields(frame: pd.DataFrame, source: str) -> None:
    """Refuse a field cell longer than `MAX_FIELD_CHARS` (characters, or list items), naming it."""
    for k in range(frame.shape[1]):
        values = frame.iloc[:, k]
        if values.dtype.kind in "biufcmMb":
            continue
        sizes = values.map(lambda v: len(v) if isinstance(v, (str, list)) else 0).to_numpy()
        if len(sizes) and sizes.max() > MAX_FIELD_CHARS:
            row = int(sizes.argmax())
            raise CSEInputError(f"{source}: row {frame.index[row]}: the field {str(frame.columns[k])[:80]!r} holds "
                                f"{int(sizes[row])} "
                                f"characters or items, more than {MAX_FIELD_CHARS}; fields are copied to every token of "
                                f"their text: keep long text in the text column, or leave the field out with columns=NAMES")


def _text_column(available, path, text_column) -> str:
    column = text_column
    if column is None:
        column = next((c for c in ("text", "sentence") if c in available), None)
        if column is None:
            raise CSEInputError(f"{path}: no 'text' or 'sentence' column; name the text column with text_column=NAME "
                                f"(columns: {column_list(available)})")
    if column not in available:
        raise CSEInputError(f"Invalid value for 'text_column': {column!r} is not a column of {path} "
                            f"(columns: {column_list(available)})")
    return column


def _kept_columns(frame: pd.DataFrame, source: str, columns, text_name=None) -> pd.DataFrame:
    """The selected columns (all by default), at most `MAX_INPUT_COLUMNS`, renamed where needed."""
    if columns is not None:
        if isinstance(columns, str):
            columns = [c for c in columns.split(",") if c]
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise CSEInputError(f"Invalid value for 'columns': {missing[0]!r} is not a column of {source} "
                                f"(columns: {column_list(frame.columns)})")
        frame = frame.loc[:, list(dict.fromkeys(columns))]
    if frame.shape[1] > MAX_INPUT_COLUMNS:
        raise CSEInputError(f"{source} has {frame.shape[1]} columns besides the text, more than the "
                            f"{MAX_INPUT_COLUMNS} that cse keeps as token coordinates; keep only the ones you need "
                            f"(--columns A,B or columns=[...])")
    return rename_columns(frame, source, taken=() if text_name is None else (str(text_name),))


def _csv_header(content: str, delimiter: str, path: Path) -> list[str]:
    """The header's field names as written (pandas would rename repeated ones ``x.1`` and empty ones ``Unnamed: k``)."""
    try:
        for row in csv.reader(iter_lines(content), delimiter=delimiter):
            if row and any(field != "" for field in row):  # pandas skips blank lines before the header
                return row
    except csv.Error as exc:
        raise CSEInputError(f"{path}: not valid CSV ({str(exc).splitlines()[0]})") from None
    raise CSEInputError(f"Input file {str(path)!r} is empty")


def _csv_frame(data: bytes, header: list, delimiter: str, path: Path, text_column) -> pd.DataFrame:
    slots = [f"c{k}" for k in range(len(header))]
    first = {name: slots[k] for k, name in reversed(list(enumerate(header)))}
    text_names = [text_column] if text_column is not None else ["text", "sentence"]
    try:
        with warnings.catch_warnings():
            # pandas drops the extra fields of a row longer than the header with only a warning.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            # The text column is read as str: '007' stays '007', '1e5' stays '1e5'.
            # As UTF-8 bytes: a StringIO of the text would hold it 4 bytes a character.
            frame = pd.read_csv(io.BytesIO(data), encoding="utf-8", sep=delimiter, header=0, names=slots, keep_default_na=False,
                                dtype={first[c]: str for c in text_names if c in first}, index_col=False)
    except pd.errors.ParserWarning:
        raise CSEInputError(f"{path}: not valid CSV (a row has more fields than the header; quote fields that "
                            f"hold the delimiter)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error, ValueError) as exc:
        raise CSEInputError(f"{path}: not valid CSV ({str(exc).splitlines()[0]})") from None
    frame.columns = header  # repeated and empty names as written: `rename_columns` renames them and says so
    return frame


class _Object(dict):
    """A JSON object that keeps its key-value pairs in order, repeated keys included."""

    def __init__(self, pairs):
        super().__init__(pairs)
        self.pairs = pairs


def _json_frame(content: str, path: Path, text_column) -> pd.DataFrame:
    records, rows = [], []
    for row, line in enumerate(split_lines(content)):
        if not line.strip():
            continue
        try:
            record = json.loads(line, object_pairs_hook=_Object)
        except RecursionError:
            raise CSEInputError(f"{path}: line {row + 1} nests JSON too deeply") from None
        except ValueError as exc:  # JSONDecodeError, or an integer of more than 4300 digits
            raise CSEInputError(f"{path}: line {row + 1} is not valid JSON "
                                f"({getattr(exc, 'msg', str(exc).splitlines()[0])})") from None
        if not isinstance(record, dict):
            raise CSEInputError(f"{path}: line {row + 1} is a JSON {_json_kind(record)}, expected an object")
        if "\\u" in line.lower():  # only an escape can make an unpaired surrogate
            _check_surrogates(record, f"{path}: line {row + 1}")
        records.append(record)
        rows.append(row)
    if not records:
        raise CSEInputError(f"Input file {str(path)!r} is empty")
    slots: dict = {}  # (key, k-th occurrence in its object) -> column, in order of first appearance
    cells = []
    for record in records:
        seen: dict = {}
        placed = {}
        for key, value in record.pairs:
            seen[key] = seen.get(key, -1) + 1
            placed[slots.setdefault((key, seen[key]), len(slots))] = value
        cells.append(placed)
    labels = [key for key, _ in slots]
    column = _text_column(labels, path, text_column)
    text_slot = slots[(column, 0)]
    for placed, row in zip(cells, rows):
        value = placed.get(text_slot)
        if value is not None and not isinstance(value, str):
            raise CSEInputError(f"{path}: line {row + 1}: the text {column!r} is a JSON {_json_kind(value)}, "
                                f"expected a string")
    table = [[placed.get(k) for k in range(len(labels))] for placed in cells]
    return pd.DataFrame(table, index=rows, columns=labels) if labels else pd.DataFrame(index=rows)


def _json_kind(value) -> str:
    return next((kind for kind_type, kind in _JSON_KINDS.items() if isinstance(value, kind_type)), type(value).__name__)


def _check_surrogates(value, where: str) -> None:
    items = (value.pairs if isinstance(value, _Object) else value.items()) if isinstance(value, dict) else \
        enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        for text in (key, item):
            if isinstance(text, str) and not is_utf8(text):
                raise CSEInputError(f"{where} holds an unpaired surrogate escape (e.g. \\ud800), which is not a "
                                    f"character; fix or remove it")
        if isinstance(item, (dict, list)):
            _check_surrogates(item, where)


def texts_frame(texts, text_column=None, *, columns=None) -> pd.DataFrame:
    """Turn the ``texts`` argument of `cse.compute` into the frame `read_texts` returns.

    Parameters
    ----------
    texts : sequence of str or pandas.DataFrame
        Texts, or a DataFrame whose `text_column` holds them (str; None or NaN count
        as empty).
    text_column : str, optional
        The DataFrame's text column (default ``text``).
    columns : sequence of str, optional
        As in `read_texts`.

    Returns
    -------
    pandas.DataFrame
        As `read_texts`, indexed 0..n-1 by position.

    Raises
    ------
    TypeError
        One str instead of a sequence, or an item (a text cell) that is not str.
    CSEInputError
        No texts, a missing text column, an unpaired surrogate, too many columns.

    Examples
    --------
    >>> import cse
    >>> cse.io.texts_frame(["One text.", "Another text."]).text.tolist()
    ['One text.', 'Another text.']
    """
    if isinstance(texts, str):
        raise TypeError("Invalid type for 'texts': expected a sequence of str or a DataFrame, got one str; "
                        "wrap it in a list")
    if not isinstance(texts, pd.DataFrame):
        if text_column is not None or columns is not None:
            raise TypeError("'text_column' and 'columns' apply to file or DataFrame input")
        texts = list(texts)
        if not texts:
            raise CSEInputError("Invalid value for 'texts': no texts given")
        bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
        if bad is not None:
            raise TypeError(f"Invalid type for 'texts': item {bad} is {type(texts[bad]).__name__}, expected str")
        frame = pd.DataFrame({"text": pd.Series(texts, dtype=object)})
        _check_column(frame["text"], "texts")
        return drop_empty(frame, "texts")
    column = "text" if text_column is None else text_column
    labels = list(texts.columns)
    if labels.count(column) != 1:
        problem = "is not a column" if column not in labels else "names more than one column"
        raise CSEInputError(f"Invalid value for 'text_column': {column!r} {problem} of the DataFrame "
                            f"(columns: {column_list(labels)}); pass text_column=")
    if texts.empty:
        raise CSEInputError("Invalid value for 'texts': no texts given")
    frame = texts.reset_index(drop=True)
    position = labels.index(column)
    values = frame.iloc[:, position].map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else v)
    bad = next((i for i, v in enumerate(values) if not isinstance(v, str)), None)
    if bad is not None:
        raise TypeError(f"Invalid type for 'texts': row {bad} of the text column is {type(values[bad]).__name__}, "
                        f"expected str")
    others = _kept_columns(frame.iloc[:, [i for i in range(len(labels)) if i != position]], "texts", columns)
    others.insert(0, "text", values.astype(object))
    for name in others.columns:
        if others[name].dtype == object:
            _check_column(others[name], "texts")
    return drop_empty(others, "texts")


def _check_column(values: pd.Series, source: str) -> None:
    strings = [v for v in values if isinstance(v, str)]
    if is_utf8("".join(strings)):
        return
    row = next(i for i, v in enumerate(values) if isinstance(v, str) and not is_utf8(v))
    raise CSEInputError(f"Invalid value for {source!r}: row {row} of {values.name!r} holds an unpaired surrogate "
                        f"(e.g. '\\ud800'), which is not a character")


def drop_empty(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Skip empty and whitespace-only texts with one warning; error if every text is empty."""
    empty = frame["text"].map(str.strip) == ""
    if empty.all():
        raise CSEInputError(f"{source}: every text is empty")
    if empty.any():
        rows = frame.index[empty.to_numpy()]
        shown = ", ".join(map(str, rows[:5])) + (" ..." if len(rows) > 5 else "")
        warnings.warn(f"{source}: skipped {len(rows)} empty text(s) at row(s) {shown}", stacklevel=3)
    return frame.loc[~empty.to_numpy()]

