"""Result files: written atomically and marked, opened only after the allow-list check.

Outputs are netCDF4 via ``h5netcdf`` or Zarr, always written to a temporary path beside
the target and renamed into place (`cse.io.atomic_path`), so an interrupted run never
leaves a file that looks complete, and marked with `RESULT_MARKER` so that the package
recognises its own results (`cse.io.is_package_result`). Results are opened only after
`cse.io.allowlist.check_result_file` has accepted every codec, filter and dtype.

NUL characters in strings: HDF5 variable-length strings cannot hold U+0000, so in
netCDF files every string variable is written with NUL as the two characters U+2400 '0'
and U+2400 itself as U+2400 U+2400 (a prefix-free escape, marked by the variable
attribute ``cse_nul_escape = "U+2400"``); `open_result` undoes it exactly. Zarr stores
hold NUL as it is.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import CSEInputError
from .allowlist import check_result_file, inspect_result
from .encoding import is_utf8, utf8_text
from .limits import ResultLimits
from .space import WRITE_ERRORS, check_room, in_child, netcdf_size, write_error_line
from .paths import (
    RESULT_MARKER,
    atomic_path,
    check_output,
    first_line,
    is_package_result,
    output_format,
    read_metadata,
)

#: The escape character for NUL in netCDF strings: U+2400 SYMBOL FOR NULL.
NUL_ESCAPE = "\u2400"

#: Variable attribute marking a netCDF string variable written with the NUL escape.
NUL_ESCAPE_ATTR = "cse_nul_escape"

_ESCAPED = re.compile("\u2400([\u24000])")
_STRING_KINDS = ("U", "O", "T")


def escape_nul(values) -> np.ndarray:
    """Escape NUL for netCDF: U+2400 -> U+2400 U+2400, then NUL -> U+2400 '0'.

    Parameters
    ----------
    values : array_like of str, any shape

    Returns
    -------
    ndarray, same shape
        Of StringDType if `values` is, else of object; non-string items are kept as they are.
    """
    flat = np.asarray(values, dtype=object).ravel()
    out = [v.replace(NUL_ESCAPE, NUL_ESCAPE * 2).replace("\x00", NUL_ESCAPE + "0") if isinstance(v, str) else v
           for v in flat]
    return _string_array(out, values)


def unescape_nul(values) -> np.ndarray:
    """Undo `escape_nul` exactly (left to right: U+2400 U+2400 -> U+2400, U+2400 '0' -> NUL).

    Parameters
    ----------
    values : array-like of str
        Strings as stored in a result.

    Returns
    -------
    ndarray
        Of the shape of `values`.
    """
    flat = np.asarray(values, dtype=object).ravel()
    out = [_ESCAPED.sub(lambda m: NUL_ESCAPE if m.group(1) == NUL_ESCAPE else "\x00", v)
           if isinstance(v, str) and NUL_ESCAPE in v else v for v in flat]
    return _string_array(out, values)


def _string_array(items: list, like) -> np.ndarray:
    """`items` in the shape of `like`: NumPy's StringDType if `like` has it, else object."""
    array = np.empty(len(items), dtype=object)
    array[:] = items
    array = array.reshape(np.shape(like))
    return array.astype(like.dtype) if getattr(like, "dtype", None) is not None and like.dtype.kind == "T" else array


def _map_strings(ds: xr.Dataset, func, select) -> xr.Dataset:
    """Apply an element-wise string function to the variables `select` picks (lazily for Dask)."""
    replaced = {}
    for name, var in ds.variables.items():
        if not select(var):
            continue
        data = var.data
        if hasattr(data, "map_blocks"):
            new = data.map_blocks(func, dtype=var.dtype if var.dtype.kind == "T" else object)
        else:
            new = func(var.values)
        replaced[name] = var.copy(data=new)
    if not replaced:
        return ds
    coords = {k: v for k, v in replaced.items() if k in ds.coords}
    data_vars = {k: v for k, v in replaced.items() if k not in ds.coords}
    return ds.assign_coords(coords).assign(data_vars)


def _utf8_attrs(attrs: dict) -> dict:
    return {key: utf8_text(value) if isinstance(value, str) else value for key, value in attrs.items()}


