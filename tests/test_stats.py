"""Tests of cse.stats: permutation tests validated by simulation and against independent code.

Synthetic Datasets follow the schema of SPEC section 4 (no model needed).
"""

from __future__ import annotations

import itertools
import re
import time

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from cse import stats
from cse.errors import CSEInputError
from cse.stats import (
    _compare_arrays,
    _label_permutations,
    _sign_flips,
)

RTOL_F64 = 5e-11


# ---------------------------------------------------------------------------------
# synthetic results
# ---------------------------------------------------------------------------------


def make_result(
    n_texts=40, n_tokens=12, n_layers=12, effect=0.0, band=(3, 6), rho=0.5, seed=0, nan_fraction=0.0
) -> xr.Dataset:
    """A `cse compute`-shaped Dataset. Texts alternate literal / metaphor; position 0 is special.

    CSE is AR(1) over layers (correlation `rho`), SD 0.1 around 0.5; metaphor tokens get
    `effect` SDs more in the layers of `band` (inclusive).
    """
    rng = np.random.default_rng(seed)
    n = n_texts * n_tokens
    text = np.repeat(np.arange(n_texts), n_tokens)
    position = np.tile(np.arange(n_tokens), n_texts)
    label = np.where(text % 2 == 0, "literal", "metaphor")
    noise = np.empty((n, n_layers))
    noise[:, 0] = rng.normal(size=n)
    for layer in range(1, n_layers):
        noise[:, layer] = rho * noise[:, layer - 1] + np.sqrt(1 - rho**2) * rng.normal(size=n)
    cse = 0.5 + 0.1 * noise
    layers = np.arange(band[0], min(band[1] + 1, n_layers))
    cse[np.ix_(label == "metaphor", layers)] += 0.1 * effect
    cse[position == 0] = np.nan  # nothing is defined at the sink in this toy
    if nan_fraction:
        cse[rng.random(cse.shape) < nan_fraction] = np.nan
    scale = ["d1", "d2", "d3", "a3"]
    frac = rng.dirichlet(np.ones(4), size=(n, n_layers))
    ds = xr.Dataset(
        {
            "cse": (("token", "layer"), cse, {"long_name": "conditional scale entropy", "units": "1"}),
            "scale_fraction": (("token", "layer", "scale"), frac),
            "update_norm": (("token", "layer"), rng.gamma(2.0, 1.0, (n, n_layers))),
            "surprisal": ("token", rng.exponential(3.0, n), {"units": "nat"}),
        },
        coords={
            "layer": np.arange(n_layers),
            "depth": ("layer", (np.arange(n_layers) + 1) / n_layers),
            "scale": scale,
            "text": ("token", text),
            "position": ("token", position),
            "token_id": ("token", rng.integers(0, 1000, n)),
            "token_str": ("token", np.array([f"tok{i % 50}" for i in range(n)], dtype=object)),
            "word": ("token", np.where(position == 0, -1, position - 1)),
            "is_word_start": ("token", position % 2 == 1),
            "is_special": ("token", position == 0),
            "label": ("token", label),
            "verb": ("token", np.array([f"verb{t % 7}" for t in text], dtype=object)),
            "verb_idx": ("token", np.full(n, 3)),
            "genre": ("token", np.where(text % 3 == 0, "news", "fiction")),
        },
        attrs={"model": "synthetic", "n_layers": n_layers, "axis": "depth"},
    )
    return ds


def welch_t(a, b):
    """Welch t of b - a along axis 0 with scipy (NaN omitted)."""
    return sps.ttest_ind(b, a, equal_var=False, axis=0, nan_policy="omit").statistic


# independent (naive, loop-based) implementations -----------------------------------


def naive_clusters(t, thr, tail):
    out = []
    for sign in ((1, -1) if tail == 0 else (tail,)):
        run = []
        for layer, value in enumerate(list(t) + [np.nan]):
            if np.isfinite(value) and sign * value > thr:
                run.append(layer)
            elif run:
                out.append((run[0], run[-1], sum(sign * t[k] for k in run)))
                run = []
    return sorted(out)


def count_ge(null, obs):
    return sum(1 for v in null if v >= obs - 100 * np.finfo(float).eps * abs(obs))


def naive_pvalues(y_a, y_b, perms, tail, thr):
    """maxT and cluster p-values from per-permutation scipy t tests, one loop per permutation."""
    y = np.concatenate([y_a, y_b])
    stat = (lambda t: np.abs(t)) if tail == 0 else (lambda t: tail * t)
    t_obs = welch_t(y_a, y_b)
    max_t, max_mass, layer_null = [], [], []
    for row in perms:
        t = welch_t(y[~row], y[row])
        s = stat(t)
        layer_null.append(s)
        max_t.append(np.max(s))
        masses = [m for *_, m in naive_clusters(t, thr, tail)]
        max_mass.append(max(masses) if masses else 0.0)
    P = len(perms)
    layer_null = np.array(layer_null)
    s_obs = stat(t_obs)
    p_unc = np.array([(count_ge(layer_null[:, j], s_obs[j]) + 1) / (P + 1) for j in range(len(t_obs))])
    p_maxt = np.array([(count_ge(max_t, s) + 1) / (P + 1) for s in s_obs])
    clusters = naive_clusters(t_obs, thr, tail)
    p_cluster = [(count_ge(max_mass, m) + 1) / (P + 1) for *_, m in clusters]
    return t_obs, p_unc, p_maxt, clusters, p_cluster


