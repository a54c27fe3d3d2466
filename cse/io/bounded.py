"""Opening a checked result: chunks decoded within bounds, every read error one line naming its variable.

Two pieces, both used by `cse.open_result` after `cse.io.allowlist.check_result_file`:

- `BoundedStore`, a read-only Zarr store over a checked folder. zarr-python sees the
  checked metadata with the compression codecs removed (`cse.io.allowlist.ZarrLayout`);
  the store reads each chunk itself — its size on disk checked before it is read —
  and undoes those codecs within bounds (`cse.io.decoding`), so that nothing is
  inflated past the limits, and a string chunk's item count is checked before
  zarr-python decodes its items.
- `open_guarded`, which opens a result with xarray and wraps every variable in a lazy
  array that turns any failure to read it — a corrupt chunk, an HDF5 error, a
  declaration over the limits — into one `CSEInputError` naming the file and the
  variable, whenever the read happens: at opening, in ``.load()``, in a Dask task.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import stat

import numpy as np
import xarray as xr
from xarray.backends import BackendArray, BackendEntrypoint
from xarray.core import indexing
from zarr.abc.store import OffsetByteRequest, RangeByteRequest, Store, SuffixByteRequest
from zarr.core.buffer import default_buffer_prototype

from ..errors import CSEInputError
from .decoding import DecodeError, check_vlen_header, decode_chunk
from .paths import ZARR_METADATA, first_line

#: xarray >= 2025.7 can open without reading the dimension coordinates; they are then read
#: through the guard like every other variable.
_HAS_INDEX_OPTION = "create_default_indexes" in inspect.signature(xr.open_dataset).parameters


class BoundedStore(Store):
    """A read-only Zarr store over a checked folder that decodes chunks itself, within bounds.

    Parameters
    ----------
    root : Path
        The store (checked by `cse.io.allowlist.inspect_zarr_store`).
    layout : cse.io.allowlist.ZarrLayout
        Its arrays' plans and the metadata documents to serve.
    chunk_limit : int
        Most bytes a chunk of a string array may decode to (fixed-size arrays: exactly
        their chunk size).
    """

    supports_writes = False
    supports_deletes = False
    supports_listing = True

    def __init__(self, root, layout, chunk_limit: int):
        super().__init__(read_only=True)
        self.root, self.layout, self.chunk_limit = root, layout, chunk_limit

    def __eq__(self, other) -> bool:
        return isinstance(other, BoundedStore) and other.root == self.root

    def __hash__(self) -> int:
        return hash(str(self.root))

    def with_read_only(self, read_only: bool = False) -> BoundedStore:
        if not read_only:
            raise CSEInputError(f"{self.root}: opened read-only")
        return self

    async def get(self, key: str, prototype=None, byte_range=None):
        prototype = prototype or default_buffer_prototype()
        if key.rsplit("/", 1)[-1] in ZARR_METADATA:
            data = self.layout.served.get(key)
        else:
            data = await asyncio.to_thread(self.read_chunk, key)
        if data is None:
            return None
        return prototype.buffer.from_bytes(_byte_range(data, byte_range))

    async def get_partial_values(self, prototype, key_ranges):
        return [await self.get(key, prototype, byte_range) for key, byte_range in key_ranges]

    async def exists(self, key: str) -> bool:
        if key.rsplit("/", 1)[-1] in ZARR_METADATA:
            return key in self.layout.served
        return os.path.isfile(self.root / key)

    async def set(self, key, value) -> None:
        raise CSEInputError(f"{self.root}: opened read-only")

    async def delete(self, key) -> None:
        raise CSEInputError(f"{self.root}: opened read-only")

    async def list(self):
        for key in self._files(""):
            yield key

    async def list_prefix(self, prefix: str):
        for key in self._files(prefix.rstrip("/")):
            yield key

    async def list_dir(self, prefix: str):
        folder = self.root / prefix
        try:
            names = sorted(entry.name for entry in os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return
        for name in names:
            yield name

    def _files(self, prefix: str):
        base = self.root / prefix if prefix else self.root
        for folder, _dirs, files in os.walk(base):
            for name in sorted(files):
                yield os.path.relpath(os.path.join(folder, name), self.root).replace(os.sep, "/")

    def read_chunk(self, key: str) -> bytes | None:
        """The decoded bytes of a chunk, or None where it is absent (its fill value)."""
        plan, name = self._plan(key)
        if plan is None:
            return None
        where = f"{self.root}: variable {name!r}, chunk {key[len(name) + 1:]!r}"
        fixed = None if plan.vlen else plan.chunk_items * plan.declared.item_bytes
        limit = self.chunk_limit if fixed is None else min(fixed, self.chunk_limit)
        file = self.root / key
        try:
            info = os.lstat(file)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat.S_ISREG(info.st_mode):
            raise CSEInputError(f"{where}: is not a regular file")
        stored_limit = limit if not plan.codecs else limit + limit // 8 + 2**16
        if info.st_size > stored_limit:
            raise CSEInputError(f"{where}: stores {info.st_size} bytes, more than a chunk of it can hold "
                                f"({stored_limit})")
        try:
            data = decode_chunk(file.read_bytes(), plan.codecs, self.chunk_limit, final=limit)
            if fixed is not None and len(data) != fixed:
                raise DecodeError(f"decodes to {len(data)} bytes, its chunk shape holds {fixed}")
            if plan.vlen:
                check_vlen_header(data, plan.chunk_items)
        except DecodeError as exc:
            raise CSEInputError(f"{where}: {exc}") from None
        except Exception as exc:  # numcodecs, zlib, bz2, lzma on untrusted bytes: a property of the chunk
            raise CSEInputError(f"{where}: cannot be decoded ({first_line(exc)})") from None
        return data

    def _plan(self, key: str):
        """The plan of the array a chunk key belongs to (the longest array path that prefixes it)."""
        parts = key.split("/")
        for end in range(len(parts) - 1, 0, -1):
            name = "/".join(parts[:end])
            if name in self.layout.plans:
                return self.layout.plans[name], name
        return None, ""


def _byte_range(data: bytes, byte_range) -> bytes:
    if byte_range is None:
        return data
    if isinstance(byte_range, RangeByteRequest):
        return data[byte_range.start:byte_range.end]
    if isinstance(byte_range, OffsetByteRequest):
        return data[byte_range.offset:]
    if isinstance(byte_range, SuffixByteRequest):
        return data[max(0, len(data) - byte_range.suffix):]
    raise TypeError(f"unexpected byte range {byte_range!r}")


def _check_zarr_arrays(store: BoundedStore, path, layout) -> None:
    """Let zarr-python parse each array's metadata once, so that what it refuses names the variable."""
    import zarr

    for name in layout.plans:
        try:
            zarr.open_array(store=store, path=name, mode="r")
        except CSEInputError:
            raise
        except Exception as exc:  # zarr-python on untrusted metadata
            raise CSEInputError(f"{path}: variable {name!r} has metadata that zarr cannot read ({first_line(exc)})"
                                ) from None


