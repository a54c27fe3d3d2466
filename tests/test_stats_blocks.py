"""Tests of the block-adjusted and Freedman-Lane statistics of cse.stats.compare, and of TFCE.

The observed t, the coefficient, the residual df and SD are checked against
statsmodels OLS with block dummies (and covariates); the permutation distributions
against naive per-permutation least-squares fits on the same permutations.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
import xarray as xr
from scipy import stats as sps
from stats_data import confounded_blocks, naive_corrections, ols_robust_t, ols_t, ordered

from cse import stats
from cse.errors import CSEInputError
from cse.stats.engine import compare_arrays, make_design
from cse.stats.corrections import tfce
from cse.stats.linear_model import weighted_fit
from cse.stats.permutation import permutation_indices, stratified_weights
from cse.stats.statistics import WelchT

ALL = ["cluster", "tfce", "maxT", "maxT_stepdown", "fdr_bh"]


def block_dataset(seed=0, n_blocks=6, per_block=15, n_layers=5, nan_fraction=0.0, effect=0.3):
    """A result whose verbs differ in mean and in metaphor share, with covariates."""
    rng = np.random.default_rng(seed)
    y, group, blocks = confounded_blocks(rng, n_blocks, per_block, n_layers, effect=effect, band=range(n_layers))
    surprisal = rng.exponential(3.0, y.shape[0]) + 0.8 * group
    y = y + 0.2 * surprisal[:, None]
    if nan_fraction:
        y[rng.random(y.shape) < nan_fraction] = np.nan
    ds = xr.Dataset(
        {"cse": (("token", "layer"), y), "surprisal": ("token", surprisal)},
        coords={"layer": np.arange(n_layers), "label": ("token", np.where(group, "met", "lit")),
                "verb": ("token", np.array([f"v{b}" for b in blocks], dtype=object)),
                "position": ("token", rng.integers(1, 30, y.shape[0]))},
    )  # fmt: skip
    return ds, y, group, blocks, surprisal


def statsmodels_fit(y, group, blocks, covariates=None, with_blocks=True):
    frame = pd.DataFrame({"y": y, "x": group.astype(float), "b": blocks})
    terms = ["x"] + (["C(b)"] if with_blocks else [])
    for k, col in enumerate((covariates if covariates is not None else np.zeros((len(y), 0))).T):
        frame[f"z{k}"] = col
        terms.append(f"z{k}")
    return smf.ols("y ~ " + " + ".join(terms), frame, missing="drop").fit()


# ---------------------------------------------------------------------------------
# observed statistic and effect size against statsmodels
# ---------------------------------------------------------------------------------


def test_within_block_t_agrees_with_statsmodels_ols_with_block_dummies():
    ds, y, group, blocks, _ = block_dataset(nan_fraction=0.08)
    res = stats.compare(ds, "label", exchangeability_blocks="verb", n_permutations=99, n_bootstrap=0,
                        statistic="pooled")  # fmt: skip
    assert res.attrs["statistic"] == "within-block t (block fixed effects)"
    assert res.attrs["groups"] == ["lit", "met"] and res.attrs["n_blocks"] == 6
    for layer in range(5):
        fit = statsmodels_fit(y[:, layer], group, blocks)
        assert res.t.values[layer] == pytest.approx(fit.tvalues["x"], rel=1e-9)
        assert res["diff"].values[layer] == pytest.approx(fit.params["x"], rel=1e-9)
        assert res.df.values[layer] == fit.df_resid
        d = fit.params["x"] / np.sqrt(fit.scale)  # the within-block effect over the residual SD
        assert res.cohens_d.values[layer] == pytest.approx(d, rel=1e-9)
        assert res.hedges_g.values[layer] == pytest.approx(d * (1 - 3 / (4 * fit.df_resid - 1)), rel=1e-9)
    # NaN patterns give the layers different df: t goes to the z scale, the threshold is N(0, 1)'s (issue 18)
    assert len(set(res.df.values)) > 1 and res.attrs["scale"] == "z" and res.attrs["threshold_df"] == np.inf
    assert res.attrs["threshold"] == pytest.approx(sps.norm.ppf(0.975))
    complete = stats.compare(block_dataset()[0], "label", exchangeability_blocks="verb", n_permutations=9,
                             n_bootstrap=0, statistic="pooled")  # fmt: skip
    assert complete.attrs["scale"] == "t" and complete.attrs["threshold_df"] == complete.df.values.min()


@pytest.mark.parametrize("with_blocks", [True, False])
def test_freedman_lane_t_agrees_with_statsmodels_ols_with_covariates(with_blocks):
    ds, y, group, blocks, surprisal = block_dataset(seed=2)
    res = stats.compare(ds, "label", exchangeability_blocks="verb" if with_blocks else None,
                        covariates=["surprisal", "position"], n_permutations=99, n_bootstrap=0,
                        statistic="pooled")  # fmt: skip
    z = np.column_stack([surprisal, ds.position.values])
    assert res.attrs["statistic"].startswith("Freedman–Lane t (covariates: surprisal, position")
    assert res.attrs["covariates"] == "surprisal, position"
    assert ("block fixed effects" in res.attrs["statistic"]) == with_blocks
    for layer in range(5):
        fit = statsmodels_fit(y[:, layer], group, blocks, z, with_blocks)
        assert res.t.values[layer] == pytest.approx(fit.tvalues["x"], rel=1e-9)
        assert res["diff"].values[layer] == pytest.approx(fit.params["x"], rel=1e-9)
        assert res.df.values[layer] == fit.df_resid
        assert res.cohens_d.values[layer] == pytest.approx(fit.params["x"] / np.sqrt(fit.scale), rel=1e-9)


@pytest.mark.parametrize("kind, cov_type", [("hc2", "HC2"), ("cr", "cluster")])
def test_robust_statistics_agree_with_statsmodels(kind, cov_type):
    """The default with blocks (HC2, full fixed-effects leverage) and the block-clustered variant are the label's
    coefficient over statsmodels' HC2 / cluster standard error of OLS with block dummies (and covariates)."""
    ds, y, group, blocks, surprisal = block_dataset(seed=3, nan_fraction=0.05)
    y = np.where(group[:, None], 2.5 * y, y)  # unequal variances
    ds["cse"] = (("token", "layer"), y)
    for covariates in (None, ["surprisal"]):
        res = stats.compare(ds, "label", exchangeability_blocks="verb", covariates=covariates, statistic=kind,
                            n_permutations=99, n_bootstrap=0)  # fmt: skip
        assert res.attrs["statistic_name"] == kind and res.attrs["scale"] == "z"
        assert ("HC2" in res.attrs["statistic"]) == (kind == "hc2") and "N(0, 1)" not in res.attrs["statistic"]
        keep = np.isfinite(y).all(axis=1) if covariates else np.ones(len(y), bool)
        for layer in range(5):
            frame = pd.DataFrame({"y": y[keep, layer], "x": group[keep] * 1.0, "b": blocks[keep],
                                  "s": surprisal[keep]}).dropna()  # fmt: skip
            model = smf.ols("y ~ x + C(b)" + (" + s" if covariates else ""), frame)
            if kind == "hc2":
                expected = model.fit(cov_type="HC2").tvalues["x"]
            else:
                fit = model.fit(cov_type="cluster", cov_kwds={"groups": frame["b"], "use_correction": False})
                g = frame.groupby("b")["x"].agg(lambda v: 0 < v.mean() < 1).sum()
                expected = fit.params["x"] / fit.bse["x"] / np.sqrt(g / (g - 1))
            assert res.t.values[layer] == pytest.approx(expected, rel=1e-9)
    assert stats.compare(ds, "label", exchangeability_blocks="verb", n_permutations=9).attrs["statistic_name"] == "cr"


