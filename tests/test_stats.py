"""Tests of cse.stats.compare without nuisance structure: Welch's t and the paired sign-flip test.

Checked against scipy (t, full enumeration with `scipy.stats.permutation_test`) and
against the independent loop implementations of `stats_data` on the same permutation
matrices. Blocks and covariates: test_stats_blocks.py; simulations:
test_stats_simulation.py. Synthetic Datasets follow SPEC section 4 (no model needed).
"""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from stats_data import indices_from_labels, make_result, naive_corrections, welch_t

from cse import plot, stats
from cse.errors import CSEInputError
from cse.stats.engine import compare_arrays
from cse.stats.permutation import label_permutations, permutation_indices, sign_flips

RTOL_F64 = 5e-11
ALL = ["cluster", "tfce", "maxT", "maxT_stepdown", "fdr_bh"]


def run_arrays(y_a, y_b, corrections=("maxT",), tail=0, permutations=None, n_permutations=199, seed=0, **kw):
    return compare_arrays(y_a, y_b, corrections=list(corrections), tail=tail, n_permutations=n_permutations,
                          rng=np.random.default_rng(seed), permutations=permutations, **kw)  # fmt: skip


def split(ds, coord="label", a="literal", b="metaphor"):
    keep = ~ds.is_special.values
    lab = ds[coord].values
    return ds.cse.values[keep & (lab == a)], ds.cse.values[keep & (lab == b)]


# ---------------------------------------------------------------------------------
# observed statistics
# ---------------------------------------------------------------------------------


def test_t_and_means_match_scipy_with_nans():
    ds = make_result(nan_fraction=0.1, seed=3)
    res = stats.compare(ds, "label", n_permutations=9, n_bootstrap=0)
    a, b = split(ds)
    np.testing.assert_allclose(res.t.values, welch_t(a, b), rtol=RTOL_F64)
    np.testing.assert_allclose(res.mean_a.values, np.nanmean(a, 0), rtol=RTOL_F64)
    np.testing.assert_allclose(res["diff"].values, np.nanmean(b, 0) - np.nanmean(a, 0), rtol=1e-9)
    np.testing.assert_array_equal(res.n_a.values, np.isfinite(a).sum(0))
    np.testing.assert_array_equal(res.n_b.values, np.isfinite(b).sum(0))
    welch_df = sps.ttest_ind(b[:, 2][np.isfinite(b[:, 2])], a[:, 2][np.isfinite(a[:, 2])], equal_var=False).df
    assert res.df.values[2] == pytest.approx(welch_df, rel=1e-10)
    assert res.attrs["n_special_excluded"] == 40
    assert res.attrs["groups"] == ["literal", "metaphor"]
    assert res.attrs["difference"] == "mean(metaphor) - mean(literal)"
    assert res.attrs["statistic"] == "Welch t" and res.attrs["test"] == "label permutation"


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
    assert res.attrs["test"] == "sign-flip" and res.attrs["statistic"] == "paired t (sign flips)"
    assert res.df.values[0] == 5


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
    rows = []
    for combo in itertools.combinations(range(11), 6):
        row = np.zeros(11, bool)
        row[list(combo)] = True
        if not row[5:].all():
            rows.append(row)
    perms = indices_from_labels(np.array(rows), 5)
    res = run_arrays(a, b, tail=tail, permutations=perms)

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
    res = run_arrays(a, b, paired=True, permutations=signs)

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
    a_all, b_all = split(ds)
    for layer in (2, 3):
        a, b = a_all[:, layer], b_all[:, layer]
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
# every correction against an independent computation on the same permutations
# ---------------------------------------------------------------------------------


