"""The main job: texts in, a Dataset of Conditional Scale Entropy out (SPEC section 4).

The pipeline has three steps:

1. *Plan*: read and tokenize every text up front, align tokens to words and
   check lengths, so bad input fails before the model runs.
2. *Stream*: run the model over batches of sequences, capture the layer
   updates with hooks and reduce them to scale energies at once; only
   ``(n_tokens, n_layers, level + 1)`` numbers per batch are kept.
3. *Sink*: write each batch into its token region of a pre-sized store (memory
   or a Zarr store on disk), so memory does not grow with the number of texts.

On disk a run keeps its state in a staging folder beside the output (`Staging`):
the Zarr store, a manifest of what is being computed and a log of finished
batches. A killed run is continued with ``resume=True`` (batches on disk are not
recomputed); the output appears only, atomically, when every batch is done.
Batches are the unit of work of a Dask cluster too (`cse.distributed`): each is
computed exactly as in one process, so every way of running gives one result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import platform
import socket
import sys
import uuid
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from . import __version__
from .errors import CSEInputError
from .params import (
    AXES,
    BOUNDARIES,
    as_wavelet,
    band_labels,
    check_choice,
    resolve_measure,
    resolve_normalize,
    resolve_seed,
    MeasureSettings,
)
from .params import null_permutations as shared_null_permutations
from .models import ModelInfo, model_info
from .schema import variable_attrs
from .io import check_output, per_word_columns, read_texts, texts_frame, word_spans

DEFAULT_BATCH_SIZE = 16

logger = logging.getLogger("cse")



@dataclasses.dataclass
class Plan:
    """Tokenized corpus: what every batch will compute and where it goes.

    Attributes
    ----------
    sequences : list of ndarray of int64
        Token ids of each forward sequence (one per text, or per window).
    starts : ndarray of int64, shape (n_sequences + 1,)
        Offset of each sequence's first token in the stacked ``token`` dim.
    coords : pandas.DataFrame
        One row per token: the token coordinates of SPEC section 4.
    """

    sequences: list
    starts: np.ndarray
    coords: pd.DataFrame

    @property
    def n_tokens(self) -> int:
        return int(self.starts[-1])

    def batches(self, batch_size: int) -> list[range]:
        """Consecutive sequence index ranges of at most ``batch_size`` sequences."""
        n = len(self.sequences)
        return [range(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


def resolve_settings(axis="depth", wavelet=None, level=None, boundary="reflect", normalize=None,
                     null_permutations=0, seed=0, *, n_layers, d_model, min_tokens=None) -> MeasureSettings:
    """Validate the measure parameters against the model (see `cse.params.resolve_measure`)."""
    resolve_seed(seed)
    axis, wavelet, level, boundary, normalize, null_permutations = resolve_measure(
        axis, wavelet, level, boundary, normalize, null_permutations,
        n_steps={"depth": n_layers, "hidden": d_model, "token": min_tokens or 0},
    )
    return MeasureSettings(axis, wavelet.name, int(level), boundary, normalize, null_permutations, int(seed))


def plan_tokens(frame: pd.DataFrame, tokenizer, *, max_length: int | None, window: int | None = None,
                add_bos: bool = True) -> Plan:
    """Tokenize texts, align tokens to whitespace words and lay out the token dim.

    Parameters
    ----------
    frame : pandas.DataFrame
        From `cse.io.read_texts`: column ``text`` plus per-text and per-word fields,
        indexed by input row.
    tokenizer : transformers.PreTrainedTokenizerFast
        Must return offset mappings (a fast tokenizer).
    max_length : int or None
        The model's context in tokens; longer sequences are an error unless
        ``window`` is given.
    window : int, optional
        Split longer texts into consecutive windows of at most ``window`` tokens
        (including the BOS token when one is added); ``position`` restarts at 0
        in every window.
    add_bos : bool
        Prepend the tokenizer's BOS token when it does not add one itself, so the
        first real token has a prefix (its surprisal is defined) and the attention
        sink falls on a special token.

    Returns
    -------
    Plan

    Raises
    ------
    CSEInputError
        A text longer than the context with no window, or a tokenizer without
        offset mappings.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise CSEInputError(
            f"tokenizer {type(tokenizer).__name__} is not a fast tokenizer; word alignment needs offset mappings"
        )
    texts = frame["text"].tolist()
    encoded = tokenizer(texts, add_special_tokens=True, return_offsets_mapping=True,
                        return_special_tokens_mask=True, return_attention_mask=False)
    bos = tokenizer.bos_token_id
    word_fields = per_word_columns(frame)
    text_fields = [c for c in frame.columns if c != "text" and c not in word_fields]
    limit = window if window is not None else max_length
    if window is not None and max_length is not None and window > max_length:
        raise CSEInputError(f"Invalid value for 'window': {window} exceeds the model's context of {max_length} tokens")
    if window is not None and window < 2 + bool(add_bos):
        raise CSEInputError(f"Invalid value for 'window': expected at least {2 + bool(add_bos)} tokens, got {window}")

    sequences, columns = [], {k: [] for k in ("text", "position", "token_id", "word", "is_word_start", "is_special")}
    field_rows = []  # (frame row position, word index array) per sequence
    for i, (row, text) in enumerate(zip(frame.index, texts)):
        ids = np.asarray(encoded["input_ids"][i], dtype=np.int64)
        offsets = np.asarray(encoded["offset_mapping"][i], dtype=np.int64).reshape(-1, 2)
        special = np.asarray(encoded["special_tokens_mask"][i], dtype=bool)
        if add_bos and bos is not None and (len(ids) == 0 or ids[0] != bos):
            ids = np.concatenate([[bos], ids])
            offsets = np.concatenate([[[0, 0]], offsets])
            special = np.concatenate([[True], special])
        word = _align_words(text, offsets, special)
        starts = np.r_[True, word[1:] != word[:-1]] & (word >= 0)
        n = len(ids)
        if limit is not None and n > limit:
            if window is None:
                raise CSEInputError(
                    f"text {row} has {n} tokens, more than the model's context of {max_length}; "
                    f"shorten it or pass --window N to split long texts into windows"
                )
            lead = int(special[0] and add_bos and bos is not None)
            body = np.arange(lead, n)
            step = window - lead
            pieces = [np.r_[np.arange(lead), body[k:k + step]] for k in range(0, len(body), step)]
        else:
            pieces = [np.arange(n)]
        for piece in pieces:
            sequences.append(ids[piece])
            columns["text"].append(np.full(len(piece), row, dtype=np.int64))
            columns["position"].append(np.arange(len(piece), dtype=np.int64))
            columns["token_id"].append(ids[piece])
            columns["word"].append(word[piece])
            columns["is_word_start"].append(starts[piece])
            columns["is_special"].append(special[piece])
            field_rows.append((i, word[piece]))

    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    coords = pd.DataFrame({k: np.concatenate(v) for k, v in columns.items()})
    coords.insert(3, "token_str", _token_strings(tokenizer, coords["token_id"].to_numpy()))
    for name in text_fields:
        values = frame[name].to_numpy()
        coords[name] = _coordinate_values(np.concatenate([np.repeat(values[i:i + 1], len(w)) for i, w in field_rows]))
    for name in word_fields:
        lists = frame[name].tolist()
        flat = [lists[i][k] if k >= 0 else None for i, w in field_rows for k in w]
        coords[name] = _word_field_values(flat)
    return Plan(sequences=sequences, starts=np.r_[0, np.cumsum(lengths)], coords=coords)


