"""Staging and resume: the on-disk state of a run that writes an output file.

A run keeps everything in a hidden folder beside its output (`Staging`): the Zarr
store, a manifest of what is computed (`build_manifest`) and logs of finished batches
(`DoneLog`). A killed run is continued with ``resume=True``: finished batches are not
recomputed, and a resume of something else is refused (`check_manifest`). The output
appears only, atomically, when every batch is done (`Staging.finalize`).
"""

from __future__ import annotations

import json
import os
import socket
import uuid
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import CSEInputError
from ..hashing import arrays_sha256, bytes_sha256
from ..io import input_sha256 as hash_input
from .request import updates_name


class Staging:
    """The on-disk state of a run that writes ``output``: a hidden folder beside it.

    Layout of ``.NAME.partial/`` (NAME = the output's file name)::

        lock            held (flock) by the run writing it
        manifest.json   what the run computes (input hash, model, settings, plan)
        pending/*.npz   batches saved at once, atomically, until their values are
                        in the store (or, journaled, in the output)
        done/*.log      batch indices, one per line, appended after each batch is
                        durable (in pending/ or in the store; one log per process)
        store.zarr/     the result's Zarr store, pre-sized, filled chunk by chunk
                        (created whole when first needed; a journaled run has none)
        updates.zarr/   the layer updates, with --save updates

    A *journaled* run (a netCDF output small enough for memory, in this process)
    keeps its result in memory and each batch in ``pending/`` until the output is
    written; the others write a Zarr store. A resume reads either. The output itself
    appears only when every batch is done, by an atomic rename (Zarr) or an atomic
    write (netCDF); then the folder is removed.

    Parameters
    ----------
    output : str or Path
        The result file; the folder is ``.NAME.partial/`` beside it.
    """

    def __init__(self, output):
        self.output = Path(output)
        self.root = self.output.parent / f".{self.output.name}.partial"
        self.store = self.root / "store.zarr"
        self.updates_store = self.root / "updates.zarr"
        self.manifest_path = self.root / "manifest.json"
        self.done_dir = self.root / "done"
        self.pending_dir = self.root / "pending"
        self._lock_fd = None

    def __enter__(self):
        import fcntl

        self.root.mkdir(exist_ok=True)
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise CSEInputError(
                f"another cse compute (pid {other}) is writing {self.output}; wait for it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd
        return self

    def __exit__(self, *exc):
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None
        return False

    def read_manifest(self) -> dict | None:
        """The manifest of an initialized staging folder, or None."""
        if not self.manifest_path.is_file():
            return None
        try:
            return json.loads(self.manifest_path.read_text())
        except (OSError, ValueError):
            return None

    @property
    def has_store(self) -> bool:
        """Whether the Zarr store exists (it is created whole, by a rename, so it is complete)."""
        return (self.store / "zarr.json").is_file()

    def done_batches(self) -> set[int]:
        """Indices of batches whose results are on disk (complete log lines only)."""
        done = set()
        for log in self.done_dir.glob("*.log") if self.done_dir.is_dir() else ():
            lines = log.read_bytes().split(b"\n")[:-1]  # a killed writer may leave a partial last line
            done.update(int(line) for line in lines if line.isdigit())
        return done

    def initialize(self, manifest: dict) -> None:
        """Discard any previous state, then write the manifest (the stores are created by `create_stores`).

        Parameters
        ----------
        manifest : dict
            From `build_manifest`.
        """
        from ..io import remove_path

        for path in (self.manifest_path, self.store, self.updates_store, self.done_dir, self.pending_dir):
            remove_path(path)
        self.done_dir.mkdir()
        self.pending_dir.mkdir()
        tmp = self.manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, indent=1))
        os.replace(tmp, self.manifest_path)

    def create_stores(self, template: xr.Dataset, updates: xr.Dataset | None = None) -> None:
        """Create the result's Zarr store (and the updates' store) from their layouts, each whole or not at all.

        Parameters
        ----------
        template : xarray.Dataset
            The result's layout, with lazy variables (written as metadata only).
        updates : xarray.Dataset, optional
            The layout of the layer-updates store (``--save updates``).
        """
        from ..io import remove_path

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
            for layout, path in ((template, self.store), (updates, self.updates_store)):
                if layout is None or (path / "zarr.json").is_file():
                    continue
                tmp = path.with_name(f".{path.name}.tmp")
                remove_path(tmp)
                layout.to_zarr(tmp, mode="w", compute=False, consolidated=True)
                os.replace(tmp, path)

    def finalize(self, overwrite: bool = False, result: xr.Dataset | None = None) -> None:
        """Move the filled store to the output atomically (converting to netCDF if asked).

        The layer updates (``--save updates``) are moved first, to ``NAME.updates.zarr``
        beside the output, so that a result never names a store that is not there.

        Parameters
        ----------
        overwrite : bool
            Replace an existing output (checked before the run by `cse.io.check_output`).
        result : xarray.Dataset, optional
            The whole result in memory (a journaled run, netCDF output): written to the
            output directly, without a Zarr store.
        """
        import zarr

        from ..io import atomic_path, output_format, remove_path, write_netcdf

        # Writes of a killed run that never became the output.
        for stray in self.output.parent.glob(f".{self.output.name}.*.partial"):
            remove_path(stray)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
            if self.updates_store.is_dir():
                zarr.consolidate_metadata(str(self.updates_store))
                with atomic_path(self.output.parent / updates_name(self.output), overwrite=overwrite) as tmp:
                    os.replace(self.updates_store, tmp)
            if result is not None:
                with atomic_path(self.output, overwrite=overwrite) as tmp:
                    write_netcdf(result, tmp)
                remove_path(self.root)
                return
            zarr.consolidate_metadata(str(self.store))
            with atomic_path(self.output, overwrite=overwrite) as tmp:
                if output_format(self.output) == "zarr":
                    os.replace(self.store, tmp)
                else:
                    staged = xr.open_zarr(self.store)
                    write_netcdf(staged, tmp)
        remove_path(self.root)


