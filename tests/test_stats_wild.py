"""The restricted wild cluster bootstrap null, few-block results, the t(G - 1) interval and p_min (issue 26)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from stats_data import block_design_draw, noise, ols_robust_t, ordered

from cse import stats
from cse.errors import CSEInputError
from cse.stats.engine import compare_arrays, make_design
from cse.stats.wild import WEBB_WEIGHTS, WildCluster, webb_weights


def _data(seed=0, n_blocks=8, sizes=(4, 12), n_layers=5, nan=False, covariate=False):
    rng = np.random.default_rng(seed)
    group, blocks = block_design_draw(rng, n_blocks, sizes, 0.5)
    y = noise(rng, blocks.size, n_layers) + rng.normal(size=n_blocks)[blocks][:, None]
    if nan:
        y[rng.random(y.shape) < 0.05] = np.nan
    z = rng.normal(size=(blocks.size, 1)) if covariate else None
    return y, group, blocks, z


def _restricted_draw(y, x, blocks, z, w):
    """y* = fitted + w_block * residual of the OLS of y on block dummies (and z), one layer, explicitly."""
    cols = [(blocks == b).astype(float) for b in np.unique(blocks)] + ([] if z is None else list(z.T))
    design = np.column_stack(cols)
    fitted = design @ np.linalg.lstsq(design, y, rcond=None)[0]
    return fitted + w[blocks] * (y - fitted)


@pytest.mark.parametrize("covariate, nan", [(False, False), (False, True), (True, False)])
def test_wild_statistic_equals_an_explicit_refit_of_each_draw(covariate, nan):
    """Every draw's statistic is the CR1 t of the full model refitted on y* = restricted fit + w_k * residual."""
    y, group, blocks, z = _data(seed=3, nan=nan, covariate=covariate)
    y_a, y_b, codes, cov = ordered(y, group, blocks, z)
    design = make_design(y_a, y_b, blocks=codes, covariates=cov, statistic="cr")
    wild = WildCluster(design)
    W = webb_weights(wild.n_blocks, 4, np.random.default_rng(1))
    got = wild.t(np.vstack([np.ones(wild.n_blocks), W]))
    np.testing.assert_allclose(got[0], design.t(design.identity)[0], rtol=1e-10, atol=1e-12)
    yy, x = np.concatenate([y_a, y_b]), np.r_[np.zeros(len(y_a)), np.ones(len(y_b))]
    for row, w in enumerate(W, start=1):
        for layer in range(yy.shape[1]):
            keep = np.isfinite(yy[:, layer])
            ystar = np.full(len(yy), np.nan)
            ystar[keep] = _restricted_draw(yy[keep, layer], x[keep], codes[keep], None if cov is None else cov[keep], w)
            expected = ols_robust_t(ystar, x, codes, cov, kind="cr")
            np.testing.assert_allclose(got[row, layer], expected, rtol=1e-8)


def test_webb_weights_and_enumeration():
    w = webb_weights(3, 60000, np.random.default_rng(0))
    assert set(np.round(np.unique(w), 12)) == set(np.round(WEBB_WEIGHTS, 12))
    assert abs(w.mean()) < 0.02 and abs(w.var() - 1) < 0.02
    y, group, blocks, _ = _data(seed=1, n_blocks=3)
    y_a, y_b, codes, _ = ordered(y, group, blocks)
    res = compare_arrays(y_a, y_b, blocks=codes, statistic="cr", null="wild", n_permutations=500,
                         corrections=("cluster", "maxT"), rng=np.random.default_rng(0))  # fmt: skip
    assert res["exact"] and res["n_permutations"] == 216 and res["null"] == "wild"
    assert res["p_min"] == pytest.approx(2 / 216)  # w and -w give t and -t: two-sided p cannot go below 2 / 6**K
    assert np.nanmin(res["p_uncorrected"]) >= 2 / 216 - 1e-12


def test_compare_records_null_blocks_and_threshold():
    y, group, blocks, _ = _data(seed=2, n_blocks=6)
    verbs = np.array([f"v{b}" for b in blocks])
    ds = xr.Dataset({"cse": (("token", "layer"), y)}, coords={"layer": np.arange(y.shape[1]),
                    "label": ("token", np.where(group, "b", "a")), "verb": ("token", verbs)})  # fmt: skip
    with pytest.warns(UserWarning, match="Only 6 exchangeability blocks"):
        res = stats.compare(ds, "label", exchangeability_blocks="verb", n_permutations=199, n_bootstrap=0, seed=0)
    at = res.attrs
    assert at["null"] == "wild" and at["n_blocks"] == 6 and at["n_clusters"] == 6
    assert at["threshold_rule"] == "t(G - 1) = t(5)" and at["threshold"] == pytest.approx(2.5706, abs=1e-3)
    assert "N(0, 1)" not in at["statistic"] and "wild" in at["reference"]
    assert at["bootstrap"] == "t" and np.isfinite(res["diff_ci_low"]).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        perm = stats.compare(ds, "label", exchangeability_blocks="verb", n_permutations=199, n_bootstrap=0, seed=0,
                             null="permutation")  # fmt: skip
    assert perm.attrs["null"] == "permutation" and "permutation" in perm.attrs["reference"]
    np.testing.assert_allclose(perm["t"], res["t"])  # one statistic, two nulls
    with pytest.raises(CSEInputError, match="'null'"):
        stats.compare(ds, "label", exchangeability_blocks="verb", statistic="pooled", null="wild")
    with pytest.raises(CSEInputError, match="'null'"):
        stats.compare(ds, "label", null="wild")
    with pytest.raises(CSEInputError, match="'null'"):
        stats.compare(ds, "label", null="bootstrap")