def run_arrays(y_a, y_b, correction, tail=0, permutations=None, n_permutations=199, seed=0, **kw):
    kw.setdefault("threshold", None)
    return _compare_arrays(
        y_a,
        y_b,
        paired=kw.pop("paired", False),
        blocks=kw.pop("blocks", None),
        n_permutations=n_permutations,
        correction=correction,
        tail=tail,
        cluster_alpha=0.05,
        alpha=0.05,
        n_bootstrap=kw.pop("n_bootstrap", 0),
        ci=0.95,
        rng=np.random.default_rng(seed),
        permutations=permutations,
        **kw,
    )


# ---------------------------------------------------------------------------------
# observed statistics
# ---------------------------------------------------------------------------------


def test_t_and_means_match_scipy_with_nans():
    ds = make_result(nan_fraction=0.1, seed=3)
    res = stats.compare(ds, "label", n_permutations=9, n_bootstrap=0)
    keep = ~ds.is_special.values
    lab = ds.label.values
    a = ds.cse.values[keep & (lab == "literal")]
    b = ds.cse.values[keep & (lab == "metaphor")]
    np.testing.assert_allclose(res.t.values, welch_t(a, b), rtol=RTOL_F64)
    np.testing.assert_allclose(res.mean_a.values, np.nanmean(a, 0), rtol=RTOL_F64)
    np.testing.assert_allclose(res["diff"].values, np.nanmean(b, 0) - np.nanmean(a, 0), rtol=1e-9)
    np.testing.assert_array_equal(res.n_a.values, np.isfinite(a).sum(0))
    np.testing.assert_array_equal(res.n_b.values, np.isfinite(b).sum(0))
    assert res.attrs["n_special_excluded"] == 40
    assert res.attrs["groups"] == ["literal", "metaphor"]
    assert res.attrs["difference"] == "mean(metaphor) - mean(literal)"


def test_hedges_g_hand_calculation():
    a = np.array([0.2, 0.5, 0.4, 0.9, 0.3])
    b = np.array([0.6, 0.8, 0.7, 1.1, 0.5, 0.9])
    sp = np.sqrt(((5 - 1) * a.var(ddof=1) + (6 - 1) * b.var(ddof=1)) / (5 + 6 - 2))
    d = (b.mean() - a.mean()) / sp
    g = d * (1 - 3 / (4 * 9 - 1))
    res = stats.compare(np.r_[a, b][:, None], by=np.r_[["a"] * 5, ["b"] * 6], n_permutations=99, seed=0)
    np.testing.assert_allclose(res.cohens_d.values[0], d, rtol=RTOL_F64)
    np.testing.assert_allclose(res.hedges_g.values[0], g, rtol=RTOL_F64)
    assert res.g_ci_low.values[0] < g < res.g_ci_high.values[0]
    # paired: d_z = mean / SD of the differences, g_z = J(n - 1) d_z
    x = np.array([0.1, 0.4, 0.3, 0.8, 0.2, 0.5])
    diff = b - x
    gz = diff.mean() / diff.std(ddof=1) * (1 - 3 / (4 * 5 - 1))
    ds = xr.Dataset(
        {"cse": (("token", "layer"), np.r_[x, b][:, None])},
        coords={"layer": [0], "g": ("token", ["x"] * 6 + ["y"] * 6), "pair": ("token", np.r_[np.arange(6), np.arange(6)])},
    )
    res = stats.compare(ds, "g", paired_by="pair", n_permutations=63, seed=0)
    np.testing.assert_allclose(res.hedges_g.values[0], gz, rtol=RTOL_F64)
    assert res.attrs["test"] == "sign-flip"


def test_bootstrap_interval_seeded_and_covers():
    ds = make_result(effect=1.0, seed=1)
    r1 = stats.compare(ds, "label", n_permutations=99, n_bootstrap=500, seed=7)
    r2 = stats.compare(ds, "label", n_permutations=99, n_bootstrap=500, seed=7)
    xr.testing.assert_identical(r1, r2)
    assert np.all(r1.g_ci_low.values <= r1.hedges_g.values + 0.02)
    assert np.all(r1.g_ci_high.values >= r1.hedges_g.values - 0.02)
    assert np.all(r1.g_ci_high.values - r1.g_ci_low.values > 0)
    r3 = stats.compare(ds, "label", n_permutations=99, n_bootstrap=500, seed=8)
    assert not np.array_equal(r1.g_ci_low.values, r3.g_ci_low.values)


