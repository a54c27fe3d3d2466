"""An independent, deliberately naive implementation of SPEC section 2.

Written straight from the formulas with explicit Python loops over time, filter taps
and levels, for small arrays only. It shares no code with `cse_kernels.reference`
(or any other kernel) and exists so that tests can check those against something
that was derived separately. Do not import it from package code.

Exports
-------
naive_modwt_energies(x, wavelet, level, boundary, unit) -> (n_series, n_steps, level + 1)
naive_dwt_energies(x, wavelet, level) -> (n, level + 1)
naive_cse(energies) -> (cse, fractions)
naive_conditional_scale_entropy(u, axis, wavelet, level, boundary, normalize) -> (cse, fractions)
naive_order_null(u, axis, permutations, wavelet, level, boundary, normalize) -> (mean, std)
"""

from __future__ import annotations

import math

import numpy as np
import pywt


def _filters(wavelet):
    w = wavelet if isinstance(wavelet, pywt.Wavelet) else pywt.Wavelet(wavelet)
    return [float(c) for c in w.dec_lo], [float(c) for c in w.dec_hi]


def _unit(vec):
    norm = math.sqrt(sum(float(v) * float(v) for v in vec))
    if norm > 0:
        return [float(v) / norm for v in vec]
    return [float(v) for v in vec]


def naive_modwt_energies(x, wavelet, level, boundary="reflect", unit=True):
    """MODWT band energies along axis 1 of x (n_series, n_steps, d), by loops.

    W_j[t] = sum_k h~[k] V_{j-1}[(t - 2^{j-1} k) mod N'], same for V_j with g~,
    g~ = dec_lo / sqrt(2), h~ = dec_hi / sqrt(2); reflect runs on the 2N series
    [X_0..X_{N-1}, X_{N-1}..X_0] and keeps t = 0..N-1.
    """
    lo, hi = _filters(wavelet)
    g = [c / math.sqrt(2) for c in lo]
    h = [c / math.sqrt(2) for c in hi]
    x = np.asarray(x, dtype=np.float64)
    n_series, n, d = x.shape
    out = np.zeros((n_series, n, level + 1))
    for s in range(n_series):
        series = [list(map(float, x[s, t])) for t in range(n)]
        if unit:
            series = [_unit(vec) for vec in series]
        if boundary == "reflect":
            ext = series + [series[n - 1 - t] for t in range(n)]
        elif boundary == "periodic":
            ext = series
        else:
            raise ValueError(boundary)
        n_ext = len(ext)
        v = ext
        for j in range(1, level + 1):
            w_new = []
            v_new = []
            for t in range(n_ext):
                w_t = [0.0] * d
                v_t = [0.0] * d
                for k in range(len(g)):
                    src = v[(t - 2 ** (j - 1) * k) % n_ext]
                    for i in range(d):
                        w_t[i] += h[k] * src[i]
                        v_t[i] += g[k] * src[i]
                w_new.append(w_t)
                v_new.append(v_t)
            for t in range(n):
                out[s, t, j - 1] = sum(c * c for c in w_new[t])
            v = v_new
        for t in range(n):
            out[s, t, level] = sum(c * c for c in v[t])
    return out


def _pywt_periodization_step(a, lo, hi):
    """One analysis step in PyWavelets' periodization convention, by loops.

    Odd length: append a copy of the last sample. Then take the circular
    convolution y[m] = sum_k f[k] a[(m - k) mod N] and keep m = K/2, K/2 + 2, ...
    (N/2 outputs).
    """
    a = list(a)
    if len(a) % 2 == 1:
        a.append(a[-1])
    n = len(a)
    k_len = len(lo)
    y_lo = [sum(lo[k] * a[(m - k) % n] for k in range(k_len)) for m in range(n)]
    y_hi = [sum(hi[k] * a[(m - k) % n] for k in range(k_len)) for m in range(n)]
    keep = [(k_len // 2 + 2 * o) % n for o in range(n // 2)]
    return [y_lo[m] for m in keep], [y_hi[m] for m in keep]


def naive_dwt_energies(x, wavelet, level):
    """Periodized DWT band energies (d1..dJ, aJ) of each row of x (n, d), by loops."""
    lo, hi = _filters(wavelet)
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros((x.shape[0], level + 1))
    for r in range(x.shape[0]):
        a = [float(v) for v in x[r]]
        for j in range(level):
            a, detail = _pywt_periodization_step(a, lo, hi)
            out[r, j] = sum(c * c for c in detail)
        out[r, level] = sum(c * c for c in a)
    return out


def naive_cse(energies):
    """(cse, fractions) of energies (..., J+1): -sum p ln p / ln(J+1), NaN if undefined."""
    e = np.asarray(energies, dtype=np.float64)
    flat = e.reshape(-1, e.shape[-1])
    cse = np.full(flat.shape[0], np.nan)
    fractions = np.full(flat.shape, np.nan)
    n_bands = e.shape[-1]
    for r, row in enumerate(flat):
        if not all(math.isfinite(v) for v in row):
            continue
        total = sum(row)
        if not math.isfinite(total) or total <= 0:
            continue
        p = [v / total for v in row]
        fractions[r] = p
        cse[r] = -sum(q * math.log(q) for q in p if q > 0) / math.log(n_bands)
    return cse.reshape(e.shape[:-1]), fractions.reshape(e.shape)


def naive_conditional_scale_entropy(u, axis="depth", wavelet=None, level=None, boundary="reflect", normalize=None):
    """(cse (layer, token), fractions (layer, token, J+1)) for u (n_layers, n_tokens, d)."""
    u = np.asarray(u, dtype=np.float64)
    n_layers, n_tokens, d = u.shape
    if wavelet is None:
        wavelet = "db4" if axis == "hidden" else "haar"
    if normalize is None:
        normalize = "none" if axis == "hidden" else "unit"
    unit = normalize == "unit"
    if axis == "depth":
        level = 3 if level is None else level
        e = naive_modwt_energies(np.transpose(u, (1, 0, 2)), wavelet, level, boundary, unit)
        e = np.transpose(e, (1, 0, 2))
    elif axis == "token":
        level = 3 if level is None else level
        e = naive_modwt_energies(u, wavelet, level, boundary, unit)
    elif axis == "hidden":
        if level is None:
            level = pywt.dwt_max_level(d, pywt.Wavelet(wavelet).dec_len)
        rows = u.reshape(-1, d)
        if unit:
            rows = np.array([_unit(r) for r in rows])
        e = naive_dwt_energies(rows, wavelet, level).reshape(n_layers, n_tokens, level + 1)
    else:
        raise ValueError(axis)
    return naive_cse(e)


def naive_order_null(u, axis, permutations, wavelet=None, level=None, boundary="reflect", normalize=None):
    """(mean, std ddof=1), each (layer, token), of CSE over permutations of the axis' order.

    depth: the layer order of every token's stream is permuted (u[perm, t]); token:
    the token order (u[:, perm]); hidden: the hidden index (u[:, :, perm]). Each
    permuted array goes through `naive_conditional_scale_entropy` again.
    """
    u = np.asarray(u, dtype=np.float64)
    values = []
    for perm in permutations:
        perm = list(perm)
        if axis == "depth":
            permuted = u[perm]
        elif axis == "token":
            permuted = u[:, perm]
        else:
            permuted = u[:, :, perm]
        values.append(naive_conditional_scale_entropy(permuted, axis, wavelet, level, boundary, normalize)[0])
    n = len(values)
    mean = sum(values) / n
    std = np.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, std
