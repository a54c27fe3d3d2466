"""CSE results of the studies, computed once per model, corpus and settings, and reused.

A result file ``CORPUS-AXIS-MODEL.nc`` carries, in its global attribute ``study_key``,
the key it was computed for (input hash, model identity, measure settings, batch size,
package version). A later run with the same key opens the file instead of running the
model again; ``recompute=True`` forces a new computation. The key is written and read
through `cse.io` only (`save_result` and `stored_key`, the two places that touch it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

import cse
import cse.io
from cse.errors import CSEInputError
from cse.settings import MeasureSettings
from cse.pipeline import token_lengths

#: Sequences per forward pass (recorded in the key: batches are part of what makes a
#: CPU run bit-for-bit reproducible).
BATCH_SIZE = 16
KEY_ATTR = "study_key"


def model_slug(identity: dict) -> str:
    """A short file-name-safe name of a model: its basename plus 8 hex digits of what identifies it.

    Parameters
    ----------
    identity : dict
        `cse.model_identity` of the model.

    Returns
    -------
    str
        e.g. ``SmolLM2-135M-Instruct-2a6fce1a``.
    """
    name = Path(str(identity.get("model") or identity.get("model_class") or "model")).name
    name = re.sub(r"\.gguf$", "", re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model")
    tag = identity.get("model_sha256") or identity.get("revision") or identity.get("model_class", "")
    if not (identity.get("model_sha256") or identity.get("revision")):
        tag = f"{tag}/{identity.get('n_layers')}/{identity.get('d_model')}"  # unidentified models: their shape
    return f"{name}-{hashlib.sha256(str(tag).encode()).hexdigest()[:8]}"


def token_counts(texts, tokenizer) -> np.ndarray:
    """Tokens of every text as `cse.compute` runs it (its BOS rule included: `cse.pipeline.token_lengths`).

    Parameters
    ----------
    texts : sequence of str
    tokenizer : transformers.PreTrainedTokenizerFast

    Returns
    -------
    ndarray of int64, shape (n_texts,)
    """
    return token_lengths(texts, tokenizer, add_bos=True)


def by_length(frame: pd.DataFrame, tokenizer) -> pd.DataFrame:
    """`frame` sorted by token count (stable), so that batches carry little padding.

    Parameters
    ----------
    frame : pandas.DataFrame
        With column ``text``.
    tokenizer : transformers.PreTrainedTokenizerFast

    Returns
    -------
    pandas.DataFrame
        The rows of `frame` reordered, index reset.
    """
    lengths = token_counts(frame["text"], tokenizer)
    return frame.iloc[np.argsort(lengths, kind="stable")].reset_index(drop=True)


def result_path(folder, corpus: str, axis: str, slug: str) -> Path:
    """The cache file of one corpus (or part of it), axis and model: ``CORPUS-AXIS-MODEL.nc``."""
    return Path(folder) / f"{corpus}-{axis}-{slug}.nc"


def compute_key(frame: pd.DataFrame, identity: dict, settings: MeasureSettings, save=()) -> str:
    """The cache key of one computation, as canonical JSON.

    Parameters
    ----------
    frame : pandas.DataFrame
        The input of `cse.compute`.
    identity : dict
        `cse.model_identity` of the model.
    settings : cse.settings.MeasureSettings
        From `MeasureSettings.resolve`: every measure setting, defaults filled (the
        seed counts only with a null).
    save : sequence of str
        What the result stores besides CSE (``save`` of `cse.compute`).

    Returns
    -------
    str
    """
    measure = dataclasses.asdict(settings)
    if not settings.null_permutations:
        measure["seed"] = 0
    key = {
        "input_sha256": hashlib.sha256(frame.to_json(orient="split").encode()).hexdigest(),
        "n_texts": int(len(frame)),
        **{k: identity.get(k, "") for k in ("model", "model_class", "model_sha256", "revision", "n_layers",
                                            "d_model")},
        **measure,
        "save": sorted(save),
        "batch_size": BATCH_SIZE,
        "cse_version": cse.__version__,
    }
    return json.dumps(key, sort_keys=True, default=str)


def stored_key(path) -> str | None:
    """The ``study_key`` of a cached result, or None (no file, not a result, no key)."""
    path = Path(path)
    if not path.is_file() or not cse.io.is_package_result(path):
        return None
    try:
        return cse.io.result_attrs(path).get(KEY_ATTR)
    except CSEInputError:
        return None


def key_covers(stored: str | None, key: str) -> bool:
    """Whether a cached result computed for `stored` serves a request for `key`.

    The two keys must agree on everything (input, model, settings, batch size, package
    version) except what the result saves besides CSE: a result that saves more (the
    metaphor study's depth results carry Gram matrices) serves a request for less (the
    cross-depth study reads only CSE), so a shared ``--cache`` is reused, not rewritten.

    Parameters
    ----------
    stored : str or None
        From `stored_key`.
    key : str
        From `compute_key`.

    Returns
    -------
    bool
    """
    if stored is None:
        return False
    try:
        have, want = json.loads(stored), json.loads(key)
    except ValueError:
        return False
    if not isinstance(have, dict) or not isinstance(have.get("save"), list):
        return False
    saved, asked = set(map(str, have.pop("save"))), set(want.pop("save"))
    return have == want and asked <= saved


def save_result(ds: xr.Dataset, path, key: str, folder) -> xr.Dataset:
    """Write a computed result with its key into a study folder; the one writer of cache files.

    Parameters
    ----------
    ds : xarray.Dataset
        In memory, from `cse.compute`.
    path : Path
        Inside `folder`.
    key : str
        From `compute_key`.
    folder : StudyFolder
        Checks that an existing `path` is a file this study wrote.

    Returns
    -------
    xarray.Dataset
        The result as read back from `path` (so that a fresh and a reused result are
        the same object, string dtypes included), loaded into memory.
    """
    ds.attrs[KEY_ATTR] = key
    written = folder.write_result(ds, Path(path).name)
    with cse.io.open_result(written) as saved:
        return saved.load()


def cached_compute(frame: pd.DataFrame, path, model, tokenizer, *, identity: dict, folder, axis: str = "depth",
                   level=None, null_permutations: int = 0, seed: int = 0, save=(), recompute: bool = False,
                   progress: bool = False, command: str | None = None, log=None) -> xr.Dataset:
    """CSE of `frame` on `axis`, from `path` when it holds this very computation.

    Parameters
    ----------
    frame : pandas.DataFrame
        Input of `cse.compute` (column ``text`` plus fields), in the order to run.
    path : str or Path
        Result file (``.nc``) inside `folder`.
    model, tokenizer
        A loaded model (`cse.load_model`) and its tokenizer.
    identity : dict
        `cse.model_identity` of the model.
    folder : StudyFolder
        The folder that holds the cache (the study's ``--out`` or ``--cache``).
    axis, level, null_permutations, seed
        Measure settings (SPEC section 2), resolved by `cse.settings.MeasureSettings`;
        `null_permutations` is the order null of the axis (the dimension null on the
        hidden axis, the layer-order null on the depth axis).
    save : sequence of str
        What to store besides CSE (``save`` of `cse.compute`, e.g. ``("gram",)`` so
        that the result can be re-measured without the model).
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
        The result (SPEC section 4) in memory; attribute ``study_reused`` (in memory
        only) is 1 when it was read from `path`, 0 when computed now.
    """
    path = Path(path)
    log = log or (lambda line: None)
    settings = MeasureSettings.resolve(axis, level=level, null_permutations=null_permutations, seed=seed)
    key = compute_key(frame, identity, settings, save)
    if not recompute and key_covers(stored_key(path), key):
        log(f"reusing {path.name} (same input, model and settings)")
        with cse.io.open_result(path) as ds:
            ds = ds.load()
        ds.attrs["study_reused"] = 1
        return ds
    log(f"computing {path.name}: {len(frame)} texts, axis {axis}"
        + (f", {null_permutations} null permutations" if null_permutations else ""))
    ds = cse.compute(frame, model, tokenizer, axis=axis, level=level, null_permutations=null_permutations, seed=seed,
                     save=list(save) or None, batch_size=BATCH_SIZE, progress=progress,
                     command=command or f"cse_studies {path.name}")
    ds = save_result(ds.load(), path, key, folder)
    ds.attrs["study_reused"] = 0
    return ds


def each_model(models=(None,), loaded=None, *, device: str = "cpu", log=None):
    """Load the models of a study one at a time.

    Parameters
    ----------
    models : sequence of (str or None)
        Names for `cse.load_model` (a named offline model such as ``smollm2-135m`` or
        ``gemma-3-270m``, a local path or a cached Hugging Face id; None: the default).
    loaded : sequence of (model, tokenizer), optional
        Already loaded models, used instead of `models`.
    device : str
        Device of the models loaded here.
    log : callable, optional

    Yields
    ------
    model, tokenizer, identity, slug
        The model, its tokenizer, `cse.model_identity` and `model_slug`.
    """
    log = log or (lambda line: None)
    for item in (loaded if loaded is not None else models):
        if loaded is None:
            log(f"loading {item or 'the default model'}")
            model, tokenizer = cse.load_model(item, device=device)
        else:
            model, tokenizer = item
        identity = cse.model_identity(model)
        yield model, tokenizer, identity, model_slug(identity)