def write_netcdf(ds: xr.Dataset, path) -> None:
    """Write `ds` to exactly `path` as netCDF4 (h5netcdf), strings escaped for NUL.

    The low-level writer behind `write_result`, for callers that manage the atomic
    rename themselves (the compute staging): variable-length UTF-8 strings whatever
    the in-memory string dtype, NUL escaped as described in this module.

    Parameters
    ----------
    ds : xarray.Dataset
        NumPy- or Dask-backed.
    path : str or Path
        The file to create (a temporary path).
    """
    def fresh(var):
        return var.dtype.kind in _STRING_KINDS and NUL_ESCAPE_ATTR not in var.attrs

    escaped = _map_strings(ds, escape_nul, fresh).copy(deep=False)  # its attributes are edited: not the caller's
    # Text attributes holding surrogate escapes (a path or command under a non-UTF-8 locale) cannot be HDF5 UTF-8.
    escaped.attrs = _utf8_attrs(escaped.attrs)
    for var in escaped.variables.values():
        var.attrs = _utf8_attrs(var.attrs)
    encoding = {}
    for name, var in escaped.variables.items():
        if var.dtype.kind in _STRING_KINDS:
            encoding[name] = {"dtype": str}
            if fresh(ds.variables[name]):
                var.attrs[NUL_ESCAPE_ATTR] = "U+2400"
    check_room(path, netcdf_size(escaped))  # a full disk is refused before libhdf5 meets it (see cse.io.space)
    # In a child process: a failed write leaves libhdf5's state to crash the process later (see cse.io.space).
    in_child(lambda: escaped.to_netcdf(path, engine="h5netcdf", encoding=encoding), path)


def write_result(ds: xr.Dataset, path, overwrite: bool = False) -> Path:
    """Write a result Dataset atomically to netCDF4 (h5netcdf) or Zarr.

    Parameters
    ----------
    ds : xarray.Dataset
        A result of `cse.compute`, `cse.stats` or a study (NumPy- or Dask-backed).
        The written file carries the `RESULT_MARKER` attribute (the package version).
    path : str or Path
        Target ending in ``.nc`` or ``.zarr``.
    overwrite : bool
        Replace an existing file or result store (see `check_output`).

    Returns
    -------
    Path
        The written path.

    Raises
    ------
    CSEInputError
        As `check_output`; in one line when the disk is full, the file-size limit
        (``ulimit -f``) or a quota is reached, or the folder cannot be written (the
        temporary file is removed).
    """
    from .. import __version__

    path = Path(path)
    fmt = output_format(path)
    check_output(path, overwrite=overwrite)
    if RESULT_MARKER not in ds.attrs:
        ds = ds.copy()
        ds.attrs[RESULT_MARKER] = __version__
    try:
        with atomic_path(path, overwrite=overwrite) as tmp, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
            if fmt == "netcdf":
                write_netcdf(ds, tmp)
            else:
                ds.to_zarr(tmp, mode="w-", consolidated=True)
    except OSError as error:  # the temporary file is removed by atomic_path
        if error.errno not in WRITE_ERRORS:
            raise
        raise CSEInputError(write_error_line(path, error)) from None
    return path


def open_result(path, chunks=None, *, require=("cse",), max_bytes=None) -> xr.Dataset:
    """Open a result file of ``cse compute`` (or ``cse stats``, a study) safely.

    The file is untrusted input. Before anything is decoded, its codecs, filters and
    dtypes are checked against what the package reads safely, whatever the environment
    says (``NUMCODECS_ALLOW_UNSAFE_PICKLE_DECODE`` included), and its declared array
    and chunk sizes against the memory limit (`cse.io.limits.ResultLimits`). Zarr
    chunks are then decoded by the package within those bounds, and every failure to
    read a variable, now or later (``.load()``, a Dask computation), is one
    `CSEInputError` naming the file and the variable.

    Parameters
    ----------
    path : str or Path
        A ``.nc`` (netCDF4) or ``.zarr`` result.
    chunks : dict or 'auto', optional
        Open lazily with Dask chunks (e.g. ``{"token": 100_000}``; ``{}``: the file's
        own chunks). Default None: a Zarr store is read whole, a netCDF variable on
        first access.
    require : sequence of str
        Data variables the result must have (default ``("cse",)``; ``()`` for the
        output of ``cse stats``).
    max_bytes : int, optional
        The memory limit in bytes (at least 1 MiB): what may be read at once (the whole
        store without `chunks`, one netCDF variable, any 1-D array); one chunk may
        decode to an eighth of it. Default: ``$CSE_MAX_RESULT_BYTES`` (e.g. ``8G``), else
        half the memory available now.

    Returns
    -------
    xarray.Dataset
        The result, with the result schema (user guide, Computing CSE).

    Raises
    ------
    CSEInputError
        One line: the path does not exist or is not a regular file (a ``.zarr``: not a
        folder), a codec, filter, dtype or link is refused, a declared size is over
        the limit, a chunk is corrupt or inflates past its size, the file cannot be
        read, or a required variable is missing. Lazy reads later raise it too.
    TypeError
        `max_bytes` is not an int.

    Examples
    --------
    >>> import cse
    >>> ds = cse.open_result("cse-example.nc")  # from: cse compute --example -o cse-example.nc  # doctest: +SKIP
    >>> ds.cse.sel(layer=12).groupby("label").mean()  # doctest: +SKIP
    """
    from .bounded import open_guarded

    path = Path(path)
    limits = ResultLimits.resolve(max_bytes)
    fmt, layout = inspect_result(path, "result", limits, whole=chunks is None)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
            ds = open_guarded(path, fmt, chunks, layout, limits.chunk_bytes)
    except CSEInputError:
        raise
    except Exception as exc:  # the file is untrusted: whatever opening it raises is a property of the file
        raise CSEInputError(f"{path}: not a readable result file ({first_line(exc)})") from None
    try:
        if fmt == "zarr" and chunks is None:
            ds.load()
        closer = ds._close  # noqa: SLF001 -- xarray's own closer, kept through the replacement below
        ds = _map_strings(ds, unescape_nul, lambda var: NUL_ESCAPE_ATTR in var.attrs)
        ds.set_close(closer)
    except BaseException:
        ds.close()
        raise
    for var in ds.variables.values():
        var.attrs.pop(NUL_ESCAPE_ATTR, None)
    for name in require:
        if name not in ds.data_vars:
            raise CSEInputError(f"{path}: has no {name!r} variable; is it a result of 'cse compute'?")
    return ds


