"""`group_contrast`: descriptive per-layer statistics of two groups pooled over all tokens (no test)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..docs import fill_doc
from .result import LONG_NAMES, layer_coords
from .selection import finite_values, select_groups
from .statistics import WelchT


@fill_doc
def group_contrast(ds, by, where=None, *, levels=None, var: str = "cse", include_special: bool = False):
    """Describe two groups per layer by Welch's t and Hedges' g, pooled over the selected tokens (no test).

    What a comparison that ignores exchangeability blocks would report: beside a
    `compare` with blocks it shows how much of a pooled difference comes from
    differences between blocks (issue 11). No permutations, no p-values.

    Parameters
    ----------
    ds : xarray.Dataset, xarray.DataArray or ndarray, shape (n_tokens, n_layers)
        As in `cse.stats.compare`.
    by : str or array-like
        Token coordinate holding the groups (or the labels, with a plain array).
    where : %(where)s
    levels : (a, b), optional
        The two values of `by`, in this order (default: the two found, sorted).
    var : str
        Variable of a Dataset (``cse``, ``cse_z`` ...).
    include_special : %(include_special)s

    Returns
    -------
    xarray.Dataset
        Over ``layer``: ``mean_a``, ``mean_b``, ``diff`` (mean_b - mean_a), ``t``
        (Welch), ``df`` (Welch-Satterthwaite), ``cohens_d``, ``hedges_g`` (pooled SD,
        J(n_a + n_b - 2)), ``n_a``, ``n_b``, over the tokens finite at each layer
        (infinite values count as undefined).

    Raises
    ------
    CSEInputError
        For a bad selection, as `cse.stats.compare`.

    Examples
    --------
    >>> import cse
    >>> ds = cse.open_result("cse-example.nc")  # doctest: +SKIP
    >>> res = cse.stats.group_contrast(ds, by="label", where="word == target_idx and is_word_start")  # doctest: +SKIP
    >>> res.hedges_g.dims  # doctest: +SKIP
    ('layer',)
    """
    sel = select_groups(ds, by, where, levels, var, include_special)
    rows = np.r_[sel.idx_a, sel.idx_b]
    y, _ = finite_values(np.asarray(sel.da.isel(token=rows).values, dtype=np.float64), var)
    design = WelchT(y, np.r_[np.zeros(sel.idx_a.size, bool), np.ones(sel.idx_b.size, bool)])
    obs = design.observed()
    obs["t"] = design.t(design.identity)[0]
    names = ("mean_a", "mean_b", "diff", "t", "df", "cohens_d", "hedges_g", "n_a", "n_b")
    out = xr.Dataset({k: ("layer", np.asarray(obs[k])) for k in names}, coords=layer_coords(sel.da, sel.source))
    for k in ("n_a", "n_b"):
        out[k] = out[k].astype(np.int64)
    for k in names:
        out[k].attrs.update(long_name=LONG_NAMES[k][0], units="1")
    out.attrs = {"by": sel.by, "var": var, "groups": [str(v) for v in sel.levels], "statistic": "Welch t",
                 "effect_size": design.effect_size, "note": "pooled over all tokens; descriptive, no test"}
    return out
