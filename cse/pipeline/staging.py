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
import pandas as pd
import xarray as xr

from ..errors import CSEInputError
from ..hashing import arrays_sha256, bytes_sha256
from ..io import input_sha256 as hash_input
from .plan import Plan

__all__ = ["MANIFEST_FIELDS", "DoneLog", "Staging", "build_manifest", "check_manifest"]


class Staging:
    """The on-disk state of a run that writes ``output``: a hidden folder beside it.

    Layout of ``.NAME.partial/`` (NAME = the output's file name)::

        lock            held (flock) by the run writing it
        store.zarr/     the result's Zarr store, pre-sized, filled chunk by chunk
        manifest.json   what the run computes (input hash, model, settings, plan)
        pending/*.npz   batches saved but not yet in the store (a local run writes
                        each store chunk once, when all its batches are in)
        done/*.log      batch indices, one per line, appended after each batch is
                        durable (in pending/ or in the store; one log per process)

    The manifest is written after the store is initialized, so a folder with a
    manifest has a complete (if unfilled) store. The output itself appears only
    when every batch is done, by an atomic rename (Zarr) or an atomic
    conversion (netCDF); then the folder is removed.
    """

    def __init__(self, output):
        self.output = Path(output)
        self.root = self.output.parent / f".{self.output.name}.partial"
        self.store = self.root / "store.zarr"
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
        """The manifest of an initialized staging store, or None."""
        if not (self.manifest_path.is_file() and (self.store / "zarr.json").is_file()):
            return None
        try:
            return json.loads(self.manifest_path.read_text())
        except (OSError, ValueError):
            return None

    def done_batches(self) -> set[int]:
        """Indices of batches whose results are on disk (complete log lines only)."""
        done = set()
        for log in self.done_dir.glob("*.log") if self.done_dir.is_dir() else ():
            lines = log.read_bytes().split(b"\n")[:-1]  # a killed writer may leave a partial last line
            done.update(int(line) for line in lines if line.isdigit())
        return done

    def initialize(self, template: xr.Dataset, manifest: dict) -> None:
        """Discard any previous state and create the store, then the manifest."""
        from ..io import remove_path

        for path in (self.manifest_path, self.store, self.done_dir, self.pending_dir):
            remove_path(path)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
            template.to_zarr(self.store, mode="w", compute=False, consolidated=True)
        self.done_dir.mkdir()
        tmp = self.manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, indent=1))
        os.replace(tmp, self.manifest_path)

    def finalize(self, overwrite: bool = False) -> None:
        """Move the filled store to the output atomically (converting to netCDF if asked)."""
        import zarr

        from ..io import atomic_path, output_format, remove_path, write_netcdf

        # Writes of a killed run that never became the output.
        for stray in self.output.parent.glob(f".{self.output.name}.*.partial"):
            remove_path(stray)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
            zarr.consolidate_metadata(str(self.store))
            with atomic_path(self.output, overwrite=overwrite) as tmp:
                if output_format(self.output) == "zarr":
                    os.replace(self.store, tmp)
                else:
                    staged = xr.open_zarr(self.store)
                    write_netcdf(staged, tmp)
        remove_path(self.root)


class DoneLog:
    """Append-only record of finished batches, one file per writing process."""

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
    "model", "model_class", "revision", "model_sha256", "weights_sha256", "n_layers", "d_model", "dtype",
    "axis", "wavelet", "level", "boundary", "normalize", "null_permutations", "seed",
    "batch_size", "window", "add_bos", "n_texts", "n_tokens", "n_batches", "tokens_sha256",
)


def check_manifest(previous: dict, current: dict, output) -> None:
    """Refuse to resume when the interrupted run computed something else.

    Raises
    ------
    CSEInputError
        Naming the first differing field of `MANIFEST_FIELDS`.
    """
    for key in MANIFEST_FIELDS:
        if previous.get(key) != current.get(key):
            raise CSEInputError(
                f"cannot resume {output}: the interrupted run has {key} = {previous.get(key)!r}, this run "
                f"{current.get(key)!r}; rerun with the same input, model and options, or pass --restart to discard it"
            )


def build_manifest(*, texts, frame: pd.DataFrame, text_column, encoding, info, settings, batch_size: int, window,
                   add_bos: bool, plan: Plan, n_batches: int) -> dict:
    """What a run computes, for `check_manifest` (JSON-serialisable values only)."""
    from .. import __version__

    if isinstance(texts, (str, Path)):
        input_sha256 = hash_input(texts)  # a file, or a datasets folder
    else:
        input_sha256 = bytes_sha256(frame.to_json(orient="split", default_handler=str))
    return {
        "manifest_version": 1, "cse_version": __version__, "input_sha256": input_sha256,
        "text_column": text_column, "encoding": encoding if isinstance(texts, (str, Path)) else None,
        **{k: info.identity.get(k) for k in ("model", "model_class", "revision", "model_sha256")},
        "weights_sha256": info.weights_sha256, "n_layers": info.n_layers, "d_model": info.d_model,
        "dtype": info.dtype, **settings.attrs(), "batch_size": int(batch_size),
        "window": None if window is None else int(window), "add_bos": bool(add_bos),
        "n_texts": len(frame), "n_tokens": plan.n_tokens, "n_batches": int(n_batches),
        "tokens_sha256": arrays_sha256(plan.starts, np.concatenate(plan.sequences)),
    }
