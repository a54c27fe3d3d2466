"""Depth profiles per group, with confidence bands, clusters and boundary layers (`plot_depth_profile`).

Figures are built on `matplotlib.figure.Figure` directly (Agg canvas, no pyplot, no
display, no global state), so they are safe in scripts, tests and worker processes.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr
from scipy import stats as sps

from ..errors import CSEInputError
from ..stats.layers import boundary_layers
from ..stats.result import layer_coords
from ..stats.selection import deprecated_alias, finite_values, select_groups
from .style import BOUNDARY_COLOUR, integer_ticks, runs, setting_words, var_attrs

_COLOURS = ("#1f77b4", "#d62728")
#: Short legend names of the statistics of `cse.stats.compare` (the full text is in its attrs["statistic"]).
_SHORT = {"cr": "within-block z, block-clustered SE", "hc2": "z, HC2 SE", "pooled": "pooled-variance t",
          "welch": "Welch t", "paired": "paired t"}


def group_profiles(ds, by, where=None, *, levels=None, var: str = "cse", include_special: bool = False,
                   ci: float = 0.95, groups=None) -> xr.Dataset:  # fmt: skip
    """Per-layer mean of `var` for each of two groups of tokens, with t intervals.

    Parameters
    ----------
    ds : xarray.Dataset, xarray.DataArray or ndarray, shape (n_tokens, n_layers)
        As in `cse.stats.compare`.
    by : str or array-like
        Token coordinate holding the groups (or the labels, with a plain array).
    where : None, str, dict or bool DataArray over ``token``
        Token selection, as in `cse.stats.compare`.
    levels : (a, b), optional
        The two values of `by`, in this order (default: the two found, sorted).
    var : str
        Variable of a Dataset (``cse``, ``cse_z`` ...).
    include_special : bool
        Keep special tokens (default False).
    ci : float
        Coverage of the interval, in (0, 1).
    groups : (a, b), optional
        Deprecated name of `levels` (``DeprecationWarning``).

    Returns
    -------
    xarray.Dataset
        Over (group, layer): ``mean``, ``sd``, ``n`` (finite tokens), ``ci_low``,
        ``ci_high``; the ``depth`` coordinate is kept.

    Notes
    -----
    The interval is the Student t interval of the mean per layer,
    ``mean ± t_{(1 + ci) / 2, n - 1} · sd / sqrt(n)``, over the tokens whose value is
    finite at that layer (NaN where n < 2); infinite values count as undefined (one
    warning, ``n_nonfinite`` in the attributes).

    Examples
    --------
    >>> import cse
    >>> ds = cse.open_result("cse-example.nc")  # doctest: +SKIP
    >>> prof = cse.plot.group_profiles(ds, by="label", where="word == target_idx and is_word_start")  # doctest: +SKIP
    """
    levels = deprecated_alias("groups", groups, "levels", levels)
    if not 0 < float(ci) < 1:
        raise CSEInputError(f"Invalid value for 'ci': expected a number in (0, 1), got {ci!r}")
    sel = select_groups(ds, by, where, levels, var, include_special)
    da = sel.da
    values, n_nonfinite = finite_values(np.asarray(da.isel(token=np.r_[sel.idx_a, sel.idx_b]).values, np.float64), var)
    rows = []
    for y in (values[: sel.idx_a.size], values[sel.idx_a.size :]):  # (n, L), only the selected tokens
        n = np.isfinite(y).sum(axis=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(y, axis=0)
            sd = np.nanstd(y, axis=0, ddof=1)
            half = sps.t.ppf((1 + ci) / 2, np.maximum(n - 1, 1)) * sd / np.sqrt(n)
        half = np.where(n >= 2, half, np.nan)
        rows.append((mean, sd, n, mean - half, mean + half))
    stacked = [np.stack(v) for v in zip(*rows)]
    coords = {"group": [str(g) for g in sel.levels], **layer_coords(da, sel.source)}
    out = xr.Dataset(
        {name: (("group", "layer"), arr) for name, arr in zip(("mean", "sd", "n", "ci_low", "ci_high"), stacked)},
        coords=coords,
        attrs={"by": sel.by, "var": var, "ci": float(ci), "interval": "Student t interval of the mean",
               "n_nonfinite": n_nonfinite},  # fmt: skip
    )
    return out


def _depth_of(layers: np.ndarray, profile: xr.Dataset) -> np.ndarray:
    if "depth" in profile.coords:
        return np.asarray(profile["depth"].values, dtype=np.float64)
    return (np.arange(layers.size) + 1) / layers.size


def plot_depth_profile(
    ds,
    by,
    where=None,
    stats: xr.Dataset | None = None,
    ax=None,
    ci: float = 0.95,
    *,
    levels=None,
    var: str = "cse",
    include_special: bool = False,
    title: str | None = None,
    shade_boundary: bool = True,
    groups=None,
):
    """Draw the mean of `var` per group against relative depth, with bands, significant layers and boundary layers.

    Parameters
    ----------
    ds : xarray.Dataset, xarray.DataArray or ndarray, shape (n_tokens, n_layers)
        As in `cse.stats.compare`.
    by : str or array-like
        Token coordinate holding the groups.
    where : None, str, dict or bool DataArray over ``token``
        Token selection, as in `cse.stats.compare`.
    stats : xarray.Dataset, optional
        A `cse.stats.compare` result for the same layers: runs of layers with
        ``significant`` True are shaded grey and labelled with the correction and the
        statistic. None: no shading.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; default a new 7 x 4 inch Figure.
    ci : float
        Coverage of the bands (Student t interval of each group's mean per layer,
        see `group_profiles`).
    levels : (a, b), optional
        The two values of `by`, in this order (default: the two found, sorted).
    var : str
        Variable to draw; ``cse_z`` (the order-null z-score) is drawn with a line at 0.
    include_special : bool
        Keep special tokens (default False).
    title : str, optional
        Axes title; default names the model (from the attributes), the variable and the
        measure's setting (axis, wavelet, level, boundary).
    shade_boundary : bool
        Hatch the layers flagged ``boundary_affected`` (MODWT boundary coefficients,
        whose raw CSE depends on the boundary rule) where the result carries the flag.
    groups : (a, b), optional
        Deprecated name of `levels` (``DeprecationWarning``).

    Returns
    -------
    matplotlib.figure.Figure
        The bottom x axis is relative depth ``(layer + 1) / L``, the top axis the layer
        index; the legend gives each group's token count, the significant layers (with
        the correction and the statistic) and the boundary-affected layers.

    Raises
    ------
    CSEInputError
        For a bad selection (as `cse.stats.compare`) or a `stats` Dataset whose layers,
        ``by`` or ``var`` differ from the profile's.

    Examples
    --------
    >>> import cse
    >>> ds = cse.open_result("cse-example.nc")  # doctest: +SKIP
    >>> fig = cse.plot.plot_depth_profile(ds, by="label", where="word == target_idx and is_word_start")  # doctest: +SKIP
    >>> fig.savefig("profile.png")  # doctest: +SKIP
    """
    from matplotlib.figure import Figure

    levels = deprecated_alias("groups", groups, "levels", levels)
    profile = group_profiles(ds, by, where, levels=levels, var=var, include_special=include_special, ci=ci)
    layers = np.asarray(profile["layer"].values)
    depth = _depth_of(layers, profile)
    if stats is not None:
        _check_stats(stats, profile, layers)
    if ax is None:
        fig = Figure(figsize=(7, 4), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    half = 0.5 / layers.size

    # 1. Boundary-affected and significant runs of layers, shaded behind the lines.
    flagged = boundary_layers(profile)
    if shade_boundary and flagged is not None:
        for k, (start, stop) in enumerate(runs(flagged)):
            ax.axvspan(depth[start] - half, depth[stop] + half, facecolor="none", edgecolor=BOUNDARY_COLOUR,
                       hatch="///", linewidth=0, zorder=0,
                       label="boundary-affected layers (MODWT boundary coefficients)" if k == 0 else None)  # fmt: skip
    if stats is not None:
        statistic = _SHORT.get(stats.attrs.get("statistic_name"), stats.attrs.get("statistic", ""))
        label = (f"significant ({stats.attrs.get('correction', '')}, α = {stats.attrs.get('alpha', 0.05):g}"
                 + (f"; {statistic}" if statistic else "") + ")")  # fmt: skip
        significant = np.asarray(stats["significant"].values, dtype=bool)
        for k, (start, stop) in enumerate(runs(significant)):
            ax.axvspan(depth[start] - half, depth[stop] + half, color="0.85", zorder=0,
                       label=label if k == 0 else None)  # fmt: skip
        if not significant.any():  # say that a test was run and found nothing
            ax.plot([], [], " ", label=label.replace("significant (", "tested, nothing significant (", 1))

    # 2. Mean and band of each group (and the null's 0 for z-scores).
    if var == "cse_z":
        ax.axhline(0.0, color="0.4", linewidth=0.8, linestyle="--", zorder=1)
    used = _tokens_tested(stats)
    for g, colour in zip(range(profile.sizes["group"]), _COLOURS):
        row = profile.isel(group=g)
        n_tok = int(row["n"].max())
        n_label = f"n = {n_tok}" + (f"; {used[g]} in the test" if used and used[g] != n_tok else "")
        ax.fill_between(depth, row["ci_low"].values, row["ci_high"].values, color=colour, alpha=0.2, linewidth=0)
        ax.plot(depth, row["mean"].values, marker="o", markersize=3, color=colour,
                label=f"{profile.attrs['by']} = {profile['group'].values[g]} ({n_label})")  # fmt: skip

    # 3. Axes: relative depth below, layer index above.
    L = layers.size
    ax.set_xlim(0, 1 + 0.5 / L)
    ax.set_xlabel("relative depth (layer + 1) / L")
    units = var_attrs(ds, var).get("units")
    ax.set_ylabel(f"{var}" + (f" [{units}]" if units else "") + f", mean ± {ci:.0%} CI")
    top = ax.secondary_xaxis("top", functions=(lambda d: d * L - 1, lambda layer: (layer + 1) / L))
    top.set_xlabel("layer")
    top.xaxis.set_major_locator(integer_ticks())  # layers are integers, not 0.0, 2.5, ...
    wide = max((len(text) for text in ax.get_legend_handles_labels()[1]), default=0) > 40
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1 if wide else 2, fontsize="small", frameon=False)
    attrs = ds.attrs if isinstance(ds, (xr.Dataset, xr.DataArray)) else {}
    if title is None:
        title = " — ".join(part for part in (attrs.get("model", ""), f"{var} by {profile.attrs['by']}",
                                             setting_words(attrs)) if part)
    ax.set_title(title, fontsize="medium")
    return fig


def _tokens_tested(stats) -> tuple[int, int] | None:
    """The tokens of each group that the test used (blocks with one label are left out of it)."""
    if stats is None or "n_tokens_a" not in stats.attrs:
        return None
    return int(stats.attrs["n_tokens_a"]), int(stats.attrs["n_tokens_b"])


def _check_stats(stats, profile: xr.Dataset, layers: np.ndarray) -> None:
    """Refuse a `stats` Dataset that does not describe the profile's variable, groups and layers."""
    if not isinstance(stats, xr.Dataset) or "significant" not in stats:
        raise CSEInputError("Invalid value for 'stats': expected a cse.stats.compare result with 'significant'")
    for key in ("by", "var"):
        if key in stats.attrs and str(stats.attrs[key]) != str(profile.attrs[key]):
            raise CSEInputError(
                f"Invalid value for 'stats': it tests {key} {stats.attrs[key]!r} but the profile shows "
                f"{profile.attrs[key]!r}; compute it with the same --by and --var"
            )
    if stats.sizes.get("layer") != layers.size or not np.array_equal(np.asarray(stats["layer"].values), layers):
        raise CSEInputError(
            f"Invalid value for 'stats': its layers ({stats.sizes.get('layer')}) do not match the "
            f"result's ({layers.size}); compute it on the same result"
        )