def check_against_naive(got, naive):
    np.testing.assert_array_equal(got["p_uncorrected"], naive["p_uncorrected"])
    np.testing.assert_array_equal(got["p_maxT"], naive["p_maxT"])
    np.testing.assert_array_equal(got["p_maxT_stepdown"], naive["p_maxT_stepdown"])
    assert [(s, e) for s, e, *_ in got["clusters"]] == [(s, e) for s, e, _ in naive["clusters"]]
    np.testing.assert_allclose([c[2] for c in got["clusters"]], [m for *_, m in naive["clusters"]], rtol=1e-9)
    np.testing.assert_array_equal(got["cluster_p"], naive["cluster_p"])
    np.testing.assert_allclose(got["tfce"], naive["tfce"], rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(got["p_tfce"], naive["p_tfce"])


@pytest.mark.parametrize("tail", [0, 1, -1])
def test_every_correction_matches_independent_computation(tail):
    rng = np.random.default_rng(100 + tail)
    n_a, n_b, L = 14, 17, 10
    y_a = rng.normal(size=(n_a, L)).cumsum(1) * 0.5
    y_b = rng.normal(size=(n_b, L)).cumsum(1) * 0.5
    y_b[:, 3:7] += 0.9 * (tail if tail else 1)
    y_b[:, 8] -= 0.9
    group = np.r_[np.zeros(n_a, bool), np.ones(n_b, bool)]
    perms = permutation_indices(n_a + n_b, 299, rng)
    y = np.concatenate([y_a, y_b])
    t_null = np.array([welch_t(y[~row], y[row]) for row in group[perms]])  # scipy, one permutation at a time
    naive = naive_corrections(welch_t(y_a, y_b), t_null, tail, 1.8)
    got = run_arrays(y_a, y_b, ALL, tail=tail, permutations=perms, threshold=1.8)
    np.testing.assert_allclose(got["t"], welch_t(y_a, y_b), rtol=1e-9)
    check_against_naive(got, naive)
    assert len(naive["clusters"]) >= 1
    np.testing.assert_array_equal(got["p_corrected"], got["p_cluster"])  # the first correction is the primary


def test_paired_corrections_match_independent_computation():
    rng = np.random.default_rng(7)
    m, L = 13, 9
    y_a = rng.normal(size=(m, L)).cumsum(1)
    y_b = y_a + rng.normal(size=(m, L)) + np.r_[0, 0, 1.2, 1.2, 1.2, 0, 0, -1, 0]
    signs = sign_flips(m, 257, rng)
    d = y_b - y_a
    t_null = np.array([sps.ttest_1samp(s[:, None] * d, 0).statistic for s in signs])
    naive = naive_corrections(sps.ttest_1samp(d, 0).statistic, t_null, 0, 2.0)
    got = run_arrays(y_a, y_b, ALL, paired=True, permutations=signs, threshold=2.0)
    check_against_naive(got, naive)


def test_public_compare_uses_documented_permutations():
    """compare(seed=s) draws its permutations with permutation_indices from default_rng(s):
    an independent computation on those permutations gives the same p."""
    ds = make_result(effect=0.8, n_texts=12, n_layers=8, seed=8)
    res = stats.compare(ds, "label", corrections=ALL, n_permutations=400, n_bootstrap=0, seed=21, threshold=2.0)
    a, b = split(ds)
    y = np.concatenate([a, b])
    group = np.r_[np.zeros(len(a), bool), np.ones(len(b), bool)]
    perms = permutation_indices(len(y), 400, np.random.default_rng(21))
    naive = naive_corrections(welch_t(a, b), np.array([welch_t(y[~r], y[r]) for r in group[perms]]), 0, 2.0)
    for name in ("p_maxT", "p_maxT_stepdown", "p_tfce", "p_uncorrected"):
        np.testing.assert_array_equal(res[name].values, naive[name])
    np.testing.assert_array_equal(res.cluster_p.values, naive["cluster_p"])
    np.testing.assert_array_equal(res.cluster_start.values, [c[0] for c in naive["clusters"]])
    np.testing.assert_array_equal(res.p_corrected.values, res.p_cluster.values)
    # the same permutations as the label matrix that earlier releases drew
    np.testing.assert_array_equal(group[perms], label_permutations(group, 400, np.random.default_rng(21)))


def test_corrections_share_one_permutation_set():
    """Each correction computed alone equals the same correction computed beside the others."""
    ds = make_result(effect=0.6, n_texts=16, n_layers=10, seed=3)
    kw = dict(n_permutations=300, n_bootstrap=0, seed=5)
    together = stats.compare(ds, "label", corrections=ALL, **kw)
    assert together.attrs["corrections"] == ", ".join(ALL) and together.attrs["correction"] == "cluster"
    for name in ALL:
        alone = stats.compare(ds, "label", correction=name, **kw)
        np.testing.assert_array_equal(alone[f"p_{name}"].values, together[f"p_{name}"].values)
        np.testing.assert_array_equal(alone.p_corrected.values, alone[f"p_{name}"].values)
        assert [v for v in alone.data_vars if v.startswith("p_") and v not in ("p_uncorrected", "p_corrected")] == [
            f"p_{name}"
        ]
    primary = stats.compare(ds, "label", correction="tfce", corrections=["maxT"], **kw)
    assert primary.attrs["corrections"] == "tfce, maxT"
    np.testing.assert_array_equal(primary.p_corrected.values, together.p_tfce.values)
    # step-down is never less powerful than single step; both control the same FWER
    assert (together.p_maxT_stepdown.values <= together.p_maxT.values).all()


# ---------------------------------------------------------------------------------
# invariances and planted effects
# ---------------------------------------------------------------------------------


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
    kw = dict(n_permutations=199, n_bootstrap=0, seed=seed, correction="maxT", corrections=["maxT_stepdown"])
    base = stats.compare(y, by=labels, **kw)
    moved = stats.compare(shift + scale * y, by=labels, **kw)
    np.testing.assert_allclose(moved.t.values, np.sign(scale) * base.t.values, rtol=1e-7)
    np.testing.assert_array_equal(moved.p_corrected.values, base.p_corrected.values)
    np.testing.assert_array_equal(moved.p_maxT_stepdown.values, base.p_maxT_stepdown.values)
    np.testing.assert_allclose(moved.hedges_g.values, np.sign(scale) * base.hedges_g.values, rtol=1e-7)


def test_public_compare_finds_planted_band_and_reports_clusters():
    ds = make_result(effect=1.2, seed=4, boundary_layers=3)
    res = stats.compare(ds, "label", n_permutations=999, seed=0, corrections=["tfce"])
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
    # TFCE finds the band too, peaks inside it, and the boundary flag comes along
    assert (res.p_tfce.sel(layer=[4, 5]) <= 0.05).all() and int(np.argmax(res.tfce.values)) in range(3, 7)
    np.testing.assert_array_equal(res.boundary_affected.values, np.arange(12) < 3)
    assert res.attrs["tfce_e"] == 0.5 and res.attrs["tfce_h"] == 2.0


# ---------------------------------------------------------------------------------
# permutations and pairs
# ---------------------------------------------------------------------------------


def test_within_block_permutations_keep_block_composition():
    rng = np.random.default_rng(0)
    n = 60
    blocks = rng.integers(0, 5, n)
    group = rng.random(n) < 0.4
    perms = permutation_indices(n, 500, rng, blocks=blocks)
    assert (np.sort(perms, axis=1) == np.arange(n)).all()  # every row is a permutation
    assert (blocks[perms] == blocks).all()  # that maps every token into its own block
    labels = group[perms]
    for b in range(5):
        in_b = blocks == b
        np.testing.assert_array_equal(labels[:, in_b].sum(1), group[in_b].sum())
        # every token of a mixed block gets each label about as often as the block's share
        np.testing.assert_allclose(labels[:, in_b].mean(0), group[in_b].mean(), atol=0.1)
    assert not (labels == group).all(axis=1).all()
    flips = sign_flips(9, 2000, rng)
    assert set(np.unique(flips)) == {-1, 1}
    np.testing.assert_allclose(flips.mean(0), 0, atol=0.08)


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
    # coordinates compared with each other, arithmetic, and 1-D token variables
    r = stats.compare(ds, "label", where="word == verb_idx", **kw)
    assert r.attrs["n_tokens"] == int((ds.word == ds.verb_idx).sum())
    r = stats.compare(ds, "label", where="word == verb_idx - 1", **kw)
    assert r.attrs["n_tokens"] == int(((ds.word == ds.verb_idx - 1) & ~ds.is_special).sum())
    r = stats.compare(ds, "label", where="surprisal > 2", **kw)
    assert r.attrs["n_tokens"] == int(((ds.surprisal > 2) & ~ds.is_special).sum())
    assert np.array_equal(stats.select_tokens(ds, "genre in ['news']"), (ds.genre == "news").values & ~ds.is_special.values)


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
    res = stats.compare(make_result(effect=1.0, seed=2, boundary_layers=4), "label", n_permutations=99,
                        n_bootstrap=20, corrections=ALL)  # fmt: skip
    path = tmp_path / "stats.nc"
    res.to_netcdf(path, engine="h5netcdf")
    back = xr.open_dataset(path, engine="h5netcdf").load()
    xr.testing.assert_equal(res, back)
    assert list(back.attrs["groups"]) == ["literal", "metaphor"]
    assert back.attrs["corrections"] == "cluster, tfce, maxT, maxT_stepdown, fdr_bh"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(by="colour"), r"'by'.*no token coordinate 'colour'.*available: .*label"),
        (dict(by="genre", where="is_word_start"), None),
        (dict(by="verb"), r"'by'.*exactly 2 distinct values.*found 7: 'verb0', 'verb1'"),
        (dict(by="label", where="nosuch > 1"), r"'where': unknown name 'nosuch'.*available: .*label"),
        (dict(by="label", where="position = 3"), r"'where': cannot parse 'position = 3'"),
        (dict(by="label", where="@x > 1"), r"'where': cannot parse"),
        (dict(by="label", where="label.__class__"), r"'where': attribute access \(\.__class__\) is not allowed"),
        (dict(by="label", where="position + 1"), r"'where'.*one True/False per token"),
        (dict(by="label", where={"nosuch": 1}), r"'where': no token coordinate 'nosuch'"),
        (dict(by="label", correction="bonferroni"), r"'correction': expected one of 'cluster', 'tfce', 'maxT'"),
        (dict(by="label", corrections=["maxT", "holm"]), r"'corrections': expected one of"),
        (dict(by="label", tail=2), r"'tail'"),
        (dict(by="label", n_permutations=0), r"'n_permutations': expected an integer >= 1, got 0"),
        (dict(by="label", n_permutations=10**9), r"'n_permutations': 1000000000 would need about .* GiB.*limit of 4 GiB"),
        (dict(by="label", n_bootstrap=10**9), r"'n_bootstrap': 1000000000 would need .*limit of 4 GiB"),
        (dict(by="label", n_bootstrap=-1), r"'n_bootstrap': expected an integer >= 0"),
        (dict(by="label", alpha=1.5), r"'alpha': expected a number in \(0, 1\)"),
        (dict(by="label", tfce_e=0), r"'tfce_e'"),
        (dict(by="label", tfce_h=float("nan")), r"'tfce_h'"),
        (dict(by="label", threshold=-1), r"'threshold'"),
        (dict(by="label", levels=("literal", "simile")), r"'levels'.*no value 'simile'"),
        (dict(by="label", paired_by="text", exchangeability_blocks="verb"), r"'paired_by'.*excludes"),
        (dict(by="label", paired_by="text", covariates=["surprisal"]), r"'paired_by'.*excludes"),
        (dict(by="label", exchangeability_blocks="text"), r"'exchangeability_blocks': no 'text' block holds"),
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


