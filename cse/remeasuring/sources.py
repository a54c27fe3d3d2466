"""What a result stores for re-measuring, read in chunks of tokens: Gram matrices, their triangle, the updates.

`open_source` finds, in a result, what the asked axis can be re-measured from (the
depth axis: ``gram``, then ``gram_triangle``, then the updates; the token and hidden
axes: the updates), checks it against the result (dims, sizes, dtypes, symmetry: the
file is untrusted) and returns a reader whose `measure` runs the one reduction path
(`cse.measure.reduce_gram`, `cse.measure.reduce_updates`) on a few tens of MiB of it
at a time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import CSEInputError
from ..io import open_result
from ..measure import reduce_gram, reduce_updates
from ..settings import MeasureSettings
from ..schema import NULL_VARIABLES, VARIABLES

#: Bytes of Gram matrices or updates read (and reduced) at a time.
CHUNK_BYTES = 64 * 2**20

#: Relative asymmetry above which a stored ``gram`` is refused as not a Gram matrix
#: (a batched matrix product on a GPU may round (m, n) and (n, m) differently).
SYMMETRY_TOLERANCE = 1e-8

#: Relative slack of the Cauchy-Schwarz check of stored Gram matrices (float32 products
#: of nearly parallel updates round both sides by a few 1e-7).
CAUCHY_SCHWARZ_TOLERANCE = 1e-5


def sequence_starts(text, position) -> np.ndarray:
    """Index of the first token of every model input sequence, and the number of tokens at the end.

    Parameters
    ----------
    text, position : array_like of int, shape (n_tokens,)
        The ``text`` and ``position`` coordinates of a result: a sequence (a text, or
        a window of it) starts where ``position`` is 0, does not follow the previous
        position, or the text changes.

    Returns
    -------
    ndarray of int64, shape (n_sequences + 1,)
        ``starts[k]:starts[k + 1]`` are the tokens of sequence k (the token axis'
        series).
    """
    text = np.asarray(text)
    position = np.asarray(position, dtype=np.int64)
    new = np.ones(len(position), dtype=bool)
    if len(position) > 1:
        new[1:] = (position[1:] == 0) | (position[1:] != position[:-1] + 1) | (text[1:] != text[:-1])
    return np.r_[np.flatnonzero(new), len(position)].astype(np.int64)


class _Outputs:
    """The result arrays of every token, filled chunk by chunk."""

    def __init__(self, n_tokens: int, n_layers: int, settings: MeasureSettings):
        shapes = {"cse": (n_tokens, n_layers), "update_norm": (n_tokens, n_layers),
                  "scale_fraction": (n_tokens, n_layers, settings.level + 1)}
        if settings.null_permutations:
            shapes.update({name: (n_tokens, n_layers) for name in NULL_VARIABLES})
        self.arrays = {name: np.full(shape, np.nan) for name, shape in shapes.items()}

    def put(self, start: int, part: dict) -> None:
        for name, array in self.arrays.items():
            array[start:start + len(part[name])] = part[name]


class GramSource:
    """The stored Gram matrices of a result: ``gram (token, layer, layer2)`` or ``gram_triangle``.

    Parameters
    ----------
    ds : xarray.Dataset
        The result (NumPy- or Dask-backed).
    name : {'gram', 'gram_triangle'}
        The variable to read.
    origin : str
        The result's path (or ``'in-memory result'``), for messages.

    Raises
    ------
    CSEInputError
        If the variable's dims, sizes, dtype or pair coordinates are not those
        ``cse compute --save gram`` writes.
    """

    def __init__(self, ds: xr.Dataset, name: str, origin: str):
        self.var, self.kind, self.origin = ds[name], name, origin
        self.n_layers = int(ds.sizes["layer"])
        n_pairs = self.n_layers * (self.n_layers + 1) // 2
        expected = {"gram": ((ds.sizes["token"], self.n_layers, self.n_layers), VARIABLES["gram"][0]),
                    "gram_triangle": ((ds.sizes["token"], n_pairs), VARIABLES["gram_triangle"][0])}[name]
        if (tuple(self.var.shape), self.var.dims) != expected or self.var.dtype.kind != "f":
            raise CSEInputError(f"{origin}: its variable {name!r} has dims {self.var.dims}, shape "
                                f"{tuple(self.var.shape)} and dtype {self.var.dtype}; expected {expected[1]}, shape "
                                f"{expected[0]}, floats, as 'cse compute --save gram' writes it")
        self.rows, self.cols = np.triu_indices(self.n_layers)
        for coord, values in (("layer_row", self.rows), ("layer_col", self.cols)):
            if name == "gram_triangle" and coord in ds.coords and not np.array_equal(ds[coord].values, values):
                raise CSEInputError(f"{origin}: its coordinate {coord!r} is not in numpy.triu_indices order; "
                                    f"the packed Gram triangle cannot be read")

    def n_steps(self, axis: str) -> int:
        """Length of the axis (the depth axis: the number of layers)."""
        return self.n_layers

    def _chunk(self, start: int, stop: int) -> np.ndarray:
        values = np.asarray(self.var[start:stop].values, dtype=np.float64)
        if self.kind == "gram_triangle":
            full = np.empty((len(values), self.n_layers, self.n_layers))
            full[:, self.rows, self.cols] = values
            full[:, self.cols, self.rows] = values
            return self._valid(full, start)
        # |G[m, n]| <= max_k G[k, k] for a Gram matrix (Cauchy-Schwarz): the token's scale.
        with np.errstate(invalid="ignore", over="ignore"):
            asymmetry = values - values.transpose(0, 2, 1)
            np.abs(asymmetry, out=asymmetry)
            scale = np.abs(np.einsum("tmm->tm", values)).max(axis=1, initial=0.0)
            asymmetric = asymmetry.reshape(len(values), -1).max(axis=1, initial=0.0) > SYMMETRY_TOLERANCE * scale
        if asymmetric.any():
            token = start + int(np.flatnonzero(asymmetric)[0])
            raise CSEInputError(f"{self.origin}: its variable 'gram' is not symmetric at token {token}: not a Gram "
                                f"matrix of layer updates")
        return self._valid(np.ascontiguousarray(values), start)

    def _valid(self, gram: np.ndarray, start: int) -> np.ndarray:
        """`gram` (tokens, L, L), after checking what every Gram matrix satisfies: finite, diagonal >= 0, Cauchy-Schwarz.

        |G[m, n]|^2 <= G[m, m] G[n, n] is the positive semi-definiteness of every 2 x 2
        principal minor; a file that breaks it would change every CSE cell silently. The
        cost is two passes over the chunk, small next to the reduction.
        """
        diagonal = np.einsum("tmm->tm", gram)
        with np.errstate(invalid="ignore", over="ignore"):
            bound = diagonal[:, :, None] * diagonal[:, None, :]
            scale = np.abs(diagonal).max(axis=1, initial=0.0)[:, None, None] ** 2
            problems = {
                "non-finite values": ~np.isfinite(gram).reshape(len(gram), -1).all(axis=1),
                "a negative diagonal (squared norm)": (diagonal < 0).any(axis=1),
                "entries beyond the Cauchy-Schwarz bound |G[m, n]|^2 <= G[m, m] G[n, n]": (
                    gram * gram > bound * (1 + CAUCHY_SCHWARZ_TOLERANCE) + CAUCHY_SCHWARZ_TOLERANCE * scale
                ).reshape(len(gram), -1).any(axis=1),
            }
        for what, bad in problems.items():
            if bad.any():
                tokens = np.flatnonzero(bad)
                raise CSEInputError(f"{self.origin}: its variable {self.kind!r} has {what} at {len(tokens)} token(s), "
                                    f"first token {start + int(tokens[0])}: not a Gram matrix of layer updates")
        return gram

    def measure(self, settings: MeasureSettings) -> dict:
        """The result arrays of every token under `settings` (depth axis), token-major."""
        n_tokens = self.var.shape[0]
        out = _Outputs(n_tokens, self.n_layers, settings)
        step = max(1, CHUNK_BYTES // (8 * self.n_layers**2))
        for start in range(0, n_tokens, step):
            out.put(start, reduce_gram(self._chunk(start, min(n_tokens, start + step)), settings))
        return out.arrays


class UpdatesSource:
    """The stored layer updates of a result: ``updates (token, layer, hidden)``, in memory or in a Zarr store.

    Parameters
    ----------
    ds : xarray.Dataset
        The result.
    updates : xarray.DataArray
        Its updates (lazy from a store, or in memory), float16, float32 or float64.
    origin : str
        The result's path (or ``'in-memory result'``), for messages.

    Raises
    ------
    CSEInputError
        If the updates' dims, sizes or dtype are not those of the result, or the
        result lacks the ``text`` and ``position`` coordinates.
    """

    def __init__(self, ds: xr.Dataset, updates: xr.DataArray, origin: str):
        self.var, self.origin = updates, origin
        self.kind = f"updates ({updates.dtype})"
        expected = (ds.sizes["token"], ds.sizes["layer"])
        if updates.dims != VARIABLES["updates"][0] or tuple(updates.shape[:2]) != expected \
                or updates.dtype not in (np.float16, np.float32, np.float64):
            raise CSEInputError(f"{origin}: its layer updates have dims {updates.dims}, shape {tuple(updates.shape)} "
                                f"and dtype {updates.dtype}; expected ('token', 'layer', 'hidden') with {expected[0]} "
                                f"tokens and {expected[1]} layers, float16/32/64")
        if "text" not in ds.coords or "position" not in ds.coords:
            raise CSEInputError(f"{origin}: has no 'text' and 'position' coordinates; a result of 'cse compute' has")
        self.starts = sequence_starts(ds["text"].values, ds["position"].values)

    def n_steps(self, axis: str) -> int:
        """Length of the axis: layers (depth), the shortest sequence (token) or d_model (hidden)."""
        if axis == "token":
            return int(np.diff(self.starts).min()) if len(self.starts) > 1 else 0
        return int(self.var.shape[1] if axis == "depth" else self.var.shape[2])

    def _bounds(self, axis: str) -> list:
        """(start, stop) of the token chunks: whole sequences on the token axis."""
        n_tokens, per_token = self.var.shape[0], max(1, 8 * self.var.shape[1] * self.var.shape[2])
        step = max(1, CHUNK_BYTES // per_token)
        if axis != "token":
            return [(s, min(n_tokens, s + step)) for s in range(0, n_tokens, step)]
        bounds, start = [], 0
        for stop in self.starts[1:]:
            if stop - start >= step or stop == n_tokens:
                bounds.append((start, int(stop)))
                start = int(stop)
        return bounds

    def measure(self, settings: MeasureSettings) -> dict:
        """The result arrays of every token under `settings`, token-major."""
        out = _Outputs(self.var.shape[0], self.var.shape[1], settings)
        for start, stop in self._bounds(settings.axis):
            chunk = np.asarray(self.var[start:stop].values)  # (tokens, layers, hidden)
            if settings.axis != "token":
                out.put(start, reduce_updates(chunk.transpose(1, 0, 2), settings))
                continue
            starts = self.starts[(self.starts >= start) & (self.starts <= stop)] - start
            parts = [reduce_updates(chunk[a:b].transpose(1, 0, 2), settings) for a, b in zip(starts[:-1], starts[1:])]
            out.put(start, {name: np.concatenate([p[name] for p in parts]) for name in parts[0]})
        return out.arrays


def _plain_name(name: str) -> bool:
    return (name.endswith(".zarr") and name not in (".zarr", "..zarr") and "/" not in name and "\\" not in name
            and name.isprintable() and not name.startswith("."))


def updates_path(ds: xr.Dataset, origin: str, updates=None, folder=None) -> Path | None:
    """The layer-updates store a re-measure of `ds` reads: `updates`, or the one its attribute names, beside it.

    None where the result holds its updates as a variable or names no store.

    Parameters
    ----------
    ds : xarray.Dataset
        The result to re-measure (its ``updates_store`` attribute, or an ``updates`` variable).
    origin : str
        How `ds` is named in errors (its path, or "the result").
    updates : str, os.PathLike or None
        An updates store given explicitly (``--updates``); it wins over the attribute.
    folder : str, os.PathLike or None
        The folder of the result file (None for an in-memory result).

    Returns
    -------
    pathlib.Path or None
        The store's path, unresolved.

    Raises
    ------
    CSEInputError
        If the attribute ``updates_store`` is not a plain file name ending in ``.zarr``,
        or names a store beside an in-memory result (no folder).
    """
    if "updates" in ds.data_vars:
        return None
    if updates is not None:
        return Path(updates)
    name = ds.attrs.get("updates_store")
    if not name:
        return None
    name = str(name)
    if not _plain_name(name):
        raise CSEInputError(f"{origin}: its attribute updates_store={name[:80]!r} is not a plain file name ending "
                            f"in .zarr; pass the updates store explicitly (--updates)")
    if folder is None:
        raise CSEInputError(f"{origin}: its updates are in {name!r} beside the result file, which an in-memory "
                            f"result does not know; pass updates=PATH")
    return Path(folder) / name


def _stored_updates(ds: xr.Dataset, origin: str, updates, folder) -> xr.DataArray | None:
    """The result's updates: its ``updates`` variable, the store `updates`, or the one its attribute names."""
    if "updates" in ds.data_vars:
        return ds["updates"]
    path = updates_path(ds, origin, updates, folder)
    if path is None:
        return None
    store = open_result(path, chunks={}, require=("updates",))
    for coord in ("text", "position", "token_id"):
        if store.sizes.get("token") != ds.sizes["token"] or (
                coord in store.coords and coord in ds.coords
                and not np.array_equal(store[coord].values, ds[coord].values)):
            raise CSEInputError(f"{path}: its tokens are not those of {origin} ({coord!r} or the token count "
                                f"differs); it is the updates store of another result")
    if "token_id" in ds.coords and "token_id" not in store.coords:
        raise CSEInputError(f"{path}: it records no token ids, so it cannot be matched to the tokens of {origin}; "
                            f"recompute it with 'cse compute --save updates'")
    return store["updates"]


