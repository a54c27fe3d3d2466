r"""Boundary coefficients of the MODWT: which positions of a result depend on the boundary rule.

On the ``depth`` and ``token`` axes the MODWT of an N-long series is computed as a
circular filter (the definition, user guide). At level j the equivalent filter of a wavelet with
K taps has width

.. math:: L_j = (2^j - 1)(K - 1) + 1

(Percival & Walden 2000, eq. 96a with the MODWT filters of section 5.4), and the
coefficient at position t reads samples t, t - 1, ..., t - L_j + 1. Where that reaches
before the start of the series, t <= L_j - 2, the coefficient reads samples that the
boundary rule supplies: these are the *boundary coefficients* (Percival & Walden
2000, sections 4.11 and 5.5). The widest band is the J-th (detail and
approximation alike), so a position of a CSE result depends on the boundary rule
exactly when t <= L_J - 2, under ``reflect`` and ``periodic`` alike.

The transform is causal: outside the boundary, CSE at position t depends only on
positions t - L_J + 1 .. t. At a boundary position, the MODWT at t reads the
samples t - l for l = 0 .. L_J - 1 taken in the boundary rule's extension:

- ``reflect``: the 2N-periodic extension of the series followed by its mirror
  image, so a lag before the start, t - l = -m - 1 < 0, reads sample m. CSE at t
  then depends on positions 0 .. max(t, L_J - 2 - t) (while L_J <= N + 1): on the
  *later* positions t + 1 .. L_J - 2 - t when t < (L_J - 2) / 2.
- ``periodic``: the N-periodic extension, so t - l < 0 reads sample N + t - l. CSE
  at t depends on positions 0 .. t and on the *last* positions
  N - (L_J - 1 - t) .. N - 1 of the series (while L_J <= N).

For longer filters than that the extension wraps several times (`dependence` gives
the exact set for any case). For Haar, J = 3 (the default): L_J = 8, positions 0-6
are boundary coefficients; under ``reflect`` layer 0 depends on layers 0-6, layer 3
on layers 0-3, layer 6 on layers 0-6; under ``periodic`` layer 0 depends on layer 0
and the last seven layers.

References
----------
D. B. Percival and A. T. Walden, *Wavelet Methods for Time Series Analysis*,
Cambridge University Press, 2000, ch. 4 (sections 4.8, 4.11: equivalent filters and
the boundary coefficients of the DWT) and ch. 5 (sections 5.4-5.5: the MODWT and its
boundary coefficients).
"""

from __future__ import annotations

import numpy as np

from cse_kernels.filters import equivalent_width, modwt_operator

from .params import BOUNDARIES, as_wavelet, check_choice, check_int


def _taps_and_level(wavelet, level) -> tuple[int, int]:
    return as_wavelet(wavelet).dec_len, check_int("level", level, 1)


def boundary_width(wavelet, level) -> int:
    """Width L_J of the level-J MODWT equivalent filter: L_J = (2^J - 1)(K - 1) + 1.

    Parameters
    ----------
    wavelet : str or pywt.Wavelet
        Orthogonal wavelet with K taps.
    level : int
        J >= 1, the number of detail bands.

    Returns
    -------
    int
        L_J, in steps of the axis (layers on the depth axis, tokens on the token
        axis). Positions t = 0 .. L_J - 2 are boundary coefficients.

    Raises
    ------
    CSEInputError
        For an unknown or non-orthogonal wavelet or a level below 1.
    TypeError
        For a non-integer level.

    References
    ----------
    Percival & Walden (2000), eq. 96a and section 5.4; see `cse.boundary`.

    Examples
    --------
    >>> boundary_width("haar", 3), boundary_width("db2", 3)
    (8, 22)
    """
    n_taps, level = _taps_and_level(wavelet, level)
    return equivalent_width(n_taps, level)


def boundary_affected(n_steps, wavelet, level) -> np.ndarray:
    """Positions whose CSE depends on the boundary rule: ``t <= L_J - 2``.

    Parameters
    ----------
    n_steps : int
        Length N of the axis (layers on the depth axis, tokens of the text or
        window on the token axis), >= 1.
    wavelet : str or pywt.Wavelet
        Orthogonal wavelet with K taps.
    level : int
        J >= 1.

    Returns
    -------
    ndarray of bool, shape (n_steps,)
        True at positions 0 .. min(L_J - 2, N - 1), with L_J = (2^J - 1)(K - 1) + 1:
        there some band's MODWT coefficient reads samples before the start of the
        series, which ``reflect`` and ``periodic`` supply differently (Percival &
        Walden 2000, sections 4.11 and 5.5). The same positions under both rules.

    Raises
    ------
    CSEInputError
        For n_steps < 1, an unknown or non-orthogonal wavelet, or a level below 1.
    TypeError
        For non-integer n_steps or level.

    Examples
    --------
    >>> np.flatnonzero(boundary_affected(30, "haar", 3)).tolist()
    [0, 1, 2, 3, 4, 5, 6]
    """
    n_steps = check_int("n_steps", n_steps, 1)
    return np.arange(n_steps) <= boundary_width(wavelet, level) - 2


def dependence(n_steps, wavelet, level, boundary="reflect") -> np.ndarray:
    """Which steps of the series the CSE at each position depends on.

    Parameters
    ----------
    n_steps : int
        Length N of the axis, >= 1.
    wavelet : str or pywt.Wavelet
        Orthogonal wavelet.
    level : int
        J >= 1.
    boundary : {'reflect', 'periodic'}
        The boundary rule.

    Returns
    -------
    ndarray of bool, shape (n_steps, n_steps)
        Entry [t, m] is True where some band's coefficient at position t reads step m
        (with a weight that may cancel to 0, e.g. the Haar detail d1 at t = 0 under
        ``reflect``). Rows t >= L_J - 1 are True exactly at t - L_J + 1 .. t.

    Raises
    ------
    CSEInputError
        For invalid arguments.

    Examples
    --------
    >>> deps = dependence(30, "haar", 3, "periodic")
    >>> np.flatnonzero(deps[0]).tolist()
    [0, 23, 24, 25, 26, 27, 28, 29]
    >>> np.flatnonzero(dependence(30, "haar", 3, "reflect")[1]).tolist()
    [0, 1, 2, 3, 4, 5]
    """
    n_steps = check_int("n_steps", n_steps, 1)
    check_choice("boundary", boundary, BOUNDARIES)
    w = as_wavelet(wavelet)
    _, reads = modwt_operator(w.dec_lo, w.dec_hi, check_int("level", level, 1), n_steps, boundary)
    return reads.any(axis=0)
