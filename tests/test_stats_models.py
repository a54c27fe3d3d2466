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
    with pytest.raises(CSEInputError, match=r"'bins'.*\[1, 10000\]"):
        stats.relative_depth(ds12, bins=10**9)
    with pytest.raises(CSEInputError, match="'layer' dim"):
        stats.relative_depth(ds12.surprisal)


