"""netCDF4/HDF5 result files from others: allow-list, declared sizes and stored chunks, checked through h5py.

Before xarray opens a netCDF result, `check_hdf5_file` visits every link and dataset of
the file (metadata only) and refuses: links to other files, committed datatypes,
virtual and external storage, filters other than `HDF5_FILTERS` (all built into HDF5
or h5py, so no plugin is loaded), dtypes other than booleans, integers, floats and
strings, and declared shapes and chunk shapes over the limits of
`cse.io.limits.ResultLimits`.

The chunk index is read too, for two faults of libhdf5 itself. It decodes a chunk into a
buffer that it grows as long as the filter produces output: a 1 MB deflate stream in a
chunk declared as 1 MiB takes 1 GiB of memory before libhdf5 cuts it to the chunk's
size. So every stored chunk of a filtered dataset is bounded: its stored size times the
most each filter can expand (`EXPANSION`) must stay within the chunk limit, and a chunk
that could exceed it is inflated once here, with a maximum output length, before
libhdf5 sees it. And libhdf5 reads a chunk's fletcher32 checksum from its last 4 bytes
without checking that it has them: a chunk of 1 to 3 bytes crashes the process (found
by fuzzing), so it is refused.
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import numpy as np

from ..errors import CSEInputError
from .decoding import DecodeError, inflate
from .limits import VLEN_ITEM_BYTES, DeclaredArray, ResultLimits, check_declared, refuse
from .paths import HDF5_SIGNATURE, first_line

#: HDF5 filters a netCDF result may use (all built into HDF5 or h5py: no plugin is loaded).
HDF5_FILTERS = {1: "deflate", 2: "shuffle", 3: "fletcher32", 32000: "lzf"}

#: Most bytes one stored byte becomes through each filter: deflate about 1032 (zlib's
#: limit), lzf 88 (a 3-byte back-reference copies at most 264 bytes), the others 1.
EXPANSION = {1: 1032, 2: 1, 3: 1, 32000: 88}


def check_hdf5_file(path: Path, name: str, limits: ResultLimits, *, whole: bool) -> None:
    """Check a netCDF4/HDF5 file before xarray opens it (see the module docstring).

    Parameters
    ----------
    path : Path
    name : str
        The parameter named in messages.
    limits : ResultLimits
    whole : bool
        Variables will be read whole on first access (no Dask chunks).

    Raises
    ------
    CSEInputError
        One line naming the file and the refused item or variable.
    """
    try:
        with open(path, "rb") as handle:
            signature = handle.read(len(HDF5_SIGNATURE))
    except OSError as exc:
        raise CSEInputError(f"Invalid value for {name!r}: {str(path)!r} cannot be read ({exc.strerror})") from None
    if signature != HDF5_SIGNATURE:
        raise CSEInputError(f"{path}: not a readable result file (not netCDF4/HDF5)")
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            problems, arrays, filtered = [], [], []
            handle.visititems_links(lambda inner, link: _visit(handle, inner, link, problems, arrays, filtered))
            if problems:
                raise refuse(path, problems[0])
            check_declared(path, arrays, path.stat().st_size, limits, whole=whole, at_once=False)
            for inner in filtered:
                _check_stored_chunks(path, handle[inner], inner, limits.chunk_bytes)
    except CSEInputError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError, TypeError, OverflowError) as exc:
        raise CSEInputError(f"{path}: not a readable result file ({first_line(exc)})") from None


def _visit(handle, inner: str, link, problems: list, arrays: list, filtered: list):
    import h5py

    if isinstance(link, h5py.ExternalLink):
        problems.append(f"{inner!r} is a link to another file ({link.filename!r})")
        return True  # stop the visit
    if isinstance(link, h5py.SoftLink):
        return None  # its target is visited through its hard link
    item = handle.get(inner, getclass=True)
    if item is h5py.Datatype:
        problems.append(f"{inner!r} is a committed datatype")
    elif item is h5py.Dataset:
        dataset = handle[inner]
        problem, filters = _dataset_problem(dataset, inner)
        if problem:
            problems.append(problem)
        else:
            arrays.append(_declared(dataset, inner))
            if dataset.chunks is not None and (math.prod(EXPANSION[code] for code in filters) > 1 or 3 in filters):
                filtered.append(inner)
    return True if problems else None


def _dataset_problem(dataset, inner: str) -> tuple[str | None, list]:
    import h5py

    dtype = dataset.dtype
    text = h5py.check_string_dtype(dtype) is not None
    if not text and (dtype.kind not in "biuf" or dtype.names is not None or dtype.subdtype is not None):
        return f"variable {inner!r} has dtype {dtype}", []
    if dataset.is_virtual:
        return f"variable {inner!r} is a virtual dataset (data in other files)", []
    plist = dataset.id.get_create_plist()
    if plist.get_external_count():
        return f"variable {inner!r} keeps its data in external files", []
    filters = [plist.get_filter(index)[0] for index in range(plist.get_nfilters())]
    for code in filters:
        if code not in HDF5_FILTERS:
            return f"variable {inner!r} uses the HDF5 filter {code}, which cse does not read", []
    return None, filters


def _declared(dataset, inner: str) -> DeclaredArray:
    import h5py

    info = h5py.check_string_dtype(dataset.dtype)
    item_bytes = VLEN_ITEM_BYTES if info is not None and info.length is None else dataset.dtype.itemsize
    shape = tuple(dataset.shape) if dataset.shape is not None else ()
    chunks = tuple(dataset.chunks) if dataset.chunks is not None else None
    return DeclaredArray(inner, shape, chunks, max(item_bytes, 1), str(dataset.dtype))


def _check_stored_chunks(path: Path, dataset, inner: str, chunk_limit: int) -> None:
    """Bound every stored chunk of a filtered dataset: by its stored size, else by inflating it once.

    A chunk too short for its fletcher32 checksum is refused too: libhdf5 would read before its start.
    """
    plist = dataset.id.get_create_plist()
    pipeline = [plist.get_filter(index) for index in range(plist.get_nfilters())]
    suspects, short = [], []

    def visit(info):
        applied = [code for k, (code, *_) in enumerate(pipeline) if not info.filter_mask & (1 << k)]
        if 3 in applied and info.size <= 4:  # libhdf5 reads a fletcher32 checksum before the chunk: a crash
            short.append(info.chunk_offset)
        if info.size * math.prod(EXPANSION[code] for code in applied) > chunk_limit:
            suspects.append(info.chunk_offset)

    dataset.id.chunk_iter(visit)
    if short:
        raise CSEInputError(f"{path}: variable {inner!r}: the chunk at {tuple(short[0])} is too short to hold its "
                            f"fletcher32 checksum (a corrupt file)")
    import h5py

    fixed = h5py.check_string_dtype(dataset.dtype) is None or h5py.check_string_dtype(dataset.dtype).length
    expected = math.prod(dataset.chunks) * dataset.dtype.itemsize if fixed else None
    for offset in suspects:
        mask, data = dataset.id.read_direct_chunk(offset)
        try:
            size = _decoded_size(data, pipeline, mask, chunk_limit)
            if expected is not None and size != expected:
                raise DecodeError(f"it decodes to {size} bytes, its chunk shape holds {expected}")
        except (DecodeError, IndexError, zlib.error) as exc:
            raise CSEInputError(f"{path}: variable {inner!r}: the chunk at {tuple(offset)} cannot be decoded within "
                                f"the limit ({first_line(exc) or 'truncated'})") from None


def _decoded_size(data: bytes, pipeline: list, mask: int, limit: int) -> int:
    """Undo the filters of one chunk (last applied first), bounded by `limit`; the decoded size."""
    size = len(data)
    for k in range(len(pipeline) - 1, -1, -1):
        if mask & (1 << k):
            continue
        code, _flags, values = pipeline[k][0], pipeline[k][1], pipeline[k][2]
        later = [c for j, (c, *_) in enumerate(pipeline[:k]) if not mask & (1 << j) and EXPANSION[c] > 1]
        if code == 3:  # fletcher32: a 4-byte checksum at the end
            data, size = data[:-4], size - 4
        elif code == 2 and later:  # shuffle, with an expanding filter still to undo: unshuffle the bytes
            data = _unshuffle(data, int(values[0]) if len(values) else 1)
        elif code == 1:
            data = inflate(data, lambda: zlib.decompressobj(zlib.MAX_WBITS), limit, "deflate", members=False)
            size = len(data)
        elif code == 32000:
            if later:
                raise DecodeError("lzf followed by another expanding filter")
            size = _lzf_size(data, limit)
    return size


def _unshuffle(data: bytes, element: int) -> bytes:
    """Undo HDF5's byte shuffle of `element`-byte values (a trailing remainder is stored as it is)."""
    n = len(data) // max(element, 1)
    if element <= 1 or n == 0:
        return data
    body = np.frombuffer(data, dtype=np.uint8, count=n * element).reshape(element, n).T
    return body.tobytes() + data[n * element:]


def _lzf_size(data: bytes, limit: int) -> int:
    """Bytes an LZF stream decodes to, from its control bytes alone (no output is made)."""
    pos, out = 0, 0
    while pos < len(data):
        ctrl = data[pos]
        if ctrl < 32:  # a literal run of ctrl + 1 bytes
            out += ctrl + 1
            pos += ctrl + 2
        else:  # a back-reference: length ctrl >> 5 (7: plus the next byte), plus 2
            length = ctrl >> 5
            if length == 7:
                length += data[pos + 1]
                pos += 1
            out += length + 2
            pos += 2
        if out > limit:
            raise DecodeError(f"lzf data that decodes to more than the limit of {limit} bytes")
    if pos > len(data):
        raise DecodeError("truncated lzf data")
    return out

