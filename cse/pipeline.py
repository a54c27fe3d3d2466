"""The main job: texts in, a Dataset of Conditional Scale Entropy out (SPEC section 4).

The pipeline has three steps:

1. *Plan*: read and tokenize every text up front, align tokens to words and
   check lengths, so bad input fails before the model runs.
2. *Stream*: run the model over batches of sequences, capture the layer
   updates with hooks and reduce them to scale energies at once; only
   ``(n_tokens, n_layers, level + 1)`` numbers per batch are kept.
3. *Sink*: write each batch into its token region of a pre-sized store (memory
   or a Zarr store on disk), so memory does not grow with the number of texts.
"""

from __future__ import annotations

import dataclasses
import platform
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from . import __version__
from ._errors import CSEInputError
from ._params import (
    AXES,
    BOUNDARIES,
    DEFAULT_WAVELET,
    as_wavelet,
    band_labels,
    check_choice,
    resolve_level,
    resolve_normalize,
    resolve_seed,
)
from .io import output_format, per_word_columns, read_texts, texts_frame, word_spans

DEFAULT_BATCH_SIZE = 16

VARIABLE_ATTRS = {
    "cse": {"long_name": "conditional scale entropy of the layer update", "units": "1"},
    "scale_fraction": {"long_name": "fraction of layer-update energy in each wavelet band", "units": "1"},
    "update_norm": {"long_name": "L2 norm of the layer update", "units": "1"},
    "surprisal": {"long_name": "surprisal of the token given its prefix, -ln p(x_t | x_<t)", "units": "nat"},
    "cse_null_mean": {"long_name": "mean CSE over dimension permutations of the hidden index", "units": "1"},
    "cse_null_std": {"long_name": "standard deviation of CSE over dimension permutations", "units": "1"},
    "cse_z": {"long_name": "CSE standardized against the dimension-permutation null", "units": "1"},
}


@dataclasses.dataclass(frozen=True)
class Settings:
    """Resolved measure settings shared by every batch of a run."""

    axis: str
    wavelet: str
    level: int
    boundary: str
    normalize: str
    null_permutations: int
    seed: int

    def attrs(self) -> dict:
        return dataclasses.asdict(self)


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
                     null_permutations=0, seed=0, *, n_layers, d_model, min_tokens=None) -> Settings:
    """Validate the measure parameters against the model (see `conditional_scale_entropy`)."""
    check_choice("axis", axis, AXES)
    check_choice("boundary", boundary, BOUNDARIES)
    wavelet = as_wavelet(DEFAULT_WAVELET[axis] if wavelet is None else wavelet)
    n_steps = {"depth": n_layers, "hidden": d_model, "token": min_tokens or 0}[axis]
    level = resolve_level(axis, level, n_steps, wavelet)
    normalize = resolve_normalize(axis, normalize)
    if isinstance(null_permutations, bool) or not isinstance(null_permutations, (int, np.integer)) or null_permutations < 0:
        raise CSEInputError(f"Invalid value for 'null_permutations': expected an integer >= 0, got {null_permutations!r}")
    if null_permutations and axis != "hidden":
        raise CSEInputError(
            "Invalid value for 'null_permutations': the dimension-permutation null applies to the 'hidden' axis only; "
            "use --axis hidden or --null-permutations 0"
        )
    if null_permutations == 1:
        raise CSEInputError("Invalid value for 'null_permutations': a null needs at least 2 permutations for its std")
    resolve_seed(seed)
    return Settings(axis, wavelet.name, int(level), boundary, normalize, int(null_permutations), int(seed))


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