# ---------------------------------------------------------------------------------
# agreement with scipy.stats.permutation_test
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("tail, alternative", [(0, "greater"), (1, "greater"), (-1, "less")])
def test_exact_agreement_with_scipy_all_permutations(tail, alternative):
    rng = np.random.default_rng(11)
    a = rng.normal(size=(5, 1))
    b = rng.normal(0.8, 1.5, size=(6, 1))
    # every assignment of 6 of the 11 tokens to group b, except the observed one
    perms = []
    for combo in itertools.combinations(range(11), 6):
        row = np.zeros(11, bool)
        row[list(combo)] = True
        if not (row[5:].all()):
            perms.append(row)
    perms = np.array(perms)
    res = run_arrays(a, b, "maxT", tail=tail, permutations=perms)

    def statistic(x, y, axis):
        t = sps.ttest_ind(y, x, equal_var=False, axis=axis).statistic
        return np.abs(t) if tail == 0 else t

    ref = sps.permutation_test(
        (a[:, 0], b[:, 0]), statistic, permutation_type="independent", alternative=alternative,
        n_resamples=np.inf, vectorized=True,
    )  # fmt: skip
    assert len(perms) + 1 == 462
    np.testing.assert_allclose(res["p_uncorrected"][0], ref.pvalue, rtol=1e-12)
    np.testing.assert_allclose(res["t"][0], sps.ttest_ind(b[:, 0], a[:, 0], equal_var=False).statistic, rtol=RTOL_F64)


def test_exact_agreement_with_scipy_paired_sign_flips():
    rng = np.random.default_rng(5)
    a = rng.normal(size=(7, 1))
    b = a + rng.normal(0.5, 1.0, size=(7, 1))
    signs = np.array([s for s in itertools.product([1, -1], repeat=7) if not all(v == 1 for v in s)])
    res = run_arrays(a, b, "maxT", paired=True, permutations=signs)

    def statistic(x, y, axis):
        return np.abs(sps.ttest_rel(y, x, axis=axis).statistic)

    ref = sps.permutation_test(
        (a[:, 0], b[:, 0]), statistic, permutation_type="samples", alternative="greater",
        n_resamples=np.inf, vectorized=True,
    )  # fmt: skip
    np.testing.assert_allclose(res["p_uncorrected"][0], ref.pvalue, rtol=1e-12)


def test_random_permutations_agree_with_scipy_within_mc_error():
    ds = make_result(effect=0.1, n_layers=4, seed=2)
    res = stats.compare(ds, "label", n_permutations=4999, n_bootstrap=0, correction="fdr_bh", seed=4)
    keep = ~ds.is_special.values
    lab = ds.label.values
    for layer in (2, 3):
        a = ds.cse.values[keep & (lab == "literal"), layer]
        b = ds.cse.values[keep & (lab == "metaphor"), layer]
        ref = sps.permutation_test(
            (a, b), lambda x, y, axis: np.abs(sps.ttest_ind(y, x, equal_var=False, axis=axis).statistic),
            permutation_type="independent", alternative="greater", n_resamples=4999, vectorized=True,
            rng=np.random.default_rng(9 + layer),
        )  # fmt: skip
        p = res.p_uncorrected.values[layer]
        se = np.sqrt(2 * ref.pvalue * (1 - ref.pvalue) / 5000) + 1 / 5000
        assert 0.005 < ref.pvalue < 0.5  # an informative p, neither 0 nor 1
        assert abs(p - ref.pvalue) < 4 * se, (layer, p, ref.pvalue)


# ---------------------------------------------------------------------------------
# independent max-T and cluster mass on the same permutations
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("tail", [0, 1, -1])
@pytest.mark.parametrize("use_blocks", [False, True])
def test_maxT_and_cluster_match_independent_computation(tail, use_blocks):
    rng = np.random.default_rng(100 + tail)
    n_a, n_b, L = 14, 17, 10
    y_a = rng.normal(size=(n_a, L)).cumsum(1) * 0.5
    y_b = rng.normal(size=(n_b, L)).cumsum(1) * 0.5
    y_b[:, 3:7] += 0.9 * (tail if tail else 1)
    y_b[:, 8] -= 0.9
    group = np.r_[np.zeros(n_a, bool), np.ones(n_b, bool)]
    blocks = rng.integers(0, 4, n_a + n_b) if use_blocks else None
    perms = _label_permutations(group, 299, rng, blocks=blocks)
    thr = 1.8
    t_obs, p_unc, p_maxt, clusters, p_cluster = naive_pvalues(y_a, y_b, perms, tail, thr)
    got_maxt = run_arrays(y_a, y_b, "maxT", tail=tail, permutations=perms, threshold=thr)
    got_cl = run_arrays(y_a, y_b, "cluster", tail=tail, permutations=perms, threshold=thr)
    np.testing.assert_allclose(got_maxt["t"], t_obs, rtol=1e-9)
    np.testing.assert_array_equal(got_maxt["p_uncorrected"], p_unc)
    np.testing.assert_array_equal(got_maxt["p_corrected"], p_maxt)
    assert [(s, e) for s, e, *_ in got_cl["clusters"]] == [(s, e) for s, e, _ in clusters]
    np.testing.assert_allclose([c[2] for c in got_cl["clusters"]], [m for *_, m in clusters], rtol=1e-9)
    np.testing.assert_array_equal(got_cl["cluster_p"], p_cluster)
    assert len(clusters) >= 1


