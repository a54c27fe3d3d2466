"""NumPy reference of the scale-energy transforms of the definition (user guide).

This module is the specification in code: every faster kernel (Numba in
`cse_kernels._numba`, the torch twin) must reproduce these functions, with the same
names and signatures (each documented once, in `cse_kernels._docs`), to
floating-point tolerance.

Plain ndarrays in and out, float64 accumulation, vectorized over series and tokens
(Python loops run only over levels, filter taps, chunks of series and permutations).
No validation beyond what protects memory: callers (`cse.measure`) validate.

The Gram path (`gram_matrices`, `gram_energies`, `gram_null_moments`) is written from
the MODWT's matrices (`cse_kernels.filters.quadratic_tables`): the band energy of a
cell is a weighted sum of Gram entries over the pairs of samples its coefficient
reads, and the order null re-indexes the Gram matrix.

References
----------
D. B. Percival and A. T. Walden, *Wavelet Methods for Time Series Analysis*,
Cambridge University Press, 2000, ch. 4 (DWT) and ch. 5 (MODWT).
"""

from __future__ import annotations

import numpy as np

from ._checks import check_float64, check_gram, check_method, check_permutations
from ._docs import shared_doc
from .filters import quadratic_tables

#: Arrays this module takes and returns (`cse.measure.reduce_updates` reads it).
ARRAYS = "numpy"

# Work arrays are processed in chunks of series so that the float64 copy of a
# large batch (and its reflected extension) never holds more than ~this many elements.
_CHUNK_ELEMENTS = 1 << 23


def _as_filter(f) -> np.ndarray:
    return np.asarray(f, dtype=np.float64).ravel()


@shared_doc(ARRAYS)
def update_norms(x, dtype=None) -> np.ndarray:
    check_float64(dtype)
    x64 = np.asarray(x, dtype=np.float64)
    return np.sqrt(np.einsum("...d,...d->...", x64, x64))


def _check_boundary(boundary) -> None:
    if boundary not in ("reflect", "periodic"):
        raise ValueError(f"Invalid value for 'boundary': expected 'reflect' or 'periodic', got {boundary!r}")


def _unit_normalize(x64: np.ndarray) -> np.ndarray:
    """Scale each vector along the last axis to unit L2 norm in place; zero stays zero."""
    norms = update_norms(x64)[..., None]
    # A zero (or NaN) norm divides by 1: zero vectors stay zero, NaN stays NaN.
    # An infinite norm divides by inf, which leaves NaN in the vector (inf / inf).
    with np.errstate(invalid="ignore"):
        np.divide(x64, np.where(norms > 0, norms, 1.0), out=x64)
    return x64


@shared_doc(ARRAYS)
def modwt_energies(x, dec_lo, dec_hi, level, boundary="reflect", unit=True, dtype=None) -> np.ndarray:
    check_float64(dtype)
    _check_boundary(boundary)
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


@shared_doc(ARRAYS)
def dwt_energies(x, dec_lo, dec_hi, level, dtype=None) -> np.ndarray:
    check_float64(dtype)
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


@shared_doc(ARRAYS)
def dwt_null_entropy(x, dec_lo, dec_hi, level, permutations, dtype=None) -> np.ndarray:
    check_float64(dtype)
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


@shared_doc(ARRAYS, notes="""\
Reference: ``'direct'`` (the default) computes it the plain way -- permute the steps
of every series, recompute the MODWT, take the CSE of every cell and summarize -- with
an (n_series, n_steps, P) array of every permutation's CSE (a reference for small
inputs; the kernels accumulate the moments instead). ``'gram'`` is
``gram_null_moments(gram_matrices(x), ...)``.""")
def modwt_null_moments(x, dec_lo, dec_hi, level, permutations, boundary="reflect", unit=True, method=None,
                       dtype=None):
    check_float64(dtype)
    check_method(method)
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"Invalid shape for 'x': expected (n_series, n_steps, d), got {x.shape}")
    permutations = check_permutations(permutations, x.shape[1], minimum=2)
    if method == "gram":
        return gram_null_moments(gram_matrices(x), dec_lo, dec_hi, level, permutations, boundary, unit)
    null = np.empty(x.shape[:2] + (permutations.shape[0],))
    for p, perm in enumerate(permutations):
        null[..., p] = scale_entropy(modwt_energies(x[:, perm], dec_lo, dec_hi, level, boundary, unit))[0]
    return _null_moments(null)