class DoneLog:
    """Append-only record of finished batches, one file per writing process.

    Parameters
    ----------
    folder : Path
        The staging folder's ``done/``; the log is a new file in it, named by host,
        process and a random suffix.
    """

    def __init__(self, folder):
        name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.log"
        self.path = Path(folder) / name
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def mark(self, index: int) -> None:
        """Record batch `index` as done: call only after its region write returned."""
        os.write(self._fd, f"{int(index)}\n".encode())

    def close(self) -> None:
        os.close(self._fd)


#: Manifest fields, in the order in which a mismatch is reported.
MANIFEST_FIELDS = (
    "manifest_version", "cse_version", "input_sha256", "text_column", "encoding",
    "model", "model_class", "revision", "model_sha256", "wrapper", "wrapper_version", "weight_processing",
    "weights_sha256", "n_layers", "d_model", "dtype",
    "axis", "wavelet", "level", "boundary", "normalize", "null_permutations", "seed",
    "batch_size", "window", "add_bos", "save", "save_dtype", "split", "n_texts", "n_tokens", "n_batches",
    "tokens_sha256",
)


def check_manifest(previous: dict, current: dict, output) -> None:
    """Refuse to resume when the interrupted run computed something else.

    Parameters
    ----------
    previous, current : dict
        The interrupted run's manifest and this run's (`build_manifest`).
    output : Path
        The output, named in the message.

    Raises
    ------
    CSEInputError
        Naming the first differing field of `MANIFEST_FIELDS`.
    """
    for key in MANIFEST_FIELDS:
        if previous.get(key) != current.get(key):
            raise CSEInputError(
                f"cannot resume {output}: the interrupted run has {key} = {previous.get(key)!r}, this run "
                f"{current.get(key)!r}; rerun with the same input, model and options, or pass restart=True to discard it"
            )


def build_manifest(request, run, info) -> dict:
    """What a run computes, for `check_manifest` (JSON-serialisable values only).

    Parameters
    ----------
    request : cse.pipeline.request.Request
    run : cse.pipeline.plan.Run
    info : cse.models.ModelInfo

    Returns
    -------
    dict
        The fields of `MANIFEST_FIELDS`.
    """
    from .. import __version__

    source, plan = request.source, run.plan
    if source.path is not None:
        input_sha256 = hash_input(source.path)  # a file, or a datasets folder
    else:
        input_sha256 = bytes_sha256(source.frame.to_json(orient="split", default_handler=str))
    return {
        "manifest_version": 2, "cse_version": __version__, "input_sha256": input_sha256,
        "text_column": source.text_column, "encoding": source.encoding, "split": source.split,
        **{k: info.identity.get(k) for k in ("model", "model_class", "revision", "model_sha256", "wrapper",
                                             "wrapper_version", "weight_processing")},
        "weights_sha256": info.weights_sha256, "n_layers": info.n_layers, "d_model": info.d_model,
        "dtype": info.dtype, **run.settings.attrs(), "batch_size": int(request.batch_size),
        "window": None if request.window is None else int(request.window), "add_bos": bool(request.add_bos),
        "save": list(run.saved), "save_dtype": run.save_dtype if "updates" in run.saved else None,
        "n_texts": len(source.frame), "n_tokens": plan.n_tokens, "n_batches": len(run.batches),
        "tokens_sha256": arrays_sha256(plan.starts, np.concatenate(plan.sequences)),
    }
