"""Relative depth: layers of models with different numbers of blocks on one axis, (layer + 1) / L."""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from ..errors import CSEInputError
from ..params import check_choice, check_int

RELATIVE_DEPTH_METHODS = ("mean", "interpolate")
#: Most bins of relative depth (a bound on the memory of the binned result).
MAX_BINS = 10_000
#: Variables of a test result that are not averaged over layers: p-values, decisions, cluster labels,
#: statistics and interval bounds (an average of bounds is not an interval).
TEST_VARIABLES = ("significant", "cluster_id", "t", "z", "tfce", "df", "g_ci_low", "g_ci_high", "diff_ci_low",
                  "diff_ci_high")  # fmt: skip


def _drop_tests(ds):
    """`ds` without the test variables of a `compare` result (``p_*`` and `TEST_VARIABLES`), and their names."""
    if not isinstance(ds, xr.Dataset):
        return ds, []
    names = [str(k) for k in ds.data_vars if str(k).startswith("p_") or str(k) in TEST_VARIABLES]
    if "cluster" in ds.dims:
        names += [str(k) for k in ds.data_vars if ds[k].dims == ("cluster",)]
    if names:
        warnings.warn(
            f"relative_depth: a test result's p-values, decisions and statistics are not averaged over layers; "
            f"dropped {', '.join(names)} (bin effects and means only; test on relative depth with "
            f"cse.stats.conjunction(..., bins=...))", UserWarning, stacklevel=3)  # fmt: skip
        ds = ds.drop_vars(names)
        if "cluster" in ds.dims:
            ds = ds.drop_dims("cluster")
    return ds, names


def _finite(ds):
    """Infinite values made NaN (undefined), counted; one warning."""
    arrays = [ds] if isinstance(ds, xr.DataArray) else [ds[k] for k in ds.data_vars]
    count = sum(int(np.isinf(a.values).sum()) for a in arrays if a.dtype.kind == "f")
    if count:
        warnings.warn(f"relative_depth: {count} infinite value(s) treated as undefined (like NaN)", RuntimeWarning,
                      stacklevel=3)  # fmt: skip
        ds = ds.where(~np.isinf(ds)) if isinstance(ds, xr.DataArray) else ds.map(
            lambda a: a.where(~np.isinf(a)) if a.dtype.kind == "f" else a, keep_attrs=True)
    return ds, count



