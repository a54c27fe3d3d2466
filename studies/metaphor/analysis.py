"""Step 2 of the metaphor study: the tests, on results computed by `corpora`.

Which token stands for a word: its **first token** (``is_word_start``), the one
where the model first reads the word; special tokens (the BOS attention sink) are
never used. The **control token** of a target is the first token of the word
before it in the same sentence (targets at word 0 have none).

Every test is `cse.stats.compare` per layer, metaphorical minus literal:

- MOH-X: labels permuted within verbs (``blocks="verb"``), as most verbs occur in
  both senses;
- VUA, all content words (every word but punctuation): labels permuted within
  texts (``blocks="txt_id"``);
- VUA matched pairs: sign flips of the paired differences (``paired_by="pair"``).

Each main test is corrected across layers by cluster mass (the study's headline)
and also reported with max-T and Benjamini-Hochberg p-values.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import xarray as xr

from cse import stats

#: Relative depth up to which a layer counts as "early-to-mid" for the verdict on
#: the published finding (the paper: early-to-mid layers; here the first two thirds).
EARLY_TO_MID = 2 / 3

MOHX_TARGET = "is_word_start and word == verb_idx"
MOHX_CONTROL = "is_word_start and word == verb_idx - 1"
VUA_CONTENT = "is_word_start and pos_seq != 'PUNCT'"
PAIR_TARGET = "pair >= 0"
PAIR_CONTROL = "ctrl_pair >= 0"

#: POS tags tested separately need at least this many words of each label.
MIN_WORDS_PER_LABEL = 30


@dataclasses.dataclass
class Settings:
    """Statistical settings of a run (recorded in the report)."""

    seed: int = 0
    n_permutations: int = 5000
    n_control_permutations: int = 2000
    n_bootstrap: int = 2000

    def main(self) -> dict:
        return {"n_permutations": self.n_permutations, "n_bootstrap": self.n_bootstrap, "seed": self.seed}

    def control(self) -> dict:
        return {"n_permutations": self.n_control_permutations, "n_bootstrap": 1000, "seed": self.seed}


@dataclasses.dataclass
class Test:
    """One comparison: its name, what it tests and its `cse.stats.compare` result."""

    key: str
    corpus: str
    label: str
    result: xr.Dataset
    extra: dict = dataclasses.field(default_factory=dict)  # maxT / fdr_bh p-values of main tests


# --------------------------------------------------------------------------- coordinates


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


def add_mohx_coords(ds: xr.Dataset, seed: int) -> xr.Dataset:
    """Add ``label_shuffled`` (labels shuffled across sentences within verbs) and ``log_frequency``."""
    text = ds["text"].values
    first = np.unique(text, return_index=True)[1]
    per_text = pd.DataFrame({"text": text[first], "label": ds["label"].values[first], "verb": ds["verb"].values[first]})
    per_text["shuffled"] = shuffled_labels(per_text["label"].to_numpy(), per_text["verb"].to_numpy(), seed)
    shuffled = per_text.set_index("text")["shuffled"].reindex(text).to_numpy()
    ds = ds.assign_coords(label_shuffled=("token", shuffled.astype(np.int64)))
    return stats.add_log_frequency(ds, words="word_str")


def add_vua_coords(ds: xr.Dataset, seed: int) -> xr.Dataset:
    """Add ``label_shuffled`` (content-word labels shuffled within texts) and ``log_frequency``."""
    content = stats.select_tokens(ds, VUA_CONTENT)
    labels = ds["label_seq"].values.copy()
    labels[content] = shuffled_labels(labels[content], ds["txt_id"].values[content], seed)
    ds = ds.assign_coords(label_shuffled=("token", labels.astype(np.int64)))
    return stats.add_log_frequency(ds, words="word_str")


def add_pair_coords(ds: xr.Dataset, pairs: pd.DataFrame) -> xr.Dataset:
    """Mark the tokens of the matched pairs and of their control words.

    Adds ``pair`` (pair id on the first token of each paired word, -1 elsewhere),
    ``pair_side`` (1 metaphorical, 0 literal, -1), and ``ctrl_pair`` /
    ``ctrl_side`` on the first token of the word before each paired word, for the
    pairs whose two words both have one. Pairs whose sentences are not in `ds` are
    left out.
    """
    sides = pd.concat([
        pd.DataFrame({"pair": pairs["pair"], "side": 1, "row": pairs["met_row"], "word": pairs["met_word"]}),
        pd.DataFrame({"pair": pairs["pair"], "side": 0, "row": pairs["lit_row"], "word": pairs["lit_word"]}),
    ], ignore_index=True)
    tokens = pd.DataFrame({"row": ds["row"].values, "word": ds["word"].values,
                           "start": ds["is_word_start"].values & ~ds["is_special"].values})
    tokens["token"] = np.arange(len(tokens))
    starts = tokens.loc[tokens["start"]]

    def mark(table):
        hit = table.merge(starts, on=["row", "word"], how="inner")
        complete = hit.groupby("pair")["side"].transform("nunique") == 2
        hit = hit.loc[complete]
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


# --------------------------------------------------------------------------- tests


def _compare(ds, by, where, settings: dict, **kwargs) -> xr.Dataset:
    return stats.compare(ds, by=by, where=where, groups=(0, 1), correction="cluster", **settings, **kwargs)


def _other_corrections(ds, by, where, settings: dict, **kwargs) -> dict:
    """maxT and Benjamini-Hochberg p-values of the same test (same seed, no bootstrap)."""
    out = {}
    for correction in ("maxT", "fdr_bh"):
        res = stats.compare(ds, by=by, where=where, groups=(0, 1), correction=correction,
                            n_permutations=settings["n_permutations"], n_bootstrap=0, seed=settings["seed"], **kwargs)
        out[f"p_{correction}"] = res["p_corrected"].values
    return out


def mohx_tests(results: dict, settings: Settings, log=None) -> list[Test]:
    """The MOH-X tests: target verbs, and the controls."""
    ds = results["mohx-depth"]
    main, ctrl = settings.main(), settings.control()
    tests = []
    if log:
        log("MOH-X: target verbs")
    res = _compare(ds, "label", MOHX_TARGET, main, blocks="verb")
    tests.append(Test("mohx", "MOH-X", "target verb (depth axis)", res,
                      _other_corrections(ds, "label", MOHX_TARGET, main, blocks="verb")))
    if log:
        log("MOH-X: controls")
    tests.append(Test("mohx_control", "MOH-X", "control token: the word before the verb",
                      _compare(ds, "label", MOHX_CONTROL, ctrl, blocks="verb")))
    tests.append(Test("mohx_shuffled", "MOH-X", "shuffled labels (once, within verbs)",
                      _compare(ds, "label_shuffled", MOHX_TARGET, ctrl, blocks="verb")))
    if "mohx-token" in results:
        tests.append(Test("mohx_token", "MOH-X", f"token axis (J = {results['mohx-token'].attrs['level']})",
                          _compare(results["mohx-token"], "label", MOHX_TARGET, ctrl, blocks="verb")))
    if "mohx-hidden" in results:
        hidden = results["mohx-hidden"]
        tests.append(Test("mohx_hidden", "MOH-X", "hidden axis, CSE",
                          _compare(hidden, "label", MOHX_TARGET, ctrl, blocks="verb")))
        tests.append(Test("mohx_hidden_z", "MOH-X", "hidden axis, z against the dimension-permutation null",
                          _compare(hidden, "label", MOHX_TARGET, ctrl, blocks="verb", var="cse_z")))
    return tests


def vua_tests(results: dict, settings: Settings, log=None) -> tuple[list[Test], pd.DataFrame]:
    """VUA, every content word: overall, shuffled, by genre and by POS.

    Returns
    -------
    tests : list of Test
    groups : pandas.DataFrame
        One row per genre and POS subset tested.
    """
    ds = results["vua-depth"]
    main, ctrl = settings.main(), settings.control()
    if log:
        log("VUA: all content words")
    tests = [Test("vua", "VUA", "every content word (depth axis)", _compare(ds, "label_seq", VUA_CONTENT, main,
                                                                           blocks="txt_id"),
                  _other_corrections(ds, "label_seq", VUA_CONTENT, main, blocks="txt_id"))]
    tests.append(Test("vua_control", "VUA", "control token: the word before",
                      _compare(_with_previous_label(ds), "prev_label", "is_word_start and prev_label >= 0 "
                               "and prev_pos != 'PUNCT'", ctrl, blocks="txt_id")))
    tests.append(Test("vua_shuffled", "VUA", "shuffled labels (once, within texts)",
                      _compare(ds, "label_shuffled", VUA_CONTENT, ctrl, blocks="txt_id")))
    rows = []
    content = stats.select_tokens(ds, VUA_CONTENT)
    labels = ds["label_seq"].values
    for kind, coord in (("genre", "genre"), ("POS", "pos_seq")):
        values = ds[coord].values
        for value in sorted(np.unique(values[content]).tolist()):
            sel = content & (values == value)
            n_met, n_lit = int((labels[sel] == 1).sum()), int((labels[sel] == 0).sum())
            row = {"kind": kind, "group": value, "n_met": n_met, "n_lit": n_lit}
            if min(n_met, n_lit) >= MIN_WORDS_PER_LABEL:
                if log:
                    log(f"VUA: {kind} {value}")
                where = f"{VUA_CONTENT} and {coord} == '{value}'"
                res = _compare(ds, "label_seq", where, {**ctrl, "n_bootstrap": 0}, blocks="txt_id")
                tests.append(Test(f"vua_{kind.lower()}_{value}", "VUA", f"{kind} {value}", res))
                row["test"] = tests[-1].key
            rows.append(row)
    return tests, pd.DataFrame(rows)


def _with_previous_label(ds: xr.Dataset) -> xr.Dataset:
    """``prev_label`` / ``prev_pos``: the label and POS of the *next* word, on each word-start token.

    The control token of a target word is the first token of the word before it; so
    the token of word k carries the label of word k + 1 (its target) as ``prev_label``
    and that target's POS as ``prev_pos``; -1 / "" where word k + 1 does not exist.
    """
    tokens = pd.DataFrame({"text": ds["text"].values, "word": ds["word"].values,
                           "start": ds["is_word_start"].values & ~ds["is_special"].values,
                           "label": ds["label_seq"].values, "pos": ds["pos_seq"].values})
    starts = tokens.loc[tokens["start"], ["text", "word", "label", "pos"]]
    nxt = starts.assign(word=starts["word"] - 1).rename(columns={"label": "next_label", "pos": "next_pos"})
    merged = tokens.reset_index().merge(nxt, on=["text", "word"], how="left").set_index("index").sort_index()
    ok = merged["start"] & merged["next_label"].notna()
    prev_label = np.where(ok, merged["next_label"].fillna(-1), -1).astype(np.int64)
    prev_pos = np.where(ok, merged["next_pos"].fillna(""), "").astype(object)
    return ds.assign_coords(prev_label=("token", prev_label), prev_pos=("token", prev_pos))


def pair_tests(results: dict, pairs: pd.DataFrame, settings: Settings, log=None) -> list[Test]:
    """The matched pairs: sign-flip tests on every axis, control token, shuffled sides."""
    main, ctrl = settings.main(), settings.control()
    tests = []
    ds = results["vua-depth"]
    if log:
        log("VUA pairs")
    tests.append(Test("pairs", "VUA pairs", "matched pairs (depth axis)",
                      _compare(ds, "pair_side", PAIR_TARGET, main, paired_by="pair"),
                      _other_corrections(ds, "pair_side", PAIR_TARGET, main, paired_by="pair")))
    tests.append(Test("pairs_control", "VUA pairs", "control token: the word before each paired word",
                      _compare(ds, "ctrl_side", PAIR_CONTROL, ctrl, paired_by="ctrl_pair")))
    tests.append(Test("pairs_shuffled", "VUA pairs", "shuffled labels (sides swapped in a random half of the pairs)",
                      _compare(ds, "pair_side_shuffled", PAIR_TARGET, ctrl, paired_by="pair")))
    if "pairs-token" in results:
        tok = results["pairs-token"]
        tests.append(Test("pairs_token", "VUA pairs", f"token axis (J = {tok.attrs['level']})",
                          _compare(tok, "pair_side", PAIR_TARGET, ctrl, paired_by="pair")))
    if "pairs-hidden" in results:
        hid = results["pairs-hidden"]
        tests.append(Test("pairs_hidden", "VUA pairs", "hidden axis, CSE",
                          _compare(hid, "pair_side", PAIR_TARGET, ctrl, paired_by="pair")))
        tests.append(Test("pairs_hidden_z", "VUA pairs", "hidden axis, z against the dimension-permutation null",
                          _compare(hid, "pair_side", PAIR_TARGET, ctrl, paired_by="pair", var="cse_z")))
    return tests


def mixed_models(results: dict, log=None, pairs: bool = True) -> dict:
    """Per-layer mixed models with surprisal, word frequency and position as covariates.

    Returns
    -------
    dict of str to xarray.Dataset
        ``mohx``: ``cse ~ label + surprisal + log_frequency + position``, random
        intercept per verb; ``pairs``: ``cse ~ pair_side + surprisal + log_frequency
        + position``, random intercept per pair; ``vua``: ``cse ~ label_seq + ...``,
        random intercept per text (every content word).
    """
    out = {}
    if log:
        log("mixed models: MOH-X")
    out["mohx"] = stats.mixedlm(results["mohx-depth"], "cse ~ label + surprisal + log_frequency + position",
                                groups="verb", where=MOHX_TARGET)
    if pairs:
        if log:
            log("mixed models: VUA pairs")
        out["pairs"] = stats.mixedlm(results["vua-depth"], "cse ~ pair_side + surprisal + log_frequency + position",
                                     groups="pair", where=PAIR_TARGET)
    if log:
        log("mixed models: VUA content words")
    out["vua"] = stats.mixedlm(results["vua-depth"], "cse ~ label_seq + surprisal + log_frequency + position",
                               groups="txt_id", where=VUA_CONTENT)
    return out


# --------------------------------------------------------------------------- summaries


def cluster_table(test: Test, alpha: float | None = None) -> pd.DataFrame:
    """Clusters of a test: layers, relative-depth span, sign, mass, p."""
    res = test.result
    depth = pd.Series(res["depth"].values, index=res["layer"].values)
    rows = []
    for k in range(res.sizes.get("cluster", 0)):
        start, stop = int(res["cluster_start"].values[k]), int(res["cluster_stop"].values[k])
        sel = res.sel(layer=slice(start, stop))
        peak = int(np.nanargmax(np.abs(sel["hedges_g"].values)))
        rows.append({
            "test": test.key, "layers": f"{start}-{stop}", "first": start, "last": stop,
            "depth_low": float(depth[start]), "depth_high": float(depth[stop]),
            "sign": "+" if res["cluster_sign"].values[k] > 0 else "-",
            "mass": float(res["cluster_mass"].values[k]), "p": float(res["cluster_p"].values[k]),
            "peak_g": float(sel["hedges_g"].values[peak]), "peak_layer": int(sel["layer"].values[peak]),
        })
    table = pd.DataFrame(rows, columns=["test", "layers", "first", "last", "depth_low", "depth_high", "sign", "mass",
                                        "p", "peak_g", "peak_layer"])
    if alpha is not None:
        table = table.loc[table["p"] <= alpha]
    return table


def layer_table(test: Test) -> pd.DataFrame:
    """Per-layer statistics of a test as a DataFrame indexed by layer."""
    res = test.result
    table = pd.DataFrame({
        "depth": res["depth"].values, "n_lit": res["n_a"].values, "n_met": res["n_b"].values,
        "mean_lit": res["mean_a"].values, "mean_met": res["mean_b"].values, "diff": res["diff"].values,
        "t": res["t"].values, "p_unc": res["p_uncorrected"].values, "p_cluster": res["p_corrected"].values,
        "g": res["hedges_g"].values, "g_low": res["g_ci_low"].values, "g_high": res["g_ci_high"].values,
    }, index=pd.Index(res["layer"].values, name="layer"))
    for name, values in test.extra.items():
        table[name] = values
    return table


@dataclasses.dataclass
class Verdict:
    """What one main test says about the published finding."""

    key: str
    corpus: str
    status: str  # "holds", "reversed", "not found", "elsewhere"
    clusters: pd.DataFrame  # significant clusters
    text: str


def verdict(test: Test, alpha: float = 0.05) -> Verdict:
    """Classify a main test against the published finding (metaphor > literal at early-to-mid depth)."""
    sig = cluster_table(test, alpha=alpha)
    early = sig.loc[sig["depth_low"] <= EARLY_TO_MID]
    pos, neg = early.loc[early["sign"] == "+"], early.loc[early["sign"] == "-"]
    n = int(test.result.attrs["n_tokens_b"]), int(test.result.attrs["n_tokens_a"])
    unit = "pairs" if test.result.attrs.get("paired_by") else "metaphorical / literal tokens"
    size = f"{n[0]} {unit}" if unit == "pairs" else f"{n[0]} / {n[1]} {unit}"
    if len(pos):
        best = pos.sort_values("p").iloc[0]
        status = "holds"
        text = (f"{test.corpus} ({size}): metaphorical > literal in layers {best['layers']} (relative depth "
                f"{best['depth_low']:.2f}-{best['depth_high']:.2f}), cluster p = {_p(best['p'])}, "
                f"peak Hedges' g = {best['peak_g']:+.2f} at layer {best['peak_layer']}")
        if len(neg):
            worst = neg.sort_values("p").iloc[0]
            text += (f"; but also metaphorical < literal in layers {worst['layers']} (p = {_p(worst['p'])})")
    elif len(neg):
        best = neg.sort_values("p").iloc[0]
        status = "reversed"
        text = (f"{test.corpus} ({size}): the opposite sign, metaphorical < literal in layers {best['layers']} "
                f"(relative depth {best['depth_low']:.2f}-{best['depth_high']:.2f}), cluster p = {_p(best['p'])}, "
                f"peak Hedges' g = {best['peak_g']:+.2f}")
    elif len(sig):
        best = sig.sort_values("p").iloc[0]
        status = "elsewhere"
        text = (f"{test.corpus} ({size}): no significant cluster at early-to-mid depth; one at layers "
                f"{best['layers']} (relative depth {best['depth_low']:.2f}-{best['depth_high']:.2f}, sign "
                f"{best['sign']}, p = {_p(best['p'])})")
    else:
        res = test.result
        k = int(np.nanargmax(np.abs(res["t"].values)))
        status = "not found"
        text = (f"{test.corpus} ({size}): no significant cluster (largest |t| = {abs(res['t'].values[k]):.2f} at "
                f"layer {int(res['layer'].values[k])}, Hedges' g = {res['hedges_g'].values[k]:+.2f})")
    return Verdict(test.key, test.corpus, status, sig, text)


def _p(p: float) -> str:
    return f"{p:.4f}" if p >= 0.0001 else f"{p:.1e}"
