"""NumPy reference of the scale-energy transforms of SPEC section 2.

This module is the specification in code: every faster kernel (Numba in
`cse_kernels._numba`, the torch twin) must reproduce these functions, with the same
names and signatures, to floating-point tolerance.

Plain ndarrays in and out, float64 accumulation, vectorized over series and tokens
(Python loops run only over levels, filter taps, chunks of series and permutations).
No validation beyond what protects memory: callers (`cse.measure`) validate.

Shared parameters
-----------------
dec_lo, dec_hi : array_like, shape (K,)
    Decomposition low- and high-pass filters of an orthogonal wavelet
    (``pywt.Wavelet(name).dec_lo`` / ``.dec_hi``), K even.
level : int
    Number of detail bands J (>= 1). Energies have J + 1 bands, ordered
    ``d1..dJ`` (fine to coarse) then ``aJ``.

References
----------
D. B. Percival and A. T. Walden, *Wavelet Methods for Time Series Analysis*,
Cambridge University Press, 2000, ch. 4 (DWT) and ch. 5 (MODWT).
"""

from __future__ import annotations

import numpy as np

from ._checks import check_permutations

__all__ = [
    "modwt_energies",
    "modwt_null_moments",
    "dwt_energies",
    "dwt_null_entropy",
    "dwt_null_moments",
    "scale_entropy",
    "update_norms",
]

#: Arrays this module takes and returns (`cse.measure.reduce_updates` reads it).
ARRAYS = "numpy"

# Work arrays are processed in chunks of series so that the float64 copy of a
# large batch (and its reflected extension) never holds more than ~this many elements.
_CHUNK_ELEMENTS = 1 << 23


def _as_filter(f) -> np.ndarray:
    return np.asarray(f, dtype=np.float64).ravel()


def update_norms(x) -> np.ndarray:
    """L2 norm of each update vector, accumulated in float64.

    Parameters
    ----------
    x : ndarray, shape (..., d), float32 or float64
        Update vectors along the last axis.

    Returns
    -------
    norms : ndarray, shape (...), float64
        ``sqrt(sum(x**2, axis=-1))``; inf or NaN where the vector is not finite.
    """
    x64 = np.asarray(x, dtype=np.float64)
    return np.sqrt(np.einsum("...d,...d->...", x64, x64))


def _unit_normalize(x64: np.ndarray) -> np.ndarray:
    """Scale each vector along the last axis to unit L2 norm in place; zero stays zero."""
    norms = update_norms(x64)[..., None]
    # A zero (or NaN) norm divides by 1: zero vectors stay zero, NaN stays NaN.
    # An infinite norm divides by inf, which leaves NaN in the vector (inf / inf).
    with np.errstate(invalid="ignore"):
        np.divide(x64, np.where(norms > 0, norms, 1.0), out=x64)
    return x64


