"""Step 2 of `cse.compute`: the plan — texts tokenized, aligned to words and laid out, settings fitted.

The plan fixes every token's place in the stacked ``token`` dim and its coordinates
(the result schema), the measure's settings for this model and these texts, the batches
and the result's attributes, so that bad input (a text longer than the context, a
tokenizer without offsets, a level too high for the shortest text, a null too large)
fails before any compute, and every way of running (one process, a Dask cluster, a
resumed run) writes the same tokens to the same places.
"""

from __future__ import annotations

import dataclasses
import platform

import numpy as np
import pandas as pd

from ..errors import CSEInputError
from ..io import per_word_columns, word_spans
from ..settings import MeasureSettings
from .tokenize import check_text_lengths, encode_texts


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
        One row per token: the token coordinates of the result schema.
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



@dataclasses.dataclass
class Run:
    """What a run computes: the plan, the fitted settings, the batches and the result's attributes.

    Attributes
    ----------
    plan : Plan
    settings : cse.settings.MeasureSettings
        Fitted to the model and the texts.
    batches : list of range
        Consecutive sequence index ranges (``plan.batches(batch_size)``): the unit of
        work of resume and of distributed runs.
    attrs : dict
        Global attributes of the result (`run_attributes`).
    n_layers, d_model : int
        The model's blocks and width.
    pad_id : int
        Token id used to right-pad a batch.
    saved : tuple of str
        What the run stores besides CSE (``save`` of `cse.compute`). Not named
        ``save``: nnsight, once imported, gives every object a ``save`` attribute,
        which a dataclass would take for the field's default.
    save_dtype : str
    non_finite : {'error', 'warn'}
        What NaN or infinite layer updates do (`cse.compute`).
        Storage dtype of saved layer updates.
    """

    plan: Plan
    settings: MeasureSettings
    batches: list
    attrs: dict
    n_layers: int
    d_model: int
    pad_id: int
    saved: tuple = ()
    save_dtype: str = "float32"
    non_finite: str = "error"

    def region(self, index: int) -> tuple[int, int]:
        """Token region [start, stop) of batch `index` in the stacked ``token`` dim."""
        batch = self.batches[index]
        return int(self.plan.starts[batch.start]), int(self.plan.starts[batch.stop])

    def sequences(self, index: int) -> list:
        """Token ids of the sequences of batch `index`."""
        return [self.plan.sequences[i] for i in self.batches[index]]

    def n_tokens_of(self, indices) -> int:
        """Tokens of the batches `indices`."""
        return sum(stop - start for start, stop in map(self.region, indices))


def plan_run(request, info) -> Run:
    """Plan a `cse.compute` request for a model: tokens, fitted settings, batches, attributes.

    Parameters
    ----------
    request : cse.pipeline.request.Request
    info : cse.models.ModelInfo
        The model as loaded here or on a worker (tokenizer, blocks, width, context).

    Returns
    -------
    Run

    Raises
    ------
    CSEInputError
        A text longer than the context without a window, a level too high for the
        model or the shortest text, a null too large for the memory limit.
    """
    plan = plan_tokens(request.source.frame, info.tokenizer, max_length=info.max_length, window=request.window,
                       add_bos=request.add_bos)
    settings = request.settings
    lengths = np.diff(plan.starts)
    if settings.axis == "token":
        check_token_axis(plan, settings.level)
    settings = settings.fit(settings.series_length(info.n_layers, int(lengths.min()), info.d_model))
    settings.check_memory(settings.series_length(info.n_layers, int(lengths.max()), info.d_model))
    attrs = run_attributes(info, settings, request)
    return Run(plan, settings, plan.batches(request.batch_size), attrs, info.n_layers, info.d_model, info.pad_id,
               request.saved, request.save_dtype, request.non_finite)