def test_public_compare_uses_documented_permutations():
    """compare(seed=s) draws its permutations with _label_permutations from default_rng(s):
    an independent max-T / cluster computation on those permutations gives the same p."""
    ds = make_result(effect=0.8, n_texts=12, n_layers=8, seed=8)
    for correction in ("maxT", "cluster"):
        res = stats.compare(ds, "label", correction=correction, n_permutations=400, n_bootstrap=0, seed=21,
                            threshold=2.0)  # fmt: skip
        keep = ~ds.is_special.values
        lab = ds.label.values
        a = ds.cse.values[keep & (lab == "literal")]
        b = ds.cse.values[keep & (lab == "metaphor")]
        group = np.r_[np.zeros(len(a), bool), np.ones(len(b), bool)]
        perms = _label_permutations(group, 400, np.random.default_rng(21))
        t_obs, _, p_maxt, clusters, p_cluster = naive_pvalues(a, b, perms, 0, 2.0)
        if correction == "maxT":
            np.testing.assert_array_equal(res.p_corrected.values, p_maxt)
        else:
            np.testing.assert_array_equal(res.cluster_p.values, p_cluster)
            np.testing.assert_array_equal(res.cluster_start.values, [c[0] for c in clusters])
            np.testing.assert_array_equal(res.cluster_stop.values, [c[1] for c in clusters])


# ---------------------------------------------------------------------------------
# simulation: false positives under the null, power on planted effects
# ---------------------------------------------------------------------------------


def simulate(n_sims, effect_layers, effect, seed, n=15, L=12, n_permutations=199, rho=0.5):
    """Run every correction on `n_sims` simulated data sets; return rejection masks (n_sims, L) per correction."""
    rng = np.random.default_rng(seed)
    out = {c: np.zeros((n_sims, L), bool) for c in ("cluster", "maxT", "fdr_bh", "none")}
    for k in range(n_sims):
        noise = rng.normal(size=(2 * n, L))
        for layer in range(1, L):
            noise[:, layer] = rho * noise[:, layer - 1] + np.sqrt(1 - rho**2) * noise[:, layer]
        noise[n:, effect_layers] += effect
        y_a, y_b = noise[:n], noise[n:]
        for correction in ("cluster", "maxT", "fdr_bh"):
            res = run_arrays(y_a, y_b, correction, n_permutations=n_permutations, seed=int(rng.integers(2**31)))
            out[correction][k] = res["significant"]
        out["none"][k] = res["p_uncorrected"] <= 0.05
    return out


def test_null_familywise_error_and_fdr_at_most_alpha():
    n_sims, alpha = 200, 0.05
    rej = simulate(n_sims, [], 0.0, seed=2024)
    bound = alpha + 3 * np.sqrt(alpha * (1 - alpha) / n_sims)
    for correction in ("cluster", "maxT", "fdr_bh"):  # all nulls true: FDR = FWER
        fwer = rej[correction].any(axis=1).mean()
        assert fwer <= bound, (correction, fwer)
    # ... and the test is not trivially conservative: per-layer uncorrected rate ~ alpha
    per_layer = rej["none"].mean()
    assert 0.025 <= per_layer <= 0.08, per_layer
    assert rej["none"].any(axis=1).mean() > 2 * alpha  # uncorrected FWER over 12 layers is inflated


def test_null_fwer_of_paired_sign_flips_at_most_alpha():
    rng = np.random.default_rng(404)
    n_sims, m, L, alpha = 200, 12, 10, 0.05
    hits = {"cluster": 0, "maxT": 0}
    for _ in range(n_sims):
        shared = rng.normal(size=(m, L)).cumsum(axis=1)  # pairs share most of their variance
        y_a = shared + 0.5 * rng.normal(size=(m, L))
        y_b = shared + 0.5 * rng.normal(size=(m, L))
        for correction in hits:
            res = run_arrays(y_a, y_b, correction, paired=True, seed=int(rng.integers(2**31)))
            hits[correction] += bool(res["significant"].any())
    bound = alpha + 3 * np.sqrt(alpha * (1 - alpha) / n_sims)
    for correction, count in hits.items():
        assert count / n_sims <= bound, (correction, count / n_sims)


@settings(max_examples=25, deadline=None)
@given(
    scale=st.floats(0.01, 100).flatmap(lambda v: st.sampled_from([v, -v])),
    shift=st.floats(-10, 10),
    seed=st.integers(0, 2**16),
)
def test_affine_changes_of_the_values_leave_the_test_unchanged(scale, shift, seed):
    """t is invariant to a positive affine map and changes sign under a negative one;
    with the same seed the permutation p-values are identical."""
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(20, 5))
    y[10:, 1:3] += 1.0
    labels = np.repeat(["a", "b"], 10)
    kw = dict(n_permutations=199, n_bootstrap=0, seed=seed, correction="maxT")
    base = stats.compare(y, by=labels, **kw)
    moved = stats.compare(shift + scale * y, by=labels, **kw)
    np.testing.assert_allclose(moved.t.values, np.sign(scale) * base.t.values, rtol=1e-7)
    np.testing.assert_array_equal(moved.p_corrected.values, base.p_corrected.values)
    np.testing.assert_allclose(moved.hedges_g.values, np.sign(scale) * base.hedges_g.values, rtol=1e-7)