def _align_words(text: str, offsets: np.ndarray, special: np.ndarray) -> np.ndarray:
    """Index of the whitespace word holding each token's first non-space character, -1 if none."""
    spans = word_spans(text)
    word = np.full(len(offsets), -1, dtype=np.int64)
    if len(spans) == 0:
        return word
    start, stop = offsets[:, 0], offsets[:, 1]
    # Byte-level BPE offsets may include the leading space: move to the first non-space char.
    first = start.copy()
    for k in np.flatnonzero((stop > start) & ~special):
        piece = text[start[k]:stop[k]]
        first[k] = start[k] + (len(piece) - len(piece.lstrip()))
    idx = np.searchsorted(spans[:, 0], first, side="right") - 1
    valid = (stop > start) & ~special & (idx >= 0) & (first < stop)
    valid &= first < spans[np.clip(idx, 0, None), 1]
    word[valid] = idx[valid]
    return word


def _token_strings(tokenizer, ids: np.ndarray) -> np.ndarray:
    unique, inverse = np.unique(ids, return_inverse=True)
    pieces = tokenizer.batch_decode(unique[:, None].tolist(), skip_special_tokens=False,
                                    clean_up_tokenization_spaces=False)
    return np.asarray(pieces, dtype=object)[inverse]


def _coordinate_values(values: np.ndarray) -> np.ndarray:
    """Per-token copies of an input column, as a netCDF-friendly dtype (bool, int64, float64 or str)."""
    series = pd.Series(values)
    if series.dtype.kind in "biuf":
        return series.to_numpy()
    if series.map(lambda v: isinstance(v, (bool, np.bool_))).all():
        return series.astype(bool).to_numpy()
    numeric = pd.to_numeric(series, errors="coerce")
    if numeric.notna().all():
        integral = (numeric % 1 == 0).all()
        return numeric.astype(np.int64 if integral else np.float64).to_numpy()
    return series.astype(str).to_numpy(dtype=object)


