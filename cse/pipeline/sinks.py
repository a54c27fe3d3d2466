"""Sinks: where each batch's per-token results go, in memory or in Zarr stores on disk.

A sink writes each batch into its token region of a result laid out by
`cse.layout.result_layout`. `ChunkedZarrSink` writes each Zarr chunk once, when every
batch in it has arrived, and keeps each batch durable in the meantime (`pending`);
`BackgroundWriter` writes a batch while the next one is forwarded (bounded queue,
exceptions re-raised in the caller, a batch recorded as done only after its write).
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import threading
import warnings
from pathlib import Path

import numpy as np
import xarray as xr


class _ImmediateSink:
    """A sink that stores each batch as it comes (`write`): nothing is buffered."""

    def write_batch(self, index: int, start: int, stop: int, arrays: dict) -> list[int]:
        """Write batch `index` into its region now; return the batches now stored (this one)."""
        self.write(start, stop, arrays)
        return [index]

    def flush(self) -> list[int]:
        return []


class MemorySink(_ImmediateSink):
    """Collects batch results in a NumPy-backed result Dataset.

    Parameters
    ----------
    template : xarray.Dataset
        The result's layout with NumPy-backed variables (`cse.layout.result_layout`),
        filled in place.
    """

    def __init__(self, template: xr.Dataset):
        self.ds = template

    def write(self, start: int, stop: int, arrays: dict) -> None:
        for name, value in arrays.items():
            self.ds[name].values[start:stop] = value

    def close(self) -> xr.Dataset:
        return self.ds


class ZarrSink(_ImmediateSink):
    """Writes batch results into their token regions of a Zarr store on disk.

    A region that does not start and end on chunk boundaries rewrites the
    chunks it shares with its neighbours (read, merge, write). Each chunk is
    written to a temporary file and renamed (Zarr's local store), so a killed
    writer leaves every chunk either old or new, never torn. Concurrent
    writers (Dask workers) pass ``lock``: a function of a chunk index that
    returns a context manager held around the writes of a region's shared
    chunks, in ascending order, so no two writers merge into one chunk at once.

    Parameters
    ----------
    store : Path
        A store created from `result_template` (``to_zarr(compute=False)``).
    lock : callable, optional
        ``lock(chunk_index) -> context manager``.
    """

    def __init__(self, store, lock=None):
        import zarr

        self.store = Path(store)
        self.group = zarr.open_group(str(self.store), mode="r+")
        self.arrays = {name: self.group[name] for name in self.group.array_keys()}
        first = self.arrays["cse" if "cse" in self.arrays else "updates"]  # the result's store, or the updates'
        self.chunk = int(first.chunks[0])
        self.n_tokens = int(first.shape[0])
        self.lock = lock

    def shared_chunks(self, start: int, stop: int) -> list[int]:
        """Chunks that the region [start, stop) covers only in part."""
        first, last = start // self.chunk, (stop - 1) // self.chunk
        shared = []
        if start % self.chunk:
            shared.append(first)
        if stop % self.chunk and stop != self.n_tokens and last not in shared:
            shared.append(last)
        return shared

    def write(self, start: int, stop: int, arrays: dict) -> None:
        with contextlib.ExitStack() as held:
            if self.lock is not None:
                for index in self.shared_chunks(start, stop):
                    held.enter_context(self.lock(index))
            for name, value in arrays.items():
                self.arrays[name][start:stop] = value
        if not (self.store / "zarr.json").is_file():  # zarr recreates missing folders as it writes
            raise FileNotFoundError(errno.ENOENT, "the staging store was deleted during the run", str(self.store))

    def close(self) -> xr.Dataset:
        return xr.open_zarr(self.store)


class ChunkedZarrSink:
    """Collects batches in memory and writes each Zarr chunk once, when every batch in it has arrived.

    Writing a batch's region straight into a store rewrites (decompresses, merges,
    recompresses) every chunk the region shares with its neighbours, about a whole
    chunk per batch; buffering writes each chunk once. Each batch is also saved at
    once, atomically, as a small ``.npz`` file in `pending` (a few hundred KiB), so
    it is durable as soon as `write_batch` returns (the caller then logs it as done);
    the file is removed when the batch's chunks are in the store. A killed run leaves
    such files; `settle_pending` writes them into the store before a resumed run
    starts, so the resume is exact. `flush` writes the chunks in progress (merged
    with what is on disk) on a clean stop or a Ctrl-C.

    Parameters
    ----------
    sink : ZarrSink
    regions : dict of int to (int, int)
        Token region [start, stop) of every batch this run will write.
    pending : Path
        Folder for the batches not yet in the store (created if missing).
    """

    def __init__(self, sink: ZarrSink, regions: dict, pending):
        self.sink, self.chunk, self.n_tokens = sink, sink.chunk, sink.n_tokens
        self.pending = Path(pending)
        self.pending.mkdir(exist_ok=True)
        self.waiting: dict[int, set] = {}  # chunk -> batches not yet received
        self.chunks_of: dict[int, set] = {}  # batch -> chunks not yet on disk
        for index, (start, stop) in regions.items():
            chunks = set(range(start // self.chunk, (stop - 1) // self.chunk + 1)) if stop > start else set()
            self.chunks_of[index] = chunks
            for c in chunks:
                self.waiting.setdefault(c, set()).add(index)
        self.members = {c: frozenset(batches) for c, batches in self.waiting.items()}  # chunk -> its batches
        self.buffers: dict[int, tuple[dict, np.ndarray]] = {}  # chunk -> (arrays, covered mask)
        self.received: set[int] = set()

    def _bounds(self, c: int) -> tuple[int, int]:
        return c * self.chunk, min((c + 1) * self.chunk, self.n_tokens)

    def write_batch(self, index: int, start: int, stop: int, arrays: dict) -> list[int]:
        """Save batch `index` (durable at once), buffer it, write the chunks it completes; return ``[index]``."""
        self.received.add(index)
        _save_pending(self.pending, index, start, stop, arrays)
        for c in sorted(self.chunks_of.get(index, ())):
            lo, hi = self._bounds(c)
            if c not in self.buffers:
                shapes = {name: (hi - lo, *np.shape(value)[1:]) for name, value in arrays.items()}
                self.buffers[c] = ({name: np.full(shape, np.nan) for name, shape in shapes.items()},
                                   np.zeros(hi - lo, dtype=bool))
            buffer, covered = self.buffers[c]
            a, b = max(start, lo), min(stop, hi)
            for name, value in arrays.items():
                buffer[name][a - lo:b - lo] = value[a - start:b - start]
            covered[a - lo:b - lo] = True
            self.waiting[c].discard(index)
            if not self.waiting[c]:
                self._write_chunk(c)
        if not self.chunks_of.get(index):
            (self.pending / f"{index}.npz").unlink(missing_ok=True)
        return [index]

    def _write_chunk(self, c: int) -> None:
        lo, hi = self._bounds(c)
        buffer, covered = self.buffers.pop(c)
        if covered.all():
            self.sink.write(lo, hi, buffer)
        else:  # tokens of batches written by an earlier (interrupted) run, or not yet computed
            for name, values in buffer.items():
                on_disk = np.asarray(self.sink.arrays[name][lo:hi])
                values[~covered] = on_disk[~covered]
            self.sink.write(lo, hi, buffer)
        for index in sorted(self.members[c]):
            self.chunks_of[index].discard(c)
            if not self.chunks_of[index] and index in self.received:
                (self.pending / f"{index}.npz").unlink(missing_ok=True)

    def flush(self) -> list[int]:
        """Write every chunk in progress (merged with the store); every received batch is then in the store."""
        for c in sorted(self.buffers):
            self._write_chunk(c)
        for index in self.received:
            (self.pending / f"{index}.npz").unlink(missing_ok=True)
        return []

    def close(self) -> xr.Dataset:
        return self.sink.close()


class JournalSink:
    """Keeps the whole result in memory and every batch durable in `pending` until the output is written.

    The sink of a journaled run (`cse.pipeline.store.StagedStore`): each batch is saved
    at once, atomically, as ``pending/INDEX.npz`` (so it survives a kill and is read back
    by `settle_pending` on resume) and written into the in-memory result; no Zarr store is
    written at all, and the output is written once from memory.

    Parameters
    ----------
    memory : MemorySink
        The in-memory result.
    pending : Path
        Folder for the saved batches (created if missing).
    """

    def __init__(self, memory: MemorySink, pending):
        self.memory = memory
        self.pending = Path(pending)
        self.pending.mkdir(exist_ok=True)

    def write_batch(self, index: int, start: int, stop: int, arrays: dict) -> list[int]:
        """Save batch `index` (durable at once) and keep it in memory; return ``[index]``."""
        _save_pending(self.pending, index, start, stop, arrays)
        self.memory.write(start, stop, arrays)
        return [index]

    def flush(self) -> list[int]:
        return []


class SplitSink:
    """Sends a batch's saved layer updates to their own store and everything else to the result's sink.

    Parameters
    ----------
    result : ChunkedZarrSink or ZarrSink
        The result's sink.
    updates : ZarrSink
        The store of the layer updates (``--save updates``), written at once.
    """

    def __init__(self, result, updates):
        self.result, self.updates = result, updates

    def write_batch(self, index: int, start: int, stop: int, arrays: dict) -> list[int]:
        """Write the updates, then the rest; return the batches now stored."""
        arrays = dict(arrays)
        self.updates.write(start, stop, {"updates": arrays.pop("updates")})
        return self.result.write_batch(index, start, stop, arrays)

    def flush(self) -> list[int]:
        return self.result.flush()


def _save_pending(folder: Path, index: int, start: int, stop: int, arrays: dict) -> None:
    """Save one batch's arrays as ``folder/index.npz``, atomically (temporary file, then rename)."""
    tmp = folder / f".{index}.npz.partial"
    with open(tmp, "wb") as handle:
        np.savez(handle, _start=start, _stop=stop, **arrays)
    os.replace(tmp, folder / f"{index}.npz")


