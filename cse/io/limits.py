"""How much a result file may make the package decode: limits derived from the machine.

A result file from someone else declares its own sizes (array shapes, chunk shapes,
codec headers), and a declaration costs nothing to write: a 269 KB Zarr chunk may claim
(2**27, 8) float64 values (8 GiB), a metadata edit may claim 10**12 values. Every size
is therefore checked against `ResultLimits` before it is decoded. One number sets them
all, ``max_bytes``: the ``max_bytes=`` argument of `cse.open_result`, else the
environment variable ``CSE_MAX_RESULT_BYTES`` (bytes, or with a K/M/G/T suffix,
powers of 1024), else half of the memory available now (Linux ``MemAvailable``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re

from ..errors import CSEInputError

#: Environment variable that sets `ResultLimits.max_bytes` (e.g. ``8G``).
MAX_BYTES_ENV = "CSE_MAX_RESULT_BYTES"

#: A result that declares more than `max_bytes` must store at least 1/AMPLIFICATION of it:
#: absent chunks cost nothing to declare and their fill values are made on reading.
AMPLIFICATION = 1000

#: Graph memory and scheduling time cost per chunk of a lazily opened array (measured:
#: ~7 KiB and ~0.8 ms per chunk for an xarray/Dask reduction), so `max_bytes` allows one
#: chunk per 128 KiB, and never fewer than `_MIN_CHUNKS`.
_BYTES_PER_CHUNK = 128 * 2**10
_MIN_CHUNKS = 4096
_FALLBACK_MEMORY = 4 * 2**30
_SIZE = re.compile(r"\s*(\d{1,20})\s*([KMGT]i?B?|B)?\s*", re.IGNORECASE)


def available_memory() -> int:
    """Bytes of memory available to a new allocation now.

    ``MemAvailable`` of ``/proc/meminfo`` on Linux, else psutil's ``available`` where
    psutil is installed, else the free pages (``os.sysconf``), else 4 GiB.
    """
    try:
        with open("/proc/meminfo", "rb") as handle:
            for line in handle:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except (ImportError, AttributeError, OSError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return _FALLBACK_MEMORY


def _parse_size(text: str) -> int | None:
    match = _SIZE.fullmatch(text)
    if match is None:
        return None
    unit = (match.group(2) or "B")[0].upper()
    return int(match.group(1)) * 1024 ** "BKMGT".index(unit)


@dataclasses.dataclass(frozen=True)
class ResultLimits:
    """What one result file may make the package decode.

    Attributes
    ----------
    max_bytes : int
        Bytes of decoded data that may be held at once: a Zarr store opened whole (all
        its arrays together), a netCDF variable (read whole on first access), a 1-D
        array (token coordinates are read whole by every command), and the part of a
        result that is declared without being stored (see `AMPLIFICATION`).
    chunk_bytes : int
        Largest decoded chunk: ``max_bytes // 8``, since Dask decodes several chunks at
        once and each is copied on its way into an array.
    max_chunks : int
        Most chunks in one result: ``max_bytes // 128 KiB`` (at least 4096).
    source : str
        Where `max_bytes` came from, for messages (``'max_bytes='``,
        ``'CSE_MAX_RESULT_BYTES'`` or ``'half the available memory'``).
    """

    max_bytes: int
    chunk_bytes: int
    max_chunks: int
    source: str

    @classmethod
    def resolve(cls, max_bytes=None) -> ResultLimits:
        """The limits for `max_bytes` (an int), else `MAX_BYTES_ENV`, else half the available memory.

        Parameters
        ----------
        max_bytes : int, optional
            Bytes, at least 1 MiB.

        Returns
        -------
        ResultLimits

        Raises
        ------
        TypeError
            `max_bytes` is not an int.
        CSEInputError
            `max_bytes` or the environment variable is not a size of at least 1 MiB.
        """
        if max_bytes is not None:
            if isinstance(max_bytes, bool) or not isinstance(max_bytes, int):
                raise TypeError(f"Invalid type for 'max_bytes': expected an int (bytes), got "
                                f"{type(max_bytes).__name__}")
            value, source = max_bytes, "max_bytes="
        elif os.environ.get(MAX_BYTES_ENV, "").strip():
            text = os.environ[MAX_BYTES_ENV]
            value, source = _parse_size(text), MAX_BYTES_ENV
            if value is None:
                raise CSEInputError(f"Invalid value for {MAX_BYTES_ENV}: expected a size in bytes, optionally with a "
                                    f"K/M/G/T suffix (e.g. 8G), got {text[:40]!r}")
        else:
            value, source = available_memory() // 2, "half the available memory"
        if value < 2**20:
            if source == "half the available memory":
                value = 2**20
            else:
                raise CSEInputError(f"Invalid value for {source.rstrip('=')!r}: expected at least 1 MiB (1048576 "
                                    f"bytes), got {value}")
        return cls(int(value), int(value) // 8, max(_MIN_CHUNKS, int(value) // _BYTES_PER_CHUNK), source)

    def hint(self) -> str:
        """How to raise the limits, for the end of a message."""
        return (f"the limit is {format_bytes(self.max_bytes)} ({self.source}); if the file is trusted and the machine "
                f"has the memory, raise it with {MAX_BYTES_ENV} or max_bytes=")


def format_bytes(n: int) -> str:
    """``n`` bytes in words (``'8.0 GiB'``), for messages."""
    n = int(n)
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


#: Memory assumed per item of a variable-length string array (a Python str and its pointer).
VLEN_ITEM_BYTES = 64


@dataclasses.dataclass(frozen=True)
class DeclaredArray:
    """What a result file declares about one array, before anything of it is read.

    Attributes
    ----------
    name : str
        The variable (its path in a Zarr store or HDF5 file).
    shape : tuple of int
    chunks : tuple of int or None
        The chunk shape; None where the array is read whole (HDF5 contiguous storage).
    item_bytes : int
        Bytes per value (`VLEN_ITEM_BYTES` for variable-length strings).
    dtype : str
        The data type, for messages.
    """

    name: str
    shape: tuple
    chunks: tuple | None
    item_bytes: int
    dtype: str

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.item_bytes

    @property
    def chunk_nbytes(self) -> int:
        return math.prod(self.chunks if self.chunks is not None else self.shape) * self.item_bytes

    @property
    def n_chunks(self) -> int:
        if self.chunks is None:
            return 1
        return math.prod(-(-n // max(c, 1)) for n, c in zip(self.shape, self.chunks))


def check_declared(path, arrays, stored_bytes: int, limits: ResultLimits, *, whole: bool, at_once: bool) -> None:
    """Check the sizes a result declares against `limits`, before anything is decoded.

    Parameters
    ----------
    path : Path
        The result, named in messages.
    arrays : iterable of DeclaredArray
    stored_bytes : int
        Bytes the result occupies on disk.
    limits : ResultLimits
    whole : bool
        The result is opened without Dask chunks: every array is read whole on first access.
    at_once : bool
        With `whole`, all arrays are decoded together (a Zarr store opened whole).

    Raises
    ------
    CSEInputError
        One line naming the file and the variable: a chunk larger than
        `ResultLimits.chunk_bytes` (an array without chunks: than `max_bytes`), a 1-D
        array (or, with `whole`, any array) larger than `max_bytes`, more chunks than
        `max_chunks`, or more declared than `max_bytes` of which less than
        1/`AMPLIFICATION` is stored (with `at_once`: more than `max_bytes` at all).
    """
    arrays = list(arrays)
    for array in arrays:
        what = f"{path}: variable {array.name!r} declares"
        chunk_limit = limits.chunk_bytes if array.chunks is not None else limits.max_bytes
        if array.chunk_nbytes > chunk_limit:
            shape = array.chunks if array.chunks is not None else array.shape
            size = format_bytes(array.chunk_nbytes)
            raise CSEInputError(f"{what} chunks of {_shape(shape)} {array.dtype} values ({size}), more than the "
                                f"{format_bytes(chunk_limit)} one chunk may decode to; {limits.hint()}")
        if (whole or len(array.shape) <= 1) and array.nbytes > limits.max_bytes:
            raise CSEInputError(f"{what} {_shape(array.shape)} {array.dtype} values ({format_bytes(array.nbytes)}), "
                                f"more than may be read at once; {limits.hint()}")
    if not arrays:
        return
    n_chunks = sum(array.n_chunks for array in arrays)
    if n_chunks > limits.max_chunks:
        most = max(arrays, key=lambda array: array.n_chunks)
        raise CSEInputError(f"{path}: declares {n_chunks} chunks (variable {most.name!r}: {most.n_chunks}), more than "
                            f"the {limits.max_chunks} a result may have; {limits.hint()}")
    total = sum(array.nbytes for array in arrays)
    largest = max(arrays, key=lambda array: array.nbytes)
    declared = (f"{path}: declares {format_bytes(total)} of values (variable {largest.name!r}: "
                f"{_shape(largest.shape)} {largest.dtype} values)")
    if whole and at_once and total > limits.max_bytes:
        raise CSEInputError(f"{declared}, more than may be read at once (opened without chunks=, every array is "
                            f"read); {limits.hint()}")
    if total > max(limits.max_bytes, AMPLIFICATION * stored_bytes):
        raise CSEInputError(f"{declared} but stores {format_bytes(stored_bytes)}; a result declaring more than may be "
                            f"read at once must store at least 1/{AMPLIFICATION} of it; {limits.hint()}")


def _shape(shape) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"


def refuse(path: Path, what: str) -> CSEInputError:
    """The one-line error for an item outside the allow-list."""
    return CSEInputError(f"{path}: refused: {what}; cse opens only results with the codecs, filters and dtypes "
                         f"it reads safely")