def modwt_energies(x, dec_lo, dec_hi, level, boundary="reflect", unit=True) -> np.ndarray:
    """MODWT band energies along axis 1, summed over the hidden dimension.

    Parameters
    ----------
    x : ndarray, shape (n_series, n_steps, d), float32 or float64
        Independent vector-valued series; the transform runs along axis 1 for each
        series and each hidden dimension separately.
    dec_lo, dec_hi : array_like, shape (K,)
        Orthogonal decomposition filters; the MODWT filters are ``dec_lo / sqrt(2)``
        and ``dec_hi / sqrt(2)``.
    level : int
        Number of detail bands J.
    boundary : {'reflect', 'periodic'}
        ``'periodic'`` runs the circular recursion on the series itself (N' = N);
        ``'reflect'`` runs it on the 2N-long ``[X_0..X_{N-1}, X_{N-1}..X_0]`` and keeps
        positions 0..N-1.
    unit : bool
        If True, each vector ``x[s, t, :]`` is first scaled to unit L2 norm (norm
        computed in float64; a zero vector stays zero).

    Returns
    -------
    energies : ndarray, shape (n_series, n_steps, level + 1), float64
        ``E_j[s, t] = sum_d W_j[s, t, d]**2`` for j = 1..J, then
        ``sum_d V_J[s, t, d]**2``; units of ``x`` squared (dimensionless if ``unit``).
        Non-finite input gives non-finite energies wherever a filter touches it.

    Notes
    -----
    With g~ = dec_lo / sqrt(2), h~ = dec_hi / sqrt(2) and V_0 = X,

        W_j[t] = sum_k h~[k] V_{j-1}[(t - 2^{j-1} k) mod N']
        V_j[t] = sum_k g~[k] V_{j-1}[(t - 2^{j-1} k) mod N']

    (Percival & Walden 2000, eqs. 96a-b / pyramid algorithm of section 5.4).
    With ``boundary='periodic'`` the band energies over all t sum to ||X||^2.
    """
    if boundary not in ("reflect", "periodic"):
        raise ValueError(f"Invalid value for 'boundary': expected 'reflect' or 'periodic', got {boundary!r}")
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"Invalid shape for 'x': expected (n_series, n_steps, d), got {x.shape}")
    g = _as_filter(dec_lo) / np.sqrt(2.0)
    h = _as_filter(dec_hi) / np.sqrt(2.0)
    level = int(level)
    n_series, n_steps, d = x.shape
    out = np.empty((n_series, n_steps, level + 1), dtype=np.float64)
    if n_series == 0 or n_steps == 0:
        return out
    ext = 2 if boundary == "reflect" else 1
    chunk = max(1, _CHUNK_ELEMENTS // max(1, ext * n_steps * d))
    for start in range(0, n_series, chunk):
        stop = min(start + chunk, n_series)
        with np.errstate(invalid="ignore", over="ignore"):  # non-finite input -> non-finite energies
            out[start:stop] = _modwt_energies_chunk(x[start:stop], g, h, level, boundary, unit)
    return out


def _modwt_energies_chunk(x, g, h, level, boundary, unit):
    n_steps = x.shape[1]
    # 1. float64 copy, unit normalization of each vector.
    v = np.array(x, dtype=np.float64, copy=True)
    if unit:
        _unit_normalize(v)
    # 2. Boundary extension along the series axis.
    if boundary == "reflect":
        v = np.concatenate([v, v[:, ::-1]], axis=1)
    n_ext = v.shape[1]
    t = np.arange(n_ext)
    energies = np.empty(x.shape[:2] + (level + 1,), dtype=np.float64)
    # 3. Pyramid recursion: one circular gather per filter tap and level.
    for j in range(1, level + 1):
        w = np.zeros_like(v)
        v_next = np.zeros_like(v)
        for k in range(g.size):
            shifted = v[:, (t - (2 ** (j - 1)) * k) % n_ext]
            w += h[k] * shifted
            v_next += g[k] * shifted
        kept = w[:, :n_steps]
        energies[..., j - 1] = np.einsum("std,std->st", kept, kept)
        v = v_next
    kept = v[:, :n_steps]
    energies[..., level] = np.einsum("std,std->st", kept, kept)
    return energies


def _periodized_analysis(a: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """One level of PyWavelets' ``mode='periodization'`` DWT along the last axis.

    An odd-length signal is first extended by repeating its last sample; then, with
    N_e the even length and K the filter length,
    ``c[o] = sum_k f[k] a_e[(2 o + K/2 - k) mod N_e]`` for o = 0..N_e/2 - 1.
    """
    n = a.shape[-1]
    if n % 2:
        a = np.concatenate([a, a[..., -1:]], axis=-1)
        n += 1
    base = 2 * np.arange(n // 2) + lo.size // 2
    approx = np.zeros(a.shape[:-1] + (n // 2,), dtype=np.float64)
    detail = np.zeros_like(approx)
    for k in range(lo.size):
        gathered = a[..., (base - k) % n]
        approx += lo[k] * gathered
        detail += hi[k] * gathered
    return approx, detail


def dwt_energies(x, dec_lo, dec_hi, level) -> np.ndarray:
    """Band energies of the orthonormal periodized DWT over the last axis.

    Parameters
    ----------
    x : ndarray, shape (n, d), float32 or float64
        One vector per row (e.g. the update vectors of all (layer, token) cells).
    dec_lo, dec_hi : array_like, shape (K,)
        Orthogonal decomposition filters.
    level : int
        Number of detail bands J, ``1 <= J <= pywt.dwt_max_level(d, K)``.

    Returns
    -------
    energies : ndarray, shape (n, level + 1), float64
        Sum of squared coefficients per band, ordered d1..dJ, aJ; equal to the band
        energies of ``pywt.wavedec(x, wavelet, mode='periodization', level=level,
        axis=-1)`` (which returns aJ, dJ..d1), including PyWavelets' handling of odd
        lengths at coarse levels (the last sample is repeated, e.g. 45 -> 23 for
        d = 2880 with db4 at level 8).

    Notes
    -----
    For even lengths at every level the transform is orthonormal and the band
    energies sum to ||x||^2 (Percival & Walden 2000, ch. 4).
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"Invalid shape for 'x': expected (n, d), got {x.shape}")
    lo = _as_filter(dec_lo)
    hi = _as_filter(dec_hi)
    level = int(level)
    n, d = x.shape
    out = np.empty((n, level + 1), dtype=np.float64)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, 2 * d))
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        a = np.asarray(x[start:stop], dtype=np.float64)
        with np.errstate(invalid="ignore", over="ignore"):  # non-finite input -> non-finite energies
            for j in range(level):
                a, detail = _periodized_analysis(a, lo, hi)
                out[start:stop, j] = np.einsum("nd,nd->n", detail, detail)
            out[start:stop, level] = np.einsum("nd,nd->n", a, a)
    return out


def dwt_null_entropy(x, dec_lo, dec_hi, level, permutations) -> np.ndarray:
    """Normalized CSE of each row under each permutation of the hidden index.

    Parameters
    ----------
    x : ndarray, shape (n, d), float32 or float64
        One vector per row.
    dec_lo, dec_hi : array_like, shape (K,)
        Orthogonal decomposition filters.
    level : int
        Number of detail bands J.
    permutations : ndarray, shape (P, d), int
        Each row a permutation of ``range(d)``; row p gives ``x[:, permutations[p]]``.

    Returns
    -------
    null_cse : ndarray, shape (n, P), float64
        ``scale_entropy(dwt_energies(x[:, perm], ...))[0]`` for every permutation;
        dimensionless, in [0, 1], NaN where undefined.
    """
    x = np.asarray(x)
    permutations = check_permutations(permutations, x.shape[-1])
    out = np.empty((x.shape[0], permutations.shape[0]), dtype=np.float64)
    for p, perm in enumerate(permutations):
        out[:, p] = scale_entropy(dwt_energies(x[:, perm], dec_lo, dec_hi, level))[0]
    return out


def _null_moments(null) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (ddof=1) over the last axis (the permutations).

    Parameters
    ----------
    null : ndarray, shape (..., P), P >= 2
        CSE of each cell under each permutation.

    Returns
    -------
    mean, std : ndarray, shape (...), float64
        NaN where any permutation gives NaN.
    """
    null = np.asarray(null, dtype=np.float64)
    return null.mean(axis=-1), null.std(axis=-1, ddof=1)


def modwt_null_moments(x, dec_lo, dec_hi, level, permutations, boundary="reflect", unit=True):
    """Mean and standard deviation of CSE under permutations of the series order.

    The order null of the depth and token axes, computed the plain way: permute the
    steps of every series, recompute the MODWT, take the CSE of every cell, and
    summarize over the permutations. It is the specification of the fused kernels.

    Parameters
    ----------
    x : ndarray, shape (n_series, n_steps, d), float32 or float64
        As in `modwt_energies`.
    dec_lo, dec_hi, level, boundary, unit
        As in `modwt_energies`.
    permutations : ndarray, shape (P, n_steps), int, P >= 2
        Row p gives the series ``x[:, permutations[p]]``: position t of the
        permuted series holds step ``permutations[p, t]``. One set shared by every
        series.

    Returns
    -------
    mean, std : ndarray, shape (n_series, n_steps), float64
        Mean and standard deviation (ddof=1) over the P permutations of the CSE at
        each (series, position); dimensionless; NaN where any permutation leaves the
        cell undefined.

    Raises
    ------
    ValueError
        If ``permutations`` is not (P, n_steps) with P >= 2 or holds an index outside
        0..n_steps-1.
    TypeError
        If ``permutations`` is not an integer array.

    Notes
    -----
    Memory: an (n_series, n_steps, P) float64 array of every permutation's CSE (this
    is a reference for small inputs; the kernels accumulate the moments instead).
    """
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"Invalid shape for 'x': expected (n_series, n_steps, d), got {x.shape}")
    permutations = check_permutations(permutations, x.shape[1], minimum=2)
    null = np.empty(x.shape[:2] + (permutations.shape[0],))
    for p, perm in enumerate(permutations):
        null[..., p] = scale_entropy(modwt_energies(x[:, perm], dec_lo, dec_hi, level, boundary, unit))[0]
    return _null_moments(null)


def dwt_null_moments(x, dec_lo, dec_hi, level, permutations):
    """Mean and standard deviation of CSE under permutations of the hidden index.

    Parameters
    ----------
    x, dec_lo, dec_hi, level, permutations
        As in `dwt_null_entropy`; P >= 2.

    Returns
    -------
    mean, std : ndarray, shape (n,), float64
        Mean and standard deviation (ddof=1) of `dwt_null_entropy` over the
        permutations; dimensionless; NaN where any permutation leaves the row
        undefined.

    Raises
    ------
    ValueError, TypeError
        As `modwt_null_moments`.
    """
    x = np.asarray(x)
    check_permutations(permutations, x.shape[-1], minimum=2)
    return _null_moments(dwt_null_entropy(x, dec_lo, dec_hi, level, permutations))


def scale_entropy(energies):
    """Normalized Shannon entropy of the scale distribution.

    Parameters
    ----------
    energies : ndarray, shape (..., J + 1)
        Non-negative band energies, last axis the bands.

    Returns
    -------
    cse : ndarray, shape (...), float64
        ``-sum_j p_j ln p_j / ln(J + 1)`` with ``0 ln 0 = 0``, clipped to [0, 1]
        against rounding; dimensionless. NaN where the total energy is 0 or any band
        is not finite.
    fractions : ndarray, shape (..., J + 1), float64
        The scale distribution ``p_j = E_j / sum_k E_k``; NaN where ``cse`` is NaN.
    """
    e = np.asarray(energies, dtype=np.float64)
    n_bands = e.shape[-1]
    total = e.sum(axis=-1)
    defined = np.isfinite(e).all(axis=-1) & np.isfinite(total) & (total > 0)
    safe_total = np.where(defined, total, 1.0)[..., None]
    fractions = np.where(defined[..., None], e / safe_total, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(fractions > 0, fractions * np.log(np.where(fractions > 0, fractions, 1.0)), 0.0)
    if n_bands > 1:
        cse = -plogp.sum(axis=-1) / np.log(n_bands)
        cse = np.clip(cse, 0.0, 1.0)
    else:
        cse = np.zeros(e.shape[:-1])
    cse = np.where(defined, cse, np.nan)
    return cse, fractions
