"""Output safety: nothing is replaced without consent, nothing the package did not write is deleted.

Every path the package writes goes through `check_output` before any work starts and
through `atomic_path` when it is written: the result appears under a temporary name
beside the target and is renamed into place, so an interrupted run never leaves a file
that looks complete, and an existing output is replaced only with ``overwrite=True``
(``--overwrite``) and only when it is a file, or a result store of this package
(`is_package_result`). Inputs and results are checked with `check_file_kind` (``stat``
before ``open``), so a FIFO, a socket or a device is refused at once instead of hanging.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

from ..errors import CSEInputError

#: Attribute that marks a file or store as a result written by this package (its version).
RESULT_MARKER = "cse_version"

#: The 8-byte signature at the start of every netCDF4/HDF5 file that this package writes.
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

#: Metadata files of a Zarr store (format 3, then format 2).
ZARR_METADATA = ("zarr.json", ".zgroup", ".zattrs", ".zarray", ".zmetadata")

#: The largest metadata document read (bytes); a result of 256 input columns has < 1 MiB.
MAX_METADATA_BYTES = 64 * 2**20

_KINDS = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device"}


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none (for one-line errors)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def kind_of(mode: int) -> str:
    """A file type in words (``'a FIFO (named pipe)'``, ``'a folder'`` ...) from an ``st_mode``."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def check_file_kind(path, name: str, *, folder: bool = False) -> Path:
    """Check, with ``stat`` and before any ``open``, that `path` is a regular file (or a folder).

    Parameters
    ----------
    path : str or Path
        An input or a result to read; symbolic links are followed.
    name : str
        The parameter named in messages (``'INPUT'``, ``'RESULT'``, ``'--stats'`` ...).
    folder : bool
        Expect a folder (a Zarr store) instead of a regular file.

    Returns
    -------
    Path

    Raises
    ------
    CSEInputError
        The path does not exist, cannot be inspected, or is of another kind: a FIFO,
        socket or device is refused at once, so that no command waits on one forever.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise CSEInputError(f"Invalid value for {name!r}: {str(path)!r} does not exist") from None
    except OSError as exc:
        raise CSEInputError(f"Invalid value for {name!r}: {str(path)!r} cannot be read ({exc.strerror})") from None
    wanted = stat.S_ISDIR(mode) if folder else stat.S_ISREG(mode)
    if not wanted:
        expected = "a folder (a Zarr store)" if folder else "a regular file"
        raise CSEInputError(f"Invalid value for {name!r}: {str(path)!r} is {kind_of(mode)}, expected {expected}")
    return path


def read_metadata(path: Path) -> dict | None:
    """One JSON metadata document of a Zarr store, or None if it cannot be read as one.

    Only a regular file of at most `MAX_METADATA_BYTES` is opened; nesting too deep
    for the JSON parser counts as unreadable (no RecursionError escapes).
    """
    try:
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_METADATA_BYTES:
            return None
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


def _zarr_members(doc: dict, fmt: int) -> set[str] | None:
    if fmt == 3:
        members = (doc.get("consolidated_metadata") or {}).get("metadata")
    else:
        members = doc.get("metadata")
    if not isinstance(members, dict):
        return None
    return {str(key).split("/")[0] for key in members}


def _zarr_result(path: Path) -> bool:
    root3 = read_metadata(path / "zarr.json")
    if root3 is not None:
        fmt, attrs, members = 3, root3.get("attributes"), _zarr_members(root3, 3)
    else:
        attrs = read_metadata(path / ".zattrs")
        if read_metadata(path / ".zgroup") is None:
            return False
        fmt, members = 2, None
        consolidated = read_metadata(path / ".zmetadata")
        if consolidated is not None:
            members = _zarr_members(consolidated, 2)
    if not isinstance(attrs, dict) or RESULT_MARKER not in attrs:
        return False
    # Every entry of the store must be a metadata file or a node of the store: a store
    # into which a user has put files of their own is not deleted.
    own = {"zarr.json"} if fmt == 3 else {".zgroup", ".zattrs", ".zmetadata"}
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.name in own and entry.is_file(follow_symlinks=False):
                continue
            if not entry.is_dir(follow_symlinks=False):
                return False
            if members is not None and entry.name not in members:
                return False
            node = Path(entry.path)
            if not any(read_metadata(node / meta) is not None for meta in ("zarr.json", ".zarray", ".zgroup")):
                return False
    return True


def is_package_result(path) -> bool:
    """True if `path` is a netCDF file or Zarr store written by this package.

    Cheap and conservative: the `RESULT_MARKER` attribute must be in the file's root
    attributes (an HDF5 file whose first 8 bytes are the HDF5 signature, opened with
    h5py without reading any data) or in a Zarr store's root metadata (``zarr.json``,
    or ``.zgroup`` + ``.zattrs``, read as JSON); and a store may hold nothing but its
    metadata files and the nodes it lists. Symbolic links, FIFOs and other special
    files are never results.

    Parameters
    ----------
    path : str or Path
        A file or folder (missing is fine: not a result).

    Returns
    -------
    bool
    """
    path = Path(path)
    try:
        mode = path.lstat().st_mode
        if stat.S_ISDIR(mode):
            return _zarr_result(path)
        if not stat.S_ISREG(mode):
            return False
        with open(path, "rb") as handle:
            if handle.read(len(HDF5_SIGNATURE)) != HDF5_SIGNATURE:
                return False
        import h5py

        with h5py.File(path, "r") as handle:
            return RESULT_MARKER in handle.attrs
    except (OSError, ValueError, RecursionError):
        return False


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _inside(path: Path, folder: Path) -> bool:
    try:
        return folder.is_dir() and path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):
        return False


def check_output(path, *, inputs=(), overwrite: bool = False, name: str = "output", result: bool = True) -> Path:
    """Check an output path before any work starts; the user's files are never replaced silently.

    Parameters
    ----------
    path : str or Path
        The output the command will write.
    inputs : sequence of str or Path
        Files (or stores) the command reads; the output may not be one of them (compared
        with ``os.path.samefile``, so links and other spellings of a path count) nor lie
        inside one.
    overwrite : bool
        Allow replacing an existing output: a regular file, or a Zarr store that is a
        result of this package (`is_package_result`). A folder that is not is never
        replaced, with or without it.
    name : str
        The parameter named in messages (``'output'``, ``'--output'`` ...).
    result : bool
        The output is a result (``.nc`` or ``.zarr``): check its suffix, and that an
        existing ``.nc`` is a file and an existing ``.zarr`` a folder.

    Returns
    -------
    Path

    Raises
    ------
    CSEInputError
        One line: a wrong suffix; a missing or non-writable parent folder; the output is
        an input; it is a symbolic link, a FIFO, socket or device; it exists without
        `overwrite`; it is a folder that this package did not write; or it is of the
        wrong kind for its suffix (e.g. a regular file named ``.zarr``).
    """
    path = Path(path)
    fmt = output_format(path, name) if result else None
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise CSEInputError(f"Invalid value for {name!r}: the folder {str(parent)!r} does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CSEInputError(f"Invalid value for {name!r}: the folder {str(parent)!r} is not writable; "
                            f"choose another output path")
    for item in inputs:
        if item is None or not isinstance(item, (str, os.PathLike)):
            continue
        if _same_file(path, Path(item)) or _inside(path, Path(item)):
            raise CSEInputError(f"Invalid value for {name!r}: {str(path)!r} is an input of this command; "
                                f"write the output to another path")
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return path
    except OSError as exc:
        raise CSEInputError(f"Invalid value for {name!r}: {str(path)!r} cannot be inspected ({exc.strerror})") from None
    if stat.S_ISLNK(mode):
        raise CSEInputError(f"Invalid value for {name!r}: {str(path)!r} is a symbolic link; cse neither replaces "
                            f"links nor writes through them: give the path of the file itself")
    expected_dir = fmt == "zarr"
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)) or (fmt is not None and stat.S_ISDIR(mode) != expected_dir):
        expected = "a Zarr store (a folder)" if expected_dir else "a file"
        raise CSEInputError(f"Invalid value for {name!r}: {str(path)!r} exists and is {kind_of(mode)}, not "
                            f"{expected}; cse never replaces it: choose another output path")
    if stat.S_ISDIR(mode) and not is_package_result(path):
        raise CSEInputError(f"Invalid value for {name!r}: {str(path)!r} is an existing folder that cse did not write; "
                            f"it is never replaced: choose another output path")
    if not overwrite:
        raise CSEInputError(f"Invalid value for {name!r}: {str(path)!r} exists; pass overwrite=True "
                            f"to replace it, or choose another output path")
    return path


def atomic_path(target, overwrite: bool = False) -> contextlib.AbstractContextManager:
    """Context manager yielding a temporary path beside ``target``.

    On normal exit the temporary path (file or directory) replaces ``target``; on
    any error it is removed and ``target`` is left untouched. An existing ``target``
    is replaced only with ``overwrite=True`` and, if it is a directory, only if it
    is a result of this package (`check_output`, with ``result=False``, is called on
    entry and again just before the rename).

    Parameters
    ----------
    target : str or Path
        The output to write.
    overwrite : bool
        Allow replacing an existing `target` (a file, or a result of this package).

    Returns
    -------
    context manager yielding Path
        The temporary path ``.NAME.<random>.partial`` beside `target`.
    """
    return _AtomicPath(Path(target), overwrite)


class _AtomicPath(contextlib.AbstractContextManager):
    def __init__(self, target: Path, overwrite: bool):
        self.target = target
        self.overwrite = overwrite

    def __enter__(self) -> Path:
        check_output(self.target, overwrite=self.overwrite, result=False)
        fd, name = tempfile.mkstemp(prefix=f".{self.target.name}.", suffix=".partial", dir=self.target.parent)
        os.close(fd)
        os.unlink(name)
        self.tmp = Path(name)
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            remove_path(self.tmp)
            return False
        try:
            check_output(self.target, overwrite=self.overwrite, result=False)  # it may have appeared meanwhile
            if self.target.is_dir() and not self.target.is_symlink():
                # A previous result store (checked above): move it aside, then drop it.
                old = self.target.with_name(f".{self.target.name}.{os.getpid()}.old")
                os.replace(self.target, old)
                os.replace(self.tmp, self.target)
                remove_path(old)
            else:
                os.replace(self.tmp, self.target)
        except BaseException:
            remove_path(self.tmp)
            raise
        return False


def remove_path(path) -> None:
    """Remove a file or directory tree that this package created (staging, temporary outputs).

    A symbolic link is removed itself, never what it points to.

    Parameters
    ----------
    path : str or Path
        Only ever a path this package made (a staging folder, a temporary output).
    """
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def output_format(path, name: str = "output") -> str:
    """``'netcdf'`` for ``.nc``/``.nc4``/``.netcdf``/``.h5``, ``'zarr'`` for ``.zarr``.

    Parameters
    ----------
    path : str or Path
        A result path.
    name : str
        The parameter named in the error message.

    Returns
    -------
    {'netcdf', 'zarr'}

    Raises
    ------
    CSEInputError
        For any other suffix.
    """
    suffix = Path(path).suffix.lower()
    if suffix in (".nc", ".nc4", ".netcdf", ".h5"):
        return "netcdf"
    if suffix == ".zarr":
        return "zarr"
    raise CSEInputError(f"Invalid value for {name!r}: {str(path)!r} must end in .nc (netCDF4) or .zarr (Zarr)")
