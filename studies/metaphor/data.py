"""The metaphor data sets and the matched metaphor/literal pairs drawn from VUA.

Files (see ``shared/data/metaphor/README.md``; the project never copies them):

- ``moh-x.csv`` (UTF-8): MOH-X (Mohammad, Shutova & Turney 2016), one target verb
  per sentence, ``label`` 1 metaphorical / 0 literal, ``verb_idx`` the 0-based index
  of the target in ``sentence.split(" ")`` after stripping the leading space.
- ``vua-seq-test.csv`` (UTF-8; train and val are cp1252): the VU Amsterdam Metaphor
  Corpus (Steen et al. 2010) in the sequence split of Gao et al. (2018), every word
  labelled (``label_seq``) and POS-tagged (``pos_seq``, universal tags).

Both loaders return a frame ready for `cse.compute`: column ``text``, per-text
fields, and per-word list columns (``word_str``, the lowercased word form; VUA's
``label_seq`` and ``pos_seq``) that the pipeline turns into per-token coordinates.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from cse.errors import CSEInputError
from cse.params import resolve_seed

MOHX_FILE = "moh-x.csv"
VUA_TEST_FILE = "vua-seq-test.csv"
FILE_ENCODINGS = {MOHX_FILE: "utf-8", VUA_TEST_FILE: "utf-8"}

#: POS tags of the matched pairs by default: the content words. Prepositions are the
#: most frequent metaphorical words in VUA ("in", "on" in temporal or abstract
#: senses) and would otherwise dominate the pairs.
CONTENT_POS = ("VERB", "NOUN", "ADJ", "ADV")


def data_file(data_dir, name: str) -> Path:
    """Path of data file `name` in `data_dir`.

    Raises
    ------
    CSEInputError
        If `data_dir` is not a folder or the file is missing.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise CSEInputError(
            f"Invalid value for '--data': {str(data_dir)!r} is not a folder; give the folder holding "
            f"{MOHX_FILE} and {VUA_TEST_FILE} (e.g. ../shared/data/metaphor)"
        )
    path = data_dir / name
    if not path.is_file():
        raise CSEInputError(f"Invalid value for '--data': {str(data_dir)!r} has no {name}; give the metaphor data folder")
    return path