def test_interval_below_two_mixed_blocks_is_nan_with_a_reason():
    y, group, blocks, _ = _data(seed=4, n_blocks=4)
    y_a, y_b, codes, _ = ordered(y, group, blocks)
    res = compare_arrays(y_a, y_b, blocks=np.zeros_like(codes), statistic="auto", n_permutations=19,
                         corrections=("maxT",), n_bootstrap=50, rng=np.random.default_rng(0))  # fmt: skip
    assert res["bootstrap"] == "t" and np.isnan(res["diff_ci_low"]).all()
    assert "fewer than 2 blocks" in res["interval_note"]
    res = compare_arrays(y_a, y_b, blocks=codes, n_permutations=19, corrections=("maxT",), n_bootstrap=50,
                         bootstrap="cells", rng=np.random.default_rng(0))  # fmt: skip
    assert res["bootstrap"] == "cells" and np.isfinite(res["diff_ci_low"]).all()  # only when asked


def test_t_interval_is_beta_plus_minus_t_quantile_times_cr1_se():
    from scipy import stats as sps

    y, group, blocks, _ = _data(seed=5, n_blocks=7)
    y_a, y_b, codes, _ = ordered(y, group, blocks)
    res = compare_arrays(y_a, y_b, blocks=codes, n_permutations=19, corrections=("maxT",), ci=0.9,
                         rng=np.random.default_rng(0))  # fmt: skip
    half = sps.t.ppf(0.95, 6) * np.abs(res["diff"] / res["t"])  # SE_CR1 = beta / t
    np.testing.assert_allclose(res["diff_ci_high"] - res["diff"], half, rtol=1e-9)
    np.testing.assert_allclose(res["diff"] - res["diff_ci_low"], half, rtol=1e-9)
    np.testing.assert_allclose(res["g_ci_low"] / res["diff_ci_low"], res["hedges_g"] / res["diff"], rtol=1e-9)


def test_p_min_of_an_enumerated_two_sided_sign_flip_test_is_two_over_size():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(5, 3)) + 3
    res = compare_arrays(a, b, paired=True, n_permutations=1000, corrections=("maxT",), rng=rng)
    assert res["exact"] and res["n_permutations"] == 32 and res["p_min"] == pytest.approx(2 / 32)
    one = compare_arrays(a, b, paired=True, n_permutations=1000, corrections=("maxT",), tail=1, rng=rng)
    assert one["p_min"] == pytest.approx(1 / 32)
    drawn = compare_arrays(a, b, paired=True, n_permutations=10, corrections=("maxT",), rng=rng)
    assert drawn["p_min"] == pytest.approx(1 / 11)


def _varying(rng, n_blocks, tau=1.0, n_layers=8):
    """H0 in mean, a label effect that varies between blocks (the same at every layer), independent layers."""
    group, blocks = block_design_draw(rng, n_blocks, (4, 16), 0.5)
    y = rng.normal(size=(blocks.size, n_layers)) + rng.normal(size=n_blocks)[blocks][:, None]
    y[group] += rng.normal(0.0, tau, n_blocks)[blocks[group]][:, None]
    return ordered(y, group, blocks)


def test_wild_null_holds_cluster_mass_where_permutations_do_not():
    """Teeth with few data sets: a strong block-varying effect and independent layers make the permutation null's
    cluster mass reject far too often (layers move together, permuted layers do not); the wild null holds."""
    n_sets, fwer = 300, {"permutation": 0, "wild": 0}
    for k in range(n_sets):
        rng = np.random.default_rng([26, k])
        y_a, y_b, codes, _ = _varying(rng, 20)
        for null in fwer:
            res = compare_arrays(y_a, y_b, blocks=codes, statistic="cr", null=null, n_permutations=99,
                                 corrections=("cluster",), rng=rng)  # fmt: skip
            fwer[null] += bool(np.any(res["p_cluster"] <= 0.05))
    bound = 0.05 + 2 * np.sqrt(0.05 * 0.95 / n_sets)  # 0.075
    assert fwer["wild"] / n_sets <= bound, fwer  # 17 / 300
    assert fwer["permutation"] / n_sets > bound, fwer  # 25 / 300: the design has teeth, the old default fails it


@pytest.mark.slow
@pytest.mark.parametrize("design", ["varying, 5 blocks", "varying, 25 blocks"])
def test_default_null_size_with_2000_data_sets(design):
    """The committed simulation (scripts/stats_null_size.py): FWER of cluster mass, TFCE, max-T and the per-layer
    rate within 0.05 + 2 binomial SE (0.0597) with the default (wild) null, 2,000 data sets."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "stats_null_size.py"
    spec = importlib.util.spec_from_file_location("stats_null_size", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    counts = module.simulate(module.DESIGNS[design], 2000, 199, seed=list(module.DESIGNS).index(design))["wild"]
    bound = 0.05 + 2 * np.sqrt(0.05 * 0.95 / 2000)
    assert counts["layer"] / (2000 * module.N_LAYERS) <= bound, counts
    for name in module.CORRECTIONS:
        assert counts[name] / 2000 <= bound, counts
