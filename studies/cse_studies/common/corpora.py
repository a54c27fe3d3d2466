"""Labelled metaphor corpora for the studies: which files, in which format, read how.

Two formats are used in the field, and both are detected from the columns:

- **target-word** files (MOH-X, TroFi, ...): one labelled target word per sentence.
  Roles: ``sentence``, ``target`` (0-based index of the target among the sentence's
  whitespace-separated words), ``label`` (metaphorical 1 / literal 0) and, optional,
  ``block`` (the exchangeability block, e.g. the verb's lemma; default: the target
  word's lowercased form).
- **sequence** files (VUA in the split of Gao et al. 2018): every word labelled.
  Roles: ``sentence``, ``label_seq`` (one label per word), optional ``pos_seq`` (one
  tag per word), ``genre`` and ``block`` (a text id such as ``txt_id``; default: each
  sentence is its own block).

Every column is found by its usual names (`COLUMN_NAMES`, case-insensitive) or named
by the user (``--column NAME.ROLE=COLUMN``). Labels may be 0/1, booleans or the words
of `LABEL_WORDS`; sequences may be written as Python-style lists (``[0, 1]``,
``['NOUN', 'VERB']``) or separated by spaces or commas; they are parsed by splitting,
never evaluated. The encoding is taken from the user or detected: a byte-order mark,
else UTF-8, else Windows-1252 (cp1252), the encoding of the published VUA train and
validation splits. A corpus may also be a Parquet file or a Hugging Face ``datasets``
folder of one split (read by `cse.io.read_table`, with pyarrow alone), whose list
columns (``label_seq`` as a list of ints) serve as sequences.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from cse.errors import CSEInputError
import cse.io
from cse.io import table_format

TARGET_WORD = "target-word"
SEQUENCE = "sequence"

#: Roles of each format: (required, optional).
FORMAT_ROLES = {
    TARGET_WORD: (("sentence", "target", "label"), ("block",)),
    SEQUENCE: (("sentence", "label_seq"), ("pos_seq", "genre", "block")),
}
ROLES = ("sentence", "target", "label", "label_seq", "pos_seq", "genre", "block")

#: Usual column names of each role, in order of preference (compared case-insensitively).
COLUMN_NAMES = {
    "sentence": ("sentence", "text", "sent"),
    "target": ("verb_idx", "target_idx", "target_index", "word_idx", "word_index", "w_index", "idx"),
    "label": ("label", "metaphor", "is_metaphor", "metaphorical", "label_bin"),
    "label_seq": ("label_seq", "labels", "label_sequence", "labels_seq"),
    "pos_seq": ("pos_seq", "pos", "pos_tags", "upos"),
    "genre": ("genre", "register", "domain"),
}
#: Usual names of the exchangeability block, per format.
BLOCK_NAMES = {
    TARGET_WORD: ("verb", "lemma", "target_lemma", "target_word", "target"),
    SEQUENCE: ("txt_id", "text_id", "doc_id", "document_id", "document", "doc", "fragment"),
}

#: Accepted spellings of the two labels (after stripping and lowercasing).
LABEL_WORDS = {
    1: ("1", "1.0", "true", "t", "yes", "y", "metaphor", "metaphorical", "met"),
    0: ("0", "0.0", "false", "f", "no", "n", "literal", "lit"),
}
_LABELS = {word: value for value, words in LABEL_WORDS.items() for word in words}

#: The default corpora read from ``--data``: name -> file.
DEFAULT_FILES = {"mohx": "moh-x.csv", "vua": "vua-seq-test.csv"}
#: Names a corpus may not take (used for the study's own tests).
RESERVED_NAMES = ("pairs",)
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,39}")
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


@dataclasses.dataclass(frozen=True)
class CorpusSpec:
    """A corpus named by the user: name, file, encoding (None: detect) and column names by role."""

    name: str
    path: Path
    encoding: str | None = None
    columns: tuple = ()  # ((role, column), ...)


@dataclasses.dataclass
class Corpus:
    """A corpus read and checked, with its `cse.compute` input frame.

    Attributes
    ----------
    name, path : str, Path
    kind : {'target-word', 'sequence'}
    encoding : str
        The encoding used; ``encoding_note`` says whether it was given or detected.
    columns : dict of str to str
        Role -> column of the file.
    frame : pandas.DataFrame
        The input of `cse.compute`, one row per sentence: ``text`` (words joined by
        one space), ``row`` (0-based data row of the file), ``exchangeability_block``
        and, per format, ``target`` and ``label`` (int64), or ``n_words`` and the
        per-word lists ``label_seq`` (int), ``content`` (1 for words that are not
        punctuation), ``pos_seq`` and ``genre`` where the file has them; always
        ``word_str`` (lowercased words).
    n_rows : int
        Data rows read (after ``limit``).
    dropped : dict of str to list of int
        Reason -> data rows (0-based) left out.
    sha256 : str
        Of the file's bytes.
    """

    name: str
    path: Path
    kind: str
    encoding: str
    encoding_note: str
    columns: dict
    frame: pd.DataFrame
    n_rows: int
    dropped: dict
    sha256: str

    @property
    def block_label(self) -> str:
        """What the exchangeability blocks are, in words (the column, or the default)."""
        column = self.columns.get("block")
        if column:
            return f"`{column}`"
        return "the target word's form" if self.kind == TARGET_WORD else "each sentence"

    def describe(self) -> str:
        """One line for a report: file, hash, format, encoding, rows, columns and dropped rows."""
        roles = ", ".join(f"{role} `{col}`" for role, col in self.columns.items())
        text = (f"`{self.name}`: `{self.path.name}` (SHA-256 `{self.sha256}`), {self.kind} format, "
                f"{self.encoding} ({self.encoding_note}), {len(self.frame)} sentences of {self.n_rows} rows read; "
                f"columns: {roles}")
        for reason, rows in self.dropped.items():
            shown = ", ".join(str(r) for r in rows[:5]) + (" ..." if len(rows) > 5 else "")
            text += f"; {len(rows)} rows left out ({reason}: data rows {shown})"
        return text


# --------------------------------------------------------------------------- options


def corpus_specs(data=None, corpora=(), encodings=(), columns=()) -> list[CorpusSpec]:
    """The corpora of a study from its options.

    Parameters
    ----------
    data : str or Path, optional
        Folder holding ``moh-x.csv`` and ``vua-seq-test.csv`` (`DEFAULT_FILES`): adds
        the corpora ``mohx`` and ``vua``.
    corpora : sequence of str
        ``NAME=PATH`` (``--corpus``), each a CSV/TSV or Parquet file, or a ``datasets``
        folder (of one split), in one of the two formats.
    encodings : sequence of str
        ``NAME=ENCODING`` (``--encoding``), e.g. ``vua_train=cp1252``; default: detected.
    columns : sequence of str
        ``NAME.ROLE=COLUMN`` (``--column``), e.g. ``trofi.target=word_index``; roles:
        `ROLES`.

    Returns
    -------
    list of CorpusSpec
        The ``--data`` corpora first, then the ``--corpus`` ones in the order given.

    Raises
    ------
    CSEInputError
        One line naming the option: a malformed entry, a bad or repeated name, a
        missing file or folder, an unknown encoding or role, or no corpus at all.
    """
    specs = {}
    if data is not None:
        folder = Path(data)
        if not folder.is_dir():
            raise CSEInputError(f"Invalid value for '--data': {str(folder)!r} is not a folder; give the folder "
                                f"holding {' and '.join(DEFAULT_FILES.values())} (e.g. ../shared/data/metaphor)")
        for name, file in DEFAULT_FILES.items():
            if not (folder / file).is_file():
                raise CSEInputError(f"Invalid value for '--data': {str(folder)!r} has no {file}; give the metaphor "
                                    f"data folder, or name the corpora with --corpus NAME=PATH")
            specs[name] = CorpusSpec(name, folder / file)
    for entry in corpora:
        name, path = _split_entry("--corpus", entry, "NAME=PATH (e.g. mohx=moh-x.csv)")
        if name in specs:
            raise CSEInputError(f"Invalid value for '--corpus': the name {name!r} is given twice"
                                + (" (--data adds 'mohx' and 'vua')" if name in DEFAULT_FILES else ""))
        path = Path(path).expanduser()
        if not path.is_file() and table_format(path) != "datasets":
            raise CSEInputError(f"Invalid value for '--corpus': {str(path)!r} (corpus {name!r}) is not a file")
        specs[name] = CorpusSpec(name, path)
    if not specs:
        raise CSEInputError("Missing corpora: give --data DIR (MOH-X and the VUA test split) and/or "
                            "--corpus NAME=PATH (repeatable)")
    for entry in encodings:
        name, encoding = _split_entry("--encoding", entry, "NAME=ENCODING (e.g. vua_train=cp1252)", specs)
        try:
            encoding = codecs.lookup(encoding).name
        except LookupError:
            raise CSEInputError(f"Invalid value for '--encoding': unknown encoding {encoding!r} for corpus "
                                f"{name!r} (e.g. utf-8, cp1252, utf-16)") from None
        specs[name] = dataclasses.replace(specs[name], encoding=encoding)
    for entry in columns:
        key, column = _split_entry("--column", entry, "NAME.ROLE=COLUMN (e.g. trofi.target=word_index)")
        name, _, role = key.partition(".")
        if name not in specs:
            raise CSEInputError(f"Invalid value for '--column': no corpus named {name!r} (given: {', '.join(specs)})")
        if role not in ROLES:
            raise CSEInputError(f"Invalid value for '--column': unknown role {role!r} in {entry!r}; roles: "
                                f"{', '.join(ROLES)}")
        spec = specs[name]
        specs[name] = dataclasses.replace(spec, columns=tuple(c for c in spec.columns if c[0] != role)
                                          + ((role, column),))
    return list(specs.values())


def _split_entry(option: str, entry, form: str, names=None) -> tuple[str, str]:
    text = str(entry)
    name, sep, value = text.partition("=")
    name, value = name.strip(), value.strip()
    if not sep or not name or not value:
        raise CSEInputError(f"Invalid value for {option!r}: expected {form}, got {text!r}")
    bare = name.partition(".")[0] if option == "--column" else name
    if not _NAME.fullmatch(bare):
        raise CSEInputError(f"Invalid value for {option!r}: corpus name {bare!r} must start with a letter and "
                            f"hold only letters, digits, '_' or '-' (at most 40)")
    if bare in RESERVED_NAMES:
        raise CSEInputError(f"Invalid value for {option!r}: the corpus name {bare!r} is reserved; choose another")
    if names is not None and name not in names:
        raise CSEInputError(f"Invalid value for {option!r}: no corpus named {name!r} (given: {', '.join(names)})")
    return name, value


# --------------------------------------------------------------------------- reading


def decode(raw: bytes, path, encoding: str | None, name: str) -> tuple[str, str, str]:
    """Decode a file's bytes: the given encoding, or a BOM, else UTF-8, else cp1252.

    Returns
    -------
    text, encoding, note : str
        ``note`` says how the encoding was chosen.

    Raises
    ------
    CSEInputError
        The bytes are not valid in the given encoding (or, detecting, in UTF-8 nor
        cp1252), or hold NUL characters (UTF-16 without a byte-order mark).
    """
    fix = f"give the file's encoding with --encoding {name}=ENCODING"
    if encoding is not None:
        candidates, note = [encoding], "given"
    else:
        bom = next((enc for mark, enc in _BOMS if raw.startswith(mark)), None)
        candidates, note = ([bom], "byte-order mark") if bom else (["utf-8", "cp1252"], "detected")
    error = None
    for enc in candidates:
        try:
            text = raw.decode(enc)
        except UnicodeDecodeError as exc:
            error = error or exc
            continue
        if "\x00" in text:
            raise CSEInputError(f"{path}: holds NUL characters when read as {enc} (UTF-16 without a byte-order "
                                f"mark?); {fix}")
        return text, enc, note if (note != "detected" or enc == "utf-8") else "detected: not valid UTF-8"
    line = raw.count(b"\n", 0, error.start) + 1
    tried = " nor ".join(candidates)
    raise CSEInputError(f"{path}: not valid {tried} (byte 0x{raw[error.start]:02x} on line {line}); {fix}")


def read_table(path: Path, text: str) -> pd.DataFrame:
    """Parse CSV (or TSV) text into a frame of strings; quoted fields may span lines."""
    first = text.split("\n", 1)[0]
    if path.suffix.lower() in (".tsv", ".tab"):
        sep = "\t"
    else:
        counts = {s: first.count(s) for s in (",", "\t", ";", "|")}
        sep = max(counts, key=counts.get) if max(counts.values()) else ","
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, na_filter=False,
                            quoting=csv.QUOTE_MINIMAL, skipinitialspace=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, csv.Error) as exc:
        raise CSEInputError(f"{path}: not a readable CSV file ({str(exc).strip().splitlines()[0]})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def read_columnar(path: Path, fmt: str) -> pd.DataFrame:
    """A Parquet file or ``datasets`` folder as the frame `read_table` gives for CSV text.

    Cells become the text a CSV would hold (numbers and booleans as written, missing
    values as ``""``), except list cells (``label_seq`` stored as a list), which stay
    lists; the file is read by `cse.io.read_table` (pyarrow alone, nothing in a folder run).
    """
    frame = cse.io.read_table(path, fmt)
    for k in range(frame.shape[1]):
        frame.isetitem(k, frame.iloc[:, k].map(_as_text).astype(object))
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _as_text(value):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return value if isinstance(value, list) else str(value)


def detect_format(frame: pd.DataFrame, path, given: dict) -> tuple[str, dict]:
    """The format of a table and its columns by role.

    Parameters
    ----------
    frame : pandas.DataFrame
    path : Path
        For messages.
    given : dict of str to str
        Role -> column named by the user.

    Returns
    -------
    kind : {'target-word', 'sequence'}
    columns : dict of str to str
        Role -> column, for the roles found.

    Raises
    ------
    CSEInputError
        A named column that does not exist, or a table in neither format (naming
        what is missing for each).
    """
    lower = {c.lower(): c for c in frame.columns}
    for role, column in given.items():
        if column not in frame.columns:
            raise CSEInputError(f"{path}: no column {column!r} (given for {role}); columns: {_names(frame)}")
    found = {}
    order = (TARGET_WORD, SEQUENCE) if {"target", "label"} & set(given) else (SEQUENCE, TARGET_WORD)
    for kind in order:
        required, optional = FORMAT_ROLES[kind]
        cols = {}
        for role in required + optional:
            names = BLOCK_NAMES[kind] if role == "block" else COLUMN_NAMES[role]
            cols[role] = given.get(role) or next((lower[n] for n in names if n in lower), None)
        if kind == TARGET_WORD and cols["target"] is None:
            cols["target"] = _index_column(frame)
        if cols["block"] in {col for role, col in cols.items() if role != "block"}:
            cols["block"] = None  # a column with another role is not also the block
        found[kind] = cols
        if all(cols[r] for r in required):
            return kind, {role: col for role, col in cols.items() if col}
    missing = {kind: [r for r in FORMAT_ROLES[kind][0] if not found[kind][r]] for kind in found}
    raise CSEInputError(
        f"{path}: neither a target-word file (sentence, target word index such as verb_idx, label; missing "
        f"{', '.join(missing[TARGET_WORD])}) nor a sequence file (sentence, label_seq; missing "
        f"{', '.join(missing[SEQUENCE])}); columns: {_names(frame)}; name them with --column NAME.ROLE=COLUMN")


def _index_column(frame: pd.DataFrame) -> str | None:
    hits = [c for c in frame.columns if c.lower().endswith(("_idx", "_index"))]
    return hits[0] if len(hits) == 1 else None


def _names(frame: pd.DataFrame, limit: int = 12) -> str:
    cols = [str(c) for c in frame.columns]
    return ", ".join(cols[:limit]) + (f" ... ({len(cols)} in all)" if len(cols) > limit else "")


def parse_labels(values: pd.Series, path, column: str, rows=None) -> np.ndarray:
    """0/1 labels from strings (`LABEL_WORDS`), int64.

    Raises
    ------
    CSEInputError
        Naming the first data row whose value is not a label.
    """
    keys = values.astype(str).str.strip().str.lower()
    mapped = keys.map(_LABELS)
    bad = mapped.isna().to_numpy()
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        row = k if rows is None else int(rows[k])
        raise CSEInputError(f"{path}: data row {row}: {column} {values.iloc[k]!r} is not a label; expected 0/1 "
                            f"(also true/false, yes/no, metaphor/literal)")
    return mapped.to_numpy(dtype=np.int64)


def split_sequence(cell) -> list[str]:
    """Items of a sequence cell: a list, or the text ``[0, 1]``, ``['A', 'B']``, ``0 1`` or ``0,1`` (never evaluated)."""
    if isinstance(cell, (list, tuple)):
        return [str(item).strip() for item in cell]
    text = str(cell).strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    items = text.split(",") if "," in text else text.split()
    items = [item.strip().strip("'\"").strip() for item in items]
    return [] if items == [""] else items
