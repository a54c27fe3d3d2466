"""The layout of a CSE result (the result schema): one builder for every writer.

`result_layout` lays out the Dataset that `cse.conditional_scale_entropy`, `cse.compute`
(in memory or streamed into a store) and `cse.remeasure` return: dims ``(token, layer,
scale)`` (and ``layer2`` for stored Gram matrices), the token coordinates it is given, the
layer coordinates (``layer``, ``depth``, ``boundary_affected``), the band labels, the
variables of `cse.schema.VARIABLES` with their CF attributes, and the global attributes.
Variables are filled with the arrays given, or with NaN (in memory or as lazy Dask
arrays for a store that is filled batch by batch).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .boundary import boundary_affected
from .settings import MeasureSettings
from .schema import COORD_ATTRS, NULL_VARIABLES, VARIABLES, band_labels, variable_attrs

#: Bytes of one token chunk of the largest variable (scale_fraction) in a Zarr store.
ZARR_CHUNK_BYTES = 4 * 2**20


def token_chunk(n_tokens: int, n_layers: int, n_bands: int) -> int:
    """Tokens per Zarr chunk: a power of two with about `ZARR_CHUNK_BYTES` per chunk, at least 256.

    Parameters
    ----------
    n_tokens, n_layers, n_bands : int
        The result's sizes (``n_bands`` = J + 1).

    Returns
    -------
    int
        In [1, n_tokens] (never more than the tokens).
    """
    per_token = 8 * n_layers * n_bands
    size = 2 ** int(np.log2(max(1, ZARR_CHUNK_BYTES // per_token)))
    return int(max(1, min(max(256, size), n_tokens)))


def result_variables(settings: MeasureSettings, *, surprisal: bool = True, save=()) -> list[str]:
    """Names of the data variables of a result with these settings, in storage order.

    Parameters
    ----------
    settings : MeasureSettings
        With a fitted level.
    surprisal : bool
        Whether the result holds the model's surprisal (`cse.compute` does; the measure
        of an array of updates does not).
    save : sequence of str
        What the run stores besides CSE (``'gram'`` or ``'gram_triangle'``; see
        `cse.compute`).

    Returns
    -------
    list of str
    """
    names = ["cse", "scale_fraction", "update_norm"] + (["surprisal"] if surprisal else [])
    names += list(NULL_VARIABLES) if settings.null_permutations else []
    names += [name for name in ("gram", "gram_triangle") if name in save]
    return names


def _sizes(n_tokens: int, n_layers: int, settings: MeasureSettings) -> dict:
    return {"token": n_tokens, "layer": n_layers, "layer2": n_layers, "scale": settings.n_bands,
            "layer_pair": n_layers * (n_layers + 1) // 2}


def result_layout(settings: MeasureSettings, n_layers: int, token_coords: dict, *, attrs: dict, names=None,
                  arrays=None, lazy: bool = False, chunk: int | None = None) -> xr.Dataset:
    """The result Dataset: coordinates, attributes and variables, filled or NaN.

    Parameters
    ----------
    settings : MeasureSettings
        With a fitted level: it gives the band labels and the boundary coefficients.
    n_layers : int
        L, the number of blocks.
    token_coords : dict of str to ndarray, each shape (n_tokens,)
        The coordinates on ``token``; ``position`` (the token's 0-based position in
        its model input sequence) is required on the token axis, whose boundary
        coefficients are per position.
    attrs : dict
        Global attributes (str or int values).
    names : sequence of str, optional
        Data variables to lay out (default: those of `arrays`).
    arrays : dict of str to ndarray, optional
        Values of the variables, token-major, shapes of `cse.schema.VARIABLES`.
        Variables of `names` not in `arrays` are filled with NaN.
    lazy : bool
        NaN-filled variables as Dask arrays of ``chunk`` tokens (so the layout can be
        written as Zarr metadata without allocating them); otherwise NumPy arrays.
    chunk : int, optional
        Tokens per chunk of the lazy variables (default `token_chunk`).

    Returns
    -------
    xarray.Dataset
        Dims ``token``, ``layer``, ``scale`` (``layer2`` or ``layer_pair`` with stored
        Gram matrices); coordinates ``token_coords``, ``layer`` (int64), ``depth`` =
        (layer + 1) / L, ``scale`` (``d1..dJ, aJ``) and ``boundary_affected`` (bool; on
        ``layer`` for the depth axis, on ``token`` for the token axis, absent for the
        hidden axis); every variable with the ``long_name`` and ``units`` of
        `cse.schema`, float64.
    """
    arrays = arrays or {}
    names = list(arrays) if names is None else list(names)
    n_tokens = len(next(iter(token_coords.values()))) if token_coords else len(next(iter(arrays.values())))
    sizes = _sizes(n_tokens, n_layers, settings)
    chunks = {**sizes, "token": chunk or token_chunk(n_tokens, n_layers, settings.n_bands)}
    data_vars = {}
    for name in names:
        dims = VARIABLES[name][0]
        if name in arrays:
            data = arrays[name]
        elif lazy:
            import dask.array as da

            data = da.full(tuple(sizes[d] for d in dims), np.nan, dtype=np.float64,
                           chunks=tuple(chunks[d] for d in dims))
        else:
            data = np.full(tuple(sizes[d] for d in dims), np.nan, dtype=np.float64)
        data_vars[name] = xr.Variable(dims, data, attrs=variable_attrs(name))
    coords = {name: ("token", np.asarray(values)) for name, values in token_coords.items()}
    coords.update(measure_coords(settings, n_layers, token_coords.get("position"), names))
    ds = xr.Dataset(data_vars, coords=coords, attrs=dict(attrs))
    for name in ds.coords:
        if name in COORD_ATTRS:
            ds[name].attrs.update(COORD_ATTRS[name])
    return ds


def measure_coords(settings: MeasureSettings, n_layers: int, position=None, names=()) -> dict:
    """The coordinates a result's settings decide: layers, depth, bands, boundary coefficients.

    Parameters
    ----------
    settings : MeasureSettings
        With a fitted level.
    n_layers : int
        L, the number of blocks.
    position : ndarray of int, shape (n_tokens,), optional
        Each token's position in its model input sequence; required on the token axis.
    names : sequence of str
        The result's variables (``gram`` and ``gram_triangle`` add their dims' coordinates).

    Returns
    -------
    dict of str to (dim, ndarray)
        ``layer``, ``depth``, ``scale`` and, on the depth and token axes,
        ``boundary_affected``; ``layer2`` or ``layer_row``/``layer_col`` with stored
        Gram matrices.
    """
    layers = np.arange(n_layers, dtype=np.int64)
    coords = {"layer": ("layer", layers), "depth": ("layer", (layers + 1) / n_layers),
              "scale": ("scale", np.array(band_labels(settings.level), dtype=object))}
    if "gram" in names:
        coords["layer2"] = ("layer2", layers)
    if "gram_triangle" in names:
        rows, cols = np.triu_indices(n_layers)
        coords.update(layer_row=("layer_pair", rows.astype(np.int64)), layer_col=("layer_pair", cols.astype(np.int64)))
    if settings.axis == "depth":
        coords["boundary_affected"] = ("layer", boundary_affected(n_layers, settings.wavelet, settings.level))
    elif settings.axis == "token":
        position = np.asarray(position, dtype=np.int64)
        flags = boundary_affected(int(position.max(initial=0)) + 1, settings.wavelet, settings.level)
        coords["boundary_affected"] = ("token", flags[position])
    return coords