def test_memory_bound_is_checked_before_any_work(monkeypatch):
    import cse.stats.comparison as module

    def forbidden(*args, **kwargs):
        raise AssertionError("tokens were selected before the bound was checked")

    monkeypatch.setattr(module, "select_groups", forbidden)
    with pytest.raises(CSEInputError, match="'n_permutations'"):
        stats.compare(make_result(n_texts=4), "label", n_permutations=10**9)
    with pytest.raises(TypeError, match="'n_permutations'"):
        stats.compare(make_result(n_texts=4), "label", n_permutations=1e3)


def test_groups_pick_two_and_match_by_text():
    ds = make_result(n_texts=12)
    ds = ds.assign_coords(kind=("token", ds.text.values % 3))
    res = stats.compare(ds, "kind", levels=("2", "0"), n_permutations=19, n_bootstrap=0)
    assert res.attrs["groups"] == ["2", "0"]
    a, b = split(ds, "kind", 2, 0)
    np.testing.assert_allclose(res.t.values, welch_t(a, b), rtol=RTOL_F64)
    with pytest.raises(TypeError, match="'seed'"):
        stats.compare(ds, "kind", levels=(0, 1), seed="x")
    # 'groups' is the old name of 'levels' (statsmodels' 'groups' is the grouping column, as in mixedlm)
    with pytest.warns(DeprecationWarning, match="'groups' is deprecated.*'levels'"):
        old = stats.compare(ds, "kind", groups=("2", "0"), n_permutations=19, n_bootstrap=0)
    xr.testing.assert_identical(old, res)
    with pytest.raises(CSEInputError, match="'levels' only"), pytest.warns(DeprecationWarning):
        stats.compare(ds, "kind", groups=("2", "0"), levels=("0", "2"), n_permutations=19)


