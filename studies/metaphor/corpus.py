"""Compute a corpus once per model and axis, and reuse the result when nothing changed.

Every result file ``NAME.nc`` written by `cached_compute` carries, in its global
attribute ``study_key``, the key it was computed for (input hash, model identity
and file hash, measure settings, package version). A later run with the same key
opens the file instead of running the model again, so that regenerating a report
is cheap; ``recompute=True`` forces a new computation.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from cse import __version__
from cse.errors import CSEInputError

#: Sequences per forward pass of the studies (recorded in the key: batches are part
#: of what makes a CPU run bit-for-bit reproducible).
BATCH_SIZE = 16


def frame_sha256(frame: pd.DataFrame) -> str:
    """SHA-256 of a `cse.compute` input frame (texts, per-text and per-word fields)."""
    return hashlib.sha256(frame.to_json(orient="split").encode()).hexdigest()


def model_slug(identity: dict) -> str:
    """A short file-name-safe name of a model: its basename plus 8 hex digits of its hash."""
    name = Path(str(identity.get("model") or identity.get("model_class") or "model")).name
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"
    name = re.sub(r"\.gguf$", "", name)
    tag = identity.get("model_sha256") or identity.get("revision") or identity.get("model_class", "")
    return f"{name}-{hashlib.sha256(str(tag).encode()).hexdigest()[:8]}"


def sequence_lengths(frame: pd.DataFrame, tokenizer) -> np.ndarray:
    """Tokens (BOS included) of every text of `frame` as `cse.compute` will run it, int64 (n_texts,)."""
    from cse.pipeline import plan_tokens

    plan = plan_tokens(frame[["text"]], tokenizer, max_length=None)
    return np.diff(plan.starts)


def by_length(frame: pd.DataFrame, tokenizer) -> pd.DataFrame:
    """`frame` sorted by token length (stable), so that batches carry little padding."""
    lengths = sequence_lengths(frame, tokenizer)
    return frame.iloc[np.argsort(lengths, kind="stable")].reset_index(drop=True)


def cached_compute(frame: pd.DataFrame, path, model, tokenizer, *, identity: dict, axis: str = "depth",
                   level=None, null_permutations: int = 0, seed: int = 0, recompute: bool = False,
                   progress: bool = False, command: str | None = None, log=None) -> xr.Dataset:
    """CSE of `frame` on `axis`, from `path` when it holds this very computation.

    Parameters
    ----------
    frame : pandas.DataFrame
        Input of `cse.compute` (column ``text`` plus fields), in the order to run.
    path : str or Path
        Result file (``.nc``); its ``study_key`` attribute holds the key.
    model, tokenizer
        A loaded model (`cse.load_model`) and its tokenizer.
    identity : dict
        `cse.models.model_identity` of the model.
    axis, level, null_permutations, seed
        Measure settings (SPEC section 2).
    recompute : bool
        Ignore a cached file.
    progress : bool
        Progress bar on stderr.
    command : str, optional
        Recorded in the result's ``command`` attribute.
    log : callable, optional
        Called with one line of text per step.

    Returns
    -------
    xarray.Dataset
        The result (SPEC section 4), loaded into memory.
    """
    from cse.pipeline import compute

    path = Path(path)
    key = {
        "input_sha256": frame_sha256(frame),
        "n_texts": int(len(frame)),
        "model": identity.get("model", ""),
        "model_sha256": identity.get("model_sha256", ""),
        "revision": identity.get("revision", ""),
        "axis": axis,
        "level": level,
        "null_permutations": int(null_permutations),
        "seed": int(seed) if null_permutations else 0,
        "batch_size": BATCH_SIZE,
        "cse_version": __version__,
    }
    key_text = json.dumps(key, sort_keys=True)
    if not recompute and path.exists():
        from cse.io import open_result

        try:
            with open_result(path) as ds:
                if ds.attrs.get("study_key") == key_text:
                    if log:
                        log(f"reusing {path.name} (same input, model and settings)")
                    ds = ds.load()
                    ds.attrs["study_reused"] = 1  # in memory only: this run did not compute it
                    return ds
        except CSEInputError:
            pass
    if log:
        log(f"computing {path.name}: {len(frame)} texts, axis {axis}")
    compute(frame, model, tokenizer, axis=axis, level=level, null_permutations=null_permutations, seed=seed,
            batch_size=BATCH_SIZE, output=path, restart=True, progress=progress,
            command=command or f"cse_studies cached_compute {path.name}").close()
    # The key goes into the file itself (an HDF5 attribute is a netCDF global attribute).
    import h5py

    with h5py.File(path, "a") as handle:
        handle.attrs["study_key"] = key_text
    from cse.io import open_result

    with open_result(path) as ds:
        ds = ds.load()
    ds.attrs["study_reused"] = 0
    return ds


def check_out_dir(out) -> Path:
    """Create the output folder (its parent must exist)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CSEInputError(f"Invalid value for '--out': {str(out)!r} exists and is not a folder")
    if not out.parent.is_dir():
        raise CSEInputError(f"Invalid value for '--out': the parent folder {str(out.parent)!r} does not exist")
    out.mkdir(exist_ok=True)
    return out
