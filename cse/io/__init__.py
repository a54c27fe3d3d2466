"""Reading inputs and writing and opening results, safely.

- `texts`: plain text, JSON Lines, CSV, Parquet and ``datasets`` inputs (`read_texts`;
  the columnar ones through `tables`, with pyarrow alone) and in-memory texts (`texts_frame`); `encoding`: byte-order marks and honest decoding errors; `columns`:
  input column names that cannot rewrite the schema, per-word list fields.
- `paths`: output safety — `check_output` before any work, `atomic_path` for every
  write, `is_package_result`, `check_file_kind` (``stat`` before ``open``).
- `results`: `write_result` (marked with `RESULT_MARKER`), `open_result` (codec, filter
  and dtype allow-list of `allowlist`, declared sizes within `limits`, chunks decoded
  within bounds by `bounded` and `decoding`, HDF5 checks in `hdf5`), `result_attrs`,
  `set_result_attrs`; `coords`: `check_coordinates` before a result's layers are used.
- `progress`: `silence_progress_bars` for ``-q``.
"""

from .allowlist import check_result_file
from .coords import check_coordinates
from .columns import parse_word_list, per_word_columns, rename_columns, word_spans
from .encoding import decode_text
from .paths import (
    RESULT_MARKER,
    atomic_path,
    check_file_kind,
    check_output,
    is_package_result,
    output_format,
    remove_path,
)
from .progress import silence_progress_bars
from .results import (
    NUL_ESCAPE_ATTR,
    escape_nul,
    open_result,
    result_attrs,
    set_result_attrs,
    unescape_nul,
    write_netcdf,
    write_result,
)
from .tables import input_sha256, read_table, table_format
from .texts import MAX_FIELD_CHARS, MAX_INPUT_COLUMNS, TEXT_FORMATS, read_texts, split_lines, texts_frame

__all__ = [
    "MAX_FIELD_CHARS",
    "MAX_INPUT_COLUMNS",
    "NUL_ESCAPE_ATTR",
    "RESULT_MARKER",
    "TEXT_FORMATS",
    "atomic_path",
    "check_coordinates",
    "check_file_kind",
    "check_output",
    "check_result_file",
    "decode_text",
    "escape_nul",
    "input_sha256",
    "is_package_result",
    "open_result",
    "output_format",
    "parse_word_list",
    "per_word_columns",
    "read_table",
    "read_texts",
    "remove_path",
    "rename_columns",
    "result_attrs",
    "set_result_attrs",
    "silence_progress_bars",
    "table_format",
    "split_lines",
    "texts_frame",
    "unescape_nul",
    "word_spans",
    "write_netcdf",
    "write_result",
]