def sha256(path) -> str:
    """SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_csv(path: Path) -> pd.DataFrame:
    encoding = FILE_ENCODINGS.get(path.name, "utf-8")
    try:
        return pd.read_csv(path, encoding=encoding, keep_default_na=False)
    except UnicodeDecodeError as exc:
        raise CSEInputError(f"{path}: not valid {encoding} ({exc.reason} at byte {exc.start})") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise CSEInputError(f"{path}: not valid CSV ({str(exc).splitlines()[0]})") from None


def _require(frame: pd.DataFrame, path: Path, columns) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise CSEInputError(f"{path}: missing column(s) {', '.join(missing)}; is it the published file?")


def load_mohx(data_dir, limit: int | None = None) -> pd.DataFrame:
    """MOH-X as a `cse.compute` input frame, one row per sentence.

    Parameters
    ----------
    data_dir : str or Path
        Folder holding ``moh-x.csv``.
    limit : int, optional
        Keep the first `limit` sentences (development runs).

    Returns
    -------
    pandas.DataFrame
        Columns ``text`` (the sentence, leading space stripped, words joined by one
        space), ``row`` (0-based CSV row), ``verb`` (the target verb's lemma, the
        exchangeability block), ``verb_idx`` (int), ``label`` (int, 1 metaphorical)
        and ``word_str`` (list of lowercased words).

    Raises
    ------
    CSEInputError
        Missing file or columns, or a ``verb_idx`` outside its sentence.
    """
    path = data_file(data_dir, MOHX_FILE)
    raw = _read_csv(path)
    _require(raw, path, ("verb", "sentence", "verb_idx", "label"))
    if limit is not None:
        raw = raw.iloc[:limit]
    words = raw["sentence"].astype(str).str.strip().str.split()
    verb_idx = pd.to_numeric(raw["verb_idx"], errors="coerce")
    bad = verb_idx.isna() | (verb_idx < 0) | (verb_idx >= words.map(len))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise CSEInputError(f"{path}: row {row} has verb_idx {raw['verb_idx'].iloc[row]!r} outside its sentence")
    return pd.DataFrame({
        "text": words.map(" ".join).to_numpy(),
        "row": np.arange(len(raw), dtype=np.int64),
        "verb": raw["verb"].astype(str).to_numpy(),
        "verb_idx": verb_idx.astype(np.int64).to_numpy(),
        "label": pd.to_numeric(raw["label"]).astype(np.int64).to_numpy(),
        "word_str": words.map(lambda ws: [w.lower() for w in ws]).to_numpy(),
    })


def load_vua(data_dir, limit: int | None = None) -> pd.DataFrame:
    """The VUA test split as a `cse.compute` input frame, one row per sentence.

    Parameters
    ----------
    data_dir : str or Path
        Folder holding ``vua-seq-test.csv``.
    limit : int, optional
        Keep the first `limit` sentences.

    Returns
    -------
    pandas.DataFrame
        Columns ``text``, ``row`` (0-based CSV row), ``txt_id``, ``sen_ix``,
        ``genre``, ``n_words`` and the per-word lists ``label_seq`` (int),
        ``pos_seq`` (str) and ``word_str`` (lowercased words).

    Raises
    ------
    CSEInputError
        Missing file or columns, or label/POS lists that do not match the words.
    """
    path = data_file(data_dir, VUA_TEST_FILE)
    raw = _read_csv(path)
    _require(raw, path, ("txt_id", "sen_ix", "sentence", "label_seq", "pos_seq", "genre"))
    if limit is not None:
        raw = raw.iloc[:limit]
    words = raw["sentence"].astype(str).str.split()
    labels = raw["label_seq"].map(ast.literal_eval)
    pos = raw["pos_seq"].map(ast.literal_eval)
    n = words.map(len)
    bad = (labels.map(len) != n) | (pos.map(len) != n)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise CSEInputError(f"{path}: row {row} has label_seq/pos_seq of another length than its sentence")
    frame = pd.DataFrame({
        "text": words.map(" ".join).to_numpy(),
        "row": np.arange(len(raw), dtype=np.int64),
        "txt_id": raw["txt_id"].astype(str).to_numpy(),
        "sen_ix": pd.to_numeric(raw["sen_ix"]).astype(np.int64).to_numpy(),
        "genre": raw["genre"].astype(str).to_numpy(),
        "n_words": n.astype(np.int64).to_numpy(),
        "label_seq": labels.map(lambda v: [int(x) for x in v]).to_numpy(),
        "pos_seq": pos.map(lambda v: [str(x) for x in v]).to_numpy(),
        "word_str": words.map(lambda ws: [w.lower() for w in ws]).to_numpy(),
    })
    return frame.loc[frame["n_words"] > 0].reset_index(drop=True)


def vua_words(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per word of a `load_vua` frame: ``row, word, form, pos, label, n_words, txt_id, genre``."""
    n = frame["n_words"].to_numpy()
    return pd.DataFrame({
        "row": np.repeat(frame["row"].to_numpy(), n),
        "word": np.concatenate([np.arange(k) for k in n]).astype(np.int64),
        "form": np.concatenate(frame["word_str"].map(np.asarray).to_list()),
        "pos": np.concatenate(frame["pos_seq"].map(np.asarray).to_list()),
        "label": np.concatenate(frame["label_seq"].map(np.asarray).to_list()).astype(np.int64),
        "n_words": np.repeat(n, n),
        "txt_id": np.repeat(frame["txt_id"].to_numpy(), n),
        "genre": np.repeat(frame["genre"].to_numpy(), n),
    })


