"""Reading a labelled corpus into the input frame of `cse.compute` (see `corpora` for the formats).

Words are the whitespace-separated words of the sentence (``sentence.split()``), so
runs of spaces, tabs and line breaks inside a quoted field all separate words, and the
text given to the model is the words joined by one space. Rows that cannot be used (an
empty sentence, a target index outside its sentence, a label sequence of another
length than the sentence, an empty label) are left out and listed in the report;
labels that are not labels are an error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cse.errors import CSEInputError
from cse.io import input_sha256, table_format

from .corpora import (
    TARGET_WORD,
    Corpus,
    CorpusSpec,
    decode,
    detect_format,
    parse_labels,
    read_columnar,
    read_table,
    split_sequence,
)


def read_corpus(spec: CorpusSpec, limit: int | None = None) -> Corpus:
    """Read, check and prepare one corpus.

    Parameters
    ----------
    spec : CorpusSpec
        From `corpus_specs`.
    limit : int, optional
        Use the first `limit` data rows only (development runs).

    Returns
    -------
    Corpus

    Raises
    ------
    CSEInputError
        One line: an unreadable file, a wrong encoding, a table in neither format,
        labels that are not labels, or no usable row.
    """
    path = Path(spec.path)
    columnar = table_format(path)
    if columnar is not None:
        if spec.encoding is not None:
            raise CSEInputError(f"Invalid value for '--encoding': corpus {spec.name!r} is a "
                                f"{'Parquet file' if columnar == 'parquet' else 'datasets folder'}, whose text is "
                                f"UTF-8 by definition; --encoding applies to CSV/TSV corpora")
        table, encoding, note = read_columnar(path, columnar), "utf-8", columnar
    else:
        if not path.is_file():
            raise CSEInputError(f"Invalid value for '--corpus': {str(path)!r} (corpus {spec.name!r}) is not a file")
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise CSEInputError(f"{path}: cannot be read ({exc.strerror})") from None
        text, encoding, note = decode(raw, path, spec.encoding, spec.name)
        table = read_table(path, text)
    kind, columns = detect_format(table, path, dict(spec.columns))
    n_rows = len(table)
    if limit is not None:
        table = table.iloc[:limit]
    build = _target_frame if kind == TARGET_WORD else _sequence_frame
    frame, dropped = build(table, columns, path)
    if frame.empty:
        reasons = "; ".join(f"{k}: {len(v)}" for k, v in dropped.items()) or "no data rows"
        raise CSEInputError(f"{path}: no usable row ({reasons}); check the file and its columns")
    return Corpus(spec.name, path, kind, encoding, note, columns, frame, min(n_rows, len(table)),
                  {k: v for k, v in dropped.items() if v}, input_sha256(path))


def _words(sentences: pd.Series) -> pd.Series:
    return sentences.astype(str).map(str.split)


def _target_frame(table: pd.DataFrame, columns: dict, path) -> tuple[pd.DataFrame, dict]:
    """Frame of a target-word corpus: ``text, row, exchangeability_block, target, label, word_str``."""
    words = _words(table[columns["sentence"]])
    rows = np.arange(len(table), dtype=np.int64)
    target = pd.to_numeric(table[columns["target"]].str.strip(), errors="coerce")
    label_cells = table[columns["label"]].astype(str).str.strip()
    n = words.map(len).to_numpy()
    whole = target.notna().to_numpy() & (target.fillna(-1).to_numpy() % 1 == 0)
    t = target.fillna(-1).to_numpy().astype(np.int64)
    empty = n == 0
    outside = ~empty & (~whole | (t < 0) | (t >= n))
    no_label = ~empty & ~outside & (label_cells == "").to_numpy()
    keep = ~(empty | outside | no_label)
    if not whole.any() and len(table):
        raise CSEInputError(f"{path}: column {columns['target']!r} holds no word index (integers); name the target "
                            f"index column with --column NAME.target=COLUMN")
    words, t, rows = words[keep], t[keep], rows[keep]
    labels = parse_labels(label_cells[keep], path, columns["label"], rows)
    forms = words.map(lambda ws: [w.lower() for w in ws])
    if columns.get("block"):
        block = table[columns["block"]].astype(str).str.strip().to_numpy()[keep]
    else:
        block = np.array([f[k] for f, k in zip(forms, t)], dtype=object)
    frame = pd.DataFrame({"text": words.map(" ".join).to_numpy(), "row": rows, "exchangeability_block": block,
                          "target": t, "label": labels, "word_str": forms.to_numpy()})
    dropped = {"empty sentence": _rows(empty), "target index missing or outside its sentence": _rows(outside),
               "empty label": _rows(no_label)}
    return frame, dropped


def _aligned(items: list, sentence: str, n_words: int) -> list | None:
    """`items` aligned to the sentence's words, or None.

    A sequence may count the empty strings of ``sentence.split(" ")`` (double spaces)
    as words; those items are dropped when that makes the lengths agree.
    """
    if len(items) == n_words:
        return items
    parts = sentence.strip().split(" ")
    if len(items) == len(parts):
        kept = [item for part, item in zip(parts, items) if part.strip()]
        if len(kept) == n_words:
            return kept
    return None


def _sequence_frame(table: pd.DataFrame, columns: dict, path) -> tuple[pd.DataFrame, dict]:
    """Frame of a sequence corpus (see `Corpus.frame`)."""
    sentences = table[columns["sentence"]].astype(str).tolist()
    has_pos = "pos_seq" in columns
    pos_cells = table[columns["pos_seq"]].tolist() if has_pos else [None] * len(table)
    keep, labels, tags = [], [], []
    dropped = {"empty sentence": [], "label_seq of another length than the sentence": [],
               "pos_seq of another length than the sentence": []}
    for row, (sentence, cell, pos_cell) in enumerate(zip(sentences, table[columns["label_seq"]], pos_cells)):
        n = len(sentence.split())
        items = _aligned(split_sequence(cell), sentence, n)
        pos = _aligned(split_sequence(pos_cell), sentence, n) if has_pos else [""] * n
        if n == 0:
            dropped["empty sentence"].append(row)
        elif items is None:
            dropped["label_seq of another length than the sentence"].append(row)
        elif pos is None:
            dropped["pos_seq of another length than the sentence"].append(row)
        else:
            keep.append(row)
            labels.append(items)
            tags.append(pos)
    rows = np.asarray(keep, dtype=np.int64)
    sizes = np.array([len(v) for v in labels], dtype=np.int64)
    flat = parse_labels(pd.Series([x for v in labels for x in v], dtype=object), path, columns["label_seq"],
                        np.repeat(rows, sizes))
    words = _words(table[columns["sentence"]].iloc[rows]) if len(rows) else pd.Series([], dtype=object)
    forms = [[w.lower() for w in ws] for ws in words]
    content = [[int(any(ch.isalnum() for ch in w) and p != "PUNCT") for w, p in zip(ws, ps)]
               for ws, ps in zip(forms, tags)]
    block = (table[columns["block"]].astype(str).str.strip().to_numpy()[rows] if columns.get("block")
             else np.array([f"row {r}" for r in rows], dtype=object))
    label_lists = [v.tolist() for v in np.split(flat, np.cumsum(sizes)[:-1])] if len(rows) else []
    frame = pd.DataFrame({"text": [" ".join(ws) for ws in words], "row": rows, "exchangeability_block": block,
                          "n_words": sizes, "label_seq": label_lists, "content": content, "word_str": forms})
    if has_pos:
        frame["pos_seq"] = tags
    if columns.get("genre"):
        frame["genre"] = table[columns["genre"]].astype(str).str.strip().to_numpy()[rows]
    return frame, dropped


def _rows(mask: np.ndarray) -> list[int]:
    return np.flatnonzero(mask).tolist()


def sequence_words(corpus: Corpus) -> pd.DataFrame:
    """One row per word of a sequence corpus.

    Returns
    -------
    pandas.DataFrame
        ``corpus, row, word, form, pos, label, content, n_words, block, genre``; ``pos``
        and ``genre`` are ``""`` where the corpus has none.
    """
    frame = corpus.frame
    n = frame["n_words"].to_numpy()
    pos = frame["pos_seq"] if "pos_seq" in frame else frame["word_str"].map(lambda ws: [""] * len(ws))
    genre = frame["genre"].to_numpy() if "genre" in frame else np.full(len(frame), "", dtype=object)
    return pd.DataFrame({
        "corpus": corpus.name,
        "row": np.repeat(frame["row"].to_numpy(), n),
        "word": np.concatenate([np.arange(k) for k in n]).astype(np.int64),
        "form": np.concatenate(frame["word_str"].map(np.asarray).to_list()).astype(object),
        "pos": np.concatenate(pos.map(lambda v: np.asarray(v, dtype=object)).to_list()),
        "label": np.concatenate(frame["label_seq"].map(np.asarray).to_list()).astype(np.int64),
        "content": np.concatenate(frame["content"].map(np.asarray).to_list()).astype(bool),
        "n_words": np.repeat(n, n),
        "block": np.repeat(frame["exchangeability_block"].to_numpy(), n),
        "genre": np.repeat(genre, n),
    })
