"""The token coordinates the tests select and group by, added to the CSE results.

- target-word corpora: ``target_token`` (1 on the first token of the target word),
  ``control_token`` (1 on the first token of the word before it), ``label_shuffled``
  (labels shuffled once across sentences within exchangeability blocks);
- sequence corpora: ``content_token`` (first token of every content word),
  ``control_label`` and ``control_token`` (the first token of the word before a
  content word, carrying that word's label), ``label_shuffled`` (content-word labels
  shuffled once within texts);
- pairs: ``pair``, ``pair_side``, ``ctrl_pair``, ``ctrl_side``, ``pair_side_shuffled``;
- everywhere: ``log_frequency`` (Zipf frequency of the word, `cse.stats.add_log_frequency`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from cse import stats

from .pairs import pair_sides


def shuffled_labels(labels, blocks, seed) -> np.ndarray:
    """`labels` shuffled once within each block, reproducibly.

    Parameters
    ----------
    labels, blocks : array-like, shape (n,)
    seed : int

    Returns
    -------
    ndarray, shape (n,)
        A permutation of `labels` that keeps every label inside its block.
    """
    labels = np.asarray(labels)
    codes = pd.factorize(np.asarray(blocks), sort=True)[0]
    rng = np.random.default_rng(seed)
    slots = np.lexsort((np.arange(len(codes)), codes))  # positions grouped by block
    draw = np.lexsort((rng.random(len(codes)), codes))  # a random order within each block
    out = np.empty_like(labels)
    out[slots] = labels[draw]
    return out


def _word_starts(ds: xr.Dataset) -> np.ndarray:
    return np.asarray(ds["is_word_start"].values, dtype=bool) & ~np.asarray(ds["is_special"].values, dtype=bool)


def prepare_target_word(ds: xr.Dataset, seed: int) -> xr.Dataset:
    """Add the coordinates of a target-word corpus (see the module docstring)."""
    starts = _word_starts(ds)
    word, target = ds["word"].values, ds["target"].values
    text = ds["text"].values
    first = np.unique(text, return_index=True)[1]
    per_text = pd.DataFrame({"text": text[first], "label": ds["label"].values[first],
                             "block": ds["exchangeability_block"].values[first]})
    per_text["shuffled"] = shuffled_labels(per_text["label"].to_numpy(), per_text["block"].to_numpy(), seed)
    shuffled = per_text.set_index("text")["shuffled"].reindex(text).to_numpy()
    ds = ds.assign_coords(target_token=("token", (starts & (word == target)).astype(np.int8)),
                          control_token=("token", (starts & (word == target - 1)).astype(np.int8)),
                          label_shuffled=("token", shuffled.astype(np.int64)))
    return stats.add_log_frequency(ds, word_coord="word_str")


def prepare_sequence(ds: xr.Dataset, seed: int) -> xr.Dataset:
    """Add the coordinates of a sequence corpus (see the module docstring)."""
    starts = _word_starts(ds)
    content = starts & (np.asarray(ds["content"].values) == 1)
    labels = np.asarray(ds["label_seq"].values).copy()
    labels[content] = shuffled_labels(labels[content], ds["exchangeability_block"].values[content], seed)
    # The control token of word k + 1 is word k's first token; it carries word k + 1's label.
    tokens = pd.DataFrame({"text": ds["text"].values, "word": ds["word"].values, "start": starts,
                           "label": ds["label_seq"].values, "content": content})
    following = tokens.loc[tokens["content"], ["text", "word", "label"]]
    following = following.assign(word=following["word"] - 1).rename(columns={"label": "next_label"})
    merged = tokens.merge(following, on=["text", "word"], how="left")
    control = (merged["start"] & merged["next_label"].notna()).to_numpy()
    control_label = np.where(control, merged["next_label"].fillna(-1), -1).astype(np.int64)
    ds = ds.assign_coords(content_token=("token", content.astype(np.int8)),
                          control_token=("token", control.astype(np.int8)),
                          control_label=("token", control_label),
                          label_shuffled=("token", np.where(content, labels, -1).astype(np.int64)))
    return stats.add_log_frequency(ds, word_coord="word_str")


def add_pair_coords(ds: xr.Dataset, pairs: pd.DataFrame) -> xr.Dataset:
    """Mark the tokens of the matched pairs and of their control words.

    Adds ``pair`` (pair id on the first token of each paired word, -1 elsewhere),
    ``pair_side`` (1 metaphorical, 0 literal, -1), and ``ctrl_pair`` / ``ctrl_side`` on
    the first token of the word before each paired word, for the pairs whose two
    words both have one. Pairs whose sentences are not in `ds` are left out. `ds` needs
    the token coordinates ``corpus`` and ``row``.
    """
    sides = pair_sides(pairs)
    tokens = pd.DataFrame({"corpus": ds["corpus"].values.astype(str), "row": ds["row"].values,
                           "word": ds["word"].values, "start": _word_starts(ds)})
    tokens["token"] = np.arange(len(tokens))
    starts = tokens.loc[tokens["start"]]

    def mark(table):
        hit = table.astype({"corpus": str}).merge(starts, on=["corpus", "row", "word"], how="inner")
        hit = hit.loc[hit.groupby("pair")["side"].transform("nunique") == 2]
        pair = np.full(len(tokens), -1, dtype=np.int64)
        side = np.full(len(tokens), -1, dtype=np.int64)
        pair[hit["token"].to_numpy()] = hit["pair"].to_numpy()
        side[hit["token"].to_numpy()] = hit["side"].to_numpy()
        return pair, side

    pair, side = mark(sides)
    control = sides.assign(word=sides["word"] - 1)
    ctrl_pair, ctrl_side = mark(control.loc[control["word"] >= 0])
    return ds.assign_coords(pair=("token", pair), pair_side=("token", side),
                            ctrl_pair=("token", ctrl_pair), ctrl_side=("token", ctrl_side))


def add_pair_shuffle(ds: xr.Dataset, seed: int) -> xr.Dataset:
    """``pair_side_shuffled``: the sides of a random half of the pairs swapped (the shuffled-label control)."""
    pair = ds["pair"].values
    n_pairs = int(pair.max()) + 1 if (pair >= 0).any() else 0
    swap = np.random.default_rng(seed).random(n_pairs) < 0.5
    side = ds["pair_side"].values.copy()
    hit = pair >= 0
    side[hit] = np.where(swap[pair[hit]], 1 - side[hit], side[hit])
    return ds.assign_coords(pair_side_shuffled=("token", side))


#: Variables and token coordinates the pairs' depth Dataset keeps from each corpus.
PAIR_VARIABLES = ("cse", "cse_z", "cse_null_mean", "cse_null_std", "surprisal")
PAIR_COORDS = ("text", "position", "word", "is_word_start", "is_special", "row", "exchangeability_block",
               "label_seq", "log_frequency")


def pairs_depth(prepared: dict, corpora: list, pairs: pd.DataFrame, seed: int) -> xr.Dataset:
    """The depth-axis tokens of the pair sentences, from every sequence corpus, as one Dataset.

    Parameters
    ----------
    prepared : dict of str to xarray.Dataset
        ``NAME-depth`` results after `prepare_sequence`.
    corpora : list of Corpus
        The sequence corpora, in order.
    pairs : pandas.DataFrame

    Returns
    -------
    xarray.Dataset
        The tokens of the sentences holding a paired word, with ``corpus`` and the
        pair coordinates; ``text`` numbers the sentences anew (0..n-1).
    """
    sides = pair_sides(pairs)
    parts = []
    for corpus in corpora:
        ds = prepared[f"{corpus.name}-depth"]
        rows = sides.loc[sides["corpus"] == corpus.name, "row"].unique()
        part = ds.isel(token=np.flatnonzero(np.isin(ds["row"].values, rows)))
        keep = [v for v in PAIR_VARIABLES if all(v in prepared[f"{c.name}-depth"] for c in corpora)]
        part = part[keep].reset_coords([c for c in part.coords if c not in PAIR_COORDS and "token" in part[c].dims],
                                       drop=True)
        parts.append(part.assign_coords(corpus=("token", np.full(part.sizes["token"], corpus.name, dtype=object))))
    ds = xr.concat(parts, dim="token", coords="minimal", compat="override", combine_attrs="override")
    key = pd.Series(ds["corpus"].values.astype(str)) + "\x1f" + pd.Series(ds["text"].values.astype(str))
    ds = ds.assign_coords(text=("token", pd.factorize(key)[0].astype(np.int64)))
    return add_pair_shuffle(add_pair_coords(ds, pairs), seed)
