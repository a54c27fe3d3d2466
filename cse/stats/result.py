"""The Dataset that `cse.stats.compare` returns: variables over layer and cluster, CF attributes, settings."""

from __future__ import annotations

import numpy as np
import xarray as xr

from .selection import describe_where

#: name -> (long_name, units) of the variables of a comparison.
LONG_NAMES = {
    "mean_a": ("mean of the first group", "1"),
    "mean_b": ("mean of the second group", "1"),
    "diff": ("effect of the second group against the first (see the statistic attribute)", "1"),
    "diff_ci_low": ("lower bound of the interval of diff (see the bootstrap attribute)", "1"),
    "diff_ci_high": ("upper bound of the interval of diff (see the bootstrap attribute)", "1"),
    "t": ("test statistic (see the statistic attribute)", "1"),
    "z": ("the model-based t on the z scale: the N(0, 1) quantile with its t(df) tail probability", "1"),
    "df": ("degrees of freedom of t", "1"),
    "p_uncorrected": ("p-value per layer from the null distribution (see the null and p_value attributes)", "1"),
    "p_corrected": ("p-value of the primary correction across layers", "1"),
    "significant": ("p_corrected <= alpha", "1"),
    "cohens_d": ("Cohen's d (see the effect_size attribute)", "1"),
    "hedges_g": ("Hedges' g (see the effect_size attribute)", "1"),
    "g_ci_low": ("lower bound of the interval of Hedges' g (see the bootstrap attribute)", "1"),
    "g_ci_high": ("upper bound of the interval of Hedges' g (see the bootstrap attribute)", "1"),
    "n_a": ("tokens (pairs when paired) of the first group used at the layer", "1"),
    "n_b": ("tokens (pairs when paired) of the second group used at the layer", "1"),
    "cluster_id": ("index of the cluster holding the layer, -1 if none", "1"),
    "tfce": ("threshold-free cluster enhancement score of t, with the sign of t", "1"),
    "p_cluster": ("cluster-mass permutation p-value of the layer's cluster (1 outside clusters)", "1"),
    "p_tfce": ("TFCE p-value against the largest score of every permutation", "1"),
    "p_maxT": ("single-step max-T p-value (FWER)", "1"),
    "p_maxT_stepdown": ("step-down max-T p-value (FWER)", "1"),
    "p_fdr_bh": ("Benjamini-Hochberg adjusted p-value (FDR)", "1"),
    "cluster_start": ("first layer of the cluster", "1"),
    "cluster_stop": ("last layer of the cluster (inclusive)", "1"),
    "cluster_mass": ("cluster mass, sum of the statistic (scale attribute) over the cluster's layers", "1"),
    "cluster_p": ("cluster p-value against the permutation distribution of the largest cluster mass", "1"),
    "cluster_sign": ("sign of t in the cluster", "1"),
}

_LAYER_VARS = ("mean_a", "mean_b", "diff", "diff_ci_low", "diff_ci_high", "t", "df", "p_uncorrected", "p_corrected",
               "significant", "cohens_d", "hedges_g", "g_ci_low", "g_ci_high", "n_a", "n_b", "cluster_id")  # fmt: skip
_SOURCE_ATTRS = ("model", "n_layers", "axis", "wavelet", "level", "boundary", "normalize")


def layer_coords(da: xr.DataArray, source: xr.Dataset | None) -> dict:
    """``layer`` and, where the input has them over layer, ``depth`` and ``boundary_affected``."""
    coords = {"layer": da["layer"].values}
    for name in ("depth", "boundary_affected"):
        for holder in (da.coords, source.coords if source is not None else {}):
            if name in holder and holder[name].dims == ("layer",):
                coords[name] = ("layer", np.asarray(holder[name].values), dict(holder[name].attrs))
                break
    return coords


def _cluster_vars(res: dict, layer_values: np.ndarray) -> dict:
    clusters = res["clusters"]
    return {
        "cluster_start": ("cluster", np.array([layer_values[c[0]] for c in clusters], dtype=layer_values.dtype)),
        "cluster_stop": ("cluster", np.array([layer_values[c[1]] for c in clusters], dtype=layer_values.dtype)),
        "cluster_mass": ("cluster", np.array([c[3] * c[2] for c in clusters], dtype=np.float64)),
        "cluster_sign": ("cluster", np.array([c[3] for c in clusters], dtype=np.int64)),
        "cluster_p": ("cluster", np.asarray(res["cluster_p"], dtype=np.float64)),
    }