def test_fdr_bh_controls_fdr_with_planted_effects():
    n_sims, alpha = 150, 0.05
    band = [3, 4, 5, 6]
    rej = simulate(n_sims, band, 1.2, seed=77)["fdr_bh"]
    false = rej.copy()
    false[:, band] = False
    fdp = false.sum(1) / np.maximum(rej.sum(1), 1)
    se = fdp.std(ddof=1) / np.sqrt(n_sims)
    assert fdp.mean() <= alpha + 3 * se + 1e-12, fdp.mean()
    assert rej[:, band].mean() > 0.5  # and finds the effect


def test_power_on_planted_band():
    band = [3, 4, 5, 6]
    rej = simulate(40, band, 1.2, seed=31, n=20)
    outside = [layer for layer in range(12) if layer not in band]
    for correction in ("cluster", "maxT"):
        found = rej[correction][:, band].any(axis=1).mean()
        assert found >= 0.85, (correction, found)
        assert rej[correction][:, outside].any(axis=1).mean() <= 0.2
    # the cluster covers (most of) the band
    assert rej["cluster"][:, band].mean() >= 0.75


def test_public_compare_finds_planted_band_and_reports_clusters():
    ds = make_result(effect=1.2, seed=4)
    res = stats.compare(ds, "label", n_permutations=999, seed=0)
    assert res.significant.sel(layer=[3, 4, 5, 6]).all()
    assert not res.significant.sel(layer=[0, 1, 9, 10, 11]).any()
    k = int(res.cluster_id.sel(layer=4))
    assert res.cluster_start.values[k] <= 3 and res.cluster_stop.values[k] >= 6
    assert res.cluster_p.values[k] == pytest.approx(1 / 1000)
    assert res.cluster_mass.values[k] > 0 and res.cluster_sign.values[k] == 1
    assert (res.p_corrected.values[res.cluster_id.values == -1] == 1).all()
    assert res.attrs["correction"] == "cluster" and res.attrs["seed"] == 0
    assert res.threshold == pytest.approx(sps.t.ppf(0.975, res.attrs["threshold_df"]))
    assert "depth" in res.coords


# ---------------------------------------------------------------------------------
# exchangeability blocks and pairs
# ---------------------------------------------------------------------------------


def test_within_block_permutations_keep_block_composition():
    rng = np.random.default_rng(0)
    n = 60
    blocks = rng.integers(0, 5, n)
    group = rng.random(n) < 0.4
    perms = _label_permutations(group, 500, rng, blocks=blocks)
    for b in range(5):
        in_b = blocks == b
        np.testing.assert_array_equal(perms[:, in_b].sum(1), group[in_b].sum())
        # every token of a mixed block gets each label about as often as the block's share
        share = perms[:, in_b].mean(0)
        np.testing.assert_allclose(share, group[in_b].mean(), atol=0.1)
    assert not (perms == group).all(axis=1).any()
    flips = _sign_flips(9, 2000, rng)
    assert set(np.unique(flips)) == {-1, 1}
    np.testing.assert_allclose(flips.mean(0), 0, atol=0.08)


def test_blocks_protect_against_a_confound():
    """Blocks differ in mean and in group share: unrestricted permutations see an effect,
    within-block permutations (the valid test) do not, under no within-block effect."""
    rng = np.random.default_rng(3)
    n_sims, hits_free, hits_block = 60, 0, 0
    for _ in range(n_sims):
        blocks = np.repeat(np.arange(6), 10)
        share = np.repeat([0.2, 0.8, 0.2, 0.8, 0.2, 0.8], 10)
        group = rng.random(60) < share
        y = rng.normal(size=(60, 3)) + 1.5 * (blocks % 2)[:, None]
        y_a, y_b = y[~group], y[group]
        bl = np.r_[blocks[~group], blocks[group]]
        free = run_arrays(y_a, y_b, "maxT", seed=int(rng.integers(1000)))
        within = run_arrays(y_a, y_b, "maxT", blocks=bl, seed=int(rng.integers(1000)))
        hits_free += free["significant"].any()
        hits_block += within["significant"].any()
    assert hits_free / n_sims > 0.5
    assert hits_block / n_sims <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / n_sims)


def test_paired_compare_aligns_pairs_regardless_of_token_order():
    rng = np.random.default_rng(9)
    m, L = 12, 5
    a = rng.normal(size=(m, L))
    b = a + 0.3 + 0.2 * rng.normal(size=(m, L))
    values = np.r_[a, b]
    pair = np.r_[np.arange(m), np.arange(m)]
    lab = np.r_[["lit"] * m, ["met"] * m]
    order = rng.permutation(2 * m)
    ds = xr.Dataset(
        {"cse": (("token", "layer"), values[order])},
        coords={"layer": np.arange(L), "label": ("token", lab[order]), "pair": ("token", pair[order])},
    )
    res = stats.compare(ds, "label", paired_by="pair", n_permutations=999, n_bootstrap=0, seed=1)
    np.testing.assert_allclose(res.t.values, sps.ttest_rel(b, a).statistic, rtol=RTOL_F64)
    assert res.significant.all()
    # unpaired Welch on the same data is far weaker (pairs share most of their variance)
    unpaired = stats.compare(ds, "label", n_permutations=999, n_bootstrap=0, seed=1)
    assert (np.abs(unpaired.t.values) < np.abs(res.t.values)).all()
    bad = ds.isel(token=np.flatnonzero(~((ds.pair == 3) & (ds.label == "met")).values))
    with pytest.raises(CSEInputError, match=r"exactly one selected token of each group.*3"):
        stats.compare(bad, "label", paired_by="pair", n_permutations=9)


