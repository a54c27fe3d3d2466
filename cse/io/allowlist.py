"""Result files from others are untrusted: their codecs, filters and dtypes are checked first.

`check_result_file` reads only metadata — a Zarr store's JSON documents (format 3
``zarr.json``, format 2 ``.zarray``/``.zmetadata``) or an HDF5 file's dataset creation
properties through h5py — and refuses anything that this package does not write before
a single chunk is decoded: a pickle or other object codec (whatever
``NUMCODECS_ALLOW_UNSAFE_PICKLE_DECODE`` says), an HDF5 filter that would load a plugin,
external or virtual storage, links to other files, symbolic links, FIFOs and devices
inside a store, and dtypes other than booleans, integers, floats and strings.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from ..errors import CSEInputError
from .paths import HDF5_SIGNATURE, ZARR_METADATA, check_file_kind, kind_of, output_format, read_metadata

__all__ = ["HDF5_FILTERS", "ZARR_CODECS", "ZARR_DATA_TYPES", "ZARR_V2_CODECS", "check_result_file"]

#: Zarr format 3 codecs a result may use: what zarr-python writes for the package's arrays.
ZARR_CODECS = frozenset({"bytes", "zstd", "blosc", "gzip", "crc32c", "transpose", "vlen-utf8"})

#: Zarr format 3 data types a result may hold.
ZARR_DATA_TYPES = frozenset({"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                             "float16", "float32", "float64", "string", "fixed_length_utf32"})

#: Zarr format 2 compressors and filters a result may use.
ZARR_V2_CODECS = frozenset({"blosc", "zstd", "zlib", "gzip", "lz4", "vlen-utf8"})

#: Zarr format 2 dtypes: booleans, integers, floats, fixed-width unicode; ``|O`` only with vlen-utf8.
_V2_DTYPE = re.compile(r"[<>|](b1|[iu][1248]|f[248]|U\d{1,6})")

#: HDF5 filters a netCDF result may use (all built into HDF5 or h5py: no plugin is loaded).
HDF5_FILTERS = {1: "deflate", 2: "shuffle", 3: "fletcher32", 32000: "lzf"}


def check_result_file(path, name: str = "RESULT") -> str:
    """Check a result file or store against the allow-list before anything is decoded.

    Parameters
    ----------
    path : str or Path
        A ``.nc`` (netCDF4/HDF5) file or a ``.zarr`` store.
    name : str
        The parameter named in messages.

    Returns
    -------
    str
        ``'netcdf'`` or ``'zarr'``.

    Raises
    ------
    CSEInputError
        One line naming the path and the first refused item (codec, filter, dtype,
        link, special file) — or a path of the wrong kind.
    """
    path = Path(path)
    fmt = output_format(path, name)
    check_file_kind(path, name, folder=fmt == "zarr")
    if fmt == "zarr":
        _check_zarr_store(path, name)
    else:
        _check_hdf5_file(path, name)
    return fmt


def _refuse(path: Path, what: str) -> CSEInputError:
    return CSEInputError(f"{path}: refused: {what}; cse opens only results with the codecs, filters and dtypes "
                         f"it writes itself")


# --------------------------------------------------------------------------- Zarr


def _walk_store(path: Path):
    """Yield (relative name, Path) of every metadata file; refuse links and special files."""
    folders = [path]
    while folders:
        folder = folders.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                mode = entry.stat(follow_symlinks=False).st_mode
                if stat.S_ISDIR(mode):
                    folders.append(Path(entry.path))
                elif not stat.S_ISREG(mode):
                    inner = os.path.relpath(entry.path, path)
                    raise _refuse(path, f"{inner!r} inside the store is {kind_of(mode)}")
                elif entry.name in ZARR_METADATA:
                    yield os.path.relpath(entry.path, path), Path(entry.path)


def _check_zarr_store(path: Path, name: str) -> None:
    found = 0
    for inner, file in _walk_store(path):
        doc = read_metadata(file)
        if doc is None:
            raise CSEInputError(f"{path}: not a readable result store ({inner!r} is not valid Zarr metadata)")
        found += 1
        if file.name == "zarr.json":
            _check_v3_node(path, os.path.dirname(inner) or "/", doc)
        elif file.name == ".zarray":
            _check_v2_array(path, os.path.dirname(inner) or "/", doc)
        elif file.name == ".zmetadata":
            for key, value in (doc.get("metadata") or {}).items():
                if str(key).endswith(".zarray"):
                    _check_v2_array(path, str(key)[: -len("/.zarray")] or "/", value)
    if not found:
        raise CSEInputError(f"Invalid value for {name!r}: {str(path)!r} is a folder but not a Zarr store")


def _check_v3_node(path: Path, node: str, doc) -> None:
    if not isinstance(doc, dict) or doc.get("zarr_format") != 3:
        raise _refuse(path, f"node {node!r} is not Zarr format 3 metadata")
    if doc.get("node_type") == "group":
        members = (doc.get("consolidated_metadata") or {}).get("metadata") or {}
        if not isinstance(members, dict):
            raise _refuse(path, f"the consolidated metadata of {node!r} is not a mapping")
        for key, value in members.items():
            _check_v3_node(path, f"{node.rstrip('/')}/{key}".lstrip("/"), value)
        return
    if doc.get("node_type") != "array":
        raise _refuse(path, f"node {node!r} has node_type {doc.get('node_type')!r}")
    dtype = doc.get("data_type")
    dtype_name = dtype.get("name") if isinstance(dtype, dict) else dtype
    if not isinstance(dtype_name, str) or dtype_name not in ZARR_DATA_TYPES:
        raise _refuse(path, f"array {node!r} has data type {_short(dtype)}")
    codecs = doc.get("codecs")
    if not isinstance(codecs, list) or not codecs:
        raise _refuse(path, f"array {node!r} has no valid codec list")
    for codec in codecs:
        codec_name = codec.get("name") if isinstance(codec, dict) else codec
        if not isinstance(codec_name, str) or codec_name not in ZARR_CODECS:
            raise _refuse(path, f"array {node!r} uses the codec {_short(codec_name)}")
    if doc.get("storage_transformers"):
        raise _refuse(path, f"array {node!r} uses storage transformers")


def _check_v2_array(path: Path, node: str, doc) -> None:
    if not isinstance(doc, dict) or doc.get("zarr_format") != 2:
        raise _refuse(path, f"array {node!r} is not Zarr format 2 metadata")
    codecs = [doc.get("compressor")] + list(doc.get("filters") or [])
    ids = []
    for codec in codecs:
        if codec is None:
            continue
        codec_id = codec.get("id") if isinstance(codec, dict) else codec
        if not isinstance(codec_id, str) or codec_id not in ZARR_V2_CODECS:
            raise _refuse(path, f"array {node!r} uses the codec {_short(codec_id)}")
        ids.append(codec_id)
    dtype = doc.get("dtype")
    text_object = dtype == "|O" and "vlen-utf8" in ids
    if not text_object and not (isinstance(dtype, str) and _V2_DTYPE.fullmatch(dtype)):
        raise _refuse(path, f"array {node!r} has dtype {_short(dtype)}")


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "...'"


# --------------------------------------------------------------------------- HDF5


def _check_hdf5_file(path: Path, name: str) -> None:
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
            problems = []
            handle.visititems_links(lambda inner, link: _check_hdf5_link(handle, inner, link, problems))
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise CSEInputError(f"{path}: not a readable result file ({str(exc).splitlines()[0]})") from None
    if problems:
        raise _refuse(path, problems[0])


def _check_hdf5_link(handle, inner: str, link, problems: list):
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
        problem = _dataset_problem(handle[inner], inner)
        if problem:
            problems.append(problem)
    return True if problems else None


def _dataset_problem(dataset, inner: str) -> str | None:
    import h5py

    dtype = dataset.dtype
    text = h5py.check_string_dtype(dtype) is not None
    if not text and (dtype.kind not in "biuf" or dtype.names is not None or dtype.subdtype is not None):
        return f"variable {inner!r} has dtype {dtype}"
    if dataset.is_virtual:
        return f"variable {inner!r} is a virtual dataset (data in other files)"
    plist = dataset.id.get_create_plist()
    if plist.get_external_count():
        return f"variable {inner!r} keeps its data in external files"
    for index in range(plist.get_nfilters()):
        code = plist.get_filter(index)[0]
        if code not in HDF5_FILTERS:
            return f"variable {inner!r} uses the HDF5 filter {code}, which cse does not write"
    return None