def _word_field_values(flat: list) -> np.ndarray:
    present = [v for v in flat if v is not None]
    if present and all(isinstance(v, (int, np.integer, bool)) for v in present):
        return np.array([-1 if v is None else int(v) for v in flat], dtype=np.int64)
    if present and all(isinstance(v, (int, float, np.number)) for v in present):
        return np.array([np.nan if v is None else float(v) for v in flat], dtype=np.float64)
    return np.array(["" if v is None else str(v) for v in flat], dtype=object)

# --------------------------------------------------------------------------- stream


def reduce_updates(u: np.ndarray, settings: MeasureSettings, permutations=None) -> dict:
    """Reduce the layer updates of one sequence to the per-token result arrays.

    Parameters
    ----------
    u : ndarray, shape (n_layers, n_tokens, d_model)
        Layer updates of one sequence (float32 or float64).
    settings : MeasureSettings
    permutations : ndarray of int64, shape (P, d_model), optional
        The shared dimension permutations (``hidden`` axis null).

    Returns
    -------
    dict of ndarray
        ``cse`` and ``update_norm`` of shape (n_tokens, n_layers),
        ``scale_fraction`` of shape (n_tokens, n_layers, level + 1), and with a
        null ``cse_null_mean``, ``cse_null_std``, ``cse_z`` (n_tokens, n_layers);
        all float64.
    """
    from .measure import _cse_arrays

    out = _cse_arrays(u, settings.axis, as_wavelet(settings.wavelet), settings.level, settings.boundary,
                      settings.normalize == "unit", permutations)
    # _cse_arrays is layer-major; results are token-major (SPEC section 4).
    return {name: np.swapaxes(value, 0, 1) for name, value in out.items()}


def reduce_updates_torch(u, settings: MeasureSettings, permutations=None) -> dict:
    """`reduce_updates` on the tensor's own device, with `cse_kernels.torch_twin`.

    The GPU path: layer updates are reduced to scale energies where the model ran,
    so only ``(n_tokens, n_layers, level + 1)`` numbers leave the device.

    Parameters
    ----------
    u : torch.Tensor, shape (n_layers, n_tokens, d_model)
        Layer updates on any device; bfloat16/float16 are taken as float32.
    settings, permutations
        As in `reduce_updates`.

    Returns
    -------
    dict of ndarray
        As `reduce_updates`, float64 on the CPU. Band energies and norms are
        accumulated in float64 on the device.
    """
    import torch

    from cse_kernels import torch_twin

    wavelet = as_wavelet(settings.wavelet)
    lo, hi = np.asarray(wavelet.dec_lo), np.asarray(wavelet.dec_hi)
    unit = settings.normalize == "unit"
    if u.dtype not in (torch.float32, torch.float64):
        u = u.float()
    n_layers, n_tokens, d_model = u.shape
    tokens_first = u.transpose(0, 1)  # (n_tokens, n_layers, d_model)
    # 1. Update norms, one layer at a time so that no float64 copy of u exists.
    norms = torch.stack([torch.linalg.vector_norm(u[l].double(), dim=-1) for l in range(n_layers)], dim=1)
    # 2. Band energies, token-major (n_tokens, n_layers, level + 1).
    rows = None
    if settings.axis == "depth":
        energies = torch_twin.modwt_energies(tokens_first.contiguous(), lo, hi, settings.level,
                                             boundary=settings.boundary, unit=unit)
    elif settings.axis == "token":
        energies = torch_twin.modwt_energies(u.contiguous(), lo, hi, settings.level,
                                             boundary=settings.boundary, unit=unit).transpose(0, 1)
    else:
        rows = tokens_first.reshape(-1, d_model)
        if unit:
            row_norms = norms.reshape(-1, 1).to(rows.dtype)
            rows = rows / torch.where(row_norms > 0, row_norms, torch.ones_like(row_norms))
        energies = torch_twin.dwt_energies(rows, lo, hi, settings.level).reshape(n_tokens, n_layers, -1)
    cse, fractions = torch_twin.scale_entropy(torch.as_tensor(energies).double())
    out = {"cse": cse, "scale_fraction": fractions, "update_norm": norms}
    # 3. Dimension-permutation null (hidden axis).
    if permutations is not None and len(permutations):
        perms = torch.as_tensor(np.asarray(permutations), device=rows.device)
        null = torch.as_tensor(torch_twin.dwt_null_entropy(rows, lo, hi, settings.level, perms)).double()
        null = null.reshape(n_tokens, n_layers, -1)
        mean, std = null.mean(-1), null.std(-1, correction=1)
        from .measure import _NULL_STD_FLOOR

        z = torch.where(std > _NULL_STD_FLOOR, (cse - mean) / torch.where(std > 0, std, torch.ones_like(std)),
                        torch.full_like(std, float("nan")))
        out.update(cse_null_mean=mean, cse_null_std=std, cse_z=z)
    return {name: torch.as_tensor(value).double().cpu().numpy() for name, value in out.items()}


