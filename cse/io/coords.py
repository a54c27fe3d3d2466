"""Dimension coordinates a result must have before its layers are summarised, tested or drawn.

A result's tables and figures name layers by their ``layer`` coordinate ("layers 0-6"),
runs of layers are clusters, and profiles are drawn against ``depth``. A result whose
``layer`` coordinate is duplicated or out of order (a concatenation gone wrong, or a file
edited by hand) would make every one of those wrong without a warning, so `cse info`,
`cse stats` and `cse plot` refuse it first (`check_coordinates`).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..errors import CSEInputError

#: Coordinates that must be numbers in strictly increasing order (integers for ``layer``),
#: besides every dimension coordinate being unique.
ORDERED_COORDINATES = {"layer": True, "depth": False}  # name -> integer-valued


def check_coordinates(ds: xr.Dataset, name: str = "RESULT") -> xr.Dataset:
    """Refuse a result whose dimension coordinates are duplicated, or whose layers are out of order.

    Parameters
    ----------
    ds : xarray.Dataset
        A result of ``cse compute`` or ``cse stats`` (NumPy- or Dask-backed; only 1-D
        coordinates are read).
    name : str
        The result, named in messages (its path).

    Returns
    -------
    xarray.Dataset
        `ds` itself, so that the check wraps an open: ``check_coordinates(open_result(p), p)``.

    Raises
    ------
    CSEInputError
        One line naming the coordinate and the first offending value: a dimension
        coordinate (``layer``, ``scale`` ...) that holds a value twice; ``layer`` or
        ``depth`` not in strictly increasing order, not finite, or (``layer``) not
        integers.

    Examples
    --------
    >>> import xarray as xr
    >>> check_coordinates(xr.Dataset(coords={"layer": [0, 1, 2]})).sizes["layer"]
    3
    >>> try:
    ...     check_coordinates(xr.Dataset(coords={"layer": [0, 2, 1]}), "r.nc")
    ... except ValueError as error:
    ...     print(str(error).split(";")[0])
    r.nc: its 'layer' coordinate is not in increasing order (1 follows 2)
    """
    for coord in ds.coords:
        var = ds.coords[coord]
        ordered = coord in ORDERED_COORDINATES and var.ndim == 1
        if not ordered and not (var.dims == (coord,)):
            continue
        values = np.asarray(var.values)
        problem = _order_problem(values, ORDERED_COORDINATES[coord]) if ordered else _duplicate_problem(values)
        if problem:
            raise CSEInputError(f"{name}: its {coord!r} coordinate {problem}; cse summarises, tests and draws only "
                                f"results whose dimension coordinates are unique and whose layers and depths increase "
                                f"(fix it with ds.drop_duplicates({coord!r}).sortby({coord!r}), or recompute it)")
    return ds


def _duplicate_problem(values: np.ndarray) -> str:
    try:
        uniques, counts = np.unique(values, return_counts=True)
    except TypeError:  # mixed objects that do not compare: compare their text
        uniques, counts = np.unique(values.astype(str), return_counts=True)
    if len(uniques) == len(values):
        return ""
    k = int(np.argmax(counts > 1))
    return f"holds {_shown(uniques[k])} {'twice' if counts[k] == 2 else f'{int(counts[k])} times'}"


def _order_problem(values: np.ndarray, integer: bool) -> str:
    if values.dtype.kind not in "biuf":
        return f"holds {values.dtype} values, not numbers"
    numbers = values.astype(np.float64)
    if not np.isfinite(numbers).all():
        return f"holds {_shown(values[~np.isfinite(numbers)][0])}"
    if integer and (numbers != np.round(numbers)).any():
        return f"holds {_shown(values[numbers != np.round(numbers)][0])}, not an integer"
    steps = np.diff(numbers)
    if (steps <= 0).any():
        k = int(np.flatnonzero(steps <= 0)[0])
        if steps[k] == 0:
            return f"holds {_shown(values[k])} twice"
        return f"is not in increasing order ({_shown(values[k + 1])} follows {_shown(values[k])})"
    return ""


def _shown(value) -> str:
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= 40 else text[:37] + "..."
