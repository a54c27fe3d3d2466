"""Tokenizing texts as `cse.compute` runs them: the BOS rule, and long texts bounded before any work.

- **The BOS rule** (`encode_texts`, `token_lengths`): the tokenizer's BOS token is
  prepended when the tokenizer does not add one itself and ``add_bos`` is True, so every
  real token has a prefix (its surprisal is defined) and the attention sink falls on a
  special token. This module is its one home; the studies count tokens through
  `token_lengths`.
- **Texts that cannot fit** (`check_text_lengths`): a token covers at most
  `max_token_chars` characters (the longest entry of the vocabulary), so a text of more
  than ``context * max_token_chars`` characters has more tokens than the context. Such a
  text is refused *before* it is tokenized, naming the text and the fix (``--window``).
- **Long texts** are tokenized in pieces of about `PIECE_CHARS` characters, cut only
  before a run of whitespace, where byte-level BPE and SentencePiece pre-tokenizers split
  anyway, so the tokens are those of the whole text; every seam is checked by tokenizing
  the text around it whole. Ctrl-C is heard between pieces.
"""

from __future__ import annotations

import re
import weakref

import numpy as np

from ..errors import CSEInputError

#: Characters tokenized at once in a long text (and the width of a seam's check).
PIECE_CHARS = 1 << 16
_SEAM_CHARS = 512
_CUT = re.compile(r"(?<=\S)\s")  # the start of a run of whitespace
_MAX_CHARS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


class Encoded:
    """One text's tokens: ids, character offsets and the special-token mask.

    Attributes
    ----------
    ids : ndarray of int64, shape (n_tokens,)
    offsets : ndarray of int64, shape (n_tokens, 2)
        ``[start, stop)`` of each token in the text ((0, 0) for added special tokens).
    special : ndarray of bool, shape (n_tokens,)

    Parameters
    ----------
    ids, offsets, special : array-like
        As the attributes (converted).
    """

    __slots__ = ("ids", "offsets", "special")

    def __init__(self, ids, offsets, special):
        self.ids = np.asarray(ids, dtype=np.int64)
        self.offsets = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
        self.special = np.asarray(special, dtype=bool)

    def with_bos(self, bos: int) -> "Encoded":
        """These tokens with `bos` prepended (a special token at offsets (0, 0))."""
        return Encoded(np.r_[bos, self.ids], np.r_[[[0, 0]], self.offsets], np.r_[True, self.special])


def max_token_chars(tokenizer) -> int:
    """Most characters one token of `tokenizer` can cover: the longest vocabulary entry.

    Parameters
    ----------
    tokenizer : transformers.PreTrainedTokenizerBase

    Returns
    -------
    int
        The length of the longest entry of ``tokenizer.get_vocab()`` (added tokens
        included), at least 1. Byte-level BPE vocabularies spell each byte as one
        character and a character takes at least one byte, so this bounds the
        characters of any token. Cached per tokenizer.
    """
    try:
        return _MAX_CHARS[tokenizer]
    except (KeyError, TypeError):
        pass
    longest = max((len(piece) for piece in tokenizer.get_vocab()), default=1)
    try:
        _MAX_CHARS[tokenizer] = max(1, longest)
    except TypeError:  # not weak-referenceable
        pass
    return max(1, longest)


def check_text_lengths(texts, rows, tokenizer, max_length: int | None, window: int | None) -> None:
    """Refuse, before tokenizing, a text that has more characters than the context can hold tokens.

    Parameters
    ----------
    texts : sequence of str
    rows : sequence
        The input row of each text (named in the message).
    tokenizer : transformers.PreTrainedTokenizerBase
    max_length : int or None
        The model's context in tokens (None: unbounded).
    window : int or None
        With a window long texts are split, so nothing is refused.

    Raises
    ------
    CSEInputError
        For the first text longer than ``max_length * max_token_chars(tokenizer)``
        characters, naming it and the fix (``--window N``).
    """
    if max_length is None or window is not None:
        return
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    bound = max_length * max_token_chars(tokenizer)
    over = np.flatnonzero(lengths > bound)
    if len(over):
        k = int(over[0])
        raise CSEInputError(
            f"text {rows[k]} has {lengths[k]:,} characters, more than the model's context of {max_length} tokens can "
            f"hold (a token covers at most {max_token_chars(tokenizer)} characters); shorten it or pass window=N "
            f"to split long texts into windows"
        )