# ---------------------------------------------------------------------------------
# selection, inputs and errors
# ---------------------------------------------------------------------------------


def test_where_forms_agree():
    ds = make_result(seed=5)
    kw = dict(n_permutations=99, n_bootstrap=0, seed=2)
    by_str = stats.compare(ds, "label", where="is_word_start and genre == 'news'", **kw)
    by_dict = stats.compare(ds, "label", where={"is_word_start": True, "genre": "news"}, **kw)
    mask = ds.is_word_start & (ds.genre == "news")
    by_mask = stats.compare(ds, "label", where=mask, **kw)
    for other in (by_dict, by_mask):
        xr.testing.assert_equal(by_str, other)
    assert by_str.attrs["n_tokens"] == int(mask.sum())
    assert by_str.attrs["where"] == "is_word_start and genre == 'news'"
    # coordinates compared with each other, and 1-D token variables
    r = stats.compare(ds, "label", where="word == verb_idx", **kw)
    assert r.attrs["n_tokens"] == int((ds.word == ds.verb_idx).sum())
    r = stats.compare(ds, "label", where="surprisal > 2", **kw)
    assert r.attrs["n_tokens"] == int(((ds.surprisal > 2) & ~ds.is_special).sum())


def test_special_tokens_excluded_unless_asked():
    ds = make_result(seed=6)
    ds["cse"] = ds.cse.fillna(0.9)
    default = stats.compare(ds, "label", n_permutations=9, n_bootstrap=0)
    assert default.attrs["n_tokens"] == int((~ds.is_special).sum())
    both = stats.compare(ds, "label", n_permutations=9, n_bootstrap=0, include_special=True)
    assert both.attrs["n_tokens"] == ds.sizes["token"]
    assert (both.n_a.values > default.n_a.values).all()


def test_input_types_give_the_same_statistics():
    ds = make_result(seed=7, n_texts=10)
    kw = dict(n_permutations=99, n_bootstrap=50, seed=3)
    from_ds = stats.compare(ds, "label", **kw)
    from_da = stats.compare(ds.cse, "label", **kw)
    keep = ~ds.is_special.values
    from_np = stats.compare(ds.cse.values[keep], by=ds.label.values[keep], **kw)
    for other in (from_da, from_np):
        for name in ("t", "p_corrected", "hedges_g", "g_ci_low", "n_a"):
            np.testing.assert_array_equal(from_ds[name].values, other[name].values)
    dask_ds = ds.chunk({"token": 50})
    xr.testing.assert_identical(stats.compare(dask_ds, "label", **kw), from_ds)


def test_result_round_trips_through_netcdf(tmp_path):
    res = stats.compare(make_result(effect=1.0, seed=2), "label", n_permutations=99, n_bootstrap=20)
    path = tmp_path / "stats.nc"
    res.to_netcdf(path, engine="h5netcdf")
    back = xr.open_dataset(path, engine="h5netcdf").load()
    xr.testing.assert_equal(res, back)
    assert list(back.attrs["groups"]) == ["literal", "metaphor"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(by="colour"), r"'by'.*no token coordinate 'colour'.*available: .*label"),
        (dict(by="genre", where="is_word_start"), None),
        (dict(by="verb"), r"'by'.*exactly 2 distinct values.*found 7: 'verb0', 'verb1'"),
        (dict(by="label", where="nosuch > 1"), r"'where': cannot evaluate 'nosuch > 1'"),
        (dict(by="label", where="position = 3"), r"'where'.*no '@' references or assignments"),
        (dict(by="label", where="@x > 1"), r"'where'.*no '@'"),
        (dict(by="label", where="position + 1"), r"'where'.*one True/False per token"),
        (dict(by="label", where={"nosuch": 1}), r"'where': no token coordinate 'nosuch'"),
        (dict(by="label", correction="bonferroni"), r"'correction': expected one of 'cluster', 'maxT'"),
        (dict(by="label", tail=2), r"'tail'"),
        (dict(by="label", n_permutations=0), r"'n_permutations'"),
        (dict(by="label", alpha=1.5), r"'alpha'"),
        (dict(by="label", groups=("literal", "simile")), r"'groups'.*no value 'simile'"),
        (dict(by="label", paired_by="text", blocks="verb"), r"exclude each other"),
        (dict(by="label", blocks="text"), r"'blocks': no 'text' block holds tokens of both groups"),
        (dict(by="label", var="nope"), r"'var'.*no variable 'nope'"),
    ],
)
def test_errors_are_one_line_and_name_the_parameter(kwargs, match):
    ds = make_result(n_texts=8)
    kwargs = {"n_permutations": 9, "n_bootstrap": 0, **kwargs}
    if match is None:  # genre has exactly two values: works
        stats.compare(ds, **kwargs)
        return
    with pytest.raises(CSEInputError, match=match) as info:
        stats.compare(ds, **kwargs)
    assert "\n" not in str(info.value)


