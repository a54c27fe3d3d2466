"""A full disk (or a file-size limit) is one line, never a crash.

Why libhdf5 crashed: when h5netcdf closes a file, ``h5py.File.close`` first closes every
open object of the file, then the file; on ENOSPC or EFBIG the last write of that close
fails and raises ``OSError`` *after* the objects are gone, leaving h5netcdf's ``File``
marked open. Its ``__del__`` (which is ``close``) then flushes attributes through the
closed objects, and libhdf5 dereferences freed memory: SIGSEGV, nothing on stderr.

A write that fails while data is written (not at close) leaves libhdf5's own file
state dirty too: the library's clean-up at exit crashes on it. So, before writing a
netCDF file, `check_room` compares its size (known from the variables: the writer
stores them uncompressed) with the free space of the folder and the process'
file-size limit and refuses in one line; and the write itself runs in a forked child
(`in_child`), whose failure (the disk filled meanwhile, a quota) comes back as the
same `OSError` and whose crash, if libhdf5 still crashes, is one line too. Without
``fork``, `forget_failed_netcdf` marks the half-closed h5netcdf file closed instead.
"""

from __future__ import annotations

import errno
import gc
import os
import shutil
import sys
from pathlib import Path

import numpy as np

#: File-system errors reported in one line by the writers (a full disk, a quota, a file-size limit ...).
WRITE_ERRORS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO)

#: HDF5's own structures (superblock, object headers, B-trees, the heap of strings), per variable and in all.
_OVERHEAD_PER_VARIABLE, _OVERHEAD = 4 * 2**10, 64 * 2**10


def netcdf_size(ds) -> int:
    """About the bytes of `ds` written uncompressed as netCDF4: its values, strings at their length, headers.

    Parameters
    ----------
    ds : xarray.Dataset
        NumPy- or Dask-backed (strings are counted at 16 bytes an item plus their
        characters where in memory, at 16 bytes where lazy).

    Returns
    -------
    int
    """
    total = 0
    for var in ds.variables.values():
        if var.dtype.kind in "OUS":
            data = var.data
            total += 16 * int(var.size)
            if isinstance(data, np.ndarray):
                total += sum(len(str(item).encode("utf-8", "surrogatepass")) for item in data.ravel())
        else:
            total += int(var.size) * var.dtype.itemsize
    return total + _OVERHEAD_PER_VARIABLE * len(ds.variables)


def check_room(path, nbytes: int) -> None:
    """Raise an `OSError` (ENOSPC or EFBIG) if a file of `nbytes` cannot be written at `path`.

    Parameters
    ----------
    path : str or Path
        The file to write (its folder is measured).
    nbytes : int
        Its size, without HDF5's overhead (added here).

    Raises
    ------
    OSError
        ``errno.ENOSPC`` when the folder's file system has less free space,
        ``errno.EFBIG`` when the process' file-size limit (``ulimit -f``) is lower.
    """
    path = Path(path)
    needed = int(nbytes) + _OVERHEAD
    try:
        free = shutil.disk_usage(path.parent if str(path.parent) else ".").free
    except OSError:
        free = None
    if free is not None and free < needed:
        raise OSError(errno.ENOSPC, f"No space left on device: it needs about {needed / 2**20:.1f} MiB, "
                                    f"{free / 2**20:.1f} MiB are free", str(path.parent))
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    except (ImportError, ValueError, OSError):
        return
    if limit != resource.RLIM_INFINITY and limit < needed:
        raise OSError(errno.EFBIG, f"File too large for this process' file-size limit (ulimit -f: "
                                   f"{limit / 2**20:.1f} MiB; it needs about {needed / 2**20:.1f} MiB)", str(path))