def test_ten_thousand_permutations_are_fast():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(2000, 30))
    start = time.perf_counter()
    res = stats.compare(y, by=np.repeat(["a", "b"], 1000), n_permutations=10000, n_bootstrap=0, seed=0,
                        corrections=ALL)  # fmt: skip
    elapsed = time.perf_counter() - start
    assert res.attrs["n_permutations"] == 10000
    assert elapsed < 20, elapsed  # about 2 s on 2 shared cores


# ---------------------------------------------------------------------------------
# issue 18: exact enumeration of small permutation spaces; infinite values
# ---------------------------------------------------------------------------------


def brute_force_p(stat, relabellings):
    """p = (elements with |stat| >= |observed|) / (size), the identity among the relabellings."""
    values = np.array([stat(r) for r in relabellings])
    observed = values[0]
    return np.mean(np.abs(values) >= np.abs(observed) - 1e-12)


def test_small_within_block_spaces_are_enumerated_exactly():
    """6 blocks of 2 tokens (one of each label): 2**6 = 64 relabellings <= P. Every one is used once, the identity
    included, and p = (count >= observed) / 64, the same as a brute-force loop over all relabellings."""
    rng = np.random.default_rng(3)
    blocks = np.repeat(np.arange(6), 2)
    group = np.tile([False, True], 6)
    y = rng.normal(size=(12, 3)) + np.arange(6)[blocks][:, None]
    y[group, 0] += 1.5
    y_a, y_b = y[~group], y[group]
    bl = np.r_[blocks[~group], blocks[group]]
    for statistic in ("cr", "hc2", "pooled"):
        res = compare_arrays(y_a, y_b, blocks=bl, statistic=statistic, corrections=["maxT"], n_permutations=999,
                             null="permutation",
                             rng=np.random.default_rng(0))  # fmt: skip
        assert res["exact"] and res["n_permutations"] == 64 and res["space_size"] == 64
        design_y = np.concatenate([y_a, y_b])
        labels = np.r_[np.zeros(6, bool), np.ones(6, bool)]
        flips = [np.array(f) for f in itertools.product([False, True], repeat=6)]
        flips.sort(key=lambda f: f.any())  # the identity (no swap) first
        relabel = []
        for f in flips:
            row = labels.copy()
            for k in np.flatnonzero(f):  # swap the labels of block k
                row[[k, 6 + k]] = ~row[[k, 6 + k]]
            relabel.append(row)
        from cse.stats.engine import make_design

        design = make_design(y_a, y_b, blocks=bl, statistic=statistic)
        for layer in range(3):
            def stat(row, layer=layer):  # the token indices whose labels give the relabelling `row`
                perm = np.empty(12, np.int64)
                perm[np.r_[np.flatnonzero(~row), np.flatnonzero(row)]] = np.arange(12)
                return design.t(perm[None, :])[0, layer]
            assert res["p_uncorrected"][layer] == pytest.approx(brute_force_p(stat, relabel)), statistic
    public = stats.compare(y, by=np.where(group, "b", "a"), n_permutations=999, n_bootstrap=0)
    assert public.attrs["exact"] == 1 and public.attrs["permutation_space"] == 924.0  # C(12, 6) <= 999
    # two-sided: t and -t pair up, so no p below 2 / 924 (issue 26)
    assert public.attrs["n_permutations"] == 924 and public.attrs["p_min"] == pytest.approx(2 / 924)
    assert public.attrs["p_value"].startswith("b / P")