def result_attrs(path) -> dict:
    """The global attributes of a result, read without decoding any data.

    Parameters
    ----------
    path : str or Path
        A ``.nc`` or ``.zarr`` result (checked as by `open_result`).

    Returns
    -------
    dict
        As ``open_result(path).attrs``.

    Raises
    ------
    CSEInputError
        As `open_result`.
    """
    path = Path(path)
    if check_result_file(path, "result") == "zarr":
        root = read_metadata(path / "zarr.json")
        attrs = root.get("attributes") if root is not None else read_metadata(path / ".zattrs")
        return dict(attrs or {})
    import h5netcdf

    try:
        with h5netcdf.File(path, "r") as handle:
            return dict(handle.attrs)
    except (OSError, ValueError, KeyError) as exc:
        raise CSEInputError(f"{path}: not a readable result file ({str(exc).splitlines()[0]})") from None


def set_result_attrs(path, attrs: dict) -> None:
    """Update global attributes of a result of this package in place (e.g. a study's cache key).

    Parameters
    ----------
    path : str or Path
        A ``.nc`` or ``.zarr`` written by this package (`is_package_result`).
    attrs : dict
        ``name -> value``: str, bool, int, float or a list of numbers; ``None`` deletes
        the attribute. Names are non-empty, without ``/`` or control characters;
        `RESULT_MARKER` cannot be deleted.

    Raises
    ------
    CSEInputError
        The path is not a result of this package, or a name or value is refused.

    Notes
    -----
    netCDF: the attributes are rewritten in the HDF5 file itself (h5netcdf ``r+``);
    Zarr: the root metadata is rewritten and the consolidated metadata refreshed.
    """
    path = Path(path)
    fmt = check_result_file(path, "result")
    if not is_package_result(path):
        raise CSEInputError(f"{path}: not a result written by cse; its attributes are not changed")
    clean = {_attr_name(name): _attr_value(name, value) for name, value in attrs.items()}
    if clean.get(RESULT_MARKER, "") is None:
        raise CSEInputError(f"Invalid value for 'attrs': {RESULT_MARKER!r} marks the result and cannot be deleted")
    if fmt == "netcdf":
        import h5netcdf

        with h5netcdf.File(path, "r+") as handle:
            for name, value in clean.items():
                if value is None:
                    handle.attrs.pop(name, None)
                else:
                    handle.attrs[name] = value
        return
    import zarr

    group = zarr.open_group(str(path), mode="r+")
    for name, value in clean.items():
        if value is None:
            group.attrs.pop(name, None)
        else:
            group.attrs[name] = value.tolist() if isinstance(value, np.ndarray) else value
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        zarr.consolidate_metadata(str(path))


def _attr_name(name) -> str:
    if not isinstance(name, str) or not name or "/" in name or not name.isprintable():
        raise CSEInputError(f"Invalid value for 'attrs': {name!r} is not a valid attribute name")
    return name


def _attr_value(name: str, value):
    if value is None or isinstance(value, str | float | int | np.floating | np.integer):
        if isinstance(value, str) and ("\x00" in value or not is_utf8(value)):
            raise CSEInputError(f"Invalid value for 'attrs': {name!r} holds NUL or an unpaired surrogate")
        if isinstance(value, bool | np.bool_):
            return int(value)
        return value.item() if isinstance(value, np.generic) else value
    if isinstance(value, np.bool_):
        return int(value)
    if isinstance(value, list | tuple | np.ndarray):
        array = np.asarray(value)
        if array.ndim == 1 and array.dtype.kind in "biuf":
            return array.astype(np.int64 if array.dtype.kind in "biu" else np.float64)
    raise CSEInputError(f"Invalid value for 'attrs': {name!r} is {type(value).__name__}; expected str, int, float, "
                        f"bool, a list of numbers, or None to delete it")