@pytest.mark.parametrize("kind", ["hc2", "cr"])
@pytest.mark.parametrize("covariates", [False, True])
def test_robust_null_equals_naive_refits(kind, covariates):
    """Every permutation of the robust statistics equals a refit from an explicit design matrix: labels permuted
    within blocks (NaN patterns included), or, with covariates, the nuisance residuals permuted (Freedman-Lane)."""
    rng = np.random.default_rng(40)
    y, group, blocks = confounded_blocks(rng, 5, 8, 4)
    y[group] *= 2.0
    z = rng.normal(size=(len(y), 1)) + group[:, None]
    if not covariates:
        y[rng.random(y.shape) < 0.06] = np.nan
    y_a, y_b, bl, zz = ordered(y, group, blocks, z if covariates else None)
    yy, x = np.concatenate([y_a, y_b]), np.r_[np.zeros(len(y_a)), np.ones(len(y_b))]
    perms = permutation_indices(len(x), 40, rng, blocks=bl)
    design = make_design(y_a, y_b, blocks=bl, covariates=zz, covariate_names=["z"], statistic=kind)
    if covariates:
        nuisance = np.column_stack([zz] + [(bl == k) for k in range(5)])
        fitted = nuisance @ np.linalg.lstsq(nuisance, yy, rcond=None)[0]
        resid = yy - fitted
        expected = [[ols_robust_t(resid[np.argsort(p), k] + fitted[:, k], x, bl, zz, kind) for k in range(4)]
                    for p in perms]  # fmt: skip
    else:
        expected = [[ols_robust_t(yy[:, k], x[p], bl, None, kind) for k in range(4)] for p in perms]
    np.testing.assert_allclose(design.t(perms), np.array(expected), rtol=1e-8)


