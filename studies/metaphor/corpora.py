"""Step 1 of the metaphor study: every CSE result it needs, computed once and cached.

| result | texts | axis |
| --- | --- | --- |
| ``mohx-depth`` | all MOH-X sentences | depth (default settings) |
| ``mohx-token`` | all MOH-X sentences | token, J = `TOKEN_LEVEL` |
| ``mohx-hidden`` | all MOH-X sentences | hidden, with the dimension-permutation null |
| ``vua-depth`` | all VUA test sentences | depth |
| ``pairs-token`` | the VUA sentences of the matched pairs | token, J = `TOKEN_LEVEL` |
| ``pairs-hidden`` | the VUA sentences of the matched pairs | hidden, with the null |

The other axes run on the pairs' sentences only, not on all of VUA: the model's
forward pass is the cost (about 60,000 tokens per axis for the VUA test split).
The ``hidden`` results cover each sentence up to its last target word only
(`truncate_after`): the model is causal, so a token's layer updates do not depend
on later words, and the dimension-permutation null (``P`` transforms per token and
layer) is the most expensive step of the study. The ``token`` axis runs along the
whole sentence and cannot be cut.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from .corpus import by_length, cached_compute, model_slug, sequence_lengths
from .data import build_pairs, load_mohx, load_vua, vua_words

#: Level of the token-axis transform. MOH-X sentences are short (median 9 tokens,
#: 20 % under 8), so J = 3 (the default, 8 tokens at least) would drop a fifth of
#: them; J = 2 (bands of 1 and 2 tokens and the >= 4-token approximation) keeps all.
TOKEN_LEVEL = 2


@dataclasses.dataclass
class Corpora:
    """The study's inputs and CSE results."""

    mohx_frame: pd.DataFrame
    vua_frame: pd.DataFrame
    pairs: pd.DataFrame
    results: dict  # name -> xarray.Dataset
    paths: dict  # name -> Path
    dropped_token_axis: dict  # name -> number of texts too short for the token axis


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
    for column in ("word_str", "label_seq", "pos_seq"):
        if column in out.columns:
            out[column] = [list(v[:k + 1]) for v, k in zip(out[column], last)]
    return out


def result_names() -> tuple[str, ...]:
    return ("mohx-depth", "mohx-token", "mohx-hidden", "vua-depth", "pairs-token", "pairs-hidden")


def compute_corpora(data_dir, model, tokenizer, identity: dict, out: Path, *, seed: int = 0, n_pairs: int = 200,
                    limit: int | None = None, null_permutations: int = 50, recompute: bool = False,
                    only=None, progress: bool = False, command: str | None = None, log=None) -> Corpora:
    """Load the data, draw the pairs and compute (or reuse) every CSE result.

    Parameters
    ----------
    data_dir : str or Path
        Folder of ``moh-x.csv`` and ``vua-seq-test.csv``.
    model, tokenizer, identity
        The loaded model, its tokenizer and `cse.models.model_identity`.
    out : Path
        Folder of the result files ``NAME-MODEL.nc``.
    seed, n_pairs, limit, null_permutations, recompute
        As in `cse_studies.metaphor.run`.
    only : collection of str, optional
        Compute only these results (names of `result_names`).

    Returns
    -------
    Corpora
    """
    mohx = load_mohx(data_dir, limit=limit)
    vua = load_vua(data_dir, limit=limit)
    pairs = build_pairs(vua_words(vua), n_pairs=n_pairs, seed=seed)
    pair_rows = np.union1d(pairs["met_row"].to_numpy(), pairs["lit_row"].to_numpy())
    pair_frame = vua.loc[vua["row"].isin(pair_rows)].reset_index(drop=True)
    last_pair_word = pd.concat([pairs[["met_row", "met_word"]].set_axis(["row", "word"], axis=1),
                                pairs[["lit_row", "lit_word"]].set_axis(["row", "word"], axis=1)]
                               ).groupby("row")["word"].max()
    pair_prefix = truncate_after(pair_frame, last_pair_word.reindex(pair_frame["row"]).to_numpy())
    slug = model_slug(identity)
    plan = {
        "mohx-depth": (mohx, "depth"),
        "mohx-token": (mohx, "token"),
        "mohx-hidden": (truncate_after(mohx, mohx["verb_idx"].to_numpy()), "hidden"),
        "vua-depth": (vua, "depth"),
        "pairs-token": (pair_frame, "token"),
        "pairs-hidden": (pair_prefix, "hidden"),
    }
    results, paths, dropped = {}, {}, {}
    for name, (frame, axis) in plan.items():
        if (only is not None and name not in only) or frame.empty:
            continue
        if axis == "token":
            lengths = sequence_lengths(frame, tokenizer)
            keep = lengths >= 2**TOKEN_LEVEL
            dropped[name] = int((~keep).sum())
            frame = frame.loc[keep]
        path = Path(out) / f"{name}-{slug}.nc"
        paths[name] = path
        results[name] = cached_compute(
            by_length(frame, tokenizer), path, model, tokenizer, identity=identity, axis=axis,
            level=TOKEN_LEVEL if axis == "token" else None,
            null_permutations=null_permutations if axis == "hidden" else 0, seed=seed,
            recompute=recompute, progress=progress, command=command, log=log)
    return Corpora(mohx, vua, pairs, results, paths, dropped)