def test_groups_pick_two_and_match_by_text():
    ds = make_result(n_texts=12)
    ds = ds.assign_coords(kind=("token", ds.text.values % 3))
    res = stats.compare(ds, "kind", groups=("2", "0"), n_permutations=19, n_bootstrap=0)
    assert res.attrs["groups"] == ["2", "0"]
    kind = ds.kind.values
    keep = ~ds.is_special.values
    a = ds.cse.values[keep & (kind == 2)]
    b = ds.cse.values[keep & (kind == 0)]
    np.testing.assert_allclose(res.t.values, welch_t(a, b), rtol=RTOL_F64)
    with pytest.raises(TypeError, match="'seed'"):
        stats.compare(ds, "kind", groups=(0, 1), seed="x")


def test_ten_thousand_permutations_are_fast():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(2000, 30))
    start = time.perf_counter()
    res = stats.compare(y, by=np.repeat(["a", "b"], 1000), n_permutations=10000, n_bootstrap=0, seed=0)
    elapsed = time.perf_counter() - start
    assert res.attrs["n_permutations"] == 10000
    assert elapsed < 15, elapsed  # about 1 s on 2 shared cores


# ---------------------------------------------------------------------------------
# mixed models, word frequency, relative depth
# ---------------------------------------------------------------------------------


def test_mixedlm_recovers_planted_coefficients():
    ds = make_result(n_texts=60, n_layers=4, seed=12)
    rng = np.random.default_rng(12)
    verbs = pd.factorize(ds.verb.values)[0]
    verb_effect = rng.normal(0, 0.05, verbs.max() + 1)[verbs]
    metaphor = (ds.label.values == "metaphor").astype(float)
    slope = np.array([0.0, 0.03, 0.06, 0.0])
    cse = (
        0.5 + metaphor[:, None] * slope + 0.01 * ds.surprisal.values[:, None]
        + verb_effect[:, None] + rng.normal(0, 0.02, (ds.sizes["token"], 4))
    )  # fmt: skip
    ds["cse"] = (("token", "layer"), cse)
    ds = ds.assign_coords(metaphor=("token", metaphor))
    res = stats.mixedlm(ds, "cse ~ metaphor + surprisal + position", groups="verb")
    assert set(res.term.values) >= {"Intercept", "metaphor", "surprisal", "position"}
    coef = res.coef.sel(term="metaphor").values
    se = res.se.sel(term="metaphor").values
    assert np.all(np.abs(coef - slope) < 4 * se)
    assert res.p.sel(term="metaphor").values[2] < 1e-6
    np.testing.assert_allclose(res.coef.sel(term="surprisal").values, 0.01, atol=0.002)
    assert res.converged.dtype == bool and res.converged.all()
    assert res.warnings.dims == ("layer",)
    assert (res.n_obs == int((~ds.is_special).sum())).all()
    assert res.group_var.values.min() > 0
    assert res.attrs["groups"] == "verb"
    with pytest.raises(CSEInputError, match="response 'nope'"):
        stats.mixedlm(ds, "nope ~ surprisal", groups="verb")
    with pytest.raises(CSEInputError, match="add_log_frequency"):
        stats.mixedlm(ds, "cse ~ log_frequency", groups="verb")
    with pytest.raises(CSEInputError, match="'groups': no token coordinate 'lemma'"):
        stats.mixedlm(ds, "cse ~ surprisal", groups="lemma")