def _torch_twin_available() -> bool:
    try:
        from cse_kernels import torch_twin  # noqa: F401
    except ImportError:
        return False
    return all(hasattr(torch_twin, f) for f in ("modwt_energies", "dwt_energies", "dwt_null_entropy", "scale_entropy"))


def null_permutations_for(settings: MeasureSettings, d_model: int):
    """The one seeded set of dimension permutations shared by every cell, or None."""
    return shared_null_permutations(settings.seed, settings.null_permutations, d_model)


def pad_batch(sequences, pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad token id sequences into ``ids`` and ``mask`` arrays, int64 (batch, max length)."""
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    ids = np.full((len(sequences), int(lengths.max())), pad_id, dtype=np.int64)
    mask = (np.arange(ids.shape[1]) < lengths[:, None]).astype(np.int64)
    ids[mask.astype(bool)] = np.concatenate(sequences)
    return ids, mask


def run_batch(model, sequences, settings: MeasureSettings, permutations=None, pad_id: int = 0, reducer: str = "auto") -> dict:
    """Forward one batch of sequences and return its stacked per-token results.

    Parameters
    ----------
    model : transformers.PreTrainedModel
    sequences : list of ndarray of int64
        Token ids of each sequence of the batch (right-padded with `pad_id`).
    settings : MeasureSettings
    permutations : ndarray of int64, shape (P, d_model), optional
    pad_id : int
    reducer : {'auto', 'numpy', 'torch'}
        Where the updates are reduced: ``'torch'`` on their device with
        `cse_kernels.torch_twin`, ``'numpy'`` on the CPU with the Numba kernels;
        ``'auto'`` picks torch when the updates are on a GPU.

    Returns
    -------
    dict of ndarray
        As `reduce_updates`, stacked over the batch's tokens in order, plus
        ``surprisal`` of shape (n_tokens,) in nats.
    """
    import torch

    from .capture import forward_with_updates

    check_choice("reducer", reducer, ("auto", "numpy", "torch"))
    lengths = [len(s) for s in sequences]
    ids, mask = pad_batch(sequences, pad_id)
    updates, surprisal = forward_with_updates(model, torch.from_numpy(ids), torch.from_numpy(mask),
                                              dtype=torch.float32)
    if reducer == "auto":
        reducer = "torch" if updates.device.type == "cuda" and _torch_twin_available() else "numpy"
    if reducer == "torch":
        def reduce(u):
            return reduce_updates_torch(u, settings, permutations)
    else:
        def reduce(u):
            return reduce_updates(_to_numpy(u), settings, permutations)
    if settings.axis == "token":
        parts = [reduce(updates[:, b, :n]) for b, n in enumerate(lengths)]
    else:
        # depth and hidden treat tokens independently: one call for the whole batch.
        valid = torch.from_numpy(mask.astype(bool)).to(updates.device)
        parts = [reduce(updates[:, valid])]
    del updates
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    sur = surprisal.numpy()
    out["surprisal"] = sur[mask.astype(bool)]
    return out


def _to_numpy(t) -> np.ndarray:
    import torch

    if t.dtype not in (torch.float32, torch.float64):
        t = t.float()
    return t.detach().cpu().numpy()


# --------------------------------------------------------------------------- sinks

#: Bytes of one token chunk of the largest variable (scale_fraction) in a Zarr store.
ZARR_CHUNK_BYTES = 4 * 2**20

_SHAPES = {
    "cse": ("token", "layer"),
    "scale_fraction": ("token", "layer", "scale"),
    "update_norm": ("token", "layer"),
    "surprisal": ("token",),
}
_NULL_NAMES = ("cse_null_mean", "cse_null_std", "cse_z")


def token_chunk(n_tokens: int, n_layers: int, n_band: int) -> int:
    """Tokens per Zarr chunk: a power of two with about `ZARR_CHUNK_BYTES` per chunk (>= 256)."""
    per_token = 8 * n_layers * n_band
    size = 2 ** int(np.log2(max(1, ZARR_CHUNK_BYTES // per_token)))
    return int(max(1, min(max(256, size), n_tokens)))


def result_template(plan: Plan, settings: MeasureSettings, attrs: dict, n_layers: int, lazy: bool,
                    chunk: int | None = None) -> xr.Dataset:
    """The result Dataset with coordinates and attributes, variables filled with NaN.

    With ``lazy=True`` the variables are Dask arrays of ``chunk`` tokens, so the
    template can be written as Zarr metadata (``compute=False``) without
    allocating them; the chunks become those of the store.
    """
    n_tok, n_band = plan.n_tokens, settings.level + 1
    shapes = dict(_SHAPES)
    if settings.null_permutations:
        shapes.update({k: ("token", "layer") for k in _NULL_NAMES})
    sizes = {"token": n_tok, "layer": n_layers, "scale": n_band}
    chunks = {"token": chunk or token_chunk(n_tok, n_layers, n_band), "layer": n_layers, "scale": n_band}
    data_vars = {}
    for name, dims in shapes.items():
        shape = tuple(sizes[d] for d in dims)
        if lazy:
            import dask.array as da

            data = da.full(shape, np.nan, dtype=np.float64, chunks=tuple(chunks[d] for d in dims))
        else:
            data = np.full(shape, np.nan, dtype=np.float64)
        data_vars[name] = xr.Variable(dims, data, attrs=variable_attrs(name))
    coords = {name: ("token", plan.coords[name].to_numpy()) for name in plan.coords.columns}
    coords["layer"] = ("layer", np.arange(n_layers, dtype=np.int64))
    coords["depth"] = ("layer", (np.arange(n_layers) + 1) / n_layers,
                       {"long_name": "relative depth (layer + 1) / n_layers", "units": "1"})
    coords["scale"] = ("scale", np.array(band_labels(settings.level), dtype=object),
                       {"long_name": "wavelet band: details d1..dJ (fine to coarse), approximation aJ"})
    ds = xr.Dataset(data_vars, coords=coords, attrs=attrs)
    ds["word"].attrs = {"long_name": "index of the token's word in text.split(); -1 for special tokens"}
    ds["position"].attrs = {"long_name": "position of the token in its model input sequence"}
    ds["text"].attrs = {"long_name": "0-based row of the text in the input"}
    return ds


class MemorySink:
    """Collects batch results in a NumPy-backed result Dataset."""

    def __init__(self, template: xr.Dataset):
        self.ds = template

    def write(self, start: int, stop: int, arrays: dict) -> None:
        for name, value in arrays.items():
            self.ds[name].values[start:stop] = value

    def close(self) -> xr.Dataset:
        return self.ds


class ZarrSink:
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
        self.chunk = int(self.arrays["cse"].chunks[0])
        self.n_tokens = int(self.arrays["cse"].shape[0])
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
        import contextlib

        with contextlib.ExitStack() as held:
            if self.lock is not None:
                for index in self.shared_chunks(start, stop):
                    held.enter_context(self.lock(index))
            for name, value in arrays.items():
                self.arrays[name][start:stop] = value

    def close(self) -> xr.Dataset:
        return xr.open_zarr(self.store)


# --------------------------------------------------------------------------- staging and resume


class Staging:
    """The on-disk state of a run that writes ``output``: a hidden folder beside it.

    Layout of ``.NAME.partial/`` (NAME = the output's file name)::

        lock            held (flock) by the run writing it
        store.zarr/     the result's Zarr store, pre-sized, filled batch by batch
        manifest.json   what the run computes (input hash, model, settings, plan)
        done/*.log      batch indices, one per line, appended after each batch's
                        region write has finished (one log per writing process)

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
        from .io import remove_path

        for path in (self.manifest_path, self.store, self.done_dir):
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

        from .io import atomic_path, output_format, remove_path, write_netcdf

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


def _check_manifest(previous: dict, current: dict, output) -> None:
    for key in MANIFEST_FIELDS:
        if previous.get(key) != current.get(key):
            raise CSEInputError(
                f"cannot resume {output}: the interrupted run has {key} = {previous.get(key)!r}, this run "
                f"{current.get(key)!r}; rerun with the same input, model and options, or pass --restart to discard it"
            )


def _input_sha256(texts, frame: pd.DataFrame) -> str:
    digest = hashlib.sha256()
    if isinstance(texts, (str, Path)):
        with open(texts, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    else:
        digest.update(frame.to_json(orient="split", default_handler=str).encode())
    return digest.hexdigest()


def _tokens_sha256(plan: Plan) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(plan.starts, dtype=np.int64).tobytes())
    digest.update(np.concatenate(plan.sequences).astype(np.int64).tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- public


def compute(texts, model=None, tokenizer=None, *, text_column=None, encoding="utf-8", axis="depth", wavelet=None,
            level=None, boundary="reflect", normalize=None, null_permutations=0, seed=0,
            batch_size=DEFAULT_BATCH_SIZE, device="auto", dtype=None, device_map=None, window=None, add_bos=True,
            output=None, resume=False, restart=False, workers=None, scheduler=None, zarr_chunk=None,
            progress=False, command=None, overwrite=False) -> xr.Dataset:
    """Compute Conditional Scale Entropy for every token of every text.

    Parameters
    ----------
    texts : str or Path, sequence of str, or pandas.DataFrame
        A file (plain text, JSON Lines or CSV; see `cse.io.read_texts`), a list
        of texts, or a DataFrame with a ``text`` column (other columns become
        token coordinates).
    model : str, None, or transformers.PreTrainedModel
        A model name for `cse.load_model` (None: the default SmolLM2-135M), or a
        loaded model (then ``tokenizer`` is required).
    tokenizer : transformers.PreTrainedTokenizerFast, optional
        Required with a loaded model.
    text_column, encoding : str
        For file input: the text column (CSV/JSON Lines) and the file encoding.
    axis, wavelet, level, boundary, normalize, null_permutations, seed
        As in `cse.conditional_scale_entropy` (SPEC section 2).
    batch_size : int
        Sequences per forward pass. Batches are consecutive sequences; a batch
        is the unit of work of resume and of distributed runs.
    device, dtype, device_map : str, optional
        For `cse.load_model` when ``model`` is a name: ``device`` ``'auto'``,
        ``'cpu'``, ``'cuda'``, ``'cuda:N'``; ``dtype`` of the weights
        (``'float32'``, ``'bfloat16'``, ``'float16'``); ``device_map`` (e.g.
        ``'auto'``, needs accelerate) spreads a large model over devices. On a
        GPU the updates are reduced on the device (`cse_kernels.torch_twin`);
        energies are accumulated in float64 whatever the weights' dtype.
    window : int, optional
        Split texts longer than ``window`` tokens into windows instead of failing.
    add_bos : bool
        Prepend the BOS token when the tokenizer does not (see `plan_tokens`).
    output : str or Path, optional
        Write the result to ``.nc`` (netCDF4) or ``.zarr``, streaming batch by
        batch into a staging Zarr store ``.NAME.partial/`` beside it (see
        `Staging`); the output appears only when every batch is done. The
        returned Dataset is then opened lazily from the file.
    resume : bool
        Continue an interrupted run of the same ``output``: batches already on
        disk are not recomputed. Refused (`CSEInputError` naming the first
        difference) if the input file, the model or any setting differs.
        Without an interrupted run, starts from the beginning.
    restart : bool
        Discard the partial results of an interrupted run of ``output``. Without
        ``resume`` or ``restart``, an interrupted run with finished batches is
        an error, so that no work is lost silently.
    workers : int, optional
        Run on a `dask.distributed.LocalCluster` of this many worker processes
        (one thread each), on this machine.
    scheduler : str, optional
        Address of a running Dask scheduler (e.g. ``tcp://10.0.0.1:8786``). The
        workers need the model (``model`` must be a name or path they can load)
        and the output folder on a shared file system.
    zarr_chunk : int, optional
        Tokens per chunk of the Zarr store (default: about 4 MiB per chunk of
        ``scale_fraction``, see `token_chunk`).
    progress : bool
        Show a progress bar on stderr.
    command : str, optional
        Recorded in the ``command`` attribute (default: the Python call).
    overwrite : bool
        Replace an existing ``output`` (a file, or a result store of this package;
        a folder that cse did not write is never replaced). Without it an existing
        output is an error, raised before any work.

    Returns
    -------
    xarray.Dataset
        dims ``token``, ``layer``, ``scale``; variables ``cse (token, layer)``,
        ``scale_fraction (token, layer, scale)``, ``update_norm (token, layer)``,
        ``surprisal (token)`` in nats (all float64); token coordinates ``text``,
        ``position``, ``token_id``, ``token_str``, ``word``, ``is_word_start``,
        ``is_special`` and the input's fields; ``depth`` on ``layer``; the run's
        settings in the attributes (SPEC section 4). Identical (values and
        attributes) whether computed in one process, on a Dask cluster, or
        resumed after an interruption.

    Raises
    ------
    CSEInputError
        Bad input file, column, parameter value, a text longer than the model's
        context without ``window``, a model that cannot be loaded offline, a
        mismatched resume, or an interrupted run left without ``resume`` or
        ``restart``.
    TypeError
        A loaded model without its tokenizer, or with ``workers``/``scheduler``.

    Notes
    -----
    Each batch is computed exactly as in a single-process run (same sequences,
    same padding), whichever process computes it, so the results are identical.
    """
    import contextlib

    # 1. Validate what needs no model, and read the texts: fail before loading.
    check_choice("axis", axis, AXES)
    check_choice("boundary", boundary, BOUNDARIES)
    resolve_normalize(axis, normalize)
    if wavelet is not None:
        as_wavelet(wavelet)
    _check_positive_int("batch_size", batch_size)
    if zarr_chunk is not None:
        _check_positive_int("zarr_chunk", zarr_chunk)
    distributed = workers is not None or scheduler is not None
    if workers is not None:
        _check_positive_int("workers", workers)
        if scheduler is not None:
            raise CSEInputError("give either --workers (a local cluster) or --scheduler (a running one), not both")
    if output is not None:
        check_output(output, inputs=[texts] if isinstance(texts, (str, Path)) else [], overwrite=overwrite)
    elif resume or restart or distributed:
        flag = "resume" if resume else "restart" if restart else "workers/scheduler"
        raise CSEInputError(f"Invalid value for 'output': {flag} needs an output file (.nc or .zarr)")
    if resume and restart:
        raise CSEInputError("give either --resume (continue an interrupted run) or --restart (discard it), not both")
    if distributed and not (model is None or isinstance(model, (str, Path))):
        raise TypeError("Invalid type for 'model': a distributed run needs the model's name or path, "
                        "so that every worker loads it itself")
    if isinstance(texts, (str, Path)):
        frame = read_texts(texts, text_column=text_column, encoding=encoding)
    else:
        frame = texts_frame(texts if text_column is None else _rename_text(texts, text_column))

    with contextlib.ExitStack() as stack:
        # 2. Model (here, or on the workers), settings, plan.
        name = None if model is None or not isinstance(model, (str, Path)) else str(model)
        if distributed:
            from .distributed import ModelSpec, cluster_client, remote_model_info

            cluster = stack.enter_context(contextlib.ExitStack())  # closed early, before the conversion
            client = cluster.enter_context(cluster_client(workers=workers, scheduler=scheduler))
            spec = ModelSpec(name, device, dtype, device_map)
            info = remote_model_info(client, spec)
        else:
            if model is None or isinstance(model, (str, Path)):
                from .models import load_model

                model, tokenizer = load_model(name, device=device, dtype=dtype, device_map=device_map)
            elif tokenizer is None:
                raise TypeError("Invalid value for 'tokenizer': required when 'model' is a loaded model")
            info = model_info(model, tokenizer)
        plan = plan_tokens(frame, info.tokenizer, max_length=info.max_length, window=window, add_bos=add_bos)
        if axis == "token":
            _check_token_axis(plan, level, wavelet)
        settings = resolve_settings(axis, wavelet, level, boundary, normalize, null_permutations, seed,
                                    n_layers=info.n_layers, d_model=info.d_model,
                                    min_tokens=min(len(s) for s in plan.sequences))
        attrs = _attributes(info, settings, add_bos, window, command)
        permutations = null_permutations_for(settings, info.d_model)
        batches = plan.batches(batch_size)

        # 3. Stream batches into memory ...
        if output is None:
            sink = MemorySink(result_template(plan, settings, attrs, info.n_layers, lazy=False))
            for batch in batches:
                _write_batch(model, plan, batch, settings, permutations, info.pad_id, sink)
            return sink.close()

        # ... or into the staging store, skipping batches an interrupted run finished.
        output = Path(output)
        if not output.parent.is_dir():
            raise CSEInputError(f"Output folder {str(output.parent)!r} does not exist; create it first")
        manifest = {
            "manifest_version": 1, "cse_version": __version__, "input_sha256": _input_sha256(texts, frame),
            "text_column": text_column, "encoding": encoding if isinstance(texts, (str, Path)) else None,
            **{k: info.identity.get(k) for k in ("model", "model_class", "revision", "model_sha256")},
            "weights_sha256": info.weights_sha256, "n_layers": info.n_layers, "d_model": info.d_model,
            "dtype": info.dtype, **settings.attrs(), "batch_size": int(batch_size),
            "window": None if window is None else int(window), "add_bos": bool(add_bos),
            "n_texts": len(frame), "n_tokens": plan.n_tokens, "n_batches": len(batches),
            "tokens_sha256": _tokens_sha256(plan),
        }
        staging = stack.enter_context(Staging(output))
        previous = None if restart else staging.read_manifest()
        done = staging.done_batches() if previous is not None else set()
        if previous is not None and resume:
            _check_manifest(previous, manifest, output)
            logger.info("resuming %s: %d of %d batches already done", output, len(done), len(batches))
        elif previous is not None and done:
            raise CSEInputError(
                f"an interrupted run of {output} left {len(done)} of {previous.get('n_batches')} batches in "
                f"{staging.root}; add --resume to continue it or --restart to discard it"
            )
        else:
            if resume:
                logger.info("no interrupted run of %s to resume; starting from the beginning", output)
            done = set()
            template = result_template(plan, settings, attrs, info.n_layers, lazy=True, chunk=zarr_chunk)
            staging.initialize(template, manifest)
        todo = [i for i in range(len(batches)) if i not in done]
        n_todo = sum(int(plan.starts[batches[i].stop] - plan.starts[batches[i].start]) for i in todo)
        bar = stack.enter_context(_progress_bar(plan.n_tokens, progress, initial=plan.n_tokens - n_todo))
        if distributed:
            from .distributed import run_batches

            run_batches(client, spec, staging, plan, batches, todo, settings, permutations, info.pad_id, bar)
            cluster.close()
        else:
            sink = ZarrSink(staging.store)
            log = DoneLog(staging.done_dir)
            try:
                for i in todo:
                    _write_batch(model, plan, batches[i], settings, permutations, info.pad_id, sink)
                    log.mark(i)
                    bar.update(int(plan.starts[batches[i].stop] - plan.starts[batches[i].start]))
            finally:
                log.close()
        # 4. All batches done: the output appears atomically.
        bar.close()
        logger.info("computed %d of %d batches", len(todo), len(batches))
        staging.finalize(overwrite=overwrite)
    from .io import open_result

    return open_result(output, chunks={})


def _write_batch(model, plan, batch, settings, permutations, pad_id, sink) -> None:
    arrays = run_batch(model, [plan.sequences[i] for i in batch], settings, permutations, pad_id)
    sink.write(int(plan.starts[batch.start]), int(plan.starts[batch.stop]), arrays)


def _progress_bar(total: int, progress: bool, initial: int = 0):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="tok", disable=not progress, file=sys.stderr,
                desc="cse compute", dynamic_ncols=True)


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise CSEInputError(f"Invalid value for {name!r}: expected an integer >= 1, got {value!r}")


def _rename_text(texts, text_column):
    if not isinstance(texts, pd.DataFrame):
        raise TypeError("'text_column' applies to file or DataFrame input")
    if text_column not in texts.columns:
        raise CSEInputError(f"Invalid value for 'text_column': {text_column!r} is not a column "
                            f"(columns: {', '.join(map(str, texts.columns))})")
    frame = texts.rename(columns={"text": "text_field"}) if text_column != "text" else texts
    return frame.rename(columns={text_column: "text"})


def _check_token_axis(plan: Plan, level, wavelet) -> None:
    level = 3 if level is None else level
    if isinstance(level, (int, np.integer)) and not isinstance(level, bool):
        lengths = np.diff(plan.starts)
        short = np.flatnonzero(lengths < 2**level)
        if len(short):
            text = int(plan.coords["text"].to_numpy()[plan.starts[short[0]]])
            raise CSEInputError(
                f"Invalid value for 'level': the token axis needs at least 2**{level} = {2**level} tokens per "
                f"sequence but text {text} has {lengths[short[0]]}; lower --level or drop short texts"
            )


def _attributes(info: ModelInfo, settings: MeasureSettings, add_bos, window, command) -> dict:
    import torch
    import transformers

    if command is None:
        command = "cse.compute(...)"
    attrs = {
        **info.identity,
        "n_layers": info.n_layers,
        "d_model": info.d_model,
        **settings.attrs(),
        "dtype": info.dtype,
        "add_bos": int(bool(add_bos)),
        "window": -1 if window is None else int(window),
        "cse_version": __version__,
        "transformers_version": transformers.__version__,
        "torch_version": str(torch.__version__),
        "python_version": platform.python_version(),
        "command": command,
        "Conventions": "CF-1.10",
        "title": "Conditional Scale Entropy of transformer layer updates",
        "references": "Chakrabarti et al. 2026, arXiv 2605.21391; Percival & Walden 2000, ch. 5",
    }
    return {k: ("" if v is None else v) for k, v in attrs.items()}


warnings.filterwarnings("ignore", message=".*StringDType.*")