def test_weighted_fit_equals_ols_on_resampled_rows():
    """The bootstrap refits with resampling counts as frequency weights: the same as OLS on repeated rows."""
    rng = np.random.default_rng(4)
    y, group, blocks = confounded_blocks(rng, 5, 12, 3)
    z = rng.normal(size=(len(y), 2))
    weights = stratified_weights(blocks * 2 + group, 4, rng)
    fit = weighted_fit(weights, np.column_stack([group, z]).astype(float), y, blocks, 5)
    for r in range(4):
        rows = np.repeat(np.arange(len(y)), weights[r].astype(int))
        for layer in range(3):
            ref = statsmodels_fit(y[rows, layer], group[rows], blocks[rows], z[rows])
            assert fit["t"][r, layer] == pytest.approx(ref.tvalues["x"], rel=1e-8)
            assert fit["beta"][r, layer] == pytest.approx(ref.params["x"], rel=1e-8)
            assert fit["sd"][r, layer] == pytest.approx(np.sqrt(ref.scale), rel=1e-8)
        assert fit["df"][r] == ref.df_resid
    # within each block-by-label cell the resample keeps the cell's size
    cells = blocks * 2 + group
    for cell in np.unique(cells):
        np.testing.assert_array_equal(weights[:, cells == cell].sum(1), (cells == cell).sum())


# ---------------------------------------------------------------------------------
# permutation distributions against naive fits on the same permutations
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("tail", [0, 1])
def test_block_corrections_match_independent_computation(tail):
    rng = np.random.default_rng(30 + tail)
    y, group, blocks = confounded_blocks(rng, 5, 10, 8, effect=0.9, band=(2, 3, 4))
    y[rng.random(y.shape) < 0.05] = np.nan
    y_a, y_b, bl, _ = ordered(y, group, blocks)
    x = np.r_[np.zeros(len(y_a)), np.ones(len(y_b))]
    yy = np.concatenate([y_a, y_b])
    perms = permutation_indices(len(x), 199, rng, blocks=bl)
    naive_t = np.array([[ols_t(yy[:, layer], x[p], bl) for layer in range(8)] for p in perms])
    t_obs = np.array([ols_t(yy[:, layer], x, bl) for layer in range(8)])
    got = compare_arrays(y_a, y_b, blocks=bl, corrections=ALL, tail=tail, threshold=1.7, permutations=perms,
                         statistic="pooled")  # fmt: skip
    np.testing.assert_allclose(got["t"], t_obs, rtol=1e-9)
    np.testing.assert_allclose(make_design(y_a, y_b, blocks=bl, statistic="pooled").t(perms), naive_t, rtol=1e-8)
    # the NaN patterns give the layers different residual df: the corrections combine z, not t (issue 18)
    df = np.array([np.isfinite(yy[:, k]).sum() - len(np.unique(bl[np.isfinite(yy[:, k])])) - 1 for k in range(8)])
    assert len(set(df)) > 1 and got["scale"] == "z"
    to_z = lambda t: np.sign(t) * sps.norm.isf(sps.t.sf(np.abs(t), df))  # noqa: E731
    np.testing.assert_allclose(got["z"], to_z(t_obs), rtol=1e-8)
    naive = naive_corrections(to_z(t_obs), np.array([to_z(t) for t in naive_t]), tail, 1.7)
    for name in ("p_uncorrected", "p_maxT", "p_maxT_stepdown", "p_tfce"):
        np.testing.assert_array_equal(got[name], naive[name])
    np.testing.assert_array_equal(got["cluster_p"], naive["cluster_p"])
    assert (got["p_corrected"] == got["p_cluster"]).all()