def in_child(write, path) -> None:
    """Run ``write()`` (which creates `path`) in a forked child process; its failure is the parent's.

    libhdf5 keeps a file that failed to write (ENOSPC, EFBIG) half-open in the process:
    h5py's later clean-ups and the library's own at exit flush it again and may crash
    (SIGSEGV). In a child, that state dies with the child (which computes lazy
    variables with Dask's synchronous scheduler). Where ``os.fork`` is missing or
    fails, the write runs here, with `forget_failed_netcdf` as the guard.

    Raises
    ------
    OSError
        The child's ``OSError`` (same errno and message), or ``EIO`` when the child
        died of a signal (the temporary `path` is left for the caller to remove).
    BaseException
        Any other exception of the child, re-raised here (pickled), or ``KeyboardInterrupt``.
    """
    import pickle

    read_end = write_end = None
    try:
        read_end, write_end = os.pipe()
        pid = os.fork()
    except (AttributeError, OSError):  # no fork here, or none possible now (memory): write in this process
        for fd in (read_end, write_end):
            if fd is not None:
                os.close(fd)
        try:
            return write()
        except BaseException:
            forget_failed_netcdf(path)
            raise
    if pid == 0:  # the child: never returns, never runs the parent's clean-ups, whatever happens
        status = 1
        try:
            status = _child(write, read_end, write_end)
        finally:
            os._exit(status)
    os.close(write_end)
    try:
        with os.fdopen(read_end, "rb") as pipe:
            payload = pipe.read()
        _, wait_status = os.waitpid(pid, 0)
    except BaseException:
        _reap(pid)
        raise
    if payload:
        raise pickle.loads(payload)
    if os.WIFSIGNALED(wait_status):
        raise OSError(errno.EIO, f"the netCDF writer (libhdf5) died of signal {os.WTERMSIG(wait_status)}", str(path))
    if os.waitstatus_to_exitcode(wait_status) != 0:
        raise OSError(errno.EIO, "the netCDF writer (libhdf5) failed", str(path))


def _child(write, read_end: int, write_end: int) -> int:
    """The forked writer: run `write`, send any exception to the parent through the pipe; the exit status."""
    import pickle

    try:
        os.close(read_end)
        quiet = os.open(os.devnull, os.O_WRONLY)  # libhdf5's clean-up complaints: the parent reports in one line
        os.dup2(quiet, 2)
        if "dask" in sys.modules:  # the parent's threads (a distributed client's loop) are not in the child
            import dask

            dask.config.set(scheduler="synchronous")
        write()
        return 0
    except BaseException as exc:  # noqa: BLE001  sent to the parent
        try:
            payload = pickle.dumps(exc)
        except Exception:  # noqa: BLE001
            payload = pickle.dumps(RuntimeError(f"{type(exc).__name__}: {exc}"))
        try:
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(payload)
        except BaseException:  # noqa: BLE001  the parent has gone (interrupted): nothing to tell
            pass
        return 1


def _reap(pid: int) -> None:
    """Stop and wait for the child `pid` (the parent was interrupted)."""
    import signal

    try:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
    except (OSError, ChildProcessError):
        pass


def forget_failed_netcdf(path) -> None:
    """Mark every h5netcdf file still open on `path` closed, without touching libhdf5 again.

    After a failed close (see the module's notes) h5netcdf's ``__del__`` would flush
    through freed HDF5 objects; with ``_closed`` set it does nothing.
    """
    try:
        import h5netcdf
    except ImportError:
        return
    target = os.path.abspath(os.fspath(path))
    for obj in gc.get_objects():
        if isinstance(obj, h5netcdf.File) and not getattr(obj, "_closed", True):
            name = getattr(obj, "_filename", None)  # recorded at open: asking libhdf5 (.filename) would crash
            if name is None or os.path.abspath(os.fspath(name)) == target:
                obj._closed = True


def write_error_line(path, error: OSError) -> str:
    """The one line for a failed write of `path`: what the system said and what to do."""
    reason = str(error.strerror or error).split("\n")[0]
    if error.errno and "needs about" not in reason:  # libhdf5's messages are many lines long: the system's words
        reason = os.strerror(error.errno)
    reason = reason[:1].lower() + reason[1:]
    hint = {errno.ENOSPC: "free space or write to another folder", errno.EDQUOT: "free space or write elsewhere",
            errno.EFBIG: "raise the file-size limit (ulimit -f) or write a smaller output"}.get(
                error.errno, "check the folder's permissions and the disk")
    return f"cannot write {path}: {reason}; nothing was written ({hint})"
