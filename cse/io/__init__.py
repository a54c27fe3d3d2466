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

# The public face is small: the rest is imported here for the package's own modules.
__all__ = ["check_coordinates", "open_result", "read_texts", "texts_frame"]