@pytest.mark.parametrize("with_blocks", [True, False])
def test_freedman_lane_null_equals_permuted_residuals_refitted(with_blocks):
    """Freedman & Lane (1983): permute the nuisance model's residuals (within blocks), add its fitted
    values back, refit the full model. The engine's shortcut must give the same t for every permutation."""
    rng = np.random.default_rng(8)
    y, group, blocks = confounded_blocks(rng, 4, 12, 4)
    z = np.column_stack([rng.normal(size=len(y)) + group, rng.exponential(size=len(y))])
    y = y + (z @ np.array([0.5, -0.3]))[:, None]
    y_a, y_b, bl, zz = ordered(y, group, blocks, z)
    yy, x = np.concatenate([y_a, y_b]), np.r_[np.zeros(len(y_a)), np.ones(len(y_b))]
    bl = bl if with_blocks else None
    perms = permutation_indices(len(x), 60, rng, blocks=bl)
    nuisance = np.column_stack([np.ones(len(x)), zz] + ([] if bl is None else [(bl == k) for k in range(4)]))
    fitted = nuisance @ np.linalg.lstsq(nuisance, yy, rcond=None)[0]
    resid = yy - fitted
    expected = np.array([
        [ols_t(resid[np.argsort(p), layer] + fitted[:, layer], x, bl, zz) for layer in range(4)] for p in perms
    ])  # fmt: skip
    design = make_design(y_a, y_b, blocks=bl, covariates=zz, covariate_names=["z0", "z1"], statistic="pooled")
    np.testing.assert_allclose(design.t(perms), expected, rtol=1e-8)
    np.testing.assert_allclose(design.t(design.identity)[0], [ols_t(yy[:, k], x, bl, zz) for k in range(4)],
                               rtol=1e-9)  # fmt: skip


def test_block_permutation_distribution_is_centred_at_zero():
    """Blocks with different means and label shares: the within-block t's permutation distribution is centred
    at 0; the pooled Welch t under the same within-block permutations is shifted by the confound."""
    rng = np.random.default_rng(12)
    y, group, blocks = confounded_blocks(rng, 8, 25, 6, shift=3.0)
    y_a, y_b, bl, _ = ordered(y, group, blocks)
    perms = permutation_indices(len(bl), 2000, rng, blocks=bl)
    within = make_design(y_a, y_b, blocks=bl, statistic="pooled").t(perms)
    clustered = make_design(y_a, y_b, blocks=bl).t(perms)  # the default (CR): centred too, t(G - 1)-like tails
    assert np.abs(clustered.mean(axis=0)).max() < 0.1 and clustered.std(axis=0).max() < 1.4
    pooled = WelchT(np.concatenate([y_a, y_b]), np.r_[np.zeros(len(y_a), bool), np.ones(len(y_b), bool)]).t(perms)
    assert np.abs(within.mean(axis=0)).max() < 0.1
    assert 0.85 < within.std(axis=0).min() and within.std(axis=0).max() < 1.15
    assert pooled.mean(axis=0).min() > 3  # the confound, in every permutation


# ---------------------------------------------------------------------------------
# blocks: reporting, alias, errors
# ---------------------------------------------------------------------------------


