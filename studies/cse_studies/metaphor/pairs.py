"""Matched metaphor/literal word pairs drawn from every sequence corpus of a study.

As in the paper: a metaphorical and a literal word with the same lowercased form and
POS, from different sentences of similar length (200 pairs by default), tested with
paired sign flips. Words of corpora without POS tags are paired on their form only,
with other untagged words.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cse.errors import CSEInputError
from cse.params import resolve_seed

#: POS tags of the matched pairs by default: the content words. Prepositions are the
#: most frequent metaphorical words in VUA ("in", "on" in temporal or abstract
#: senses) and would otherwise dominate the pairs.
CONTENT_POS = ("VERB", "NOUN", "ADJ", "ADV")
SIDE_FIELDS = ("corpus", "row", "word", "n_words", "block", "genre")


def build_pairs(words: pd.DataFrame, n_pairs: int = 200, seed=0, max_length_diff: int = 5,
                pos=CONTENT_POS) -> pd.DataFrame:
    """Draw matched metaphor/literal word pairs, reproducibly.

    Each pair is a metaphorical word and a literal word with the same lowercased
    form and the same POS tag, from different sentences whose lengths differ by
    at most `max_length_diff` words. Every word is used in at most one pair.

    Parameters
    ----------
    words : pandas.DataFrame
        From `cse_studies.common.sequence_words` (one or several corpora
        concatenated): ``corpus, row, word, form, pos, label, content, n_words,
        block, genre``.
    n_pairs : int
        Number of pairs to draw (fewer when fewer can be matched).
    seed : int or numpy.random.Generator
        Seed of the draw; the same seed and data give the same pairs.
    max_length_diff : int
        Largest allowed difference of sentence lengths, in words.
    pos : sequence of str or None
        POS tags eligible for pairing (None: every tag except PUNCT). Untagged words
        (``pos == ""``) are eligible when they are content words (not punctuation).

    Returns
    -------
    pandas.DataFrame
        One row per pair, ordered by ``pair`` (0..n-1): ``pair``, ``form``, ``pos``
        and for each side (``met_``, ``lit_``) the ``corpus``, ``row``, ``word``,
        ``n_words``, ``block`` and ``genre``.

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
    # 1. Eligible words, in a canonical order, and the candidate partners.
    tagged = words["pos"] != "PUNCT" if pos is None else words["pos"].isin(list(pos))
    keep = tagged | ((words["pos"] == "") & words["content"].astype(bool))
    eligible = words.loc[keep].sort_values(["corpus", "row", "word"], kind="stable").reset_index(drop=True)
    met, lit = eligible.loc[eligible["label"] == 1], eligible.loc[eligible["label"] == 0]
    cand = met.reset_index().merge(lit.reset_index(), on=["form", "pos"], suffixes=("_m", "_l"))
    other = (cand["row_m"] != cand["row_l"]) | (cand["corpus_m"] != cand["corpus_l"])
    cand = cand.loc[other & ((cand["n_words_m"] - cand["n_words_l"]).abs() <= max_length_diff)]
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
    for _, group in cand.groupby("rank", sort=True)["index_l"]:
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
        for field in SIDE_FIELDS:
            out[f"{side}_{field}"] = picked[f"{field}{suffix}"].to_numpy()
    return out


def pair_sides(pairs: pd.DataFrame) -> pd.DataFrame:
    """One row per paired word: ``pair, side (1 metaphorical, 0 literal), corpus, row, word``."""
    return pd.concat([
        pd.DataFrame({"pair": pairs["pair"], "side": 1, "corpus": pairs["met_corpus"], "row": pairs["met_row"],
                      "word": pairs["met_word"]}),
        pd.DataFrame({"pair": pairs["pair"], "side": 0, "corpus": pairs["lit_corpus"], "row": pairs["lit_row"],
                      "word": pairs["lit_word"]}),
    ], ignore_index=True)


def pair_sentences(corpora: list, pairs: pd.DataFrame) -> pd.DataFrame:
    """The sentences of the pairs, from every sequence corpus, as one `cse.compute` input frame.

    Columns: ``text, corpus, row, exchangeability_block, n_words, label_seq, content,
    pos_seq`` (``""`` per word where a corpus has no tags) and ``word_str``; in corpus
    order, then row order.
    """
    sides = pair_sides(pairs)
    frames = []
    for corpus in corpora:
        rows = set(sides.loc[sides["corpus"] == corpus.name, "row"].tolist())
        part = corpus.frame.loc[corpus.frame["row"].isin(rows)]
        pos = part["pos_seq"] if "pos_seq" in part else part["word_str"].map(lambda ws: [""] * len(ws))
        frames.append(pd.DataFrame({
            "text": part["text"].to_numpy(), "corpus": corpus.name, "row": part["row"].to_numpy(),
            "exchangeability_block": part["exchangeability_block"].to_numpy(), "n_words": part["n_words"].to_numpy(),
            "label_seq": part["label_seq"].to_numpy(), "content": part["content"].to_numpy(),
            "pos_seq": pos.to_numpy(), "word_str": part["word_str"].to_numpy()}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def truncate_after(frame: pd.DataFrame, last_word) -> pd.DataFrame:
    """Cut every text after word ``last_word[i]`` (0-based), with its per-word lists.

    Byte-level BPE tokenizers split words at spaces before merging, so the tokens of
    the kept words are the same as in the whole sentence. Per-text fields are kept
    as they are (``n_words`` still gives the whole sentence's length).
    """
    last = np.asarray(last_word, dtype=np.int64)
    out = frame.copy()
    words = out["text"].str.split()
    out["text"] = [" ".join(w[:k + 1]) for w, k in zip(words, last)]
    for column in ("word_str", "label_seq", "pos_seq", "content"):
        if column in out.columns:
            out[column] = [list(v[:k + 1]) for v, k in zip(out[column], last)]
    return out


def last_paired_word(frame: pd.DataFrame, pairs: pd.DataFrame) -> np.ndarray:
    """For each row of a `pair_sentences` frame, the last of its words in a pair, int64."""
    sides = pair_sides(pairs)
    last = sides.groupby(["corpus", "row"])["word"].max()
    return last.reindex(pd.MultiIndex.from_arrays([frame["corpus"], frame["row"]])).to_numpy().astype(np.int64)
