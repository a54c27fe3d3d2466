"""Step 1 of the metaphor study: every CSE result it needs for one model, computed once and cached.

| result | texts | axis |
| --- | --- | --- |
| ``C-depth`` | every sentence of corpus C (target-word: up to its target) | depth |
| ``C-token`` | every sentence of a target-word corpus C | token, J = `TOKEN_LEVEL` |
| ``C-hidden`` | every sentence of a target-word corpus C, up to its target | hidden, dimension null |
| ``pairs-token`` | the sentences of the matched pairs (every sequence corpus) | token, J = `TOKEN_LEVEL` |
| ``pairs-hidden`` | the same, up to their last paired word | hidden, dimension null |

The token and hidden axes of the sequence corpora run on the pairs' sentences only:
the model's forward pass is the cost (about 60,000 tokens per axis for the VUA test
split). The ``hidden`` results cover each sentence up to its last target word only:
the model is causal, so a token's layer updates do not depend on later words, and the
dimension-permutation null (P transforms per token and layer) is the most expensive
step. The ``depth`` results of a target-word corpus are cut there too: its tests read
the target token and the word before it (the control token), whose layer updates,
surprisal and position a causal model computes from the words up to them alone
(``tests/test_study_plan.py`` checks equality with the whole sentence on a tiny
model). The ``token`` axis runs along the whole sentence and cannot be cut.
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from cse_studies.common import TARGET_WORD, by_length, cached_compute, result_path, token_counts

from .pairs import last_paired_word, pair_sentences, truncate_after

#: Level of the token-axis transform. MOH-X sentences are short (median 9 tokens,
#: 20 % under 8), so J = 3 (the default, 8 tokens at least) would drop a fifth of
#: them; J = 2 (bands of 1 and 2 tokens and the >= 4-token approximation) keeps all.
TOKEN_LEVEL = 2


@dataclasses.dataclass
class ModelResults:
    """The CSE results of one model: name -> Dataset (see the module docstring)."""

    identity: dict
    slug: str
    results: dict
    paths: dict
    dropped_token_axis: dict  # name -> texts too short for the token axis


#: ``DataFrame.attrs`` key of a plan's input cut short of its texts' ends; names its cache file.
CUT = "cse_study_cut"


def plan_results(corpora: list, pairs: pd.DataFrame | None) -> dict:
    """What to compute: name -> (input frame, axis), in the order of the module docstring."""
    plan = {}
    for corpus in corpora:
        if corpus.kind == TARGET_WORD:
            up_to_target = truncate_after(corpus.frame, corpus.frame["target"].to_numpy())
            up_to_target.attrs[CUT] = "to-target"  # its own cache file: other studies read whole sentences
            plan[f"{corpus.name}-depth"] = (up_to_target, "depth")
            plan[f"{corpus.name}-token"] = (corpus.frame, "token")
            plan[f"{corpus.name}-hidden"] = (up_to_target, "hidden")
        else:
            plan[f"{corpus.name}-depth"] = (corpus.frame, "depth")
    if pairs is not None and len(pairs):
        sentences = pair_sentences([c for c in corpora if c.kind != TARGET_WORD], pairs)
        plan["pairs-token"] = (sentences, "token")
        plan["pairs-hidden"] = (truncate_after(sentences, last_paired_word(sentences, pairs)), "hidden")
    return plan


def compute_results(corpora: list, pairs, model, tokenizer, identity: dict, slug: str, folder, *, seed: int = 0,
                    null_permutations: int = 50, depth_null_permutations: int = 0, save_gram: bool = True,
                    recompute: bool = False, progress: bool = False, command: str | None = None,
                    log=None) -> ModelResults:
    """Compute (or reuse) every CSE result of the study for one model.

    Parameters
    ----------
    corpora : list of cse_studies.common.Corpus
    pairs : pandas.DataFrame or None
        From `build_pairs`.
    model, tokenizer, identity, slug
        The loaded model, its tokenizer, `cse.model_identity` and `model_slug`.
    folder : cse_studies.common.StudyFolder
        Holds the cache files ``NAME-AXIS-MODEL.nc``.
    seed : int
        Seed of the nulls' permutations.
    null_permutations : int
        Dimension permutations of the hidden-axis null.
    depth_null_permutations : int
        Layer-order permutations of the depth-axis null (0: none; ``cse_z`` tests skipped).
    save_gram : bool
        Store each token's Gram matrix of layer updates in the depth-axis results (as the
        packed triangle, 4 L (L + 1) bytes per token), so that the sensitivity analysis
        re-measures them under other wavelets, levels and boundaries without the model.
    recompute, progress, command, log
        As in `cse_studies.metaphor.run.run`.

    Returns
    -------
    ModelResults
    """
    results, paths, dropped = {}, {}, {}
    for name, (frame, axis) in plan_results(corpora, pairs).items():
        if axis == "token":
            keep = token_counts(frame["text"], tokenizer) >= 2**TOKEN_LEVEL
            dropped[name] = int((~keep).sum())
            frame = frame.loc[keep]
        if frame.empty:
            continue
        corpus_name, _, _ = name.rpartition("-")
        if frame.attrs.get(CUT):  # a cut corpus must not share a cache file with the whole one (cross-depth's)
            corpus_name = f"{corpus_name}-{frame.attrs[CUT]}"
        paths[name] = result_path(folder.path, corpus_name, axis, slug)
        nulls = {"hidden": null_permutations, "depth": depth_null_permutations}.get(axis, 0)
        results[name] = cached_compute(
            by_length(frame, tokenizer), paths[name], model, tokenizer, identity=identity, folder=folder, axis=axis,
            level=TOKEN_LEVEL if axis == "token" else None, null_permutations=nulls, seed=seed,
            save=("gram_triangle",) if axis == "depth" and save_gram else (), recompute=recompute, progress=progress,
            command=command, log=log)
    return ModelResults(identity, slug, results, paths, dropped)