def test_exact_sign_flips_and_residual_permutations():
    """10 pairs: 1024 sign flips <= P = 2000 are all used (p = count / 1024, exactly scipy's full enumeration);
    Freedman-Lane on blocks of 3 tokens permutes residuals: 6**4 = 1296 within-block permutations <= P."""
    rng = np.random.default_rng(4)
    a = rng.normal(size=(10, 2))
    b = a + 0.5 + rng.normal(size=(10, 2))
    res = compare_arrays(a, b, paired=True, corrections=["maxT"], n_permutations=2000, rng=rng)
    assert res["exact"] and res["n_permutations"] == 1024
    for layer in range(2):
        expected = sps.permutation_test(((b - a)[:, layer],), lambda d: d.mean() / d.std(ddof=1) * np.sqrt(len(d)),
                                        permutation_type="samples", n_resamples=np.inf).pvalue
        assert res["p_uncorrected"][layer] == pytest.approx(expected)
    y = rng.normal(size=(12, 2))
    group = np.tile([False, True, False], 4)
    blocks = np.repeat(np.arange(4), 3)
    z = rng.normal(size=(12, 1))
    y_a, y_b, bl, zz = y[~group], y[group], np.r_[blocks[~group], blocks[group]], np.r_[z[~group], z[group]]
    res = compare_arrays(y_a, y_b, blocks=bl, covariates=zz, covariate_names=["z"], corrections=["maxT"],
                         n_permutations=2000, rng=rng)  # fmt: skip
    assert res["exact"] and res["n_permutations"] == 1296 and res["p_uncorrected"].min() >= 1 / 1296
    bigger = compare_arrays(y_a, y_b, blocks=bl, covariates=zz, covariate_names=["z"], n_permutations=500, rng=rng)
    assert not bigger["exact"] and bigger["space_size"] is None and bigger["space_total"] == 1296