def test_single_label_blocks_contribute_nothing_and_are_reported():
    ds, *_ = block_dataset(seed=5)
    only_lit = ds.isel(token=np.flatnonzero(~((ds.verb == "v0") & (ds.label == "met")).values))
    res = stats.compare(only_lit, "label", exchangeability_blocks="verb", n_permutations=99, n_bootstrap=0)
    without = stats.compare(only_lit.isel(token=np.flatnonzero((only_lit.verb != "v0").values)), "label",
                            exchangeability_blocks="verb", n_permutations=99, n_bootstrap=0)  # fmt: skip
    assert res.attrs["n_blocks_single_label"] == 1 and res.attrs["blocks_single_label"] == "v0"
    assert res.attrs["n_tokens_single_label_blocks"] == int((only_lit.verb == "v0").sum())
    assert res.attrs["n_blocks"] == 5
    for name in ("t", "diff", "hedges_g", "p_uncorrected", "p_corrected"):
        np.testing.assert_array_equal(res[name].values, without[name].values)


def test_blocks_is_a_deprecated_alias():
    ds, *_ = block_dataset(seed=6)
    kw = dict(n_permutations=99, n_bootstrap=10, seed=1)
    new = stats.compare(ds, "label", exchangeability_blocks="verb", **kw)
    with pytest.warns(DeprecationWarning, match="'blocks' is deprecated.*'exchangeability_blocks'"):
        old = stats.compare(ds, "label", blocks="verb", **kw)
    xr.testing.assert_identical(new, old)
    assert new.attrs["exchangeability_blocks"] == "verb"
    with pytest.raises(CSEInputError, match="'exchangeability_blocks' only"), pytest.warns(DeprecationWarning):
        stats.compare(ds, "label", blocks="verb", exchangeability_blocks="position", **kw)


def test_bootstrap_within_blocks_is_seeded_and_covers():
    ds, *_ = block_dataset(seed=7, per_block=30)
    kw = dict(exchangeability_blocks="verb", covariates=["surprisal"], n_permutations=99, n_bootstrap=400)
    r1, r2 = stats.compare(ds, "label", seed=3, **kw), stats.compare(ds, "label", seed=3, **kw)
    xr.testing.assert_identical(r1, r2)
    assert (r1.g_ci_low.values < r1.hedges_g.values).all() and (r1.hedges_g.values < r1.g_ci_high.values).all()
    assert "within blocks" in r1.attrs["effect_size"] and "residual" in r1.attrs["effect_size"]


def test_covariates_leave_out_incomplete_tokens():
    ds, *_ = block_dataset(seed=9)
    surprisal = ds.surprisal.values.copy()
    surprisal[:4] = np.nan
    cse = ds.cse.values.copy()
    cse[10, 2] = np.nan
    ds = ds.assign(surprisal=("token", surprisal), cse=(("token", "layer"), cse))
    res = stats.compare(ds, "label", covariates="surprisal", n_permutations=19, n_bootstrap=0)
    assert res.attrs["n_tokens_incomplete"] == 5 and res.attrs["n_tokens"] == ds.sizes["token"] - 5
    assert (res.n_a.values + res.n_b.values == ds.sizes["token"] - 5).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(covariates=["nosuch"]), r"'covariates': no token coordinate 'nosuch'"),
        (dict(covariates=["log_frequency"]), r"add_log_frequency"),
        (dict(covariates=["verb"]), r"'covariates': 'verb' holds .* a covariate must be numeric"),
        (dict(covariates=["label"]), r"'covariates': 'label' is already the 'by' coordinate"),
        (dict(covariates=["position", "twice"]), r"'covariates': position, twice are .*collinear"),
        (dict(covariates=["per_verb"], exchangeability_blocks="verb"), r"constant within blocks"),
        (dict(covariates=["is_met"]), r"explain the label entirely"),
    ],
)
def test_covariate_errors(kwargs, match):
    ds, *_ = block_dataset(seed=10)
    ds = ds.assign_coords(twice=2 * ds.position, per_verb=("token", pd.factorize(ds.verb.values)[0] * 1.0),
                          is_met=("token", (ds.label.values == "met") * 1.0))  # fmt: skip
    with pytest.raises(CSEInputError, match=match) as info:
        stats.compare(ds, "label", n_permutations=9, n_bootstrap=0, **kwargs)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------
