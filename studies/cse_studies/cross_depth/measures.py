"""Measures of the cross-depth study: per-layer profiles, coupling of scale distributions, similarity.

A profile averages over the words of a corpus (the first token of every word, special
tokens excluded). Raw CSE of boundary-affected layers (MODWT boundary coefficients,
SPEC section 2) depends on the boundary rule, so raw profiles are compared across
models only outside those layers; ``cse_z`` (against the layer-order null) is
comparable at every layer.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import stats as sps

BINS = 10


def word_tokens(ds: xr.Dataset) -> np.ndarray:
    """Indices of the first token of every word (special tokens excluded), int64."""
    return np.flatnonzero(np.asarray(ds["is_word_start"].values, dtype=bool)
                          & ~np.asarray(ds["is_special"].values, dtype=bool))


# --------------------------------------------------------------------------- measures


def layer_profile(ds: xr.Dataset) -> xr.Dataset:
    """Mean, SD and count of CSE (and of ``cse_z``) and the mean scale distribution per layer over the words.

    Returns
    -------
    xarray.Dataset
        Over ``layer`` (with ``depth``, and ``boundary_affected`` where `ds` marks it):
        ``cse_mean``, ``cse_sd``, ``n``, and ``z_mean``, ``z_sd`` where `ds` has
        ``cse_z``; ``cse_mean_outside``: ``cse_mean`` with boundary-affected layers
        set to NaN (all layers kept where unmarked); over (layer, scale): ``fraction_mean``.
    """
    idx = word_tokens(ds)
    sub = ds.isel(token=idx)
    cse = sub["cse"].transpose("token", "layer").values
    coords = {"layer": ds["layer"].values, "depth": ("layer", ds["depth"].values), "scale": ds["scale"].values}
    if "boundary_affected" in ds.coords and ds["boundary_affected"].dims == ("layer",):
        coords["boundary_affected"] = ("layer", np.asarray(ds["boundary_affected"].values, dtype=bool))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nanmean(cse, axis=0)
        data = {
            "cse_mean": ("layer", mean, {"long_name": "mean CSE", "units": "1"}),
            "cse_sd": ("layer", np.nanstd(cse, axis=0, ddof=1), {"long_name": "SD of CSE", "units": "1"}),
            "n": ("layer", np.isfinite(cse).sum(axis=0).astype(np.int64), {"long_name": "words with a defined CSE"}),
            "fraction_mean": (("layer", "scale"),
                              np.nanmean(sub["scale_fraction"].transpose("token", "layer", "scale").values, axis=0),
                              {"long_name": "mean fraction of update energy per band", "units": "1"}),
        }
        outside = mean.copy()
        if "boundary_affected" in coords:
            outside[coords["boundary_affected"][1]] = np.nan
        data["cse_mean_outside"] = ("layer", outside, {"long_name": "mean CSE outside boundary-affected layers",
                                                        "units": "1"})
        if "cse_z" in sub:
            z = sub["cse_z"].transpose("token", "layer").values
            data["z_mean"] = ("layer", np.nanmean(z, axis=0), {"long_name": "mean cse_z", "units": "1"})
            data["z_sd"] = ("layer", np.nanstd(z, axis=0, ddof=1), {"long_name": "SD of cse_z", "units": "1"})
    return xr.Dataset(data, coords=coords)


def coupling(ds: xr.Dataset) -> xr.Dataset:
    """The (layer, layer) coupling of a result over its words: mean JS divergence and CSE correlation."""
    idx = word_tokens(ds)
    sf = ds["scale_fraction"].isel(token=idx).transpose("token", "layer", "scale").values
    cse = ds["cse"].isel(token=idx).transpose("token", "layer").values
    out = xr.Dataset(
        {"js": (("layer", "layer2"), js_coupling(sf),
                {"long_name": "mean Jensen-Shannon divergence of scale distributions", "units": "bit"}),
         "cse_corr": (("layer", "layer2"), cse_correlation(cse),
                      {"long_name": "Pearson correlation over words of CSE", "units": "1"})},
        coords={"layer": ds["layer"].values, "layer2": ds["layer"].values, "depth": ("layer", ds["depth"].values)})
    out.attrs["n_tokens"] = int(len(idx))
    return out


def js_coupling(fractions: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Mean Jensen-Shannon divergence between the scale distributions of every pair of layers.

    Parameters
    ----------
    fractions : ndarray, shape (n_tokens, n_layers, n_scales)
        Scale distributions (rows sum to 1; NaN rows are undefined and skipped per pair).
    chunk : int
        Tokens per vectorized block (memory ~ chunk * L^2 * S * 8 bytes).

    Returns
    -------
    ndarray, shape (n_layers, n_layers), float64
        Symmetric, zero diagonal; in bits (log base 2), so within [0, 1].

    Notes
    -----
    JS(p, q) = (KL(p || m) + KL(q || m)) / 2 with m = (p + q) / 2; 0 log 0 = 0.
    """
    n, L, _ = fractions.shape
    total = np.zeros((L, L))
    count = np.zeros((L, L))
    for start in range(0, n, chunk):
        p = np.asarray(fractions[start:start + chunk], dtype=np.float64)
        a, b = p[:, :, None, :], p[:, None, :, :]
        m = (a + b) / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            ka = np.where(a > 0, a * np.log2(a / m), 0.0).sum(-1)
            kb = np.where(b > 0, b * np.log2(b / m), 0.0).sum(-1)
        js = (ka + kb) / 2
        ok = np.isfinite(p).all(-1)
        valid = ok[:, :, None] & ok[:, None, :]
        total += np.where(valid, js, 0.0).sum(0)
        count += valid.sum(0)
    with np.errstate(invalid="ignore"):
        out = total / count
    np.fill_diagonal(out, 0.0)
    return out


def cse_correlation(cse: np.ndarray) -> np.ndarray:
    """Pearson correlation over tokens between the CSE of every pair of layers, shape (L, L).

    Tokens with an undefined CSE at any layer are left out.
    """
    keep = np.isfinite(cse).all(axis=1)
    return np.corrcoef(cse[keep], rowvar=False)


def bin_matrix(matrix: np.ndarray, depth: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Average an (L, L) layer matrix into (bins, bins) cells of relative depth (NaN for empty cells)."""
    k = np.clip(np.ceil(depth * bins).astype(int) - 1, 0, bins - 1)
    out = np.full((bins, bins), np.nan)
    for i in range(bins):
        for j in range(bins):
            cell = matrix[np.ix_(k == i, k == j)]
            if cell.size:
                out[i, j] = np.nanmean(cell)
    return out


def similarity(a: np.ndarray, b: np.ndarray) -> tuple[float, float, int]:
    """Pearson r, Spearman rho and the number of bins both profiles define."""
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return np.nan, np.nan, int(ok.sum())
    return float(sps.pearsonr(a[ok], b[ok])[0]), float(sps.spearmanr(a[ok], b[ok])[0]), int(ok.sum())