def reduce_updates(u: np.ndarray, settings: Settings, permutations=None) -> dict:
    """Reduce the layer updates of one sequence to the per-token result arrays.

    Parameters
    ----------
    u : ndarray, shape (n_layers, n_tokens, d_model)
        Layer updates of one sequence (float32 or float64).
    settings : Settings
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


def null_permutations_for(settings: Settings, d_model: int):
    """The one seeded set of dimension permutations shared by every cell, or None."""
    if not settings.null_permutations:
        return None
    rng = resolve_seed(settings.seed)
    return np.argsort(rng.random((settings.null_permutations, d_model)), axis=1)


def run_batch(model, plan: Plan, batch: range, settings: Settings, permutations=None, pad_id: int = 0) -> dict:
    """Forward one batch of sequences and return its stacked per-token results.

    Returns
    -------
    dict of ndarray
        As `reduce_updates`, stacked over the batch's tokens in order, plus
        ``surprisal`` of shape (n_tokens,) in nats.
    """
    import torch

    from .capture import forward_with_updates

    seqs = [plan.sequences[i] for i in batch]
    lengths = [len(s) for s in seqs]
    width = max(lengths)
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for b, s in enumerate(seqs):
        ids[b, :len(s)] = s
        mask[b, :len(s)] = 1
    device = next(model.parameters()).device
    updates, surprisal = forward_with_updates(
        model, torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)
    )
    parts = []
    if settings.axis == "token":
        for b, n in enumerate(lengths):
            parts.append(reduce_updates(_to_numpy(updates[:, b, :n]), settings, permutations))
    else:
        # depth and hidden treat tokens independently: one call for the whole batch.
        valid = torch.from_numpy(mask.astype(bool)).to(updates.device)
        parts.append(reduce_updates(_to_numpy(updates[:, valid]), settings, permutations))
    del updates
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    sur = surprisal.numpy()
    out["surprisal"] = np.concatenate([sur[b, :n] for b, n in enumerate(lengths)])
    return out


def _to_numpy(t) -> np.ndarray:
    import torch

    if t.dtype not in (torch.float32, torch.float64):
        t = t.float()
    return t.detach().cpu().numpy()


# --------------------------------------------------------------------------- sinks


def result_template(plan: Plan, settings: Settings, attrs: dict, n_layers: int, lazy: bool) -> xr.Dataset:
    """The result Dataset with coordinates and attributes, variables filled with NaN.

    With ``lazy=True`` the variables are Dask arrays, so the template can be
    written as Zarr metadata (``compute=False``) without allocating them.
    """
    n_tok, n_band = plan.n_tokens, settings.level + 1
    shapes = {
        "cse": ("token", "layer"),
        "scale_fraction": ("token", "layer", "scale"),
        "update_norm": ("token", "layer"),
        "surprisal": ("token",),
    }
    if settings.null_permutations:
        shapes.update({k: ("token", "layer") for k in ("cse_null_mean", "cse_null_std", "cse_z")})
    sizes = {"token": n_tok, "layer": n_layers, "scale": n_band}
    chunk = {"token": max(1, min(n_tok, 65536)), "layer": n_layers, "scale": n_band}
    data_vars = {}
    for name, dims in shapes.items():
        shape = tuple(sizes[d] for d in dims)
        if lazy:
            import dask.array as da

            data = da.full(shape, np.nan, dtype=np.float64, chunks=tuple(chunk[d] for d in dims))
        else:
            data = np.full(shape, np.nan, dtype=np.float64)
        data_vars[name] = xr.Variable(dims, data, attrs=VARIABLE_ATTRS[name])
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
    """Writes batch results into their token regions of a Zarr store on disk."""

    def __init__(self, template: xr.Dataset, store: Path):
        self.store = Path(store)
        template.to_zarr(self.store, mode="w", compute=False, consolidated=True)

    def write(self, start: int, stop: int, arrays: dict) -> None:
        part = xr.Dataset({name: (_DIMS[np.ndim(value)], value) for name, value in arrays.items()})
        part.to_zarr(self.store, region={"token": slice(start, stop)}, safe_chunks=False)

    def close(self) -> xr.Dataset:
        return xr.open_zarr(self.store)


_DIMS = {1: ("token",), 2: ("token", "layer"), 3: ("token", "layer", "scale")}


# --------------------------------------------------------------------------- public


def compute(texts, model=None, tokenizer=None, *, text_column=None, encoding="utf-8", axis="depth", wavelet=None,
            level=None, boundary="reflect", normalize=None, null_permutations=0, seed=0,
            batch_size=DEFAULT_BATCH_SIZE, device="auto", dtype=None, window=None, add_bos=True, output=None,
            progress=False, command=None) -> xr.Dataset:
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
        Sequences per forward pass.
    device, dtype : str, optional
        For `cse.load_model` when ``model`` is a name.
    window : int, optional
        Split texts longer than ``window`` tokens into windows instead of failing.
    add_bos : bool
        Prepend the BOS token when the tokenizer does not (see `plan_tokens`).
    output : str or Path, optional
        Write the result to ``.nc`` (netCDF4) or ``.zarr``, streaming batch by
        batch; the returned Dataset is then opened lazily from the file.
    progress : bool
        Show a progress bar on stderr.
    command : str, optional
        Recorded in the ``command`` attribute (default: the Python call).

    Returns
    -------
    xarray.Dataset
        dims ``token``, ``layer``, ``scale``; variables ``cse (token, layer)``,
        ``scale_fraction (token, layer, scale)``, ``update_norm (token, layer)``,
        ``surprisal (token)`` in nats (all float64); token coordinates ``text``,
        ``position``, ``token_id``, ``token_str``, ``word``, ``is_word_start``,
        ``is_special`` and the input's fields; ``depth`` on ``layer``; the run's
        settings in the attributes (SPEC section 4).

    Raises
    ------
    CSEInputError
        Bad input file, column, parameter value, a text longer than the model's
        context without ``window``, or a model that cannot be loaded offline.
    """
    from .capture import load_model, model_identity

    # 1. Validate what needs no model, and read the texts: fail before loading.
    check_choice("axis", axis, AXES)
    check_choice("boundary", boundary, BOUNDARIES)
    resolve_normalize(axis, normalize)
    if wavelet is not None:
        as_wavelet(wavelet)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise CSEInputError(f"Invalid value for 'batch_size': expected an integer >= 1, got {batch_size!r}")
    if output is not None:
        output_format(output)
    if isinstance(texts, (str, Path)):
        frame = read_texts(texts, text_column=text_column, encoding=encoding)
    else:
        frame = texts_frame(texts if text_column is None else _rename_text(texts, text_column))

    # 2. Model, settings, plan.
    if model is None or isinstance(model, (str, Path)):
        name = None if model is None else str(model)
        model, tokenizer = load_model(name, device=device, dtype=dtype)
    elif tokenizer is None:
        raise TypeError("Invalid value for 'tokenizer': required when 'model' is a loaded model")
    config = model.config
    n_layers = int(getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer"))
    d_model = int(getattr(config, "hidden_size", None) or getattr(config, "n_embd"))
    max_length = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    plan = plan_tokens(frame, tokenizer, max_length=max_length, window=window, add_bos=add_bos)
    min_tokens = min(len(s) for s in plan.sequences)
    if axis == "token":
        _check_token_axis(plan, level, wavelet)
    settings = resolve_settings(axis, wavelet, level, boundary, normalize, null_permutations, seed,
                                n_layers=n_layers, d_model=d_model, min_tokens=min_tokens)
    identity = model_identity(model, getattr(model, "_cse_name", None))
    attrs = _attributes(identity, settings, model, n_layers, d_model, add_bos, window, command)

    # 3. Stream batches into the sink.
    permutations = null_permutations_for(settings, d_model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    batches = plan.batches(batch_size)
    if output is None:
        sink = MemorySink(result_template(plan, settings, attrs, n_layers, lazy=False))
        _stream(model, plan, batches, settings, permutations, pad_id, sink, progress)
        return sink.close()
    from .io import atomic_path, remove_path

    output = Path(output)
    staging = output.parent / f".{output.name}.partial.zarr"
    remove_path(staging)
    try:
        with atomic_path(output) as tmp:  # checks the output folder before any work
            sink = ZarrSink(result_template(plan, settings, attrs, n_layers, lazy=True), staging)
            _stream(model, plan, batches, settings, permutations, pad_id, sink, progress)
            if output_format(output) == "zarr":
                import zarr

                zarr.consolidate_metadata(str(staging))
                remove_path(tmp)
                staging.rename(tmp)
            else:
                from .io import _string_encoding

                staged = xr.open_zarr(staging)
                staged.to_netcdf(tmp, engine="h5netcdf", encoding=_string_encoding(staged))
    finally:
        remove_path(staging)
    from .io import open_result

    return open_result(output, chunks={})


def _stream(model, plan, batches, settings, permutations, pad_id, sink, progress) -> None:
    from tqdm.auto import tqdm

    with tqdm(total=plan.n_tokens, unit="tok", disable=not progress, file=sys.stderr,
              desc="cse compute", dynamic_ncols=True) as bar:
        for batch in batches:
            arrays = run_batch(model, plan, batch, settings, permutations, pad_id)
            start, stop = int(plan.starts[batch.start]), int(plan.starts[batch.stop])
            sink.write(start, stop, arrays)
            bar.update(stop - start)


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


def _attributes(identity: dict, settings: Settings, model, n_layers, d_model, add_bos, window, command) -> dict:
    import torch
    import transformers

    if command is None:
        command = "cse.compute(...)"
    attrs = {
        **identity,
        "n_layers": n_layers,
        "d_model": d_model,
        **settings.attrs(),
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "add_bos": int(bool(add_bos)),
        "window": -1 if window is None else int(window),
        "cse_version": __version__,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "command": command,
        "Conventions": "CF-1.10",
        "title": "Conditional Scale Entropy of transformer layer updates",
        "references": "Chakrabarti et al. 2026, arXiv 2605.21391; Percival & Walden 2000, ch. 5",
    }
    return {k: ("" if v is None else v) for k, v in attrs.items()}


warnings.filterwarnings("ignore", message=".*StringDType.*")