def encode_texts(texts, tokenizer, add_bos: bool = True, rows=None):
    """Tokenize texts as `cse.compute` does, one `Encoded` per text.

    Parameters
    ----------
    texts : sequence of str
    tokenizer : transformers.PreTrainedTokenizerFast
        Must return offset mappings.
    add_bos : bool
        Prepend the tokenizer's BOS token where the tokenizer does not add it.
    rows : sequence, optional
        The input row of each text, for messages (default: its index).

    Yields
    ------
    Encoded
        In the order of `texts`. Texts longer than `PIECE_CHARS` are tokenized in
        pieces (see the module docstring); the others in one batched call.

    Raises
    ------
    CSEInputError
        A long text whose pieces do not tokenize like the whole (the tokenizer merges
        across whitespace), or one without whitespace to cut at.
    """
    bos = tokenizer.bos_token_id if add_bos else None
    short = [i for i, t in enumerate(texts) if len(t) <= PIECE_CHARS]
    batch = tokenizer([texts[i] for i in short], add_special_tokens=True, return_offsets_mapping=True,
                      return_special_tokens_mask=True, return_attention_mask=False) if short else None
    where = {i: k for k, i in enumerate(short)}
    for i, text in enumerate(texts):
        if i in where:
            k = where[i]
            enc = Encoded(batch["input_ids"][k], batch["offset_mapping"][k], batch["special_tokens_mask"][k])
        else:
            enc = _encode_long(text, i if rows is None else rows[i], tokenizer)
        if bos is not None and (len(enc.ids) == 0 or enc.ids[0] != bos):
            enc = enc.with_bos(bos)
        yield enc


def token_lengths(texts, tokenizer, add_bos: bool = True) -> np.ndarray:
    """Tokens of every text as `cse.compute` runs it (the BOS rule included).

    Parameters
    ----------
    texts : sequence of str
    tokenizer : transformers.PreTrainedTokenizerFast
    add_bos : bool
        As in `cse.compute`.

    Returns
    -------
    ndarray of int64, shape (n_texts,)
    """
    texts = list(texts)
    return np.fromiter((len(e.ids) for e in encode_texts(texts, tokenizer, add_bos)), dtype=np.int64,
                       count=len(texts))


def _encode_plain(tokenizer, text: str, start: int = 0) -> Encoded:
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, return_attention_mask=False)
    offsets = np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2) + start
    return Encoded(enc["input_ids"], offsets, np.zeros(len(enc["input_ids"]), dtype=bool))


def _cuts(text: str, row) -> list[int]:
    """Piece boundaries: about every `PIECE_CHARS` characters, each before a run of whitespace."""
    cuts, start = [0], 0
    while len(text) - start > PIECE_CHARS:
        match = _CUT.search(text, start + PIECE_CHARS)
        stop = len(text) if match is None else match.start()
        if stop - start > 16 * PIECE_CHARS:
            raise CSEInputError(f"text {row} has no whitespace between its characters {start + PIECE_CHARS:,} and "
                                f"{stop:,}, so it cannot be tokenized in pieces; shorten it")
        if match is None:
            break
        start = stop
        cuts.append(start)
    return cuts + [len(text)]


def _special_frame(tokenizer) -> tuple[Encoded, Encoded]:
    """The special tokens the tokenizer adds before and after a text's own tokens."""
    probe = tokenizer("a", add_special_tokens=True, return_offsets_mapping=True, return_special_tokens_mask=True,
                      return_attention_mask=False)
    special = np.asarray(probe["special_tokens_mask"], dtype=bool)
    own = np.flatnonzero(~special)
    first, last = (int(own[0]), int(own[-1])) if len(own) else (len(special), len(special) - 1)
    ids = np.asarray(probe["input_ids"], dtype=np.int64)
    return (Encoded(ids[:first], np.zeros((first, 2)), np.ones(first, bool)),
            Encoded(ids[last + 1:], np.zeros((len(ids) - last - 1, 2)), np.ones(len(ids) - last - 1, bool)))


def _encode_long(text: str, row, tokenizer) -> Encoded:
    cuts = _cuts(text, row)
    pieces = [_encode_plain(tokenizer, text[a:b], a) for a, b in zip(cuts[:-1], cuts[1:])]
    ids = np.concatenate([p.ids for p in pieces])
    offsets = np.concatenate([p.offsets for p in pieces])
    for seam in cuts[1:-1]:
        _check_seam(text, row, tokenizer, seam, ids, offsets)
    before, after = _special_frame(tokenizer)
    after.offsets[:] = len(text)
    return Encoded(np.r_[before.ids, ids, after.ids], np.concatenate([before.offsets, offsets, after.offsets]),
                   np.r_[before.special, np.zeros(len(ids), bool), after.special])


def _check_seam(text: str, row, tokenizer, seam: int, ids: np.ndarray, offsets: np.ndarray) -> None:
    """The tokens around a seam equal those of the text around it tokenized whole."""
    left = max((m.start() for m in _CUT.finditer(text, max(0, seam - _SEAM_CHARS), seam)), default=0)
    right = _CUT.search(text, seam + _SEAM_CHARS)
    right = len(text) if right is None else right.start()
    whole = _encode_plain(tokenizer, text[left:right], left)
    inside = (offsets[:, 0] >= left) & (offsets[:, 1] <= right)
    if not np.array_equal(ids[inside], whole.ids):
        raise CSEInputError(f"text {row} is too long to tokenize at once and this tokenizer merges tokens across "
                            f"whitespace, so it cannot be tokenized in pieces; shorten it")
