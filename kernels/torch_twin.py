"""Torch twin of the scale-energy kernels: the GPU path of `cse_kernels`.

The same transforms, names and shapes as `cse_kernels.reference` (and the Numba
kernels), computed with torch on the device of the input tensor, so that layer updates
captured on a GPU are reduced there to band energies and only
``(n_series, n_steps, level + 1)`` numbers have to leave the device. Tensors in,
tensors out (on ``x.device``); nothing here synchronizes with the host (no ``.item()``,
no branching on tensor values), so the calls queue asynchronously behind the forward
pass.

Precision
---------
``dtype`` (default ``torch.float64``) is the working and output dtype: the input is
converted to it before anything else, as the NumPy reference and the Numba kernels
convert to float64. Consumer GPUs run float64 at 1/32 to 1/64 of their float32 rate; on
those, ``dtype=torch.float32`` is much faster and agrees with float64 to about 1e-6
relative in the energies (for CSE, about 1e-6 absolute), which is below anything CSE is
used to resolve. Data-centre GPUs (A100, H100) run float64 at half rate; keep the default.

Implementation
--------------
Circular gathers, as in the reference: for level j and tap k the index
``(t - 2^{j-1} k) mod N'`` (MODWT) or ``(2 o + K/2 - k) mod N_e`` (periodized DWT) is
built once with ``torch.arange`` on the device and applied with ``index_select``; taps
are summed in order k = 0..K-1. This is a dilated circular convolution (``conv1d`` with
``dilation=2^{j-1}``) written as gathers, which keeps the exact boundary rules of the
reference, float64 support on every device, and the summation order of the CPU kernels.

Importing this module imports torch; `cse_kernels` imports it lazily.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "modwt_energies",
    "dwt_energies",
    "dwt_null_entropy",
    "scale_entropy",
    "update_norms",
]

#: Elements of working dtype that `dwt_null_entropy` materializes at once
#: (rows x permutations x d): bounds device memory whatever P.
_NULL_CHUNK_ELEMENTS = 1 << 25


def _as_tensor(x, dtype) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.is_complex():
        raise TypeError(f"Invalid type for 'x': expected a real tensor, got dtype {x.dtype}")
    return x.to(dtype)


def _filters(dec_lo, dec_hi):
    lo = torch.as_tensor(dec_lo, dtype=torch.float64).flatten()
    hi = torch.as_tensor(dec_hi, dtype=torch.float64).flatten()
    if lo.numel() == 0 or lo.numel() != hi.numel():
        raise ValueError(
            f"Invalid filters: 'dec_lo' and 'dec_hi' must have the same non-zero length, "
            f"got {lo.numel()} and {hi.numel()}"
        )
    # Python floats: the taps multiply tensors as scalars, no device copies needed.
    return lo.tolist(), hi.tolist()


def update_norms(x: torch.Tensor, dtype=torch.float64) -> torch.Tensor:
    """L2 norm of each update vector.

    Parameters
    ----------
    x : torch.Tensor, shape (..., d)
        Update vectors along the last dimension, any real dtype, any device.
    dtype : torch.dtype
        Working and output dtype (default float64).

    Returns
    -------
    norms : torch.Tensor, shape (...), `dtype`, on ``x.device``
        ``sqrt(sum(x**2, dim=-1))``; inf or NaN where the vector is not finite.
    """
    v = _as_tensor(x, dtype)
    return torch.sqrt((v * v).sum(dim=-1))


def modwt_energies(x, dec_lo, dec_hi, level, boundary="reflect", unit=True, dtype=torch.float64) -> torch.Tensor:
    """MODWT band energies along dimension 1, summed over the hidden dimension.

    Parameters
    ----------
    x : torch.Tensor, shape (n_series, n_steps, d)
        Independent vector-valued series (any real dtype, any device); the transform
        runs along dimension 1 for each series and hidden dimension separately.
    dec_lo, dec_hi : array_like, shape (K,)
        Orthogonal decomposition filters; the MODWT filters are ``dec_lo / sqrt(2)``
        and ``dec_hi / sqrt(2)``.
    level : int
        Number of detail bands J.
    boundary : {'reflect', 'periodic'}
        As in `cse_kernels.reference.modwt_energies`.
    unit : bool
        If True, each vector ``x[s, t, :]`` is first scaled to unit L2 norm (a zero
        vector stays zero).
    dtype : torch.dtype
        Working and output dtype (default float64; see the module notes on float32).

    Returns
    -------
    energies : torch.Tensor, shape (n_series, n_steps, level + 1), `dtype`, on ``x.device``
        ``E_j[s, t] = sum_d W_j[s, t, d]**2`` for j = 1..J, then ``sum_d V_J[s, t, d]**2``.

    Raises
    ------
    ValueError
        If ``x`` is not 3-D, ``boundary`` is unknown or the filters differ in length.

    Notes
    -----
    Memory: about four ``(n_series, N', d)`` tensors of `dtype` at a time (N' =
    2 n_steps for ``'reflect'``); pass slices of series to bound it.
    """
    if boundary not in ("reflect", "periodic"):
        raise ValueError(f"Invalid value for 'boundary': expected 'reflect' or 'periodic', got {boundary!r}")
    v = _as_tensor(x, dtype)
    if v.dim() != 3:
        raise ValueError(f"Invalid shape for 'x': expected (n_series, n_steps, d), got {tuple(v.shape)}")
    lo, hi = _filters(dec_lo, dec_hi)
    g = [c / math.sqrt(2.0) for c in lo]
    h = [c / math.sqrt(2.0) for c in hi]
    level = int(level)
    n_series, n_steps, d = v.shape
    out = torch.empty((n_series, n_steps, level + 1), dtype=dtype, device=v.device)
    if n_series == 0 or n_steps == 0:
        return out
    # 1. Unit normalization (a zero or NaN norm divides by 1, an infinite one by inf).
    if unit:
        norms = update_norms(v, dtype).unsqueeze(-1)
        v = v / torch.where(norms > 0, norms, torch.ones_like(norms))
    # 2. Boundary extension.
    if boundary == "reflect":
        v = torch.cat([v, v.flip(1)], dim=1)
    n_ext = v.shape[1]
    t = torch.arange(n_ext, device=v.device)
    # 3. Pyramid: one circular gather per level and tap. W_j is only needed at the
    #    kept positions 0..N-1, and so is V_J.
    for j in range(1, level + 1):
        positions = t if j < level else t[:n_steps]
        w = torch.zeros((n_series, n_steps, d), dtype=dtype, device=v.device)
        v_next = torch.zeros((n_series, positions.numel(), d), dtype=dtype, device=v.device)
        for k in range(len(g)):
            shifted = v.index_select(1, torch.remainder(positions - (2 ** (j - 1)) * k, n_ext))
            w = w + h[k] * shifted[:, :n_steps]
            v_next = v_next + g[k] * shifted
        out[..., j - 1] = (w * w).sum(dim=-1)
        v = v_next
    kept = v[:, :n_steps]
    out[..., level] = (kept * kept).sum(dim=-1)
    return out


def _periodized_analysis(a: torch.Tensor, lo, hi):
    """One level of PyWavelets' 'periodization' DWT along the last dimension."""
    n = a.shape[-1]
    if n % 2:
        a = torch.cat([a, a[..., -1:]], dim=-1)
        n += 1
    base = 2 * torch.arange(n // 2, device=a.device) + len(lo) // 2
    approx = torch.zeros(a.shape[:-1] + (n // 2,), dtype=a.dtype, device=a.device)
    detail = torch.zeros_like(approx)
    for k in range(len(lo)):
        gathered = a.index_select(-1, torch.remainder(base - k, n))
        approx = approx + lo[k] * gathered
        detail = detail + hi[k] * gathered
    return approx, detail


def _dwt_energies(a: torch.Tensor, lo, hi, level: int) -> torch.Tensor:
    bands = []
    for _ in range(level):
        a, detail = _periodized_analysis(a, lo, hi)
        bands.append((detail * detail).sum(dim=-1))
    bands.append((a * a).sum(dim=-1))
    return torch.stack(bands, dim=-1)


def dwt_energies(x, dec_lo, dec_hi, level, dtype=torch.float64) -> torch.Tensor:
    """Band energies of the orthonormal periodized DWT over the last dimension.

    Parameters
    ----------
    x : torch.Tensor, shape (n, d)
        One vector per row (any real dtype, any device).
    dec_lo, dec_hi : array_like, shape (K,)
        Orthogonal decomposition filters.
    level : int
        Number of detail bands J.
    dtype : torch.dtype
        Working and output dtype (default float64).

    Returns
    -------
    energies : torch.Tensor, shape (n, level + 1), `dtype`, on ``x.device``
        Band energies ordered d1..dJ, aJ, equal to those of ``pywt.wavedec(...,
        mode='periodization')`` (odd lengths at coarse levels repeat the last sample).

    Raises
    ------
    ValueError
        If ``x`` is not 2-D or has no columns, or the filters differ in length.
    """
    a = _as_tensor(x, dtype)
    if a.dim() != 2 or a.shape[1] == 0:
        raise ValueError(f"Invalid shape for 'x': expected (n, d) with d >= 1, got {tuple(a.shape)}")
    lo, hi = _filters(dec_lo, dec_hi)
    return _dwt_energies(a, lo, hi, int(level))


def dwt_null_entropy(x, dec_lo, dec_hi, level, permutations, dtype=torch.float64) -> torch.Tensor:
    """Normalized CSE of each row under each permutation of the hidden index.

    Parameters
    ----------
    x : torch.Tensor, shape (n, d)
        One vector per row.
    dec_lo, dec_hi : array_like, shape (K,)
        Orthogonal decomposition filters.
    level : int
        Number of detail bands J.
    permutations : array_like or torch.Tensor, shape (P, d), int
        Row p gives ``x[:, permutations[p]]``.
    dtype : torch.dtype
        Working and output dtype (default float64).

    Returns
    -------
    null_cse : torch.Tensor, shape (n, P), `dtype`, on ``x.device``
        CSE of every row under every permutation; NaN where undefined.

    Raises
    ------
    ValueError
        If ``permutations`` is not (P, d).

    Notes
    -----
    Permutations are processed in chunks of at most ``_NULL_CHUNK_ELEMENTS`` gathered
    elements, so device memory stays bounded whatever P.
    """
    a = _as_tensor(x, dtype)
    if a.dim() != 2 or a.shape[1] == 0:
        raise ValueError(f"Invalid shape for 'x': expected (n, d) with d >= 1, got {tuple(a.shape)}")
    perms = torch.as_tensor(permutations, device=a.device).long()
    n, d = a.shape
    if perms.dim() != 2 or perms.shape[1] != d:
        raise ValueError(f"Invalid shape for 'permutations': expected (P, {d}), got {tuple(perms.shape)}")
    lo, hi = _filters(dec_lo, dec_hi)
    n_perm = perms.shape[0]
    out = torch.empty((n, n_perm), dtype=dtype, device=a.device)
    step = max(1, _NULL_CHUNK_ELEMENTS // max(1, n * d))
    for p0 in range(0, n_perm, step):
        block = perms[p0 : p0 + step]
        permuted = a[:, block]  # (n, B, d)
        energies = _dwt_energies(permuted, lo, hi, int(level))
        out[:, p0 : p0 + step] = scale_entropy(energies)[0]
    return out


def scale_entropy(energies):
    """Normalized Shannon entropy of the scale distribution.

    Parameters
    ----------
    energies : torch.Tensor, shape (..., J + 1)
        Non-negative band energies, last dimension the bands.

    Returns
    -------
    cse : torch.Tensor, shape (...)
        ``-sum_j p_j ln p_j / ln(J + 1)`` with ``0 ln 0 = 0``, clipped to [0, 1];
        NaN where the total energy is 0 or any band is not finite.
    fractions : torch.Tensor, shape (..., J + 1)
        ``p_j = E_j / sum_k E_k``; NaN where ``cse`` is NaN.
    """
    e = torch.as_tensor(energies)
    if not e.is_floating_point():
        e = e.to(torch.float64)
    n_bands = e.shape[-1]
    total = e.sum(dim=-1)
    defined = torch.isfinite(e).all(dim=-1) & torch.isfinite(total) & (total > 0)
    safe_total = torch.where(defined, total, torch.ones_like(total)).unsqueeze(-1)
    nan = torch.full_like(e, float("nan"))
    fractions = torch.where(defined.unsqueeze(-1), e / safe_total, nan)
    positive = fractions > 0
    plogp = torch.where(positive, fractions * torch.log(torch.where(positive, fractions, torch.ones_like(e))),
                        torch.zeros_like(e))
    if n_bands > 1:
        cse = (-plogp.sum(dim=-1) / math.log(n_bands)).clamp(0.0, 1.0)
    else:
        cse = torch.zeros_like(total)
    cse = torch.where(defined, cse, torch.full_like(cse, float("nan")))
    return cse, fractions
