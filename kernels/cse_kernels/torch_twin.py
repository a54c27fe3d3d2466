"""Torch twin of the scale-energy kernels: the GPU path of `cse_kernels`.

The same transforms, names, signatures and shapes as `cse_kernels.reference` (and
the Numba kernels; each function documented once, in `cse_kernels._docs`), computed
with torch on the device of the input tensor, so that layer updates
captured on a GPU are reduced there to band energies and only
``(n_series, n_steps, level + 1)`` numbers have to leave the device. Tensors in,
tensors out (on ``x.device``); nothing here synchronizes with the host (no ``.item()``,
no branching on tensor values), so the calls queue asynchronously behind the forward
pass.

Precision
---------
``dtype`` (None: ``torch.float64``) is the working and output dtype: the input is
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

import functools
import math

import numpy as np
import torch

from ._checks import check_method
from ._docs import shared_doc
from .filters import quadratic_tables

#: Arrays this module takes and returns (`cse.measure.reduce_updates` reads it).
ARRAYS = "torch"

#: Elements of working dtype that one step of a function materializes at once
#: (series x steps x d for the MODWT, rows x permutations x d for the DWT null,
#: series x permutations x pairs for the MODWT null): bounds device memory whatever
#: the batch and P.
_CHUNK_ELEMENTS = 1 << 25


def _working(dtype) -> torch.dtype:
    """The working dtype: None is float64; otherwise a torch floating dtype."""
    if dtype is None:
        return torch.float64
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"Invalid value for 'dtype': expected None or a torch floating dtype, got {dtype!r}")
    return dtype


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


def _series_tensor(x, boundary) -> torch.Tensor:
    """`x` as a real 3-D tensor (n_series, n_steps, d), `boundary` checked."""
    if boundary not in ("reflect", "periodic"):
        raise ValueError(f"Invalid value for 'boundary': expected 'reflect' or 'periodic', got {boundary!r}")
    x = torch.as_tensor(x)
    if x.is_complex():
        raise TypeError(f"Invalid type for 'x': expected a real tensor, got dtype {x.dtype}")
    if x.dim() != 3:
        raise ValueError(f"Invalid shape for 'x': expected (n_series, n_steps, d), got {tuple(x.shape)}")
    return x


@shared_doc(ARRAYS, notes="Computed in chunks of vectors, so no `dtype` copy of a large ``x`` exists at once.")
def update_norms(x, dtype=None) -> torch.Tensor:
    dtype = _working(dtype)
    x = torch.as_tensor(x)
    if x.is_complex():
        raise TypeError(f"Invalid type for 'x': expected a real tensor, got dtype {x.dtype}")
    if x.dim() == 0:
        raise ValueError("Invalid shape for 'x': expected at least 1 dimension, got a scalar")
    lead, d = x.shape[:-1], x.shape[-1]
    rows = x.reshape(-1, d)
    out = torch.empty(rows.shape[0], dtype=dtype, device=x.device)
    step = max(1, _CHUNK_ELEMENTS // max(1, d))
    for r0 in range(0, rows.shape[0], step):
        v = rows[r0:r0 + step].to(dtype)
        out[r0:r0 + step] = torch.sqrt((v * v).sum(dim=-1))
    return out.reshape(lead)


@shared_doc(ARRAYS, notes="Series are transformed in chunks of about ``_CHUNK_ELEMENTS`` elements of ``(series, N', d)`` "
            "(N' = 2 n_steps for ``'reflect'``); the pyramid holds about four such tensors of `dtype` at a time.")
def modwt_energies(x, dec_lo, dec_hi, level, boundary="reflect", unit=True, dtype=None) -> torch.Tensor:
    dtype = _working(dtype)
    x = _series_tensor(x, boundary)
    lo, hi = _filters(dec_lo, dec_hi)
    g = [c / math.sqrt(2.0) for c in lo]
    h = [c / math.sqrt(2.0) for c in hi]
    level = int(level)
    n_series, n_steps, d = x.shape
    out = torch.empty((n_series, n_steps, level + 1), dtype=dtype, device=x.device)
    if n_series == 0 or n_steps == 0:
        return out
    step = max(1, _CHUNK_ELEMENTS // max(1, 2 * n_steps * d))
    for s0 in range(0, n_series, step):
        out[s0:s0 + step] = _modwt_chunk(x[s0:s0 + step], g, h, level, boundary, unit, dtype)
    return out


def _modwt_chunk(x, g, h, level, boundary, unit, dtype):
    """`modwt_energies` of a chunk of series (the MODWT filters g, h as lists of floats)."""
    v = x.to(dtype)
    n_series, n_steps, d = v.shape
    out = torch.empty((n_series, n_steps, level + 1), dtype=dtype, device=v.device)
    # 1. Unit normalization (a zero or NaN norm divides by 1, an infinite one by inf).
    if unit:
        v = _unit_normalize(v)
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


def _unit_normalize(v: torch.Tensor) -> torch.Tensor:
    """Each vector (last dimension) over its L2 norm; a zero or NaN norm divides by 1."""
    norms = torch.sqrt((v * v).sum(dim=-1, keepdim=True))
    return v / torch.where(norms > 0, norms, torch.ones_like(norms))


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


@shared_doc(ARRAYS)
def dwt_energies(x, dec_lo, dec_hi, level, dtype=None) -> torch.Tensor:
    dtype = _working(dtype)
    x = torch.as_tensor(x)
    if x.is_complex():
        raise TypeError(f"Invalid type for 'x': expected a real tensor, got dtype {x.dtype}")
    if x.dim() != 2 or x.shape[1] == 0:
        raise ValueError(f"Invalid shape for 'x': expected (n, d) with d >= 1, got {tuple(x.shape)}")
    lo, hi = _filters(dec_lo, dec_hi)
    out = torch.empty((x.shape[0], int(level) + 1), dtype=dtype, device=x.device)
    step = max(1, _CHUNK_ELEMENTS // x.shape[1])
    for r0 in range(0, x.shape[0], step):  # rows in chunks: no `dtype` copy of a large x at once
        out[r0:r0 + step] = _dwt_energies(x[r0:r0 + step].to(dtype), lo, hi, int(level))
    return out


def _permutation_tensor(permutations, n: int, device, minimum: int = 0) -> torch.Tensor:
    """`permutations` as an int64 (P, n) tensor on `device`, checked like the other kernels."""
    if isinstance(permutations, np.ndarray) and not permutations.flags.writeable:
        permutations = permutations.copy()  # torch refuses to share read-only memory
    perms = torch.as_tensor(permutations)
    if perms.dim() != 2 or perms.shape[1] != n:
        raise ValueError(f"Invalid shape for 'permutations': expected (P, {n}), got {tuple(perms.shape)}")
    if perms.shape[0] < minimum:
        raise ValueError(f"Invalid shape for 'permutations': expected at least {minimum} rows, got {perms.shape[0]}")
    if perms.numel() and (perms.is_floating_point() or perms.is_complex() or perms.dtype == torch.bool):
        raise TypeError(f"Invalid type for 'permutations': expected integers, got dtype {perms.dtype}")
    perms = perms.to(device=device, dtype=torch.long)
    # (One synchronizing check, on P x n indices, before anything is gathered.)
    if perms.numel() and bool(((perms < 0) | (perms >= n)).any()):
        raise ValueError(f"Invalid value for 'permutations': indices must lie in 0..{n - 1}")
    return perms


def _dwt_null_chunks(x, dec_lo, dec_hi, level, permutations, dtype, minimum):
    """Yield (r0, p0, CSE of rows r0.. under permutations p0.., shape (R, B)), in bounded chunks."""
    x = torch.as_tensor(x)
    if x.is_complex():
        raise TypeError(f"Invalid type for 'x': expected a real tensor, got dtype {x.dtype}")
    if x.dim() != 2 or x.shape[1] == 0:
        raise ValueError(f"Invalid shape for 'x': expected (n, d) with d >= 1, got {tuple(x.shape)}")
    n, d = x.shape
    perms = _permutation_tensor(permutations, d, x.device, minimum)
    lo, hi = _filters(dec_lo, dec_hi)
    r_step = max(1, _CHUNK_ELEMENTS // d)
    for r0 in range(0, n, r_step):
        a = x[r0:r0 + r_step].to(dtype)
        p_step = max(1, _CHUNK_ELEMENTS // (a.shape[0] * d))
        for p0 in range(0, perms.shape[0], p_step):
            permuted = a[:, perms[p0:p0 + p_step]]  # (R, B, d)
            yield r0, p0, scale_entropy(_dwt_energies(permuted, lo, hi, int(level)))[0]


@shared_doc(ARRAYS, notes="Permutations are processed in chunks of at most ``_CHUNK_ELEMENTS`` gathered elements, so device "
            "memory stays bounded whatever P.")
def dwt_null_entropy(x, dec_lo, dec_hi, level, permutations, dtype=None) -> torch.Tensor:
    dtype = _working(dtype)
    chunks = _dwt_null_chunks(x, dec_lo, dec_hi, level, permutations, dtype, 0)
    a = torch.as_tensor(x)
    out = torch.empty((a.shape[0], len(permutations)), dtype=dtype, device=a.device)
    for r0, p0, cse in chunks:
        out[r0:r0 + cse.shape[0], p0:p0 + cse.shape[1]] = cse
    return out


class _Moments:
    """Running count, mean and sum of squared deviations over the last dimension of chunks.

    Chunks are merged with the pairwise update of Chan, Golub & LeVeque (1983), which
    is as stable as Welford's one-at-a-time update; NaN propagates.
    """

    def __init__(self):
        self.count = 0
        self.mean = None
        self.m2 = None

    def add(self, values: torch.Tensor) -> None:
        n_b = values.shape[-1]
        mean_b = values.mean(dim=-1)
        m2_b = ((values - mean_b.unsqueeze(-1)) ** 2).sum(dim=-1)
        if self.mean is None:
            self.count, self.mean, self.m2 = n_b, mean_b, m2_b
            return
        n = self.count + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / n)
        self.m2 = self.m2 + m2_b + delta * delta * (self.count * n_b / n)
        self.count = n

    def result(self):
        """(mean, std with ddof=1)."""
        return self.mean, torch.sqrt(torch.clamp(self.m2, min=0.0) / (self.count - 1))


@shared_doc(ARRAYS)
def dwt_null_moments(x, dec_lo, dec_hi, level, permutations, dtype=None):
    dtype = _working(dtype)
    a = torch.as_tensor(x)
    mean = torch.empty(a.shape[0] if a.dim() else 0, dtype=dtype, device=a.device)
    std = torch.empty_like(mean)
    rows, moments = None, None
    for r0, _, cse in _dwt_null_chunks(x, dec_lo, dec_hi, level, permutations, dtype, 2):
        if r0 != rows:  # a new chunk of rows: store the last one's moments
            if moments is not None:
                mean[rows:rows + moments.mean.shape[0]], std[rows:rows + moments.mean.shape[0]] = moments.result()
            rows, moments = r0, _Moments()
        moments.add(cse)
    if moments is not None:
        mean[rows:rows + moments.mean.shape[0]], std[rows:rows + moments.mean.shape[0]] = moments.result()
    return mean, std


@functools.lru_cache(maxsize=32)
def _band_tables(lo_bytes, hi_bytes, level, n_steps, boundary):
    """Pair tables of `cse_kernels.filters.quadratic_tables`, padded per band.

    Returns, for each band, (first, second, weight) of shape (N, M_b): the pairs of
    position t in row t, padded with index N (a zero appended to each Gram row's
    flattening, see `modwt_null_moments`) and weight 0.
    """
    lo = np.frombuffer(lo_bytes, dtype=np.float64)
    hi = np.frombuffer(hi_bytes, dtype=np.float64)
    starts, first, second, weight = quadratic_tables(lo, hi, level, n_steps, boundary)
    counts = np.diff(starts).reshape(level + 1, n_steps)
    tables = []
    for b in range(level + 1):
        width = int(counts[b].max())
        f = np.full((n_steps, width), n_steps, dtype=np.int64)
        g = np.full((n_steps, width), n_steps, dtype=np.int64)
        w = np.zeros((n_steps, width))
        for t in range(n_steps):
            lo_k, hi_k = starts[b * n_steps + t], starts[b * n_steps + t + 1]
            f[t, :hi_k - lo_k] = first[lo_k:hi_k]
            g[t, :hi_k - lo_k] = second[lo_k:hi_k]
            w[t, :hi_k - lo_k] = weight[lo_k:hi_k]
        tables.append((f, g, w))
    return tuple(tables)


def _unit_gram(gram: torch.Tensor) -> torch.Tensor:
    """G[m, n] / (|x_m| |x_n|) from the diagonal, with the rule of `_unit_normalize`.

    A zero or NaN norm divides by 1; an infinite one by inf, which leaves NaN on its
    diagonal (inf / inf), as it leaves NaN in the vector.
    """
    norms = torch.sqrt(torch.diagonal(gram, dim1=-2, dim2=-1))
    scale = 1.0 / torch.where(norms > 0, norms, torch.ones_like(norms))
    return gram * (scale.unsqueeze(-1) * scale.unsqueeze(-2))


def _device_tables(lo, hi, level: int, n_steps: int, boundary: str, device) -> list:
    """`_band_tables` as tensors on `device`."""
    lo64, hi64 = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    return [tuple(torch.as_tensor(a, device=device) for a in band)
            for band in _band_tables(lo64.tobytes(), hi64.tobytes(), int(level), n_steps, boundary)]


def _band_energies(gram: torch.Tensor, block: torch.Tensor, tables: list, dtype) -> torch.Tensor:
    """Band energies (S, B, N, n_bands) of Gram matrices (S, N, N) under B orderings of the steps.

    Row b of ``block`` (B, N + 1) is an ordering of ``range(N)`` followed by N, the
    padding index of the tables (it reads a zero appended to each Gram matrix's
    flattening). Energies that cancellation rounds below zero are clamped at 0.
    """
    n_series, n_steps = gram.shape[0], gram.shape[1]
    flat = torch.cat([gram.reshape(n_series, -1), gram.new_zeros(n_series, 1)], dim=1)
    energies = []
    for first, second, weight in tables:
        pm, pn = block[:, first], block[:, second]  # (B, N, M_b)
        index = torch.where(pm < n_steps, pm * n_steps + pn, n_steps * n_steps)
        gathered = flat[:, index.reshape(-1)].reshape((n_series,) + index.shape)
        energies.append((gathered * weight.to(dtype)).sum(dim=-1))  # (S, B, N)
    e = torch.stack(energies, dim=-1)
    return torch.where(e < 0, torch.zeros_like(e), e)


def _gram_tensor(gram, boundary) -> torch.Tensor:
    """`gram` as a real (n_series, n_steps, n_steps) tensor, `boundary` checked."""
    gram = _series_tensor(gram, boundary)
    if gram.shape[1] != gram.shape[2]:
        raise ValueError(f"Invalid shape for 'gram': expected (n_series, n_steps, n_steps), got {tuple(gram.shape)}")
    return gram


def _series_step(n_steps: int, width: int) -> int:
    """Series per chunk of the Gram functions: every intermediate under about `_CHUNK_ELEMENTS`."""
    return max(1, _CHUNK_ELEMENTS // max(1, n_steps * max(n_steps, width)))


def _null_of(gram: torch.Tensor, perms: torch.Tensor, tables: list, unit: bool, dtype):
    """(mean, std) of CSE over the orderings `perms` (P, N) of Gram matrices (S, N, N), chunked over P."""
    n_series, n_steps = gram.shape[0], gram.shape[1]
    g = _unit_gram(gram.to(dtype)) if unit else gram.to(dtype)
    width = max(t[0].shape[1] for t in tables)
    p_step = max(1, _CHUNK_ELEMENTS // max(1, n_series * n_steps * width))
    moments = _Moments()
    for p0 in range(0, perms.shape[0], p_step):
        chunk = perms[p0:p0 + p_step]
        block = torch.cat([chunk, chunk.new_full((chunk.shape[0], 1), n_steps)], dim=1)
        cse = scale_entropy(_band_energies(g, block, tables, dtype))[0]  # (S, B, N)
        moments.add(cse.permute(0, 2, 1))
    return moments.result()


@shared_doc(ARRAYS, notes="Chunks of series through one batched matrix product each (``torch.bmm``), so no "
                          "`dtype` copy of a large ``x`` exists at once; the upper triangle is mirrored, so the "
                          "result is exactly symmetric.")
def gram_matrices(x, dtype=None) -> torch.Tensor:
    dtype = _working(dtype)
    x = _series_tensor(x, "reflect")
    n_series, n_steps, d = x.shape
    out = torch.empty((n_series, n_steps, n_steps), dtype=dtype, device=x.device)
    step = _series_step(n_steps, d)
    for s0 in range(0, n_series, step):
        v = x[s0:s0 + step].to(dtype)
        g = torch.bmm(v, v.transpose(1, 2))
        # A batched product need not round (a, b) and (b, a) alike: mirror the upper triangle.
        out[s0:s0 + step] = torch.triu(g) + torch.triu(g, 1).transpose(1, 2)
    return out


@shared_doc(ARRAYS, notes="Each band's pairs are padded to one width per band (`_band_tables`) and gathered "
                          "from the flattened Gram matrices of a chunk of series at once.")
def gram_energies(gram, dec_lo, dec_hi, level, boundary="reflect", unit=True, dtype=None) -> torch.Tensor:
    dtype = _working(dtype)
    gram = _gram_tensor(gram, boundary)
    lo, hi = _filters(dec_lo, dec_hi)
    n_series, n_steps, _ = gram.shape
    out = torch.empty((n_series, n_steps, int(level) + 1), dtype=dtype, device=gram.device)
    if out.numel() == 0:
        return out
    tables = _device_tables(lo, hi, level, n_steps, boundary, gram.device)
    identity = torch.arange(n_steps + 1, device=gram.device)[None]  # the padding index N included
    step = _series_step(n_steps, max(t[0].shape[1] for t in tables))
    for s0 in range(0, n_series, step):
        g = gram[s0:s0 + step].to(dtype)
        out[s0:s0 + step] = _band_energies(_unit_gram(g) if unit else g, identity, tables, dtype)[:, 0]
    return out


@shared_doc(ARRAYS, notes="Chunks of series and of permutations keep every intermediate under about "
                          "``_CHUNK_ELEMENTS`` elements; moments are merged chunk by chunk (no (cells x P) array).")
def gram_null_moments(gram, dec_lo, dec_hi, level, permutations, boundary="reflect", unit=True, dtype=None):
    dtype = _working(dtype)
    gram = _gram_tensor(gram, boundary)
    n_series, n_steps, _ = gram.shape
    perms = _permutation_tensor(permutations, n_steps, gram.device, minimum=2)
    lo, hi = _filters(dec_lo, dec_hi)
    mean = torch.empty((n_series, n_steps), dtype=dtype, device=gram.device)
    std = torch.empty_like(mean)
    if mean.numel() == 0:
        return mean, std
    tables = _device_tables(lo, hi, level, n_steps, boundary, gram.device)
    step = _series_step(n_steps, max(t[0].shape[1] for t in tables))
    for s0 in range(0, n_series, step):
        mean[s0:s0 + step], std[s0:s0 + step] = _null_of(gram[s0:s0 + step], perms, tables, unit, dtype)
    return mean, std


@shared_doc(ARRAYS, notes="""\
Implementation: ``'gram'`` (None) computes the Gram matrices of a chunk of series with
one batched matrix product and runs `gram_null_moments` on them; ``'direct'`` permutes
each chunk of series and transforms it as `modwt_energies` does, one permutation at a
time. Chunks of series and of permutations keep every intermediate under about
``_CHUNK_ELEMENTS`` elements; moments are merged chunk by chunk (Chan, Golub & LeVeque
1983).""")
def modwt_null_moments(x, dec_lo, dec_hi, level, permutations, boundary="reflect", unit=True, method=None,
                       dtype=None):
    dtype = _working(dtype)
    check_method(method)
    x = _series_tensor(x, boundary)
    n_series, n_steps, d = x.shape
    perms = _permutation_tensor(permutations, n_steps, x.device, minimum=2)
    lo, hi = _filters(dec_lo, dec_hi)
    mean = torch.empty((n_series, n_steps), dtype=dtype, device=x.device)
    std = torch.empty_like(mean)
    if mean.numel() == 0:
        return mean, std
    if method == "direct":
        g = [c / math.sqrt(2.0) for c in lo]
        h = [c / math.sqrt(2.0) for c in hi]
        step = max(1, _CHUNK_ELEMENTS // max(1, 2 * n_steps * d))
        for s0 in range(0, n_series, step):
            moments = _Moments()
            for perm in perms:
                energies = _modwt_chunk(x[s0:s0 + step, perm], g, h, int(level), boundary, unit, dtype)
                moments.add(scale_entropy(energies)[0].unsqueeze(-1))
            mean[s0:s0 + step], std[s0:s0 + step] = moments.result()
        return mean, std
    tables = _device_tables(lo, hi, level, n_steps, boundary, x.device)
    step = _series_step(n_steps, max(d, max(t[0].shape[1] for t in tables)))
    for s0 in range(0, n_series, step):
        gram = gram_matrices(x[s0:s0 + step], dtype)
        mean[s0:s0 + step], std[s0:s0 + step] = _null_of(gram, perms, tables, unit, dtype)
    return mean, std


@shared_doc(ARRAYS)
def scale_entropy(energies):
    e = torch.as_tensor(energies)
    if e.dim() == 0:
        raise ValueError("Invalid shape for 'energies': expected (..., J + 1), got a scalar")
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
