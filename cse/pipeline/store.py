"""Step 3 of `cse.compute`: the store — where the batches go, what is left to do, and the output.

`open_store` lays out the result (`cse.layout.result_layout`, the one builder of
results) and returns

- a `MemoryStore` when the result is returned in memory, or
- a `StagedStore` when it goes to a file: a staging folder beside the output
  (`cse.pipeline.staging.Staging`) holding a Zarr store filled batch by batch, the
  manifest, the logs of finished batches and the batches not yet in the store. It
  decides which batches are left (all of them; those an interrupted run did not finish,
  with ``resume``; an error when an interrupted run would be lost silently), turns
  Ctrl-C, SIGTERM and file-system failures into one line that says what was kept, and
  makes the output appear atomically when every batch is done (`finalize`).

The executors (`cse.pipeline.executor`, `cse.pipeline.cluster`) write into the store's
sinks; nothing else touches the output.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import CSEInputError, RunInterrupted
from ..layout import result_layout, result_variables, token_chunk
from .plan import Run
from .sinks import ChunkedZarrSink, JournalSink, MemorySink, SplitSink, ZarrSink, settle_pending
from .staging import DoneLog, Staging, build_manifest, check_manifest

logger = logging.getLogger("cse")

#: Largest result (its data variables, in bytes) that a local run with a netCDF output keeps
#: in memory and writes once at the end (a journaled run), instead of filling a Zarr store.
JOURNAL_BYTES = 256 * 2**20


def result_bytes(run: Run) -> int:
    """Bytes of a run's data variables (float64), what a journaled run holds in memory.

    Parameters
    ----------
    run : Run

    Returns
    -------
    int
    """
    per_token = run.n_layers * (run.settings.n_bands + 2 + (3 if run.settings.null_permutations else 0)) + 1
    if "gram" in run.saved:
        per_token += run.n_layers**2
    if "gram_triangle" in run.saved:
        per_token += run.n_layers * (run.n_layers + 1) // 2
    return 8 * per_token * run.plan.n_tokens


def _bytes_per_token(run: Run) -> int:
    """Bytes per token of the widest variable (for the token chunk of the stores)."""
    widest = run.settings.n_bands
    if "gram" in run.saved:
        widest = max(widest, run.n_layers)
    if "gram_triangle" in run.saved:
        widest = max(widest, (run.n_layers + 1) // 2)
    return widest


def run_layout(run: Run, *, lazy: bool, chunk: int | None = None) -> xr.Dataset:
    """The result of a run, laid out with NaN-filled variables (see `cse.layout.result_layout`).

    Parameters
    ----------
    run : Run
    lazy : bool
        Dask-backed variables (for a Zarr store) or NumPy arrays (in memory).
    chunk : int, optional
        Tokens per chunk (default: about 4 MiB of the widest variable).

    Returns
    -------
    xarray.Dataset
    """
    coords = {name: run.plan.coords[name].to_numpy() for name in run.plan.coords.columns}
    names = result_variables(run.settings, save=run.saved)
    chunk = chunk or token_chunk(run.plan.n_tokens, run.n_layers, _bytes_per_token(run))
    return result_layout(run.settings, run.n_layers, coords, attrs=run.attrs, names=names, lazy=lazy, chunk=chunk)


def updates_layout(run: Run, *, lazy: bool, chunk: int | None = None) -> xr.Dataset:
    """The layer-updates store of a run (``save=["updates"]``): ``updates (token, layer, hidden)``.

    Parameters
    ----------
    run : Run
    lazy : bool
        A Dask-backed variable (for a Zarr store) or a NumPy array (in memory).
    chunk : int, optional
        Tokens per chunk (default: about 4 MiB).

    Returns
    -------
    xarray.Dataset
        The variable in ``run.save_dtype``, NaN-filled; coordinates ``text``,
        ``position``, ``token_id`` (matched by re-measuring), ``is_special`` on ``token`` and ``layer``; the run's attributes.
    """
    from ..schema import COORD_ATTRS, variable_attrs

    n_tokens, shape = run.plan.n_tokens, (run.plan.n_tokens, run.n_layers, run.d_model)
    itemsize = np.dtype(run.save_dtype).itemsize
    chunk = chunk or max(1, min(n_tokens, (4 * 2**20) // (itemsize * run.n_layers * run.d_model)))
    if lazy:
        import dask.array as da

        data = da.full(shape, np.nan, dtype=run.save_dtype, chunks=(chunk, run.n_layers, run.d_model))
    else:
        data = np.full(shape, np.nan, dtype=run.save_dtype)
    coords = {name: ("token", run.plan.coords[name].to_numpy(), COORD_ATTRS[name])
              for name in ("text", "position", "token_id", "is_special")}
    coords["layer"] = ("layer", np.arange(run.n_layers, dtype=np.int64), COORD_ATTRS["layer"])
    return xr.Dataset({"updates": (("token", "layer", "hidden"), data, variable_attrs("updates"))}, coords=coords,
                      attrs={**run.attrs, "title": "Layer updates of transformer blocks (cse compute --save updates)"})


class MemoryStore:
    """The result in memory: every batch is written into its region; `finalize` returns it.

    Parameters
    ----------
    run : Run
    """

    def __init__(self, run: Run):
        self.run = run
        self.ds = run_layout(run, lazy=False)
        if "updates" in run.saved:
            self.ds["updates"] = updates_layout(run, lazy=False)["updates"]
        self.todo = list(range(len(run.batches)))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def sink(self) -> MemorySink:
        """Where the executor writes each batch."""
        return MemorySink(self.ds)

    def done_log(self) -> None:
        """No record of finished batches: nothing survives an interruption in memory."""
        return None

    @contextlib.contextmanager
    def guard(self):
        """Nothing to keep on an interruption."""
        yield

    def finalize(self) -> xr.Dataset:
        """The result."""
        return self.ds


class StagedStore:
    """The staging folder of a result file: resume, sinks, the atomic output (see the module docstring).

    Use as a context manager (it holds the staging folder's lock).

    Parameters
    ----------
    request : cse.pipeline.request.Request
        With an output.
    run : Run
    info : cse.models.ModelInfo
    """

    def __init__(self, request, run: Run, info):
        self.run, self.output = run, request.output
        self.path = Path(self.output.path)
        if self.path.exists() and self.path.suffix.lower() == ".zarr" and not self.path.is_dir():
            raise CSEInputError(f"Invalid value for 'output': {str(self.path)!r} exists and is not a Zarr store; "
                                f"choose another output path")
        self.staging = Staging(self.path)
        self.manifest = build_manifest(request, run, info)
        self.todo: list[int] = []
        # Journaled: the result in memory, each batch in pending/, the netCDF written once at the end.
        self.journal = (self.path.suffix.lower() != ".zarr" and not request.distributed
                        and "updates" not in run.saved and result_bytes(run) <= JOURNAL_BYTES)
        self.memory: xr.Dataset | None = None
        self._stack = contextlib.ExitStack()

    def __enter__(self):
        self._stack.enter_context(self.staging)
        try:
            self.todo = self._batches_to_do()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc):
        self._stack.close()
        return False

    @property
    def n_batches(self) -> int:
        return len(self.run.batches)

    def _batches_to_do(self) -> list[int]:
        """All batches, or those an interrupted run did not finish (with resume), its finished ones read back."""
        staging, out = self.staging, self.output
        previous = None if out.restart else staging.read_manifest()
        if previous is None and not out.overwrite and os.path.lexists(self.path):
            # Another run finished this output between this run's checks and its lock (a --resume racing it).
            _remove_debris(staging, self.path)
            raise CSEInputError(f"{self.path} was completed by another run while this one started; nothing to "
                                f"compute (pass --overwrite to compute it again)")
        done = staging.done_batches() if previous is not None else set()
        if previous is not None and out.resume:
            check_manifest(previous, self.manifest, self.path)
            logger.info("resuming %s: %d of %d batches already done", self.path, len(done), self.n_batches)
        elif previous is not None and done:
            raise CSEInputError(
                f"an interrupted run of {self.path} left {len(done)} of {previous.get('n_batches')} batches in "
                f"{staging.root}; add resume=True to continue it or restart=True to discard it"
            )
        else:
            if out.resume:
                logger.info("no interrupted run of %s to resume; starting from the beginning", self.path)
            done = set()
            with self.file_errors():
                staging.initialize(self.manifest)
        with self.file_errors():
            self._open_results()
        return [i for i in range(self.n_batches) if i not in done]

    def _open_results(self) -> None:
        """Where the batches go: memory (journaled) or the Zarr store(s); what an interrupted run kept goes there too."""
        staging = self.staging
        if self.journal:
            self.memory = run_layout(self.run, lazy=False)
            if staging.has_store:  # an interrupted run that wrote a store (e.g. on a cluster)
                with xr.open_zarr(staging.store) as stored:
                    for name in self.memory.data_vars:
                        self.memory[name].values[...] = stored[name].values
            settle_pending(MemorySink(self.memory), staging.pending_dir, keep=True)
            return
        updates = updates_layout(self.run, lazy=True) if "updates" in self.run.saved else None
        staging.create_stores(run_layout(self.run, lazy=True, chunk=self.output.zarr_chunk), updates)
        settle_pending(ZarrSink(staging.store), staging.pending_dir)

    def sink(self, lock=None):
        """The sink of this process: the result in memory and each batch in pending/ (journaled), each
        store chunk written once (`ChunkedZarrSink`), or, for the workers of a cluster (`lock` given),
        each batch's region at once under chunk locks."""
        if self.journal:
            return JournalSink(MemorySink(self.memory), self.staging.pending_dir)
        if lock is not None:
            result = ZarrSink(self.staging.store, lock=lock)
        else:
            regions = {index: self.run.region(index) for index in self.todo}
            result = ChunkedZarrSink(ZarrSink(self.staging.store), regions, self.staging.pending_dir)
        if "updates" in self.run.saved:
            return SplitSink(result, ZarrSink(self.staging.updates_store, lock=lock))
        return result

    def done_log(self) -> DoneLog:
        """A log of finished batches for this process (close it when done)."""
        return DoneLog(self.staging.done_dir)

    @contextlib.contextmanager
    def guard(self):
        """Ctrl-C / SIGTERM and file-system failures during the batches end in one line saying what was kept."""
        with self.file_errors():
            try:
                yield
            except KeyboardInterrupt as interrupt:
                if isinstance(interrupt, RunInterrupted):
                    raise
                kept = len(self.staging.done_batches())
                raise RunInterrupted(
                    f"interrupted: {kept} of {self.n_batches} batches of {self.path} are kept in "
                    f"{self.staging.root}; rerun the same call with resume=True to continue",
                    getattr(interrupt, "signum", 2),
                ) from None

    @contextlib.contextmanager
    def file_errors(self):
        """One line for a file-system failure (full disk, read-only, permissions), keeping the staging for resume."""
        staging = self.staging
        try:
            yield
        except OSError as error:
            if error.errno == errno.ENOENT and not staging.manifest_path.is_file():  # deleted during the run
                _remove_debris(staging, self.path)
                raise CSEInputError(f"cannot write {self.path}: its folder {str(self.path.parent)!r} or the staging "
                                    f"folder was deleted during the run, so nothing was kept; run again") from None
            if error.errno not in _FILE_ERRORS:
                raise
            kept = len(staging.done_batches()) if staging.done_dir.is_dir() else 0
            reason = error.strerror or str(error)
            reason = reason[:1].lower() + reason[1:]
            where = f" ({error.filename})" if error.filename else ""
            raise CSEInputError(
                f"cannot write {self.path}: {reason}{where}; {kept} of {self.n_batches} batches are kept in "
                f"{staging.root}: fix the cause and rerun the same call with resume=True"
            ) from None

    def finalize(self) -> xr.Dataset:
        """Make the output appear atomically and open it lazily."""
        from ..io import open_result

        logger.info("computed %d of %d batches", len(self.todo), self.n_batches)
        with self.file_errors():
            self.staging.finalize(overwrite=self.output.overwrite, result=self.memory)
        return open_result(self.path, chunks={})


_FILE_ERRORS = (errno.ENOSPC, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EIO, errno.ENOTDIR,
                errno.EISDIR, errno.EEXIST, errno.ENAMETOOLONG, errno.ENOENT)


def _remove_debris(staging: Staging, output: Path) -> None:
    """Remove what writes recreated after the staging folder was deleted (only empty folders beyond it)."""
    from ..io import remove_path

    remove_path(staging.root)
    try:
        os.rmdir(output.parent)  # only if empty: it held nothing but the deleted run
    except OSError:
        pass


def open_store(request, run: Run, info):
    """The store of a run: in memory without an output, else the staging folder (a context manager).

    Parameters
    ----------
    request : cse.pipeline.request.Request
    run : Run
    info : cse.models.ModelInfo

    Returns
    -------
    MemoryStore or StagedStore
        Context managers; enter them before writing.
    """
    if request.output is None:
        return MemoryStore(run)
    return StagedStore(request, run, info)