def _test_name(paired_by, blocks, covariates, null="permutation") -> str:
    if null == "wild":
        return "restricted wild cluster bootstrap (Webb weights, one per exchangeability block)" + (
            " after the covariates" if covariates else "")
    if paired_by:
        return "sign-flip"
    if covariates:
        return "Freedman-Lane permutation" + (" within exchangeability blocks" if blocks else "")
    return "label permutation within exchangeability blocks" if blocks else "label permutation"


def assemble(res: dict, sel, data: dict, settings: dict, *, var, where, paired_by, blocks, include_special,
             seed) -> xr.Dataset:  # fmt: skip
    """Build the `compare` Dataset from the computed arrays, the selection and the settings."""
    layer_values = np.asarray(sel.da["layer"].values)
    names = list(_LAYER_VARS) + [f"p_{c}" for c in settings["corrections"]]
    names += [k for k in ("z", "tfce") if k in res]
    data_vars = {k: ("layer", np.asarray(res[k])) for k in names}
    for k in ("n_a", "n_b"):
        data_vars[k] = ("layer", np.asarray(res[k]).astype(np.int64))
    data_vars.update(_cluster_vars(res, layer_values))
    out = xr.Dataset(data_vars, coords={**layer_coords(sel.da, sel.source), "cluster": np.arange(len(res["clusters"]))})
    for k, (long_name, units) in LONG_NAMES.items():
        if k in out:
            out[k].attrs.update(long_name=long_name, units=units)
    a, b = (str(g) for g in sel.levels)
    within = blocks is not None or settings["covariates"]
    out.attrs = {
        "title": f"CSE group comparison per layer: {var} by {sel.by}",
        "statistic": res["statistic"],
        "statistic_name": res["statistic_name"],
        "reference": f"p-values from its {res['reference']}",
        "scale": res["scale"],
        "effect_size": res["effect_size"],
        "bootstrap": res["bootstrap"],
        "test": _test_name(paired_by, blocks, settings["covariates"], res["null"]),
        "var": var,
        "by": sel.by,
        "groups": [a, b],
        "group_a": a,
        "group_b": b,
        "difference": (f"effect of {b} against {a} ({res['statistic']})" if within else f"mean({b}) - mean({a})"),
        "where": describe_where(where),
        "include_special": int(bool(include_special)),
        "n_special_excluded": sel.n_special,
        "paired_by": paired_by or "",
        "exchangeability_blocks": blocks or "",
        "n_blocks": 0 if data["blocks"] is None else int(data["blocks"].max()) + 1,
        "n_blocks_single_label": len(data["single"]),
        "blocks_single_label": ", ".join(str(s) for s in data["single"]),
        "n_tokens_single_label_blocks": data["n_single_tokens"],
        "covariates": ", ".join(settings["covariates"]),
        "n_tokens_incomplete": data["n_tokens_incomplete"],
        "correction": settings["corrections"][0],
        "corrections": ", ".join(settings["corrections"]),
        "n_permutations": res["n_permutations"],
        "exact": int(res["exact"]),
        "permutation_space": res["space_total"],
        "permutation_space_log10": res["space_log10"],
        "p_min": float(res["p_min"]),
        "null": res["null"],
        "n_clusters": int(res["n_clusters"]),
        "threshold_rule": res["threshold_rule"] if "cluster" in settings["corrections"] else "",
        "interval_note": res["interval_note"],
        "n_nonfinite": int(data.get("n_nonfinite", 0)),
        "n_layers_undefined": int(res["n_layers_undefined"]),
        "tail": settings["tail"],
        "threshold": res["threshold"] if "cluster" in settings["corrections"] else np.nan,
        "cluster_alpha": settings["cluster_alpha"],
        "threshold_df": float(res["threshold_df"]),
        "tfce_e": settings["tfce_e"],
        "tfce_h": settings["tfce_h"],
        "alpha": settings["alpha"],
        "n_bootstrap": settings["n_bootstrap"],
        "ci": settings["ci"],
        "seed": int(seed),
        "n_tokens": int(len(data["y_a"]) + len(data["y_b"])),
        "n_tokens_a": int(len(data["y_a"])),
        "n_tokens_b": int(len(data["y_b"])),
        "p_value": (f"b / P over the whole {'space of wild weights' if res['null'] == 'wild' else 'permutation space'}"
                    " (exact)") if res["exact"] else "(b + 1) / (P + 1)",
    }
    src_attrs = sel.source.attrs if sel.source is not None else sel.da.attrs
    for key in _SOURCE_ATTRS:
        if key in src_attrs:
            out.attrs[f"source_{key}"] = src_attrs[key]
    return out
