"""MODWT equivalent filters and the operator they define on a finite series (NumPy).

The MODWT pyramid of the definition (user guide) is linear in the series, so each band at each
position is a fixed linear combination of the series' samples:

    W_j[t] = sum_m A_j[t, m] X[m],     j = 1..J  (and V_J likewise, "band" J + 1)

where row t of ``A_j`` is the level-j *equivalent filter* read backwards from t,
its indices mapped into 0..N-1 by the boundary rule (Percival & Walden 2000,
sections 5.4-5.5). This module builds those filters and matrices, and from them the
tables of the *Gram identity* used by the order-null kernels: with vector-valued
samples X[m] in R^D and the Gram matrix ``G = X X^T`` (N x N),

    E_j[t] = sum_d W_j[t, d]^2 = a_t^T G a_t = sum_{m, n} a_t[m] a_t[n] G[m, n],

so band energies depend on the series only through G, and permuting the series (the
order null) only re-indexes G: ``G_pi[m, n] = G[pi[m], pi[n]]``.

Plain NumPy, no validation beyond shapes: the kernels' public functions validate.

References
----------
D. B. Percival and A. T. Walden, *Wavelet Methods for Time Series Analysis*,
Cambridge University Press, 2000, ch. 4 (equivalent filters, eq. 96-98) and ch. 5
(MODWT filters, the pyramid algorithm, boundary coefficients, section 5.4-5.5).
"""

from __future__ import annotations

import numpy as np


def equivalent_width(n_taps: int, level: int) -> int:
    """Width L_j = (2^j - 1)(K - 1) + 1 of the level-j MODWT equivalent filter.

    Parameters
    ----------
    n_taps : int
        K, the length of the wavelet's filters.
    level : int
        j >= 0 (level 0 is the identity, width 1).

    Returns
    -------
    int
        L_j. The coefficients at positions t = 0 .. L_j - 2 are the boundary
        coefficients: they read samples before the start of the series (Percival &
        Walden 2000, section 5.4 and eq. 96a applied to the MODWT filters).
    """
    return (2**level - 1) * (n_taps - 1) + 1


def equivalent_filters(dec_lo, dec_hi, level: int) -> list[np.ndarray]:
    """Level-j MODWT equivalent filters of every band, float64.

    Parameters
    ----------
    dec_lo, dec_hi : array_like, shape (K,)
        Orthogonal decomposition filters (``pywt.Wavelet(name).dec_lo / .dec_hi``).
    level : int
        J >= 0.

    Returns
    -------
    list of ndarray, J + 1 arrays
        ``h~_1 .. h~_J`` (details, lengths L_1 .. L_J) then ``g~_J`` (approximation,
        length L_J), with ``W_j[t] = sum_l h~_j[l] X[t - l]`` on the periodically
        extended series. Built by the recursion h~_j = g~_{j-1} * (h~ upsampled by
        2^{j-1}), g~_j = g~_{j-1} * (g~ upsampled by 2^{j-1}), g~_0 = [1], with
        h~ = dec_hi / sqrt(2), g~ = dec_lo / sqrt(2).
    """
    g = np.asarray(dec_lo, dtype=np.float64).ravel() / np.sqrt(2.0)
    h = np.asarray(dec_hi, dtype=np.float64).ravel() / np.sqrt(2.0)
    approx = np.ones(1)
    bands = []
    for j in range(1, int(level) + 1):
        step = 2 ** (j - 1)
        up_g = np.zeros((g.size - 1) * step + 1)
        up_h = np.zeros_like(up_g)
        up_g[::step] = g
        up_h[::step] = h
        bands.append(np.convolve(approx, up_h))
        approx = np.convolve(approx, up_g)
    return bands + [approx]


def _source_index(t: int, lags: np.ndarray, n_steps: int, boundary: str) -> np.ndarray:
    """Sample of X that position t - lag reads under the boundary rule."""
    if boundary == "periodic":
        return (t - lags) % n_steps
    r = (t - lags) % (2 * n_steps)  # the 2N-long [X_0..X_{N-1}, X_{N-1}..X_0], circularly
    return np.where(r < n_steps, r, 2 * n_steps - 1 - r)


def modwt_operator(dec_lo, dec_hi, level: int, n_steps: int, boundary: str = "reflect"):
    """The MODWT of an N-long series as matrices: band b at t is ``sum_m A[b, t, m] X[m]``.

    Parameters
    ----------
    dec_lo, dec_hi : array_like, shape (K,)
        Orthogonal decomposition filters.
    level : int
        J.
    n_steps : int
        N, the length of the series.
    boundary : {'reflect', 'periodic'}
        ``'periodic'``: index (t - l) mod N; ``'reflect'``: (t - l) mod 2N in the
        series followed by its mirror image, i.e. index -m - 1 for m < 0.

    Returns
    -------
    weights : ndarray, shape (J + 1, N, N), float64
        ``A[b]``, bands d1..dJ then aJ. Taps that land on the same sample add up
        (aliasing, when L_j exceeds the period).
    reads : ndarray, shape (J + 1, N, N), bool
        Which samples each coefficient reads, whatever the (possibly cancelling)
        summed weight: a non-finite sample makes exactly these coefficients
        non-finite, as in the pyramid.
    """
    filters = equivalent_filters(dec_lo, dec_hi, level)
    n = int(n_steps)
    weights = np.zeros((len(filters), n, n))
    reads = np.zeros((len(filters), n, n), dtype=bool)
    for b, f in enumerate(filters):
        lags = np.arange(f.size)
        for t in range(n):
            src = _source_index(t, lags, n, boundary)
            np.add.at(weights[b, t], src, f)
            reads[b, t, src] = True
    return weights, reads


def quadratic_tables(dec_lo, dec_hi, level: int, n_steps: int, boundary: str = "reflect"):
    """Flattened pair tables of the Gram identity, for the kernels.

    For every band b and position t (cell ``c = b * N + t``), the pairs (m, n), m <= n,
    of samples the coefficient reads, with weight ``A[b,t,m] A[b,t,n]`` (doubled when
    m != n), so that ``E_b[t] = sum over the cell's pairs of w * G[m, n]`` for a
    symmetric G.

    Parameters
    ----------
    dec_lo, dec_hi : array-like of float, shape (K,)
        The orthogonal wavelet's decomposition filters (``pywt.Wavelet.dec_lo``, ``dec_hi``).
    level : int
        J, the number of detail bands.
    n_steps : int
        N, the length of the series.
    boundary : {'reflect', 'periodic'}
        The MODWT boundary rule.

    Returns
    -------
    starts : ndarray of int64, shape ((J + 1) N + 1,)
        Pairs of cell c are ``starts[c]:starts[c + 1]``.
    first, second : ndarray of int64, shape (n_pairs,)
        m and n of each pair.
    weight : ndarray of float64, shape (n_pairs,)
    """
    weights, reads = modwt_operator(dec_lo, dec_hi, level, n_steps, boundary)
    n_bands, n, _ = weights.shape
    starts = [0]
    first, second, weight = [], [], []
    for b in range(n_bands):
        for t in range(n):
            idx = np.flatnonzero(reads[b, t])
            a = weights[b, t, idx]
            m, k = np.triu_indices(idx.size)
            first.append(idx[m])
            second.append(idx[k])
            weight.append(a[m] * a[k] * np.where(m == k, 1.0, 2.0))
            starts.append(starts[-1] + m.size)
    return (
        np.asarray(starts, dtype=np.int64),
        np.concatenate(first).astype(np.int64),
        np.concatenate(second).astype(np.int64),
        np.concatenate(weight),
    )