def test_log_frequency_is_zipf_from_wordfreq():
    from wordfreq import zipf_frequency

    words = ["the", "\u0120metaphor", "\u2581river", "", None, "the"]
    z = stats.log_frequency(words)
    assert z[0] == pytest.approx(zipf_frequency("the", "en"))
    assert z[1] == pytest.approx(zipf_frequency("metaphor", "en"))
    assert z[2] == pytest.approx(zipf_frequency("river", "en"))
    assert np.isnan(z[3]) and np.isnan(z[4]) and z[5] == z[0]
    assert 6 < z[0] < 8 and z[1] < z[0]
    ds = make_result(n_texts=4)
    ds = ds.assign_coords(word_str=("token", np.array(["the", "dog"] * (ds.sizes["token"] // 2), dtype=object)))
    out = stats.add_log_frequency(ds, words="word_str")
    assert out.log_frequency.attrs["units"] == "Zipf"
    assert np.isnan(out.log_frequency.values[ds.is_special.values]).all()
    assert out.log_frequency.values[1] == pytest.approx(zipf_frequency("dog", "en"))
    with pytest.raises(CSEInputError, match="'words': no token coordinate 'lemma'"):
        stats.add_log_frequency(ds, words="lemma")


def test_relative_depth_pools_models_of_different_depth():
    profile = lambda d: 0.4 + 0.3 * np.sin(np.pi * d)  # noqa: E731 - the same curve for both models
    rows = []
    for L in (12, 30):
        ds = make_result(n_texts=4, n_layers=L, seed=L)
        ds["cse"] = ds.cse * 0 + profile(ds.depth)
        rows.append(stats.relative_depth(ds.cse.mean("token"), bins=6))
    a, b = rows
    np.testing.assert_allclose(a.relative_depth, (np.arange(6) + 0.5) / 6)
    np.testing.assert_array_equal(a.n_layers_in_bin, [2] * 6)
    np.testing.assert_array_equal(b.n_layers_in_bin, [5] * 6)
    np.testing.assert_allclose(a.values, b.values, atol=0.03)
    pooled = xr.concat(rows, dim="model")
    assert pooled.sizes == {"model": 2, "relative_depth": 6}
    # bin means are the means of the layers in the bin, exactly
    ds12 = make_result(n_texts=4, n_layers=12, seed=1)
    binned = stats.relative_depth(ds12, bins=4)
    np.testing.assert_allclose(
        binned.cse.isel(relative_depth=1).values, ds12.cse.isel(layer=slice(3, 6)).mean("layer").values
    )
    assert binned.surprisal.dims == ("token",)  # variables without layers stay
    assert binned.attrs["relative_depth_n_layers"] == 12
    # interpolation is exact on a linear profile
    lin = xr.DataArray(np.arange(1, 13) / 12 * 2.0, dims="layer", coords={"depth": ("layer", np.arange(1, 13) / 12)})
    interp = stats.relative_depth(lin, bins=4, method="interpolate")
    np.testing.assert_allclose(interp.values, 2 * np.array([0.125, 0.375, 0.625, 0.875]))
    # a compare() result maps too
    res = stats.compare(ds12, "label", n_permutations=9, n_bootstrap=0)
    assert stats.relative_depth(res, bins=3).t.sizes == {"relative_depth": 3}
    with pytest.raises(CSEInputError, match="'bins'"):
        stats.relative_depth(ds12, bins=0)
    with pytest.raises(CSEInputError, match="'layer' dim"):
        stats.relative_depth(ds12.surprisal)


# ---------------------------------------------------------------------------------
# the `cse stats` command
# ---------------------------------------------------------------------------------


@pytest.fixture
def result_file(tmp_path):
    from cse.io import write_result

    path = tmp_path / "result.nc"
    write_result(make_result(effect=1.2, seed=4), path)
    return path


def test_stats_command_prints_table_and_writes_netcdf(result_file, tmp_path):
    from click.testing import CliRunner

    from cse.cli import cli

    out = tmp_path / "stats.nc"
    args = ["stats", str(result_file), "--by", "label", "--where", "is_word_start", "--n-permutations", "499",
            "--n-bootstrap", "100", "--seed", "3", "-o", str(out)]  # fmt: skip
    run = CliRunner().invoke(cli, args)
    assert run.exit_code == 0, run.output
    assert "mean(metaphor) - mean(literal)" in run.output
    assert "p_cluster" in run.output and "layers 3-" in run.output
    saved = xr.open_dataset(out, engine="h5netcdf").load()
    direct = stats.compare(xr.open_dataset(result_file, engine="h5netcdf"), "label", where="is_word_start",
                           n_permutations=499, n_bootstrap=100, seed=3)  # fmt: skip
    for name in ("t", "p_corrected", "g_ci_low", "cluster_p"):
        np.testing.assert_array_equal(saved[name].values, direct[name].values)
    assert saved.attrs["seed"] == 3 and saved.attrs["where"] == "is_word_start"
    assert not list(tmp_path.glob(".*partial"))  # the atomic write left nothing behind


def test_stats_command_options_reach_compare(result_file):
    from click.testing import CliRunner

    from cse.cli import cli

    args = ["stats", str(result_file), "--by", "label", "--groups", "metaphor", "literal", "--correction", "maxT",
            "--tail", "less", "--n-permutations", "99", "--n-bootstrap", "0", "--blocks", "genre"]  # fmt: skip
    run = CliRunner().invoke(cli, args)
    assert run.exit_code == 0, run.output
    assert "mean(literal) - mean(metaphor)" in run.output
    assert "within-block" in run.output and "p_maxT" in run.output and "tail -1" in run.output


@pytest.mark.parametrize(
    "args, match",
    [
        (["--by", "colour"], "no token coordinate 'colour'"),
        (["--by", "label", "--where", "position >"], "cannot evaluate 'position >'"),
        (["--by", "label", "-o", "stats.csv"], "must end in .nc"),
    ],
)
def test_stats_command_input_errors(result_file, args, match):
    from click.testing import CliRunner

    from cse.cli import cli

    run = CliRunner().invoke(cli, ["stats", str(result_file), *args])
    assert isinstance(run.exception, CSEInputError)
    assert re.search(match, str(run.exception))


def test_stats_command_missing_file():
    from click.testing import CliRunner

    from cse.cli import cli

    run = CliRunner().invoke(cli, ["stats", "no/such/result.nc", "--by", "label"])
    assert isinstance(run.exception, CSEInputError) and "does not exist" in str(run.exception)


def test_stats_cli_exits_2_with_one_line_for_a_missing_column(result_file):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run(
        [sys.executable, "-m", "cse.cli", "stats", str(result_file), "--by", "colour"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: Invalid value for 'by'"), proc.stderr
    assert "Traceback" not in proc.stderr
