"""Result files from others are untrusted: their codecs, filters, dtypes and sizes are checked first.

`check_result_file` reads only metadata — a Zarr store's JSON documents (format 3
``zarr.json``, format 2 ``.zarray``/``.zmetadata``) or an HDF5 file's dataset creation
properties and chunk index through h5py (`cse.io.hdf5`) — and refuses, before a single
chunk is decoded, anything that this package does not read safely: a pickle or other
object codec (whatever ``NUMCODECS_ALLOW_UNSAFE_PICKLE_DECODE`` says), an HDF5 filter
that would load a plugin, external or virtual storage, links to other files, symbolic
links, FIFOs and devices inside a store, dtypes other than booleans, integers, floats
and strings, and declared sizes over the limits of `cse.io.limits.ResultLimits`.

For a Zarr store the check also returns how each array is to be read (`ArrayPlan`):
its compression codecs are undone by the package itself, within bounds
(`cse.io.decoding`), and zarr-python sees only the checked metadata with those codecs
removed (`cse.io.bounded`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import stat
from pathlib import Path

from ..errors import CSEInputError
from .decoding import BYTES_CODECS
from .limits import VLEN_ITEM_BYTES, DeclaredArray, ResultLimits, check_declared, refuse
from .paths import ZARR_METADATA, check_file_kind, kind_of, output_format, read_metadata

#: Zarr format 3 codecs a result may use: what zarr-python writes, and the compressors cse decodes itself.
ZARR_CODECS = frozenset({"bytes", "transpose", "vlen-utf8"} | set(BYTES_CODECS))

#: Zarr format 3 data types a result may hold, and their bytes per value (None: variable-length strings).
#: float16: layer updates saved with ``--save updates --save-dtype float16``.
ZARR_DATA_TYPES = {"bool": 1, "int8": 1, "int16": 2, "int32": 4, "int64": 8, "uint8": 1, "uint16": 2, "uint32": 4,
                   "uint64": 8, "float16": 2, "float32": 4, "float64": 8, "string": None, "fixed_length_utf32": 0}

#: Zarr format 2 compressors and filters a result may use.
ZARR_V2_CODECS = frozenset({"blosc", "zstd", "zlib", "gzip", "lz4", "bz2", "lzma", "vlen-utf8"})

#: Zarr format 2 dtypes: booleans, integers, floats, fixed-width unicode; ``|O`` only with vlen-utf8.
_V2_DTYPE = re.compile(r"[<>|](b1|[iu][1248]|f[248]|U\d{1,6})")
_INT_LIMIT = 2**63


@dataclasses.dataclass(frozen=True)
class ArrayPlan:
    """How one array of a checked Zarr store is read.

    Attributes
    ----------
    declared : DeclaredArray
        Its name (path in the store), shape, chunk shape and bytes per value.
    vlen : bool
        Variable-length strings (vlen-utf8): the decoded chunk has no fixed size.
    codecs : tuple of (str, dict)
        The bytes-to-bytes codecs (families of `cse.io.decoding.BYTES_CODECS`) that the
        package undoes itself, in the order they were applied.
    """

    declared: DeclaredArray
    vlen: bool
    codecs: tuple

    @property
    def chunk_items(self) -> int:
        """Values in one (full) chunk; Zarr stores edge chunks at full size too."""
        return self.declared.chunk_nbytes // self.declared.item_bytes


@dataclasses.dataclass(frozen=True)
class ZarrLayout:
    """A checked Zarr store: its arrays, the metadata zarr-python is shown, its size on disk.

    Attributes
    ----------
    plans : dict of str to ArrayPlan
        Array path -> plan.
    served : dict of str to bytes
        Metadata key -> the JSON document served in its place (compression codecs and
        consolidated metadata removed); metadata keys not listed are absent.
    stored_bytes : int
    """

    plans: dict
    served: dict
    stored_bytes: int


def check_result_file(path, name: str = "RESULT", *, max_bytes=None, whole: bool = False) -> str:
    """Check a result file or store against the allow-list and the size limits before anything is decoded.

    Parameters
    ----------
    path : str or Path
        A ``.nc`` (netCDF4/HDF5) file or a ``.zarr`` store.
    name : str
        The parameter named in messages.
    max_bytes : int, optional
        The memory limit (`cse.io.limits.ResultLimits`); default ``CSE_MAX_RESULT_BYTES``
        or half the available memory.
    whole : bool
        The result will be read whole (no Dask chunks), so every array must fit.

    Returns
    -------
    str
        ``'netcdf'`` or ``'zarr'``.

    Raises
    ------
    CSEInputError
        One line naming the path and the first refused item (codec, filter, dtype,
        link, special file, declared size) — or a path of the wrong kind.
    """
    fmt, _layout = inspect_result(path, name, ResultLimits.resolve(max_bytes), whole=whole)
    return fmt


def inspect_result(path, name: str, limits: ResultLimits, *, whole: bool) -> tuple[str, ZarrLayout | None]:
    """`check_result_file` with resolved limits: the format, and for a Zarr store its `ZarrLayout`.

    Parameters
    ----------
    path : str or Path
    name : str
        The parameter named in messages.
    limits : ResultLimits
    whole : bool
        As in `check_result_file`.

    Returns
    -------
    fmt : {'netcdf', 'zarr'}
    layout : ZarrLayout or None
        None for netCDF.
    """
    path = Path(path)
    fmt = output_format(path, name)
    check_file_kind(path, name, folder=fmt == "zarr")
    if fmt == "zarr":
        return fmt, inspect_zarr_store(path, name, limits, whole=whole)
    from .hdf5 import check_hdf5_file

    check_hdf5_file(path, name, limits, whole=whole)
    return fmt, None


# --------------------------------------------------------------------------- Zarr


def _walk_store(path: Path) -> tuple[list, int]:
    """(relative name, Path) of every metadata file, and the bytes of all files; refuse links and special files."""
    found, stored, folders = [], 0, [path]
    while folders:
        folder = folders.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(info.st_mode):
                    folders.append(Path(entry.path))
                elif not stat.S_ISREG(info.st_mode):
                    inner = os.path.relpath(entry.path, path)
                    raise refuse(path, f"{inner!r} inside the store is {kind_of(info.st_mode)}")
                else:
                    stored += info.st_size
                    if entry.name in ZARR_METADATA:
                        found.append((Path(os.path.relpath(entry.path, path)).as_posix(), Path(entry.path)))
    return sorted(found), stored


def inspect_zarr_store(path: Path, name: str, limits: ResultLimits, *, whole: bool) -> ZarrLayout:
    """Check every metadata document of a store, its declared sizes, and plan how each array is read.

    Parameters
    ----------
    path : Path
        The store (a folder).
    name : str
        The parameter named in messages.
    limits : ResultLimits
    whole : bool
        The store will be read whole: all arrays together must fit `limits.max_bytes`.

    Returns
    -------
    ZarrLayout

    Raises
    ------
    CSEInputError
        As `check_result_file`.
    """
    files, stored = _walk_store(path)
    plans, served = {}, {}
    for inner, file in files:
        doc = read_metadata(file)
        if doc is None:
            raise CSEInputError(f"{path}: not a readable result store ({inner!r} is not valid Zarr metadata)")
        node = os.path.dirname(inner)
        if file.name == "zarr.json":
            plan = _check_v3_node(path, node or "/", doc)
            shown = {k: v for k, v in doc.items() if k != "consolidated_metadata"}
        elif file.name == ".zarray":
            plan = _check_v2_array(path, node or "/", doc)
            shown = doc
        elif file.name == ".zmetadata":
            for key, value in (doc.get("metadata") or {}).items():
                if str(key).endswith(".zarray"):
                    _check_v2_array(path, str(key)[: -len("/.zarray")] or "/", value)
            continue  # zarr-python reads each array's own metadata instead
        else:
            plan, shown = None, doc
        if plan is not None:
            plans[node] = plan
            shown = _without_compression(doc, file.name)
        served[inner] = json.dumps(shown, allow_nan=True).encode("utf-8")
    if not files:
        raise CSEInputError(f"Invalid value for {name!r}: {str(path)!r} is a folder but not a Zarr store")
    check_declared(path, [plan.declared for plan in plans.values()], stored, limits, whole=whole, at_once=whole)
    return ZarrLayout(plans, served, stored)


def _check_v3_node(path: Path, node: str, doc) -> ArrayPlan | None:
    if not isinstance(doc, dict) or doc.get("zarr_format") != 3:
        raise refuse(path, f"node {node!r} is not Zarr format 3 metadata")
    if doc.get("node_type") == "group":
        members = (doc.get("consolidated_metadata") or {}).get("metadata") or {}
        if not isinstance(members, dict):
            raise refuse(path, f"the consolidated metadata of {node!r} is not a mapping")
        for key, value in members.items():
            _check_v3_node(path, f"{node.rstrip('/')}/{key}".lstrip("/"), value)
        return None
    if doc.get("node_type") != "array":
        raise refuse(path, f"node {node!r} has node_type {_short(doc.get('node_type'))}")
    dtype = doc.get("data_type")
    dtype_name = dtype.get("name") if isinstance(dtype, dict) else dtype
    if not isinstance(dtype_name, str) or dtype_name not in ZARR_DATA_TYPES:
        raise refuse(path, f"array {node!r} has data type {_short(dtype)}")
    item_bytes = ZARR_DATA_TYPES[dtype_name]
    if dtype_name == "fixed_length_utf32":
        length = ((dtype.get("configuration") if isinstance(dtype, dict) else None) or {}).get("length_bytes")
        if not _is_int(length) or not 0 < length < 2**31 or length % 4:
            raise refuse(path, f"array {node!r} has data type {_short(dtype)}")
        item_bytes = length
    codecs = doc.get("codecs")
    if not isinstance(codecs, list) or not codecs:
        raise refuse(path, f"array {node!r} has no valid codec list")
    names = [codec.get("name") if isinstance(codec, dict) else codec for codec in codecs]
    for codec_name in names:
        if not isinstance(codec_name, str) or codec_name not in ZARR_CODECS:
            raise refuse(path, f"array {node!r} uses the codec {_short(codec_name)}")
    compressing = [n in BYTES_CODECS for n in names]
    if any(compressing) and not all(compressing[compressing.index(True):]):
        raise refuse(path, f"array {node!r} lists a compression codec before its array codecs")
    if doc.get("storage_transformers"):
        raise refuse(path, f"array {node!r} uses storage transformers")
    grid = doc.get("chunk_grid")
    config = grid.get("configuration") if isinstance(grid, dict) and grid.get("name") == "regular" else None
    if not isinstance(config, dict):
        raise refuse(path, f"array {node!r} has the chunk grid {_short(grid)} (cse reads regular grids)")
    shape = _dims(path, node, doc.get("shape"), "shape", 0)
    chunks = _dims(path, node, config.get("chunk_shape"), "chunk shape", 1)
    steps = tuple((BYTES_CODECS[n], c.get("configuration") if isinstance(c, dict) else None)
                  for n, c in zip(names, codecs) if n in BYTES_CODECS)
    return _plan(path, node, shape, chunks, item_bytes, dtype_name, steps)


def _check_v2_array(path: Path, node: str, doc) -> ArrayPlan:
    if not isinstance(doc, dict) or doc.get("zarr_format") != 2:
        raise refuse(path, f"array {node!r} is not Zarr format 2 metadata")
    compressor, filters = doc.get("compressor"), doc.get("filters") or []
    if compressor is not None and (not isinstance(compressor, dict) or not isinstance(compressor.get("id"), str)
                                   or compressor["id"] not in BYTES_CODECS or compressor["id"] not in ZARR_V2_CODECS):
        raise refuse(path, f"array {node!r} uses the compressor {_short(_codec_id(compressor))}")
    if not isinstance(filters, list) or any(_codec_id(f) != "vlen-utf8" for f in filters):
        shown = next((_codec_id(f) for f in filters if _codec_id(f) != "vlen-utf8"), filters) \
            if isinstance(filters, list) else filters
        raise refuse(path, f"array {node!r} uses the codec {_short(shown)} (the only filter cse reads is vlen-utf8)")
    dtype = doc.get("dtype")
    match = _V2_DTYPE.fullmatch(dtype) if isinstance(dtype, str) else None
    if dtype == "|O" and filters:
        item_bytes = None
    elif match is not None:
        code = match.group(1)
        item_bytes = 1 if code == "b1" else 4 * int(code[1:]) if code[0] == "U" else int(code[1:])
        if item_bytes == 0:
            raise refuse(path, f"array {node!r} has dtype {_short(dtype)}")
    else:
        raise refuse(path, f"array {node!r} has dtype {_short(dtype)}")
    steps = ((BYTES_CODECS[compressor["id"]], compressor),) if compressor is not None else ()
    shape = _dims(path, node, doc.get("shape"), "shape", 0)
    chunks = _dims(path, node, doc.get("chunks"), "chunk shape", 1)
    return _plan(path, node, shape, chunks, item_bytes, dtype, steps)


def _codec_id(codec):
    return codec.get("id") if isinstance(codec, dict) else codec


def _plan(path: Path, node: str, shape, chunks, item_bytes, dtype: str, steps) -> ArrayPlan:
    if len(chunks) != len(shape):
        raise refuse(path, f"array {node!r} has a chunk shape of {len(chunks)} dimensions for a shape of {len(shape)}")
    declared = DeclaredArray(node, shape, chunks, item_bytes or VLEN_ITEM_BYTES, dtype)
    return ArrayPlan(declared, item_bytes is None, steps)


def _without_compression(doc: dict, file_name: str) -> dict:
    """The metadata zarr-python is shown: the codecs cse undoes itself are removed."""
    if file_name == ".zarray":
        return dict(doc, compressor=None)
    return dict(doc, codecs=[c for c in doc["codecs"]
                             if (c.get("name") if isinstance(c, dict) else c) not in BYTES_CODECS])


def _dims(path: Path, node: str, value, what: str, minimum: int) -> tuple:
    if not isinstance(value, list) or len(value) > 32 or not all(_is_int(v) and minimum <= v < _INT_LIMIT
                                                                 for v in value):
        raise refuse(path, f"array {node!r} declares the {what} {_short(value)}")
    return tuple(value)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _short(value, limit: int = 60) -> str:
    try:
        text = repr(value)
    except ValueError:  # an int of more than 4300 digits
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + "...'"