def settle_pending(sink, folder, keep: bool = False) -> int:
    """Write the batches saved in `folder` (a killed run's, or a journaled run's) into `sink`.

    Parameters
    ----------
    sink : ZarrSink or MemorySink
        The staging store, or the result in memory.
    folder : Path
        A ``pending/`` folder (missing is fine).
    keep : bool
        Keep the files (a journaled run keeps every batch there until its output is
        written); otherwise each is removed once written, with any torn temporary file.

    Returns
    -------
    int
        The number of batches written.
    """
    folder = Path(folder)
    files = sorted(folder.glob("*.npz"), key=lambda p: int(p.stem)) if folder.is_dir() else []
    for path in files:
        with np.load(path) as data:
            arrays = {name: data[name] for name in data.files if not name.startswith("_")}
            sink.write(int(data["_start"]), int(data["_stop"]), arrays)
        if not keep:
            path.unlink()
    if not keep:
        for stray in folder.glob(".*.partial") if folder.is_dir() else ():
            stray.unlink()
    return len(files)


class BackgroundWriter:
    """Writes batches into a sink on a background thread while the caller computes the next.

    At most `max_pending` batches wait in the queue, so memory stays bounded. A
    batch is recorded in `log` (the run's done log) only after its region write has
    returned, so a killed run resumes exactly (`cse.pipeline.Staging`). An error of
    the writer is re-raised in the caller at the next `put` or at `close`.

    Parameters
    ----------
    sink : MemorySink, ZarrSink or ChunkedZarrSink
        Anything with ``write_batch(index, start, stop, arrays) -> stored batches``
        and ``flush() -> stored batches``.
    log : DoneLog, optional
    max_pending : int
    """

    def __init__(self, sink, log=None, max_pending: int = 2):
        self.sink, self.log = sink, log
        self.queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self.error: BaseException | None = None
        self.written: list[int] = []
        self.thread = threading.Thread(target=self._run, name="cse-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            try:
                if item is None:
                    return
                if self.error is None:
                    with warnings.catch_warnings():
                        warnings.filterwarnings("ignore", message=".*StringDType.*")
                        stored = self.sink.write_batch(*item) if item != "flush" else self.sink.flush()
                    for index in stored:
                        if self.log is not None:
                            self.log.mark(index)
                        self.written.append(index)
            except BaseException as error:  # re-raised in the caller's thread
                self.error = error
            finally:
                self.queue.task_done()

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def put(self, index: int, start: int, stop: int, arrays: dict) -> None:
        """Queue batch `index` for its token region [start, stop); blocks while the queue is full."""
        self._raise()
        self.queue.put((index, start, stop, arrays))

    def close(self) -> None:
        """Write what is queued and buffered, stop the thread, and re-raise a writer error."""
        if self.thread.is_alive():
            self.queue.put("flush")
            self.queue.put(None)
            self.thread.join()
        self._raise()