# TFCE
# ---------------------------------------------------------------------------------


def test_tfce_is_the_limit_of_smith_and_nichols_sum():
    """Exact TFCE equals sum_h e(h)^E h^H dh over thresholds h = dh, 2 dh, ... as dh -> 0."""
    rng = np.random.default_rng(0)
    x = np.abs(rng.normal(size=(3, 14))) * 3 * (rng.random((3, 14)) < 0.7)
    exact = tfce(x, 0.5, 2.0)
    dh = 1e-4
    for row, got in zip(x, exact):
        grid = np.arange(dh / 2, row.max(), dh)  # midpoints
        supra = row[None, :] >= grid[:, None]  # (n_h, L)
        extent = np.zeros_like(supra, dtype=float)
        for k, level in enumerate(supra):
            edges = np.flatnonzero(np.diff(np.r_[0, level.astype(int), 0]))
            for start, stop in zip(edges[::2], edges[1::2]):
                extent[k, start:stop] = stop - start
        approx = (extent**0.5 * grid[:, None] ** 2.0).sum(axis=0) * dh
        np.testing.assert_allclose(got, approx, rtol=2e-3, atol=1e-6)
    assert (tfce(-x) == 0).all() and (tfce(np.full((1, 5), np.nan)) == 0).all()
    # a single layer of height v, E irrelevant: v**(H+1) / (H+1)
    assert tfce(np.array([[0, 2.0, 0]]), 0.5, 2.0)[0, 1] == pytest.approx(8 / 3)


def test_leverage_one_and_single_label_cells():
    """HC2 with leverage 1 (the only mixed block has one token of each label) is undefined: NaN, counted in
    n_layers_undefined; a token whose block holds one label at a layer (x~ = 0) contributes nothing."""
    from cse.stats.robust import RobustBlockT

    y = np.array([[0.1, 0.3], [0.9, 0.2]])
    design = RobustBlockT(y, np.array([False, True]), np.array([0, 0]), "hc2")
    assert np.isnan(design.t(design.identity)).all()
    res = compare_arrays(y[:1], y[1:], blocks=np.array([0, 0]), statistic="hc2", n_permutations=9)
    assert res["n_layers_undefined"] == 2 and np.isnan(res["p_uncorrected"]).all()
    # NaN at one layer leaves block 2 with one label there: its tokens drop out of that layer's SE and effect
    rng = np.random.default_rng(2)
    y, group, blocks = confounded_blocks(rng, 4, 8, 2)
    lone = np.flatnonzero((blocks == 2) & group)
    y[lone, 1] = np.nan
    design = RobustBlockT(y, group, blocks, "hc2")
    without = RobustBlockT(y[blocks != 2][:, 1:], group[blocks != 2], np.unique(blocks[blocks != 2],
                                                                                return_inverse=True)[1], "hc2")
    assert design.t(design.identity)[0, 1] == pytest.approx(without.t(without.identity)[0, 0], rel=1e-12)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(statistic="welch", exchangeability_blocks="verb"), r"'statistic': 'welch' pools over all tokens"),
        (dict(statistic="cr"), r"'statistic': 'cr' clusters by exchangeability blocks"),
        (dict(statistic="paired"), r"'statistic': 'paired' needs 'paired_by'"),
        (dict(statistic="t"), r"'statistic': expected one of"),
        (dict(bootstrap="blocks"), r"'bootstrap': 'blocks' resamples exchangeability blocks"),
        (dict(bootstrap="pairs"), r"'bootstrap': expected one of"),
    ],
)
def test_statistic_and_bootstrap_errors(kwargs, match):
    ds, *_ = block_dataset(seed=11)
    with pytest.raises(CSEInputError, match=match):
        stats.compare(ds, "label", n_permutations=9, n_bootstrap=5, **kwargs)