@shared_doc(ARRAYS)
def dwt_null_moments(x, dec_lo, dec_hi, level, permutations, dtype=None):
    check_float64(dtype)
    x = np.asarray(x)
    check_permutations(permutations, x.shape[-1], minimum=2)
    return _null_moments(dwt_null_entropy(x, dec_lo, dec_hi, level, permutations))


# --- the Gram path -------------------------------------------------------------------


@shared_doc(ARRAYS)
def gram_matrices(x, dtype=None) -> np.ndarray:
    check_float64(dtype)
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"Invalid shape for 'x': expected (n_series, n_steps, d), got {x.shape}")
    n_series, n_steps, d = x.shape
    out = np.empty((n_series, n_steps, n_steps))
    chunk = max(1, _CHUNK_ELEMENTS // max(1, n_steps * d))
    for start in range(0, n_series, chunk):
        x64 = np.asarray(x[start:start + chunk], dtype=np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            out[start:start + chunk] = np.einsum("smd,snd->smn", x64, x64)
    return out


def _unit_gram(gram: np.ndarray) -> np.ndarray:
    """G[m, n] / (|x_m| |x_n|) from the diagonal, with `_unit_normalize`'s rule for the norms.

    A zero or NaN norm divides by 1 (a zero vector stays zero, NaN stays NaN); an
    infinite one by inf, which leaves NaN on its diagonal (inf / inf), as it leaves
    NaN in the vector.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        norms = np.sqrt(np.einsum("smm->sm", gram))
        scale = 1.0 / np.where(norms > 0, norms, 1.0)
        return gram * (scale[:, :, None] * scale[:, None, :])


def _gram_forms(gram, dec_lo, dec_hi, level, boundary, unit) -> np.ndarray:
    """Band energies (n_series, n_steps, level + 1) of Gram matrices: the Gram identity, plainly."""
    gram = check_gram(gram)
    n_series, n_steps, _ = gram.shape
    level = int(level)
    if gram.size == 0:
        return np.empty((n_series, n_steps, level + 1))
    if unit:
        gram = _unit_gram(gram)
    starts, first, second, weight = quadratic_tables(_as_filter(dec_lo), _as_filter(dec_hi), level, n_steps,
                                                     boundary)
    with np.errstate(invalid="ignore", over="ignore"):
        terms = weight * gram[:, first, second]  # (n_series, n_pairs)
        energies = np.add.reduceat(terms, starts[:-1], axis=1)  # cells b * N + t
    energies = energies.reshape(n_series, level + 1, n_steps).transpose(0, 2, 1)
    # Cancellation can round an energy below zero; clamp it (NaN stays NaN).
    return np.ascontiguousarray(np.where(energies < 0, 0.0, energies))


@shared_doc(ARRAYS)
def gram_energies(gram, dec_lo, dec_hi, level, boundary="reflect", unit=True, dtype=None) -> np.ndarray:
    check_float64(dtype)
    _check_boundary(boundary)
    return _gram_forms(gram, dec_lo, dec_hi, level, boundary, unit)


@shared_doc(ARRAYS, notes="""\
Reference: for every permutation pi, the re-indexed Gram matrices
``gram[:, pi][:, :, pi]`` through `gram_energies`, with an (n_series, n_steps, P)
array of every permutation's CSE.""")
def gram_null_moments(gram, dec_lo, dec_hi, level, permutations, boundary="reflect", unit=True, dtype=None):
    check_float64(dtype)
    _check_boundary(boundary)
    gram = check_gram(gram)
    permutations = check_permutations(permutations, gram.shape[1], minimum=2)
    null = np.empty(gram.shape[:2] + (permutations.shape[0],))
    for p, perm in enumerate(permutations):
        permuted = gram[:, perm][:, :, perm]
        null[..., p] = scale_entropy(_gram_forms(permuted, dec_lo, dec_hi, level, boundary, unit))[0]
    return _null_moments(null)


@shared_doc(ARRAYS)
def scale_entropy(energies):
    e = np.asarray(energies, dtype=np.float64)
    if e.ndim == 0:
        raise ValueError("Invalid shape for 'energies': expected (..., J + 1), got a scalar")
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