def open_source(ds: xr.Dataset, axis: str, origin: str, *, updates=None, folder=None):
    """What `ds` can be re-measured from on `axis`: a `GramSource` or an `UpdatesSource`.

    Parameters
    ----------
    ds : xarray.Dataset
        The result.
    axis : {'depth', 'token', 'hidden'}
        The asked axis.
    origin : str
        The result's path (or ``'in-memory result'``), for messages.
    updates : str or Path, optional
        The layer-updates store; default the one named in the attribute
        ``updates_store``, in `folder`.
    folder : Path, optional
        The result file's folder.

    Returns
    -------
    GramSource or UpdatesSource
        The depth axis prefers the Gram matrices (exact and fast); the other axes
        need the updates.

    Raises
    ------
    CSEInputError
        One line naming what to save when the result holds nothing the axis needs.
    """
    if axis == "depth":
        for name in ("gram", "gram_triangle"):
            if name in ds.data_vars:
                return GramSource(ds, name, origin)
    stored = _stored_updates(ds, origin, updates, folder)
    if stored is not None:
        return UpdatesSource(ds, stored, origin)
    has_gram = any(name in ds.data_vars for name in ("gram", "gram_triangle"))
    holds = "Gram matrices only, which give the depth axis only" if has_gram else "neither Gram matrices nor layer updates"
    save = "save='gram' (depth axis) or save='updates' (any axis)" if axis == "depth" else "save='updates'"
    raise CSEInputError(f"{origin}: cannot re-measure the {axis} axis: it holds {holds}; compute it with {save}")