class _GuardedArray(BackendArray):
    """A lazily indexed variable whose every read failure is one line naming the file and the variable."""

    def __init__(self, variable: xr.Variable, label: str, name: str):
        self.variable, self.label, self.name = variable, label, name
        self.shape, self.dtype = variable.shape, variable.dtype

    def __getitem__(self, key):
        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.OUTER, self._read)

    def _read(self, key):
        try:
            return np.asarray(self.variable[key].values)
        except CSEInputError:
            raise
        except Exception as exc:  # the file is untrusted: whatever reading it raises is a property of the file
            raise CSEInputError(f"{self.label}: variable {self.name!r} cannot be read ({first_line(exc)})") from None


class _GuardedBackend(BackendEntrypoint):
    """An xarray backend around another: the variables of `inner()` wrapped in `_GuardedArray`."""

    description = "cse: a checked result, every read failure one line"

    def open_dataset(self, filename_or_obj, *, drop_variables=None, inner=None, label=""):
        ds = inner()
        wrapped = {}
        for name, var in ds.variables.items():
            data = indexing.LazilyIndexedArray(_GuardedArray(var, label, str(name)))
            wrapped[name] = xr.Variable(var.dims, data, var.attrs, var.encoding)
        coords = {name: wrapped[name] for name in ds.coords}
        data_vars = {name: wrapped[name] for name in ds.data_vars}
        out = xr.Dataset(data_vars, coords=coords, attrs=ds.attrs)
        out.set_close(ds.close)
        return out


def open_guarded(path, fmt: str, chunks, layout=None, chunk_limit: int = 0) -> xr.Dataset:
    """Open a checked result lazily with xarray, every variable behind a one-line read guard.

    Parameters
    ----------
    path : Path
    fmt : {'zarr', 'netcdf'}
    chunks : dict, 'auto' or None
        As `xarray.open_dataset`; None: NumPy-backed, read on access.
    layout : cse.io.allowlist.ZarrLayout, optional
        For a Zarr store: the plans from its check.
    chunk_limit : int
        As `BoundedStore`.

    Returns
    -------
    xarray.Dataset
    """
    lazy = {"create_default_indexes": False} if _HAS_INDEX_OPTION else {}
    if fmt == "zarr":
        store = BoundedStore(path, layout, chunk_limit)
        _check_zarr_arrays(store, path, layout)

        def inner():
            return xr.open_dataset(store, engine="zarr", consolidated=False, chunks=None, **lazy)
    else:
        def inner():
            return xr.open_dataset(path, engine="h5netcdf", chunks=None, **lazy)
    return xr.open_dataset(str(path), engine=_GuardedBackend, chunks=chunks, inner=inner, label=str(path))