def relative_depth(ds, bins: int = 10, method: str = "mean"):
    """Map layers onto relative depth so models with different numbers of layers compare.

    Parameters
    ----------
    ds : xarray.Dataset or xarray.DataArray
        Anything with a ``layer`` dim: a ``cse compute`` result, a `compare` result...
        Its relative depth is the ``depth`` coordinate, ``(layer + 1) / L``; without
        one it is computed from the layer's position, ``(i + 1) / n_layers``. Of a
        `compare` result only the effects and means are binned: p-values
        (``p_*``), ``significant``, ``cluster_id``, the statistics (``t``, ``z``,
        ``tfce``, ``df``), the interval bounds and the cluster table are dropped with
        a warning (an average of p-values or of decisions is not a test; use
        `cse.stats.conjunction` with ``bins``). Infinite values count as undefined.
    bins : int
        Number of equal bins of relative depth over (0, 1], 1 to `MAX_BINS`.
    method : {"mean", "interpolate"}
        ``mean``: each bin (k/bins, (k+1)/bins] averages the layers whose depth falls in
        it (NaN skipped; a bin without layers is NaN, which happens when L < bins).
        ``interpolate``: linear interpolation in depth to the bin centres (centres below
        the first layer's depth take the first layer's value). ``mean`` pools; use it
        unless L is small.

    Returns
    -------
    Same type as `ds`
        ``layer`` replaced by ``relative_depth`` (the bin centres (k + 0.5) / bins),
        with coordinates ``depth_low``/``depth_high`` (bin edges) and ``n_layers_in_bin``;
        variables without a ``layer`` dim are kept. Attributes add
        ``relative_depth_dropped`` (the test variables left out) and
        ``relative_depth_n_nonfinite``. Profiles of different models then
        share a coordinate and can be concatenated along a new ``model`` dim and pooled.

    Raises
    ------
    CSEInputError
        If there is no ``layer`` dim, or `bins`/`method` are invalid.
    TypeError
        If `bins` is not an integer, or `ds` is not an xarray object.

    Examples
    --------
    >>> import cse, numpy as np
    >>> ds = cse.conditional_scale_entropy(np.random.default_rng(0).standard_normal((12, 4, 16)))  # 12 layers
    >>> cse.stats.relative_depth(ds.cse, bins=4).sizes["relative_depth"]
    4
    """
    method = check_choice("method", method, RELATIVE_DEPTH_METHODS)
    bins = check_int("bins", bins, 1, MAX_BINS)
    if not isinstance(ds, (xr.Dataset, xr.DataArray)):
        raise TypeError(f"Invalid type for 'ds': expected an xarray Dataset or DataArray, got {type(ds).__name__}")
    if "layer" not in ds.dims:
        raise CSEInputError(f"Invalid value for 'ds': relative depth needs a 'layer' dim, got dims {tuple(ds.dims)}")
    L = ds.sizes["layer"]
    attrs = dict(ds.attrs)
    ds, tests_dropped = _drop_tests(ds)
    ds, n_nonfinite = _finite(ds)
    if "depth" in ds.coords and ds["depth"].dims == ("layer",):
        depth = np.asarray(ds["depth"].values, dtype=np.float64)
    else:
        depth = np.arange(1, L + 1) / L
    # bin k holds depth in (k/bins, (k+1)/bins]; the 1e-9 absorbs rounding of e.g. 3/10 * 10
    bin_index = np.clip(np.ceil(depth * bins - 1e-9).astype(np.int64) - 1, 0, bins - 1)
    centres = (np.arange(bins) + 0.5) / bins
    counts = np.bincount(bin_index, minlength=bins)
    dropped = [str(c) for c in ds.coords if "layer" in ds[c].dims and c != "layer"]
    kept = None
    if isinstance(ds, xr.Dataset):  # variables without a layer dim pass through unchanged
        kept = ds[[k for k, v in ds.data_vars.items() if "layer" not in v.dims]]
        kept = kept.drop_vars([c for c in kept.coords if "layer" in kept[c].dims])
        ds = ds[[k for k, v in ds.data_vars.items() if "layer" in v.dims]]
    if method == "mean":
        obj = ds.drop_vars(dropped).assign_coords(_bin=("layer", bin_index))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out = obj.groupby("_bin").mean("layer", skipna=True, keep_attrs=True)
        out = out.reindex(_bin=np.arange(bins)).rename({"_bin": "relative_depth"})
        out = out.assign_coords(relative_depth=centres)
    else:
        obj = ds.drop_vars(dropped).assign_coords(layer=depth)
        # centres below the first layer's depth take the first layer's value
        out = obj.interp(layer=np.maximum(centres, depth[0]), method="linear")
        out = out.rename({"layer": "relative_depth"}).assign_coords(relative_depth=centres)
    out = out.assign_coords(
        depth_low=("relative_depth", np.arange(bins) / bins),
        depth_high=("relative_depth", np.arange(1, bins + 1) / bins),
        n_layers_in_bin=("relative_depth", counts),
    )
    if kept is not None:
        out = xr.merge([out, kept], combine_attrs="override", join="outer", compat="override")
    out["relative_depth"].attrs.update(long_name="relative depth", units="1",
                                       description="relative depth, bin centre of (layer + 1) / L")
    out.attrs = attrs
    out.attrs.update(relative_depth_bins=int(bins), relative_depth_method=method, relative_depth_n_layers=int(L),
                     relative_depth_dropped=", ".join(tests_dropped), relative_depth_n_nonfinite=int(n_nonfinite))
    return out
