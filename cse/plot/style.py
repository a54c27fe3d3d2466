"""What the figures of `cse.plot` share: the boundary colour, integer layer ticks, runs of flags, attributes."""

from __future__ import annotations

import numpy as np
import xarray as xr

#: Hatching and shading of boundary-affected layers (and token positions).
BOUNDARY_COLOUR = "#8c564b"


def runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) index of every run of True in a 1-D boolean array.

    Parameters
    ----------
    flags : ndarray of bool, shape (n,)

    Returns
    -------
    list of (int, int)
        Inclusive index pairs.
    """
    edges = np.flatnonzero(np.diff(np.r_[0, flags.astype(np.int8), 0]))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


def var_attrs(ds, var) -> dict:
    """Attributes of `var` in a Dataset (or of the DataArray itself); {} otherwise.

    Parameters
    ----------
    ds : xarray.Dataset, xarray.DataArray or ndarray
    var : str
        A variable name.

    Returns
    -------
    dict
    """
    if isinstance(ds, xr.Dataset) and var in ds:
        return ds[var].attrs
    if isinstance(ds, xr.DataArray):
        return ds.attrs
    return {}


def integer_ticks():
    """A tick locator that puts ticks on integers only (layer indices)."""
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def setting_words(attrs) -> str:
    """The measure's setting in a few words, for titles.

    Parameters
    ----------
    attrs : dict
        A result's attributes (``axis``, ``wavelet``, ``level``, ``boundary``).

    Returns
    -------
    str
        E.g. ``"depth, haar J=3, reflect"``; ``""`` when the attributes name no wavelet.
    """
    if "wavelet" not in attrs:
        return ""
    level = f" J={attrs['level']}" if "level" in attrs else ""
    boundary = f", {attrs['boundary']}" if attrs.get("axis", "depth") != "hidden" and "boundary" in attrs else ""
    return f"{attrs.get('axis', 'depth')}, {attrs['wavelet']}{level}{boundary}"