def test_infinite_values_are_undefined_counted_and_said_once():
    ds = make_result(seed=8, n_texts=10)
    cse = ds.cse.values.copy()
    cse[5, 2], cse[7, 2], cse[9, 4] = np.inf, -np.inf, np.inf
    bad = ds.assign(cse=(("token", "layer"), cse))
    clean = ds.assign(cse=(("token", "layer"), np.where(np.isinf(cse), np.nan, cse)))
    with pytest.warns(RuntimeWarning, match="3 infinite value") as record:
        res = stats.compare(bad, "label", n_permutations=99, n_bootstrap=20, seed=1)
    assert len([w for w in record if "infinite" in str(w.message)]) == 1
    ref = stats.compare(clean, "label", n_permutations=99, n_bootstrap=20, seed=1)
    for name in ("mean_a", "mean_b", "t", "p_uncorrected", "g_ci_low", "n_a"):
        np.testing.assert_array_equal(res[name].values, ref[name].values)
    assert np.isfinite(res.mean_a.values).all() and res.attrs["n_nonfinite"] == 3
    with pytest.warns(RuntimeWarning, match="infinite"):
        prof = plot.group_profiles(bad, "label")
    assert np.isfinite(prof["mean"].values).all() and prof.attrs["n_nonfinite"] == 3


def test_group_contrast_is_welch_and_hedges_g_pooled_over_tokens():
    ds = make_result(seed=9, effect=1.0)
    res = stats.group_contrast(ds, "label", where="is_word_start", levels=("literal", "metaphor"))
    a, b = split(ds.isel(token=ds.is_word_start.values))
    np.testing.assert_allclose(res.t.values, welch_t(a, b), rtol=RTOL_F64)
    test = stats.compare(ds, "label", where="is_word_start", n_permutations=9, n_bootstrap=0)
    for name in ("mean_a", "mean_b", "diff", "t", "df", "hedges_g", "cohens_d", "n_a", "n_b"):
        np.testing.assert_allclose(res[name].values, test[name].values, rtol=1e-12)
    assert "p_uncorrected" not in res and res.attrs["statistic"] == "Welch t"


