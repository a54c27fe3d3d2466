"""SHA-256 digests of files, frames and token arrays: the one home for hashing.

Used for the model file's identity (result attributes), the input file's identity
(the resume manifest) and the studies' cache keys.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

# Digests of files already hashed, keyed by (real path, size, mtime_ns).
_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks.

    The digest is cached per process, keyed by the real path, size and modification
    time, so a large model file is hashed once.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    str
        64 lowercase hex digits.

    Raises
    ------
    OSError
        If the file cannot be read.
    """
    stat = os.stat(path)
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _FILE_HASHES[key] = digest.hexdigest()
    return _FILE_HASHES[key]


def bytes_sha256(data: bytes | str) -> str:
    """Hex SHA-256 of bytes (str is encoded as UTF-8).

    Parameters
    ----------
    data : bytes or str
        Lone surrogates of a str are kept (``surrogatepass``).

    Returns
    -------
    str
        64 hex digits.
    """
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()


def arrays_sha256(*arrays) -> str:
    """Hex SHA-256 of integer arrays' int64 bytes, in order (e.g. token ids and offsets)."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
    return digest.hexdigest()