def build_pairs(words: pd.DataFrame, n_pairs: int = 200, seed=0, max_length_diff: int = 5,
                pos=CONTENT_POS) -> pd.DataFrame:
    """Draw matched metaphor/literal word pairs from VUA, reproducibly.

    Each pair is a metaphorical word and a literal word with the same lowercased
    form and the same POS tag, from different sentences whose lengths differ by
    at most `max_length_diff` words. Every word is used in at most one pair.

    Parameters
    ----------
    words : pandas.DataFrame
        From `vua_words`.
    n_pairs : int
        Number of pairs to draw (fewer when fewer can be matched).
    seed : int or numpy.random.Generator
        Seed of the draw; the same seed and data give the same pairs.
    max_length_diff : int
        Largest allowed difference of sentence lengths, in words.
    pos : sequence of str or None
        POS tags eligible for pairing (None: every tag except PUNCT).

    Returns
    -------
    pandas.DataFrame
        One row per pair, ordered by ``pair`` (0..n-1): ``pair``, ``form``, ``pos``
        and for each side (``met_``, ``lit_``) the ``row``, ``word``, ``n_words``,
        ``txt_id`` and ``genre``.

    Raises
    ------
    CSEInputError
        If `n_pairs` or `max_length_diff` is not a non-negative integer.

    Notes
    -----
    The draw: (1) candidate literal partners of every metaphorical word are all
    literal words with the same form and POS from another sentence within the
    length limit; (2) the metaphorical words with at least one candidate are put in
    a random order, and every candidate gets a random key; (3) going through the
    metaphorical words in that order, each takes the candidate with the smallest
    key that no earlier pair has used, until `n_pairs` pairs are drawn. Sorting
    the inputs first makes the result independent of the row order of `words`.
    """
    for name, value in (("n_pairs", n_pairs), ("max_length_diff", max_length_diff)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise CSEInputError(f"Invalid value for {name!r}: expected an integer >= 0, got {value!r}")
    rng = resolve_seed(seed)
    # 1. Eligible words, in a canonical order.
    keep = words["pos"] != "PUNCT" if pos is None else words["pos"].isin(list(pos))
    eligible = words.loc[keep].sort_values(["row", "word"], kind="stable").reset_index(drop=True)
    met = eligible.loc[eligible["label"] == 1]
    lit = eligible.loc[eligible["label"] == 0]
    cand = met.reset_index().merge(lit.reset_index(), on=["form", "pos"], suffixes=("_m", "_l"))
    cand = cand.loc[(cand["row_m"] != cand["row_l"])
                    & ((cand["n_words_m"] - cand["n_words_l"]).abs() <= max_length_diff)]
    cand = cand.sort_values(["index_m", "index_l"], kind="stable").reset_index(drop=True)
    # 2. Random order of the metaphorical words and random keys of their candidates.
    met_ids = np.unique(cand["index_m"].to_numpy())
    order = rng.permutation(len(met_ids))
    rank = pd.Series(np.empty(len(met_ids), dtype=np.int64), index=met_ids)
    rank.iloc[order] = np.arange(len(met_ids))
    cand["rank"] = rank.loc[cand["index_m"].to_numpy()].to_numpy()
    cand["key"] = rng.random(len(cand))
    cand = cand.sort_values(["rank", "key"], kind="stable")
    # 3. Greedy: each metaphorical word takes its first unused literal candidate.
    used, chosen = set(), []
    for index_m, group in cand.groupby("rank", sort=True)["index_l"]:
        if len(chosen) >= n_pairs:
            break
        for row_position, index_l in group.items():
            if index_l not in used:
                used.add(index_l)
                chosen.append(row_position)
                break
    picked = cand.loc[chosen]
    out = pd.DataFrame({"pair": np.arange(len(picked), dtype=np.int64),
                        "form": picked["form"].to_numpy(), "pos": picked["pos"].to_numpy()})
    for side, suffix in (("met", "_m"), ("lit", "_l")):
        for field in ("row", "word", "n_words", "txt_id", "genre"):
            out[f"{side}_{field}"] = picked[f"{field}{suffix}"].to_numpy()
    return out