def test_layer_span_and_boundary_layers():
    assert stats.layer_span([3, 0, 1, 2, 9, 9, 10]) == "0-3, 9-10" and stats.layer_span([]) == "none"
    ds = make_result(boundary_layers=3, n_texts=4)
    np.testing.assert_array_equal(stats.boundary_layers(ds), np.arange(12) < 3)
    res = stats.compare(ds, "label", n_permutations=9, n_bootstrap=0)
    np.testing.assert_array_equal(stats.boundary_layers(res), np.arange(12) < 3)
    assert stats.boundary_layers(make_result(n_texts=4)) is None


def test_conjunction_on_layers_and_on_relative_depth():
    def result(t, p, depth=None):
        coords = {"layer": np.arange(len(t))}
        if depth is not None:
            coords["depth"] = ("layer", depth)
        return xr.Dataset({"t": ("layer", np.asarray(t, float)), "p_uncorrected": ("layer", np.asarray(p, float))},
                          coords=coords)  # fmt: skip

    a = result([3, 3, -3, 1, 3], [0.001, 0.001, 0.001, 0.5, 0.001])
    b = result([2, -3, -3, 2, 3], [0.002, 0.001, 0.001, 0.3, 0.04])
    res = stats.conjunction({"mohx": a, "vua": b})
    # layer 0: both +, max p 0.002; layer 1: opposite signs; layer 2: both -, 0.001; layer 3: weak; layer 4: 0.04
    np.testing.assert_allclose(res.p_conjunction.values, [0.002, 1.0, 0.001, 0.5, 0.04])
    np.testing.assert_allclose(res.p_corrected.values, holm_reference([0.002, 1.0, 0.001, 0.5, 0.04]))
    np.testing.assert_array_equal(res.sign.values, [1, 0, -1, 1, 1])
    np.testing.assert_array_equal(res.replicated.values, [True, False, True, False, False])
    bands = stats.replicated_bands([a, b])
    assert bands[["first", "last", "sign", "n"]].values.tolist() == [[0, 0, 1, 1], [2, 2, -1, 1]]
    # one of two (u = 1): Bonferroni over the two smallest-first
    one = stats.conjunction([a, b], u=1)
    assert one.p_conjunction.values[1] == pytest.approx(2 * 0.001)
    # different depths: bins of relative depth, Bonferroni within each bin
    deep = result([3, 3, 3, 3, 3, 3, 3, 3, 3, 3], [0.001] * 10, depth=np.arange(1, 11) / 10)
    binned = stats.conjunction([a.assign_coords(depth=("layer", np.arange(1, 6) / 5)), deep], bins=5)
    assert binned.sizes == {"relative_depth": 5, "result": 2}
    np.testing.assert_allclose(binned.p_positive.values[1], [0.002] * 5)
    with pytest.raises(CSEInputError, match="'bins'.*different layers"):
        stats.conjunction([a, deep])
    with pytest.raises(CSEInputError, match="at least 2 results"):
        stats.conjunction([a])
    with pytest.raises(CSEInputError, match="'u'"):
        stats.conjunction([a, b], u=3)


def holm_reference(p):
    from statsmodels.stats.multitest import multipletests

    return multipletests(p, method="holm")[1]


def test_hc2_without_blocks_is_welch():
    """With one block the HC2 leverage is 1 / n_g, so the studentized coefficient is Welch's t exactly."""
    ds = make_result(seed=10, nan_fraction=0.05)
    welch = stats.compare(ds, "label", n_permutations=99, n_bootstrap=0, seed=2)
    hc2 = stats.compare(ds, "label", statistic="hc2", n_permutations=99, n_bootstrap=0, seed=2)
    np.testing.assert_allclose(hc2.t.values, welch.t.values, rtol=1e-10)
    assert hc2.attrs["statistic"].startswith("two-sample z") and hc2.attrs["scale"] == "z"
    np.testing.assert_array_equal(hc2.p_uncorrected.values, welch.p_uncorrected.values)  # same permutations
