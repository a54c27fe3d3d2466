"""Tables and verdicts of the metaphor study, computed from the test results.

Nothing here is written by hand: the verdict on the published finding, the cluster and
layer tables, the boundary notes, the comparison of pooled and within-block statistics
and what changed against the previous default are all derived from the
`cse.stats.compare` results.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from cse import stats
from cse.stats import boundary_layers, layer_span
from cse_studies.common import p_text

from .analysis import Test

#: Relative depth up to which a layer counts as "early-to-mid" for the verdict on the
#: published finding (the paper: early-to-mid layers; here the first two thirds).
EARLY_TO_MID = 2 / 3
ALPHA = 0.05
CLUSTER_COLUMNS = ["test", "layers", "first", "last", "depth_low", "depth_high", "sign", "mass", "p", "peak_g",
                   "peak_layer", "boundary"]


def boundary_phrase(res, first: int, last: int) -> str:
    """How much of layers first..last is boundary-affected: 'all', 'none', 'layers 3-6', or '' (unmarked)."""
    mask = boundary_layers(res)
    if mask is None:
        return ""
    layers = np.asarray(res["layer"].values)
    inside = (layers >= first) & (layers <= last)
    hit = layers[inside & mask]
    if len(hit) == 0:
        return "none"
    return "all" if len(hit) == inside.sum() else f"layers {layer_span(hit)}"


def cluster_table(test: Test, alpha: float | None = None) -> pd.DataFrame:
    """Clusters of a test: layers, relative-depth span, sign, mass, p, peak g and boundary overlap."""
    res = test.result
    depth = pd.Series(res["depth"].values, index=res["layer"].values)
    rows = []
    for k in range(res.sizes.get("cluster", 0)):
        start, stop = int(res["cluster_start"].values[k]), int(res["cluster_stop"].values[k])
        sel = res.sel(layer=slice(start, stop))
        g = sel["hedges_g"].values
        peak = int(np.nanargmax(np.abs(g))) if np.isfinite(g).any() else 0
        rows.append({
            "test": test.key, "layers": f"{start}-{stop}", "first": start, "last": stop,
            "depth_low": float(depth[start]), "depth_high": float(depth[stop]),
            "sign": "+" if res["cluster_sign"].values[k] > 0 else "-",
            "mass": float(res["cluster_mass"].values[k]), "p": float(res["cluster_p"].values[k]),
            "peak_g": float(g[peak]), "peak_layer": int(sel["layer"].values[peak]),
            "boundary": boundary_phrase(res, start, stop),
        })
    table = pd.DataFrame(rows, columns=CLUSTER_COLUMNS)
    if alpha is not None:
        table = table.loc[table["p"] <= alpha]
    return table


def layer_table(test: Test) -> pd.DataFrame:
    """Per-layer statistics of a test, indexed by layer (p-values of every correction computed)."""
    res = test.result
    table = pd.DataFrame({
        "depth": res["depth"].values, "n_lit": res["n_a"].values, "n_met": res["n_b"].values,
        "mean_lit": res["mean_a"].values, "mean_met": res["mean_b"].values, "diff": res["diff"].values,
        "diff_low": res["diff_ci_low"].values, "diff_high": res["diff_ci_high"].values,
        "t": res["t"].values, "p_unc": res["p_uncorrected"].values,
        "g": res["hedges_g"].values, "g_low": res["g_ci_low"].values, "g_high": res["g_ci_high"].values,
    }, index=pd.Index(res["layer"].values, name="layer"))
    for name in ("cluster", "tfce", "maxT", "maxT_stepdown", "fdr_bh"):
        if f"p_{name}" in res:
            table[f"p_{name}"] = res[f"p_{name}"].values
    if "p_cluster" not in table:
        table["p_cluster"] = res["p_corrected"].values
    mask = boundary_layers(res)
    if mask is not None:
        table["boundary"] = mask
    return table


@dataclasses.dataclass
class Verdict:
    """What one main test says about the published finding."""

    key: str
    corpus: str
    status: str  # "holds", "reversed", "not found", "elsewhere"
    clusters: pd.DataFrame  # significant clusters
    text: str


def _size(test: Test) -> str:
    attrs = test.result.attrs
    if attrs.get("paired_by"):
        return f"{attrs['n_tokens_b']} pairs"
    size = f"{attrs['n_tokens_b']} / {attrs['n_tokens_a']} metaphorical / literal tokens"
    if attrs.get("n_tokens_single_label_blocks"):
        size += (f"; {attrs['n_tokens_single_label_blocks']} more in {attrs['n_blocks_single_label']} blocks holding "
                 f"one label only, which contribute nothing within blocks")
    return size


def _cluster_words(row) -> str:
    where = f"layers {row['layers']} (relative depth {row['depth_low']:.2f}-{row['depth_high']:.2f}"
    if row["boundary"] and row["boundary"] != "none":
        where += f"; boundary-affected: {row['boundary']}"
    elif row["boundary"] == "none":
        where += "; outside the boundary layers"
    return where + ")"


def verdict(test: Test, alpha: float = ALPHA) -> Verdict:
    """Classify a main test against the published finding (metaphor > literal at early-to-mid depth)."""
    sig = cluster_table(test, alpha=alpha)
    early = sig.loc[sig["depth_low"] <= EARLY_TO_MID]
    pos, neg = early.loc[early["sign"] == "+"], early.loc[early["sign"] == "-"]
    head = f"{test.corpus}, {test.var} ({_size(test)})"
    if len(pos):
        best = pos.sort_values("p").iloc[0]
        status = "holds"
        text = (f"{head}: metaphorical > literal in {_cluster_words(best)}, cluster p = {p_text(best['p'])}, "
                f"peak Hedges' g = {best['peak_g']:+.2f} at layer {best['peak_layer']}")
        if len(neg):
            worst = neg.sort_values("p").iloc[0]
            text += f"; but also metaphorical < literal in {_cluster_words(worst)}, p = {p_text(worst['p'])}"
    elif len(neg):
        best = neg.sort_values("p").iloc[0]
        status = "reversed"
        text = (f"{head}: the opposite sign, metaphorical < literal in {_cluster_words(best)}, cluster p = "
                f"{p_text(best['p'])}, peak Hedges' g = {best['peak_g']:+.2f}")
    elif len(sig):
        best = sig.sort_values("p").iloc[0]
        status = "elsewhere"
        text = (f"{head}: no significant cluster at early-to-mid depth; one in {_cluster_words(best)}, sign "
                f"{best['sign']}, p = {p_text(best['p'])}")
    else:
        res = test.result
        t = np.abs(res["t"].values)
        k = int(np.nanargmax(t)) if np.isfinite(t).any() else 0
        status = "not found"
        text = (f"{head}: no significant cluster (largest |t| = {t[k]:.2f} at layer {int(res['layer'].values[k])}, "
                f"Hedges' g = {res['hedges_g'].values[k]:+.2f})")
    return Verdict(test.key, test.corpus, status, sig, text)


def overall_status(verdicts: list) -> str:
    """'holds' when every verdict holds, 'does not hold' when none does, else 'holds only in part'."""
    n_hold = sum(v.status == "holds" for v in verdicts)
    if verdicts and n_hold == len(verdicts):
        return "holds"
    return "does not hold" if n_hold == 0 else "holds only in part"


# --------------------------------------------------------------------------- pooled vs within blocks


def pooled_contrast(ds, by: str, where: str, var: str = "cse") -> pd.DataFrame:
    """Welch t and Hedges' g of groups 1 vs 0 pooled over all tokens, per layer (descriptive, no test).

    These are the statistics that mix the label effect with differences between
    exchangeability blocks (issue 11); they are shown beside the within-block ones.

    Returns
    -------
    pandas.DataFrame
        Indexed by layer: ``t_pooled``, ``g_pooled``.
    """
    res = stats.group_contrast(ds, by, where, levels=(0, 1), var=var)
    return pd.DataFrame({"t_pooled": res["t"].values, "g_pooled": res["hedges_g"].values},
                        index=pd.Index(res["layer"].values, name="layer"))


def within_block_note(test: Test, ds, where: str) -> str | None:
    """A sentence contrasting the pooled and the within-block statistic of a block test, or None.

    Only for results of a `compare` whose statistic is the within-block one (its
    attribute ``exchangeability_blocks`` is set); it says plainly which layers the
    pooled statistic would put past the cluster-forming threshold that the
    within-block statistic does not (a cluster there would reflect differences between
    blocks), and the largest pooled and within-block g.
    """
    res = test.result
    blocks = res.attrs.get("exchangeability_blocks")
    threshold = res.attrs.get("threshold")
    if not blocks or threshold is None or not np.isfinite(threshold):
        return None
    pooled = pooled_contrast(ds, res.attrs["by"], where, res.attrs.get("var", "cse"))
    layers = np.asarray(res["layer"].values)
    within_t, pooled_t = np.abs(res["t"].values), np.abs(pooled["t_pooled"].reindex(layers).values)
    only_pooled = layers[(pooled_t > threshold) & ~(within_t > threshold)]
    k = int(np.nanargmax(np.abs(pooled["g_pooled"].values))) if np.isfinite(pooled["g_pooled"].values).any() else 0
    g_within = res["hedges_g"].values[k]

    def at(layer_mask) -> str:
        hit = layers[layer_mask]
        return f"at layers {layer_span(hit)}" if len(hit) else "at no layer"

    text = (f"Pooled over all tokens (Welch's t, ignoring the exchangeability blocks), t passes the cluster-forming "
            f"threshold (|t| > {threshold:.2f}) {at(pooled_t > threshold)}; the within-block t "
            f"{at(within_t > threshold)}. The largest pooled Hedges' g is {pooled['g_pooled'].values[k]:+.2f} (layer "
            f"{int(layers[k])}), where the within-block g is {g_within:+.2f}.")
    if len(only_pooled):
        text += (f" The pooled statistic, which mixes in differences between blocks, puts layers "
                 f"{layer_span(only_pooled)} past the threshold where the within-block statistic does not: a "
                 f"cluster there would reflect differences between blocks, not the label, so that conclusion does "
                 f"not stand.")
    return text


# --------------------------------------------------------------------------- against the previous default


def _significant_layers(res) -> set:
    """Layers inside clusters with p <= ALPHA (the primary correction is cluster mass)."""
    return set(np.asarray(res["layer"].values)[np.asarray(res["significant"].values, dtype=bool)].tolist())


def change_row(test) -> dict | None:
    """What the robust statistic and the block bootstrap changed against the previous default, from the numbers.

    Returns None for tests without a previous result (pairs, controls). Keys: ``test``,
    ``significant_now`` / ``significant_before`` (layer spans), ``appeared`` /
    ``disappeared`` (layers significant under one only), ``width_ratio`` (median over
    layers of the new over the old width of the g interval), ``largest`` (the layer of
    the largest |g| with both intervals).
    """
    old, new = test.previous, test.result
    if old is None:
        return None
    now, before = _significant_layers(new), _significant_layers(old)
    width_new = new["g_ci_high"].values - new["g_ci_low"].values
    width_old = old["g_ci_high"].values - old["g_ci_low"].values
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = width_new / width_old
    ratio = float(np.median(ratios[np.isfinite(ratios)])) if np.isfinite(ratios).any() else np.nan
    g = np.abs(new["hedges_g"].values)
    k = int(np.nanargmax(g)) if np.isfinite(g).any() else 0
    layer = int(new["layer"].values[k])
    largest = (f"layer {layer}: g {new['hedges_g'].values[k]:+.2f} [{new['g_ci_low'].values[k]:+.2f}, "
               f"{new['g_ci_high'].values[k]:+.2f}], before {old['hedges_g'].values[k]:+.2f} "
               f"[{old['g_ci_low'].values[k]:+.2f}, {old['g_ci_high'].values[k]:+.2f}]")  # fmt: skip
    return {"test": test.key, "significant_now": layer_span(now), "significant_before": layer_span(before),
            "appeared": layer_span(now - before), "disappeared": layer_span(before - now), "width_ratio": ratio,
            "largest": largest, "statistic_before": old.attrs.get("statistic", ""),
            "statistic_now": new.attrs.get("statistic", "")}  # fmt: skip


def change_sentence(test) -> str | None:
    """One generated sentence: where a conclusion or an interval changed against the previous default."""
    row = change_row(test)
    if row is None:
        return None
    if row["appeared"] == "none" and row["disappeared"] == "none":
        clusters = (f"the layers in significant clusters are the same ({row['significant_now']})"
                    if row["significant_now"] != "none" else "neither finds a significant cluster")
    else:
        clusters = (f"layers in significant clusters now {row['significant_now']}, before {row['significant_before']}"
                    + (f"; no longer significant: {row['disappeared']}" if row["disappeared"] != "none" else "")
                    + (f"; newly significant: {row['appeared']}" if row["appeared"] != "none" else ""))
    ratio = row["width_ratio"]
    widths = ("" if not np.isfinite(ratio) else
              f"; the intervals of g are {ratio:.2f} times as wide as before (median over layers; "
              + ("wider: the previous within-cell bootstrap was too narrow" if ratio > 1.05 else
                 "narrower" if ratio < 0.95 else "about the same") + f"), at the largest effect {row['largest']}")
    return (f"Against the previous default (pooled-variance t, bootstrap within block-by-label cells): {clusters}"
            f"{widths}.")
