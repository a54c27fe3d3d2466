"""Planning a run: read texts are tokenized, aligned to words and laid out, before the model runs.

The plan fixes every token's place in the stacked ``token`` dim and its coordinates
(SPEC section 4), so that bad input (a text longer than the context, a tokenizer
without offsets) fails before any compute, and every way of running (one process,
a Dask cluster, a resumed run) writes the same tokens to the same places.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from ..errors import CSEInputError
from ..io import per_word_columns, word_spans

__all__ = ["Plan", "Work", "plan_tokens", "check_token_axis"]


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



@dataclasses.dataclass
class Work:
    """The batches a runner computes: which, where their tokens go, and how.

    Attributes
    ----------
    plan : Plan
    batches : list of range
        All batches of the run (``plan.batches(batch_size)``), as sequence index ranges.
    todo : list of int
        Indices of the batches still to compute, ascending.
    settings : cse.params.MeasureSettings
    pad_id : int
        Token id used to right-pad a batch.
    """

    plan: Plan
    batches: list
    todo: list
    settings: object
    pad_id: int

    def region(self, index: int) -> tuple[int, int]:
        """Token region [start, stop) of batch `index` in the stacked ``token`` dim."""
        batch = self.batches[index]
        return int(self.plan.starts[batch.start]), int(self.plan.starts[batch.stop])

    def sequences(self, index: int) -> list:
        """Token ids of the sequences of batch `index`."""
        return [self.plan.sequences[i] for i in self.batches[index]]

    @property
    def n_todo_tokens(self) -> int:
        return sum(stop - start for start, stop in map(self.region, self.todo))


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
    sequences, columns, token_rows = [], {k: [] for k in _OWN_COLUMNS}, []
    for i, (row, text, ids, offsets, special) in enumerate(_encoded_texts(frame, tokenizer, add_bos)):
        word = _align_words(text, offsets, special)
        starts = np.r_[True, word[1:] != word[:-1]] & (word >= 0)
        n = len(ids)
        if limit is not None and n > limit and window is None:
            raise CSEInputError(
                f"text {row} has {n} tokens, more than the model's context of {max_length}; "
                f"shorten it or pass --window N to split long texts into windows"
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


def _encoded_texts(frame: pd.DataFrame, tokenizer, add_bos: bool):
    """Yield (row, text, ids, offsets, special) per text, with BOS prepended where asked and missing."""
    texts = frame["text"].tolist()
    encoded = tokenizer(texts, add_special_tokens=True, return_offsets_mapping=True,
                        return_special_tokens_mask=True, return_attention_mask=False)
    bos = tokenizer.bos_token_id
    for i, (row, text) in enumerate(zip(frame.index, texts)):
        ids = np.asarray(encoded["input_ids"][i], dtype=np.int64)
        offsets = np.asarray(encoded["offset_mapping"][i], dtype=np.int64).reshape(-1, 2)
        special = np.asarray(encoded["special_tokens_mask"][i], dtype=bool)
        if add_bos and bos is not None and (len(ids) == 0 or ids[0] != bos):
            ids = np.concatenate([[bos], ids])
            offsets = np.concatenate([[[0, 0]], offsets])
            special = np.concatenate([[True], special])
        yield row, text, ids, offsets, special


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


def check_token_axis(plan: Plan, level) -> None:
    """Refuse a token-axis run whose shortest sequence is shorter than 2**level tokens.

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