def run_attributes(info, settings: MeasureSettings, request) -> dict:
    """Global attributes of a result: model identity, settings, versions, the command (CF conventions).

    Parameters
    ----------
    info : cse.models.ModelInfo
    settings : cse.settings.MeasureSettings
        Fitted.
    request : cse.pipeline.request.Request

    Returns
    -------
    dict of str to str or int
        None values become ``""`` (netCDF attributes cannot be None).
    """
    import torch
    import transformers

    from .. import __version__

    attrs = {
        **info.identity,
        "n_layers": info.n_layers,
        "d_model": info.d_model,
        **settings.attrs(),
        "dtype": info.dtype,
        "add_bos": int(bool(request.add_bos)),
        "window": -1 if request.window is None else int(request.window),
        "cse_version": __version__,
        "transformers_version": transformers.__version__,
        "torch_version": str(torch.__version__),
        "python_version": platform.python_version(),
        "command": "cse.compute(...)" if request.command is None else request.command,
        "Conventions": "CF-1.10",
        "title": "Conditional Scale Entropy of transformer layer updates",
        "references": "Chakrabarti et al. 2026, arXiv 2605.21391; Percival & Walden 2000, ch. 5",
    }
    if request.saved:
        attrs["saved"] = ",".join(request.saved)
    if "updates" in request.saved and request.output is not None:
        from .request import updates_name

        attrs["updates_store"] = updates_name(request.output.path)
    return {k: ("" if v is None else v) for k, v in attrs.items()}


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
    _check_window(window, max_length, add_bos)
    limit = window if window is not None else max_length
    texts, rows = frame["text"].tolist(), frame.index.tolist()
    check_text_lengths(texts, rows, tokenizer, max_length, window)
    sequences, columns, token_rows = [], {k: [] for k in _OWN_COLUMNS}, []
    for i, (row, text, enc) in enumerate(zip(rows, texts, encode_texts(texts, tokenizer, add_bos, rows))):
        ids, special = enc.ids, enc.special
        word = _align_words(text, enc.offsets, special)
        starts = np.r_[True, word[1:] != word[:-1]] & (word >= 0)
        n = len(ids)
        if limit is not None and n > limit and window is None:
            raise CSEInputError(
                f"text {row} has {n} tokens, more than the model's context of {max_length}; "
                f"shorten it or pass window=N to split long texts into windows"
            )
        for piece in _windows(n, bool(special[0]) if n else False, limit, add_bos and tokenizer.bos_token_id is not None):
            sequences.append(ids[piece])
            for name, values in (("text", np.full(len(piece), row, dtype=np.int64)),
                                 ("position", np.arange(len(piece), dtype=np.int64)), ("token_id", ids[piece]),
                                 ("word", word[piece]), ("is_word_start", starts[piece]),
                                 ("is_special", special[piece])):
                columns[name].append(values)
            token_rows.append(np.full(len(piece), i, dtype=np.int64))
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    coords = pd.DataFrame({k: np.concatenate(v) for k, v in columns.items()})
    coords.insert(3, "token_str", _token_strings(tokenizer, coords["token_id"].to_numpy()))
    _add_input_fields(coords, frame, np.concatenate(token_rows), coords["word"].to_numpy())
    return Plan(sequences=sequences, starts=np.r_[0, np.cumsum(lengths)], coords=coords)


_OWN_COLUMNS = ("text", "position", "token_id", "word", "is_word_start", "is_special")


def _check_window(window, max_length, add_bos) -> None:
    if window is None:
        return
    if max_length is not None and window > max_length:
        raise CSEInputError(f"Invalid value for 'window': {window} exceeds the model's context of {max_length} tokens")
    if window < 2 + bool(add_bos):
        raise CSEInputError(f"Invalid value for 'window': expected at least {2 + bool(add_bos)} tokens, got {window}")


def _windows(n: int, first_special: bool, limit, keep_bos: bool) -> list[np.ndarray]:
    """Token index arrays of the sequences of one text: the whole text, or windows of at most `limit`.

    A leading special token (BOS) is repeated at the start of every window.
    """
    if limit is None or n <= limit:
        return [np.arange(n)]
    lead = int(first_special and keep_bos)
    body = np.arange(lead, n)
    step = limit - lead
    return [np.r_[np.arange(lead), body[k:k + step]] for k in range(0, len(body), step)]


def _add_input_fields(coords: pd.DataFrame, frame: pd.DataFrame, token_rows: np.ndarray, word: np.ndarray) -> None:
    """Copy the input's per-text fields (by text) and per-word fields (by word) onto the tokens."""
    word_fields = per_word_columns(frame)
    text_fields = [c for c in frame.columns if c != "text" and c not in word_fields]
    for name in text_fields:
        coords[name] = _coordinate_values(frame[name].to_numpy()[token_rows])
    for name in word_fields:
        lists = frame[name].tolist()
        flat = [lists[i][k] if k >= 0 else None for i, k in zip(token_rows.tolist(), word.tolist())]
        coords[name] = _word_field_values(flat)


def _align_words(text: str, offsets: np.ndarray, special: np.ndarray) -> np.ndarray:
    """Index of the whitespace word holding each token's first non-space character, -1 if none.

    Byte-level BPE offsets may include a leading space: a token's first non-space
    character is its start when that lies inside a word, else the start of the next word
    (if the token reaches it). Vectorized over tokens.
    """
    spans = word_spans(text)
    word = np.full(len(offsets), -1, dtype=np.int64)
    if len(spans) == 0 or len(offsets) == 0:
        return word
    start, stop = offsets[:, 0], offsets[:, 1]
    before = np.searchsorted(spans[:, 0], start, side="right") - 1  # the last word starting at or before `start`
    inside = (before >= 0) & (start < spans[np.clip(before, 0, None), 1])
    idx = np.where(inside, before, before + 1)
    first = np.where(inside, start, spans[np.clip(idx, 0, len(spans) - 1), 0])
    valid = (stop > start) & ~special & (idx < len(spans)) & (first < stop)
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


def check_token_axis(plan: Plan, level) -> None:
    """Refuse a token-axis run whose shortest sequence is shorter than 2**level tokens.

    Parameters
    ----------
    plan : Plan
    level : int or None
        J (None: the token axis' default, 3).

    Raises
    ------
    CSEInputError
        Naming the first short text and its length.
    """
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
