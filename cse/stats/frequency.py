"""Word frequency on the Zipf scale (`wordfreq`), as a covariate for the tests and mixed models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import CSEInputError

__all__ = ["add_log_frequency", "log_frequency"]

_SUBWORD_MARKS = "\u0120\u2581\u010a "  # GPT-2 'Ġ', SentencePiece '▁', 'Ċ', space


def log_frequency(words, lang: str = "en") -> np.ndarray:
    """Word frequency on the Zipf scale, from `wordfreq`.

    Parameters
    ----------
    words : sequence of str, shape (n,)
        Words (or token strings: leading GPT-2 'Ġ' and SentencePiece '▁' marks and
        whitespace are stripped). ``None``/NaN/empty gives NaN.
    lang : str
        wordfreq language code.

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
    """
    from wordfreq import zipf_frequency

    arr = pd.Series(list(words) if not isinstance(words, (pd.Series, np.ndarray)) else words, dtype=object)
    cleaned = arr.map(lambda w: w.strip(_SUBWORD_MARKS) if isinstance(w, str) else None)
    uniq = pd.unique(cleaned.dropna())
    table = {w: (float(zipf_frequency(w, lang)) if w else np.nan) for w in uniq}  # one lookup per distinct word
    return np.asarray(cleaned.map(lambda w: table.get(w, np.nan) if w is not None else np.nan), dtype=np.float64)


def add_log_frequency(ds: xr.Dataset, words: str = "word_str", lang: str = "en", name: str = "log_frequency"):
    """Add a token coordinate `name` with the Zipf frequency of each token's word.

    Parameters
    ----------
    ds : xarray.Dataset or xarray.DataArray
        A result with token coordinates.
    words : str
        Token coordinate holding the text of each token's word (or ``"token_str"``).
    lang, name
        wordfreq language and the name of the new coordinate.

    Returns
    -------
    Same type as `ds`, with coordinate `name` (token), units "Zipf" (log10 per 10^9
    words). Special tokens get NaN.

    Raises
    ------
    CSEInputError
        If `words` is not a token coordinate.
    """
    if words not in ds.coords or ds[words].dims != ("token",):
        available = [str(k) for k, v in ds.coords.items() if v.dims == ("token",)]
        raise CSEInputError(
            f"Invalid value for 'words': no token coordinate {words!r} with the word text; "
            f"available: {', '.join(available)}"
        )
    freq = log_frequency(np.asarray(ds[words].values, dtype=object), lang=lang)
    if "is_special" in ds.coords:
        freq = np.where(np.asarray(ds["is_special"].values, dtype=bool), np.nan, freq)
    coord = xr.DataArray(
        freq,
        dims=("token",),
        attrs={"long_name": f"Zipf word frequency of {words} (wordfreq, {lang})", "units": "Zipf"},
    )
    return ds.assign_coords({name: coord})

