"""Layers in words and masks: runs of layer numbers, and the boundary-affected layers of a result.

One home for what `cse stats`, `cse plot` and the studies each wrote before: the runs of
a set of layers as text (``"0-6, 9"``) and the ``boundary_affected`` mask over layers
(MODWT boundary coefficients, the definition, user guide).
"""

from __future__ import annotations

import numpy as np


def layer_span(layers) -> str:
    """Layer numbers as runs of consecutive layers, e.g. ``"0-6, 9"``; ``"none"`` when empty.

    Parameters
    ----------
    layers : iterable of int
        Layer numbers, in any order; duplicates are kept once.

    Returns
    -------
    str
        The layers as comma-separated runs, or ``'none'``.

    Examples
    --------
    >>> layer_span([9, 0, 1, 2, 3])
    '0-3, 9'
    >>> layer_span([])
    'none'
    """
    values = sorted({int(x) for x in layers})
    if not values:
        return "none"
    runs, start = [], values[0]
    for a, b in zip(values, values[1:] + [None]):
        if b != a + 1:
            runs.append(f"{start}" if start == a else f"{start}-{a}")
            start = b
    return ", ".join(runs)


def boundary_layers(obj) -> np.ndarray | None:
    """The ``boundary_affected`` mask over layers of a result or a test over layers, or None where unmarked.

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        A depth-axis ``cse compute`` result, a `cse.stats.compare` result or a profile
        over ``layer``.

    Returns
    -------
    ndarray of bool, shape (n_layers,), or None
        True at the layers whose MODWT coefficients depend on the boundary rule; None
        when `obj` has no ``boundary_affected`` over ``layer`` (another axis, or a
        result that does not mark them).

    Examples
    --------
    >>> import cse, numpy as np
    >>> u = np.random.default_rng(0).standard_normal((8, 4, 16))  # (layer, token, d_model)
    >>> ds = cse.conditional_scale_entropy(u)
    >>> cse.stats.boundary_layers(ds).nonzero()[0].tolist()  # layers whose coefficients read the boundary rule
    [0, 1, 2, 3, 4, 5, 6]
    """
    holder = getattr(obj, "variables", None)
    if holder is None:
        holder = obj.coords
    if "boundary_affected" in holder and obj["boundary_affected"].dims == ("layer",):
        return np.asarray(obj["boundary_affected"].values, dtype=bool)
    return None
