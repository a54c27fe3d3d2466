"""Word frequency on the Zipf scale (`wordfreq`), as a covariate for the tests and mixed models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import CSEInputError
from .selection import deprecated_alias

_SUBWORD_MARKS = "\u0120\u2581\u010a "  # GPT-2 'Ġ', SentencePiece '▁', 'Ċ', space


def log_frequency(words, lang: str = "en") -> np.ndarray:
    """Word frequency on the Zipf scale, from `wordfreq`.

    Parameters
    ----------
    words : sequence of str, shape (n,)
        Words (or token strings: leading GPT-2 'Ġ' and SentencePiece '▁' marks and
        whitespace are stripped). ``None``/NaN/empty gives NaN.
    lang : str
        The wordfreq language code (default ``"en"``).

    Returns
    -------
    ndarray, shape (n,), float64
        Zipf frequency = log10(frequency per billion words), i.e. log10 of the
        per-word probability plus 9: about 7 for "the", 3 for rare words, 0 for words
        wordfreq does not know.

    References
    ----------
    Speer, R. (2022). wordfreq (v3). https://github.com/rspeer/wordfreq
    van Heuven, W. J. B. et al. (2014). SUBTLEX-UK. Q. J. Exp. Psychol. 67, 1176-1190
    (the Zipf scale).

    Examples
    --------
    >>> import cse
    >>> cse.stats.log_frequency(["the", "senator"]).round(1)  # doctest: +SKIP
    array([7.7, 4.6])
    """
    from wordfreq import zipf_frequency

    arr = pd.Series(list(words) if not isinstance(words, (pd.Series, np.ndarray)) else words, dtype=object)
    cleaned = arr.map(lambda w: w.strip(_SUBWORD_MARKS) if isinstance(w, str) else None)
    uniq = pd.unique(cleaned.dropna())
    table = {w: (float(zipf_frequency(w, lang)) if w else np.nan) for w in uniq}  # one lookup per distinct word
    return np.asarray(cleaned.map(lambda w: table.get(w, np.nan) if w is not None else np.nan), dtype=np.float64)


def word_text(ds) -> np.ndarray:
    """The text of each token's word, rebuilt from a ``cse compute`` result's own coordinates.

    The decoded pieces (``token_str``) of the tokens that share a text (``text``) and a
    word index (``word``) are joined in token order and stripped, so a word split into
    several tokens gets its whole text at each of them.

    Parameters
    ----------
    ds : xarray.Dataset or xarray.DataArray
        With the token coordinates ``token_str``, ``text`` and ``word``.

    Returns
    -------
    ndarray of object, shape (n_tokens,)
        The word's text; None for tokens outside a word (``word == -1``, special tokens).

    Raises
    ------
    CSEInputError
        If one of the three coordinates is missing.
    """
    missing = [c for c in ("token_str", "text", "word") if c not in ds.coords or ds[c].dims != ("token",)]
    if missing:
        raise CSEInputError(
            f"Invalid value for 'word_coord': the word text is rebuilt from the token coordinates token_str, text "
            f"and word, and {', '.join(missing)} is missing; name a token coordinate holding the word text"
        )
    frame = pd.DataFrame({"piece": np.asarray(ds["token_str"].values, dtype=object),
                          "text": np.asarray(ds["text"].values), "word": np.asarray(ds["word"].values)})  # fmt: skip
    inside = frame["word"].to_numpy() >= 0
    joined = frame[inside].groupby(["text", "word"], sort=False)["piece"].transform(
        lambda pieces: "".join(str(v) for v in pieces).strip())
    out = np.full(len(frame), None, dtype=object)
    out[inside] = joined.to_numpy(dtype=object)
    return out


def add_log_frequency(ds: xr.Dataset, word_coord: str | None = None, lang: str = "en", name: str = "log_frequency",
                      *, words: str | None = None):  # fmt: skip
    """Add a token coordinate `name` with the Zipf frequency of each token's word.

    Parameters
    ----------
    ds : xarray.Dataset or xarray.DataArray
        A result with token coordinates.
    word_coord : str, optional
        Token coordinate holding the text of each token's word. Default: the word text
        rebuilt from the result's own coordinates (`word_text`: the pieces of the
        tokens of one word joined), which every ``cse compute`` result has.
    lang : str
        The wordfreq language code (default ``"en"``).
    name : str
        Name of the new coordinate (default ``"log_frequency"``).
    words : str, optional
        Deprecated name of `word_coord` (``DeprecationWarning``): `log_frequency`'s
        ``words`` is a sequence of words, this one was a coordinate name.

    Returns
    -------
    xarray.Dataset or xarray.DataArray
        Same type as `ds`, with coordinate `name` (token), units "Zipf" (log10 per 10^9
        words). Special tokens and tokens outside a word get NaN.

    Raises
    ------
    CSEInputError
        If `word_coord` is not a token coordinate, or, without it, the result lacks
        the coordinates the word text is rebuilt from.

    Examples
    --------
    >>> import cse
    >>> ds = cse.open_result("cse-example.nc")  # doctest: +SKIP
    >>> ds = cse.stats.add_log_frequency(ds)  # doctest: +SKIP
    >>> ds.log_frequency.dims  # doctest: +SKIP
    ('token',)
    """
    word_coord = deprecated_alias("words", words, "word_coord", word_coord)
    if word_coord is None:
        text, source = word_text(ds), "the word text rebuilt from token_str"
    else:
        if word_coord not in ds.coords or ds[word_coord].dims != ("token",):
            available = [str(k) for k, v in ds.coords.items() if v.dims == ("token",)]
            raise CSEInputError(
                f"Invalid value for 'word_coord': no token coordinate {word_coord!r} with the word text; "
                f"available: {', '.join(available)}"
            )
        text, source = np.asarray(ds[word_coord].values, dtype=object), word_coord
    freq = log_frequency(text, lang=lang)
    if "is_special" in ds.coords:
        freq = np.where(np.asarray(ds["is_special"].values, dtype=bool), np.nan, freq)
    coord = xr.DataArray(
        freq,
        dims=("token",),
        attrs={"long_name": f"Zipf word frequency of {source} (wordfreq, {lang})", "units": "Zipf"},
    )
    return ds.assign_coords({name: coord})
