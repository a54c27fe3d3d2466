"""Tests of cse.stats.mixedlm, log_frequency / add_log_frequency and relative_depth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from stats_data import make_result

from cse import stats
from cse.errors import CSEInputError




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
    out = stats.add_log_frequency(ds, word_coord="word_str")
    assert out.log_frequency.attrs["units"] == "Zipf"
    assert np.isnan(out.log_frequency.values[ds.is_special.values]).all()
    assert out.log_frequency.values[1] == pytest.approx(zipf_frequency("dog", "en"))
    with pytest.raises(CSEInputError, match="'word_coord': no token coordinate 'lemma'"):
        stats.add_log_frequency(ds, word_coord="lemma")
    # 'words' is a sequence in log_frequency; as add_log_frequency's coordinate name it is deprecated (issue 21)
    with pytest.warns(DeprecationWarning, match="'words' is deprecated.*'word_coord'"):
        old = stats.add_log_frequency(ds, words="word_str")
    xr.testing.assert_identical(old, out)


def test_add_log_frequency_default_rebuilds_words_from_a_compute_result():
    """Without word_coord the word text is the decoded pieces of the word's tokens, joined: every cse compute
    result has token_str, text and word."""
    from wordfreq import zipf_frequency

    ds = xr.Dataset(
        {"cse": (("token", "layer"), np.zeros((7, 2)))},
        coords={"layer": [0, 1], "token_str": ("token", ["<s>", " The", " met", "aphor", " river", "<s>", " dog"]),
                "text": ("token", [0, 0, 0, 0, 0, 1, 1]), "word": ("token", [-1, 0, 1, 1, 2, -1, 0]),
                "is_special": ("token", [True, False, False, False, False, True, False])},
    )  # fmt: skip
    out = stats.add_log_frequency(ds)
    expected = [np.nan, zipf_frequency("the", "en"), zipf_frequency("metaphor", "en"),
                zipf_frequency("metaphor", "en"), zipf_frequency("river", "en"), np.nan, zipf_frequency("dog", "en")]
    np.testing.assert_allclose(out.log_frequency.values, expected)
    with pytest.raises(CSEInputError, match="'word_coord'.*token_str, text and word.*word is missing"):
        stats.add_log_frequency(ds.drop_vars("word"))


def test_mixedlm_flags_a_non_positive_definite_hessian_and_infinite_values(monkeypatch):
    """A fit whose covariance of the estimates (inverse negative Hessian) is not positive definite is reported as not
    converged; infinite responses are undefined rows, counted."""
    import statsmodels.regression.mixed_linear_model as mlm

    ds = make_result(n_texts=30, n_layers=2, seed=3)
    cse = ds.cse.values.copy()
    cse[5, 0] = np.inf
    ds["cse"] = (("token", "layer"), cse)
    with pytest.warns(RuntimeWarning, match="infinite value"):
        good = stats.mixedlm(ds, "cse ~ surprisal", groups="verb")
    assert good.attrs["n_nonfinite"] == 1 and good.n_obs.values[0] == good.n_obs.values[1] - 1
    def indefinite(self, *args, **kwargs):  # the fitted model as statsmodels returns it (a results wrapper)
        cov = np.asarray(self._results.cov_params(*args, **kwargs)).copy()
        cov[0, 0] = -abs(cov[0, 0])
        return cov

    monkeypatch.setattr(mlm.MixedLMResultsWrapper, "cov_params", indefinite)
    with pytest.warns(RuntimeWarning, match="infinite value"):
        bad = stats.mixedlm(ds, "cse ~ surprisal", groups="verb")
    assert good.converged.any() and not bad.converged.any()


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
    # a compare() result: effects and means are binned; p-values, decisions, statistics are not averaged (issue 18)
    res = stats.compare(ds12, "label", n_permutations=9, n_bootstrap=0)
    with pytest.warns(UserWarning, match="not averaged over layers; dropped .*p_uncorrected.*significant"):
        binned_res = stats.relative_depth(res, bins=3)
    assert binned_res.hedges_g.sizes == {"relative_depth": 3} and "mean_a" in binned_res
    for name in ("t", "df", "p_uncorrected", "p_corrected", "p_cluster", "significant", "cluster_id", "g_ci_low"):
        assert name not in binned_res, name
    assert "cluster" not in binned_res.dims and "p_corrected" in binned_res.attrs["relative_depth_dropped"]
    np.testing.assert_allclose(binned_res.hedges_g.values[0], res.hedges_g.values[:4].mean())
    # infinite values are undefined, counted once
    bad = ds12.copy()
    bad["cse"] = bad.cse.where(bad.layer != 0, np.inf)
    with pytest.warns(RuntimeWarning, match="infinite value"):
        out = stats.relative_depth(bad, bins=4)
    assert np.isfinite(out.cse.values[np.isfinite(out.cse.values)]).all() and out.attrs["relative_depth_n_nonfinite"] > 0
    np.testing.assert_allclose(out.cse.isel(relative_depth=0).values, ds12.cse.isel(layer=[1, 2]).mean("layer").values)
    with pytest.raises(CSEInputError, match="'bins'"):
        stats.relative_depth(ds12, bins=0)
    with pytest.raises(CSEInputError, match=r"'bins'.*\[1, 10000\]"):
        stats.relative_depth(ds12, bins=10**9)
    with pytest.raises(CSEInputError, match="'layer' dim"):
        stats.relative_depth(ds12.surprisal)


