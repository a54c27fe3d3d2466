"""Numba kernels of the scale-energy transforms: the fast path of `cse_kernels`.

Same names, signatures, shapes and NaN policy as `cse_kernels.reference` (the
specification in code), which they reproduce to floating-point tolerance; every
function is documented once, in `cse_kernels._docs`. Each public function turns its
input into plain ndarrays and the filters into float64, protects memory (shapes,
permutation indices), then calls one private jitted kernel that only computes.

How the kernels are laid out
----------------------------
- Float32 or float64 in, every product and sum in float64, float64 out; the input is
  converted on load, never copied as a whole (`modwt_energies` also reads the
  ``transpose(1, 0, 2)`` view of a C-ordered array in place, which is how the depth
  axis sees ``(n_layers, n_tokens, d)`` updates).
- Parallel over series (MODWT) or blocks of rows (DWT) with ``prange``; no per-token
  Python and no temporaries that grow with the batch: each series or block of rows
  works in a small float64 scratch of its own.
- MODWT (`modwt_energies`): per series, one pass for the norms, then the pyramid in
  two ``(N + tail, chunk)`` buffers, where ``tail`` is the part of the reflected
  second half that later levels actually read (a few positions for short filters,
  not N) and ``chunk`` is all hidden dimensions unless the series is very long. The
  normalization is fused into the load; W_j is reduced to its energy as it is
  computed. The innermost loops run over hidden dimensions, contiguous, so they
  vectorize.
- DWT (`dwt_energies`, `dwt_null_entropy`): ``_DWT_LANES`` rows are transposed into one
  ``(d + 1, lanes)`` buffer and transformed together, one lane per row, so the
  innermost loop is contiguous despite the decimation by 2; the filters are passed
  as tuples, so the tap loop is unrolled and both sums stay in registers. The whole
  multi-level transform runs in two such buffers. The dimension-permutation null
  gathers each permuted block from the transposed rows into the same scratch (never
  a ``(P, n, d)`` copy) and reduces it to CSE at once.
- Gram path (`gram_matrices`, `gram_energies`, `gram_null_moments`): one kernel
  computes each series' raw Gram matrix (four rows at a time against each later
  row, float64); one helper, `_quadratic_forms`, turns a block of Gram matrices into
  band energies for one position under one ordering of the steps, for ``lanes``
  series at once (the innermost loop runs over the series of the block). The
  energies use it with the identity ordering, the order null with every
  permutation: one path for compute, the null and re-measuring.
- Numba is configured in `cse_kernels._jit` (``cache=True``: the first call of a
  process loads compiled code from disk; only a fresh install compiles, once).
"""

from __future__ import annotations

import functools

import numba
import numpy as np

from ._checks import check_float64, check_gram, check_method, check_permutations
from ._docs import shared_doc
from ._jit import jit, prange
from .filters import quadratic_tables

#: Arrays this module takes and returns (`cse.measure.reduce_updates` reads it).
ARRAYS = "numpy"

#: Bytes of float64 scratch the MODWT kernel keeps per series for its two pyramid
#: buffers (N', chunk): series whose buffers would exceed it split the hidden dimension
#: into chunks of at least _MODWT_MIN_CHUNK, so that each thread's buffers stay in its
#: L2 cache. Measured side by side (2-core EPYC, 1 MiB L2 per core): 512 KiB against
#: the earlier 8 MiB is 1.1-1.5x faster for d = 2880 on the depth axis and 1.1-3x on
#: the token axis (30 x 512 x 576, 24 x 2048 x 2880), and no slower for d = 576.
_MODWT_SCRATCH_BYTES = 1 << 19
_MODWT_MIN_CHUNK = 64

#: Rows transformed together by the DWT kernels (the lanes of their innermost loop).
#: The first level reads a (d + 1, lanes) block in the input's dtype: 16 float32 lanes
#: are one 64-byte cache line per hidden index. Measured side by side (db4, max
#: level): 16 lanes 1.5-2.5x faster than 32 or 8, and a float32 block 1.6-2x faster
#: than a float64 one (the transpose writes, and level 1 reads, half the bytes).
_DWT_LANES = 16


# --- helpers ---------------------------------------------------------------------------


def _as_float_array(x, name: str, ndim: int) -> np.ndarray:
    """`x` as a float32/float64 ndarray of `ndim` dimensions (other dtypes -> float64)."""
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    if x.ndim != ndim:
        raise ValueError(f"Invalid shape for {name!r}: expected {ndim} dimensions, got shape {x.shape}")
    return x


def _as_filters(dec_lo, dec_hi):
    lo = np.ascontiguousarray(dec_lo, dtype=np.float64).ravel()
    hi = np.ascontiguousarray(dec_hi, dtype=np.float64).ravel()
    if lo.size == 0 or lo.size != hi.size or lo.size % 2:
        raise ValueError(
            f"Invalid filters: 'dec_lo' and 'dec_hi' of an orthogonal wavelet have the same even length, "
            f"got {lo.size} and {hi.size}"
        )
    return lo, hi


def _check_boundary(boundary) -> None:
    if boundary not in ("reflect", "periodic"):
        raise ValueError(f"Invalid value for 'boundary': expected 'reflect' or 'periodic', got {boundary!r}")


def _as_level(level) -> int:
    level = int(level)
    if level < 0:
        raise ValueError(f"Invalid value for 'level': expected an integer >= 0, got {level}")
    return level


def _modwt_chunk(n_rows: int, d: int) -> int:
    """Hidden dimensions per MODWT chunk: balanced chunks, a multiple of 8 where possible."""
    per_dim = 2 * n_rows * 8
    n_chunks = max(1, -(-per_dim * d // _MODWT_SCRATCH_BYTES))
    chunk = -(-d // n_chunks)
    chunk = max(_MODWT_MIN_CHUNK, -(-chunk // 8) * 8)
    return max(1, min(d, chunk))


def _n_tasks(n_items: int) -> int:
    """Parallel tasks for n_items: a few per thread, so that each task allocates its
    scratch once and runs a contiguous range (per-item allocations cost as much as a
    level of the transform, and their placement made timings erratic). Computed here,
    not in the kernels: a thread count read inside a kernel defeats Numba's cache."""
    return max(1, min(n_items, 4 * numba.get_num_threads()))


@jit(exact=True)
def _entropy_of(e, frac):
    """CSE of one energy vector `e` (n_bands,); fractions into `frac`. NaN policy of the definition."""
    n_bands = e.shape[0]
    total = 0.0
    finite = True
    for j in range(n_bands):
        total += e[j]
        if not np.isfinite(e[j]):
            finite = False
    if not (finite and np.isfinite(total) and total > 0.0):
        for j in range(n_bands):
            frac[j] = np.nan
        return np.nan
    h = 0.0
    for j in range(n_bands):
        p = e[j] / total
        frac[j] = p
        if p > 0.0:
            h += p * np.log(p)
    if n_bands < 2:
        return 0.0
    cse = -h / np.log(n_bands)
    # Clip against rounding, as the reference does.
    if cse < 0.0:
        cse = 0.0
    elif cse > 1.0:
        cse = 1.0
    return cse


# --- update norms ----------------------------------------------------------------------


@jit(parallel=True)
def _update_norms(x, out):
    n0, n1, d = x.shape
    for a in prange(n0):
        for b in range(n1):
            acc = 0.0
            for c in range(d):
                v = np.float64(x[a, b, c])
                acc += v * v
            out[a, b] = np.sqrt(acc)


@shared_doc(ARRAYS)
def update_norms(x, dtype=None) -> np.ndarray:
    check_float64(dtype)
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    if x.ndim == 0:
        raise ValueError("Invalid shape for 'x': expected at least 1 dimension, got a scalar")
    lead = x.shape[:-1]
    # Views (no copy) for up to three dimensions; reshape for more.
    x3 = x.reshape((-1,) + x.shape[-2:]) if x.ndim > 3 else x[(None,) * (3 - x.ndim)]
    out = np.empty(x3.shape[:2], dtype=np.float64)
    _update_norms(x3, out)
    return out.reshape(lead)


# --- MODWT along axis 1 ----------------------------------------------------------------


_MODWT_NOTES = """\
Implementation: a C-contiguous ``x`` or the ``transpose(1, 0, 2)`` view of one (e.g.
``u.transpose(1, 0, 2)`` for the depth axis of updates ``u`` of shape (n_layers,
n_tokens, d)) is read in place; other layouts are copied first. W_j is only needed at
t = 0..N-1 and V_j only where a later level reads it: with ``'reflect'`` that is
t = 0..N-1 plus the last (K - 1)(2^J - 2^j) positions of the reflected series, so the
work is O(J K (N + tail) d) flops per series, not O(J K 2N d). The unit normalization
(multiplication by the reciprocal norm, computed in a first pass over the series) is
fused into the load.
"""


def _reflect_tail(n: int, n_taps: int, level: int, j: int) -> int:
    """Positions at the end of the 2N-long reflected series whose V_j is ever read.

    Output positions 0..N-1 at level j + 1 read V_j at ``t - 2^j k`` (mod 2N), i.e. at
    most (K - 1) 2^j positions back past 0; summed over the remaining levels this is
    (K - 1)(2^J - 2^j), capped at N (then the whole second half is needed).
    """
    return min(n, (n_taps - 1) * ((1 << level) - (1 << j)))


def _reflect_tails(n: int, n_taps: int, level: int, reflect: bool) -> np.ndarray:
    """`_reflect_tail` of every level j = 0..J as int64 (all 0 for the periodic rule)."""
    return np.array([_reflect_tail(n, n_taps, level, j) if reflect else 0 for j in range(level + 1)], dtype=np.int64)


def _series_layout(x: np.ndarray):
    """(array, transposed): C order, or the transpose of C order read in place, else a C copy."""
    if x.flags.c_contiguous:
        return x, False
    if x.transpose(1, 0, 2).flags.c_contiguous:
        return x.transpose(1, 0, 2), True
    return np.ascontiguousarray(x), False


@jit
def _modwt_rows(va, vb, w, r0, r1, offsets, n_rows, g, h, m, out, s, band, with_detail):
    """One pyramid level for the buffer rows r0..r1-1: V_j into vb and, if `with_detail`,
    the energy of W_j into out[s, r, band] (rows 0..N-1 are the kept positions).

    Row r reads rows ``r - offsets[k]`` (+ n_rows below 0) of va, the circular index of
    the compact buffer (see `_modwt_energies`). Taps (K even) are taken in pairs, in
    order k = 0..K-1; each pass over the hidden dimensions reads two rows of va, and
    the last pass reduces W_j to its energy without storing it.
    """
    n_taps = g.shape[0]
    for r in range(r0, r1):
        e = 0.0
        for k in range(0, n_taps, 2):
            i0 = r - offsets[k]
            if i0 < 0:
                i0 += n_rows
            i1 = r - offsets[k + 1]
            if i1 < 0:
                i1 += n_rows
            g0, g1, h0, h1 = g[k], g[k + 1], h[k], h[k + 1]
            first = k == 0
            last = k == n_taps - 2
            if not with_detail:
                if first:
                    for c in range(m):
                        vb[r, c] = g0 * va[i0, c] + g1 * va[i1, c]
                else:
                    for c in range(m):
                        vb[r, c] = (vb[r, c] + g0 * va[i0, c]) + g1 * va[i1, c]
            elif first and last:
                for c in range(m):
                    v0 = va[i0, c]
                    v1 = va[i1, c]
                    vb[r, c] = g0 * v0 + g1 * v1
                    wc = h0 * v0 + h1 * v1
                    e += wc * wc
            elif first:
                for c in range(m):
                    v0 = va[i0, c]
                    v1 = va[i1, c]
                    vb[r, c] = g0 * v0 + g1 * v1
                    w[c] = h0 * v0 + h1 * v1
            elif last:
                for c in range(m):
                    v0 = va[i0, c]
                    v1 = va[i1, c]
                    vb[r, c] = (vb[r, c] + g0 * v0) + g1 * v1
                    wc = (w[c] + h0 * v0) + h1 * v1
                    e += wc * wc
            else:
                for c in range(m):
                    v0 = va[i0, c]
                    v1 = va[i1, c]
                    vb[r, c] = (vb[r, c] + g0 * v0) + g1 * v1
                    w[c] = (w[c] + h0 * v0) + h1 * v1
        if with_detail:
            out[s, r, band] += e


@jit(parallel=True)
def _modwt_energies(x, transposed, g, h, level, reflect, tails, unit, chunk, n_tasks, out):
    """MODWT energies into out (S, N, level + 1); g, h the MODWT filters.

    x is (S, N, d), or (N, S, d) read as its transpose if `transposed`. tails[j] is the
    number of end positions of the reflected series whose V_j is needed (0 if periodic).
    Parallel tasks over contiguous ranges of series, each with its own scratch.
    """
    if transposed:
        n, n_series, d = x.shape
    else:
        n_series, n, d = x.shape
    n_ext = 2 * n if reflect else n
    n_rows = n + tails[0]
    for task in prange(n_tasks):
        scale = np.empty(n)
        order = np.arange(n)
        va = np.empty((n_rows, chunk))
        vb = np.empty((n_rows, chunk))
        w = np.empty(chunk)
        offsets = np.empty(g.shape[0], dtype=np.int64)
        for s in range(task * n_series // n_tasks, (task + 1) * n_series // n_tasks):
            _step_scales(x, transposed, s, unit, scale)
            _modwt_series(x, transposed, s, order, scale, g, h, level, n_ext, tails, va, vb, w, offsets, out, s)


@jit
def _step_scales(x, transposed, s, unit, scale):
    """Reciprocal norms of the update vectors of series s into scale (N,), 1 if not `unit`.

    A zero or NaN norm scales by 1 (zero stays zero, NaN stays NaN), an infinite one
    by 0 (inf entries become NaN), as the reference's unit normalization does.
    """
    n = scale.shape[0]
    d = x.shape[2]
    for t in range(n):
        scale[t] = 1.0
    if unit:
        for t in range(n):
            row = x[t, s] if transposed else x[s, t]
            acc = 0.0
            for c in range(d):
                v = np.float64(row[c])
                acc += v * v
            nrm = np.sqrt(acc)
            if nrm > 0.0:
                scale[t] = 1.0 / nrm


@jit
def _modwt_series(x, transposed, s, order, scale, g, h, level, n_ext, tails, va, vb, w, offsets, out, s_out):
    """MODWT energies of series s, position t holding step order[t], into out[s_out].

    Scratch: va and vb (N + tails[0], chunk), w (chunk,), offsets (K,); scale (N,) the
    reciprocal norms of the steps (`_step_scales`). Compact buffer: rows 0..N-1 hold
    positions 0..N-1 and rows N..N+tails[0]-1 the last tails[0] positions of the 2N-long
    reflected series, so a circular index below 0 wraps by n_rows = N + tails[0]
    (= N' when the tail covers the whole second half).
    """
    n = order.shape[0]
    d = x.shape[2]
    chunk = va.shape[1]
    n_taps = g.shape[0]
    tail = tails[0]
    n_rows = n + tail
    for t in range(n):
        for b in range(level + 1):
            out[s_out, t, b] = 0.0

    # Hidden dimensions in chunks (all of them unless the series is very long);
    # energies add up over chunks.
    for c0 in range(0, d, chunk):
        m = min(chunk, d - c0)
        # 1. Load in float64, normalized (short series are still in cache from the
        #    norms), then the reflected tail.
        for t in range(n):
            src = order[t]
            row = x[src, s] if transposed else x[s, src]
            # (a slice, not row[c0 + c]: a computed index defeats vectorization)
            part = row[c0:c0 + m]
            sc = scale[src]
            for c in range(m):
                va[t, c] = np.float64(part[c]) * sc
        for i in range(tail):
            for c in range(m):
                va[n + i, c] = va[tail - 1 - i, c]

        # 2. Pyramid: V_j at rows 0..N-1 (with W_j's energy) and at the needed tail.
        for j in range(1, level + 1):
            step = 1 << (j - 1)
            for k in range(n_taps):
                offsets[k] = (step * k) % n_ext
            _modwt_rows(va, vb, w, 0, n, offsets, n_rows, g, h, m, out, s_out, j - 1, True)
            if j < level:
                _modwt_rows(va, vb, w, n_rows - tails[j], n_rows, offsets, n_rows, g, h, m, out, s_out, j - 1,
                            False)
            va, vb = vb, va

        # 3. Approximation band V_J.
        for t in range(n):
            e = 0.0
            for c in range(m):
                e += va[t, c] * va[t, c]
            out[s_out, t, level] += e


@shared_doc(ARRAYS, notes=_MODWT_NOTES)
def modwt_energies(x, dec_lo, dec_hi, level, boundary="reflect", unit=True, dtype=None) -> np.ndarray:
    check_float64(dtype)
    _check_boundary(boundary)
    x = _as_float_array(x, "x", 3)
    lo, hi = _as_filters(dec_lo, dec_hi)
    g = lo / np.sqrt(2.0)
    h = hi / np.sqrt(2.0)
    level = _as_level(level)
    n_series, n_steps, d = x.shape
    out = np.empty((n_series, n_steps, level + 1), dtype=np.float64)
    if n_series == 0 or n_steps == 0:
        return out
    # 1. Layout: C order, or the transpose of C order, else a copy.
    x, transposed = _series_layout(x)
    # 2. Reflected tail per level and the chunk of hidden dimensions.
    reflect = boundary == "reflect"
    tails = _reflect_tails(n_steps, g.size, level, reflect)
    chunk = _modwt_chunk(n_steps + int(tails[0]), max(d, 1))
    _modwt_energies(x, transposed, g, h, level, reflect, tails, bool(unit), chunk, _n_tasks(n_series), out)
    return out


# --- order null of the MODWT (depth and token axes) ------------------------------------


@jit
def _welford(mean, m2, a, b, value, inv_count):
    """Add `value` to the running mean and sum of squared deviations at [a, b].

    Welford's update (numerically stable: the null's spread can be at rounding level),
    with inv_count = 1 / (number of values so far, this one included).
    """
    delta = value - mean[a, b]
    mean[a, b] += delta * inv_count
    m2[a, b] += delta * (value - mean[a, b])


@jit(parallel=True)
def _modwt_null_direct(x, transposed, g, h, level, reflect, tails, unit, chunk, permutations, n_tasks, mean, m2):
    """Order null by permuting and transforming every series again, fused.

    For each series (parallel tasks over contiguous ranges): the step norms once, then
    for each permutation the MODWT of the permuted series (its rows gathered while
    loading the scratch, never copied), the CSE of every position and Welford's
    update of its running mean and sum of squares into mean, m2 (S, N).
    """
    if transposed:
        n, n_series, d = x.shape
    else:
        n_series, n, d = x.shape
    n_ext = 2 * n if reflect else n
    n_rows = n + tails[0]
    n_perm = permutations.shape[0]
    for task in prange(n_tasks):
        scale = np.empty(n)
        va = np.empty((n_rows, chunk))
        vb = np.empty((n_rows, chunk))
        w = np.empty(chunk)
        offsets = np.empty(g.shape[0], dtype=np.int64)
        e = np.empty((1, n, level + 1))
        frac = np.empty(level + 1)
        for s in range(task * n_series // n_tasks, (task + 1) * n_series // n_tasks):
            _step_scales(x, transposed, s, unit, scale)
            for t in range(n):
                mean[s, t] = 0.0
                m2[s, t] = 0.0
            for p in range(n_perm):
                _modwt_series(x, transposed, s, permutations[p], scale, g, h, level, n_ext, tails, va, vb, w, offsets,
                              e, 0)
                inv = 1.0 / (p + 1)
                for t in range(n):
                    _welford(mean, m2, s, t, _entropy_of(e[0, t], frac), inv)


# --- Gram matrices and the Gram identity (depth axis; the order null) ------------------


@jit
def _series_gram(x, transposed, s, xb, gram, lane):
    """Raw Gram matrix of the steps of series s into gram[:, :, lane]: G[a, b] = <x_a, x_b>.

    xb (N, d) float64 scratch; every product and sum in float64.
    """
    n, d = xb.shape
    for t in range(n):
        row = x[t, s] if transposed else x[s, t]
        for c in range(d):
            xb[t, c] = np.float64(row[c])
    # Four rows a0..a0+3 against each row b >= a0 at once: each load of row b serves
    # four products (the loop is bound by loads, not by multiply-adds).
    n4 = n - n % 4
    for a0 in range(0, n4, 4):
        r0, r1, r2, r3 = xb[a0], xb[a0 + 1], xb[a0 + 2], xb[a0 + 3]
        for b in range(a0, n):
            rb = xb[b]
            acc0 = 0.0
            acc1 = 0.0
            acc2 = 0.0
            acc3 = 0.0
            for c in range(d):
                v = rb[c]
                acc0 += r0[c] * v
                acc1 += r1[c] * v
                acc2 += r2[c] * v
                acc3 += r3[c] * v
            gram[a0, b, lane] = acc0
            gram[a0 + 1, b, lane] = acc1
            gram[a0 + 2, b, lane] = acc2
            gram[a0 + 3, b, lane] = acc3
            gram[b, a0, lane] = acc0
            gram[b, a0 + 1, lane] = acc1
            gram[b, a0 + 2, lane] = acc2
            gram[b, a0 + 3, lane] = acc3
    for a in range(n4, n):
        for b in range(a, n):
            acc = 0.0
            for c in range(d):
                acc += xb[a, c] * xb[b, c]
            gram[a, b, lane] = acc
            gram[b, a, lane] = acc


@jit(parallel=True)
def _gram_matrices(x, transposed, n_tasks, out):
    """Raw Gram matrices of every series of x into out (N, N, S) (the transpose of the result).

    x is (S, N, d), or (N, S, d) read as its transpose if `transposed`. Parallel tasks
    over contiguous ranges of series, each with its own (N, d) float64 scratch.
    """
    n, n_series = out.shape[0], out.shape[2]
    d = x.shape[2]
    for task in prange(n_tasks):
        xb = np.empty((n, d))
        for s in range(task * n_series // n_tasks, (task + 1) * n_series // n_tasks):
            _series_gram(x, transposed, s, xb, out, s)


@jit
def _gram_block(x, transposed, gram, from_updates, s0, m, unit, block, xb, scale):
    """The Gram matrices of series s0 .. s0 + m - 1 into block[:, :, i] (other lanes 0).

    Computed from the updates x (`_series_gram`) if `from_updates`, else copied from
    gram (S, N, N). With `unit`, then times scale[a] scale[b], scale = 1 / sqrt(G[a, a])
    (1 where that norm is 0 or NaN, 0 where it is infinite, so that G[a, a] becomes
    NaN): the rule of `_step_scales` and of the reference's unit normalization.
    xb (N, d) and scale (N,) are scratch.
    """
    n, lanes = block.shape[0], block.shape[2]
    for i in range(lanes):
        if i >= m:
            for a in range(n):
                for b in range(n):
                    block[a, b, i] = 0.0
            continue
        if from_updates:
            _series_gram(x, transposed, s0 + i, xb, block, i)
        else:
            g = gram[s0 + i]
            for a in range(n):
                for b in range(n):
                    block[a, b, i] = g[a, b]
        if unit:
            for a in range(n):
                nrm = np.sqrt(block[a, a, i])
                scale[a] = 1.0 / nrm if nrm > 0.0 else 1.0
            for a in range(n):
                for b in range(n):
                    block[a, b, i] *= scale[a] * scale[b]


@jit
def _quadratic_forms(block, perm, t, starts, first, second, weight, e, clamp):
    """Band energies of position t of the series of a block, their steps ordered by perm.

    e[b, i] = sum over the pairs k of cell (b, t) of weight[k] G_i[perm[first[k]],
    perm[second[k]]], for every lane i of block (N, N, lanes); with `clamp`, set to 0
    where cancellation rounds it below zero (NaN stays NaN). e is (n_bands, lanes).
    (The null does not clamp: a rounding-level negative band changes its CSE by
    less than 1e-15, and the clamp costs 5-10 percent of a permutation.)
    """
    n = block.shape[0]
    n_bands, lanes = e.shape
    for b in range(n_bands):
        cell = b * n + t
        acc = e[b]
        for i in range(lanes):
            acc[i] = 0.0
        for k in range(starts[cell], starts[cell + 1]):
            pa = perm[first[k]]
            pb = perm[second[k]]
            wk = weight[k]
            for i in range(lanes):
                acc[i] += wk * block[pa, pb, i]
        if clamp:
            for i in range(lanes):
                if acc[i] < 0.0:
                    acc[i] = 0.0


@jit(parallel=True)
def _gram_energies(gram, unit, starts, first, second, weight, lanes, n_tasks, out):
    """Band energies of every series from its Gram matrix into out (S, N, n_bands).

    Blocks of `lanes` series (parallel tasks over contiguous ranges of blocks), laid out
    (N, N, lanes) so that the innermost loop runs over the series of the block.
    """
    n_series, n = gram.shape[0], gram.shape[1]
    n_bands = out.shape[2]
    n_blocks = (n_series + lanes - 1) // lanes
    no_updates = np.empty((0, 0, 0))
    for task in prange(n_tasks):
        block = np.empty((n, n, lanes))
        xb = np.empty((n, 0))
        scale = np.empty(n)
        e = np.empty((n_bands, lanes))
        identity = np.arange(n)
        for blk in range(task * n_blocks // n_tasks, (task + 1) * n_blocks // n_tasks):
            s0 = blk * lanes
            m = min(lanes, n_series - s0)
            _gram_block(no_updates, False, gram, False, s0, m, unit, block, xb, scale)
            for t in range(n):
                _quadratic_forms(block, identity, t, starts, first, second, weight, e, True)
                for i in range(m):
                    for b in range(n_bands):
                        out[s0 + i, t, b] = e[b, i]


@jit(parallel=True)
def _gram_null(x, transposed, gram, from_updates, unit, permutations, starts, first, second, weight, n_bands, lanes,
               n_tasks, mean, m2):
    """Order null through the Gram identity E_b[t] = sum_pairs w G[pi(m), pi(n)].

    Blocks of `lanes` series (parallel tasks over contiguous ranges of blocks): their
    Gram matrices, from the updates x (S, N, d) if `from_updates` (computed once, in
    the block, while it is in cache) or from gram (S, N, N), laid out (N, N, lanes) so
    that the innermost loop runs over the series of the block; then for each
    permutation only re-indexed quadratic forms, the CSE of every position and
    Welford's update into mean, m2 (S, N).
    """
    n_series, n = mean.shape
    d = x.shape[2]
    n_perm = permutations.shape[0]
    n_blocks = (n_series + lanes - 1) // lanes
    for task in prange(n_tasks):
        block = np.empty((n, n, lanes))
        xb = np.empty((n, d))
        scale = np.empty(n)
        e = np.empty((n_bands, lanes))
        frac = np.empty(n_bands)
        for blk in range(task * n_blocks // n_tasks, (task + 1) * n_blocks // n_tasks):
            s0 = blk * lanes
            m = min(lanes, n_series - s0)
            _gram_block(x, transposed, gram, from_updates, s0, m, unit, block, xb, scale)
            for i in range(m):
                for t in range(n):
                    mean[s0 + i, t] = 0.0
                    m2[s0 + i, t] = 0.0
            for p in range(n_perm):
                perm = permutations[p]
                inv = 1.0 / (p + 1)
                for t in range(n):
                    _quadratic_forms(block, perm, t, starts, first, second, weight, e, False)
                    for i in range(m):
                        _welford(mean, m2, s0 + i, t, _entropy_of(e[:, i], frac), inv)


#: Largest Gram block (N x N x lanes float64) of the Gram kernels, and largest Gram
#: matrix or pair table of the order null: beyond them the fused direct kernel is used.
_GRAM_BLOCK_BYTES = 1 << 19
_GRAM_MAX_BYTES = 1 << 26


def _null_method(n_series, n_steps, d, n_taps, level, n_perm, n_pairs, tail) -> str:
    """'gram' or 'direct', whichever is expected to be faster (rough counts, per series).

    Gram: N(N+1)/2 d products once, then per permutation one product per pair.
    Direct: per permutation the whole pyramid again, 2 J K (N + tail) d products.
    Both pay the same entropies. The Gram products are weighted 4x: measured, the
    pyramid's loops run about four times as many products per second (one text of
    512 tokens, 30 layers, d = 576: the direct kernel wins below P ~ 80). The Gram
    matrix and the pair table must stay small.
    """
    gram = 4.0 * n_steps * (n_steps + 1) / 2 * d + n_perm * n_pairs
    direct = n_perm * 2.0 * level * n_taps * (n_steps + tail) * d
    if n_steps * n_steps * 8 > _GRAM_MAX_BYTES or n_pairs * 24 > _GRAM_MAX_BYTES:
        return "direct"
    return "gram" if gram <= direct else "direct"


def _std_from_m2(m2, n_perm):
    with np.errstate(invalid="ignore"):
        return np.sqrt(np.maximum(m2, 0.0) / (n_perm - 1)) if n_perm > 1 else np.full_like(m2, np.nan)


def _lanes(n_series: int, n_steps: int) -> int:
    """Series per Gram block: up to 32, the (N, N, lanes) block within `_GRAM_BLOCK_BYTES`."""
    return int(max(1, min(32, _GRAM_BLOCK_BYTES // (8 * max(n_steps, 1) ** 2), n_series)))


def _tables(lo, hi, level, n_steps, boundary):
    return _quadratic_tables(lo.tobytes(), hi.tobytes(), level, n_steps, boundary)


def _run_gram_null(x, transposed, gram, from_updates, unit, permutations, tables, n_bands, mean, m2) -> None:
    """`_gram_null` into mean and m2 (S, N): from the updates x, or from gram (S, N, N)."""
    n_series, n_steps = mean.shape
    lanes = _lanes(n_series, n_steps)
    _gram_null(x, transposed, gram, from_updates, unit, permutations, *tables, n_bands, lanes,
               _n_tasks(-(-n_series // lanes)), mean, m2)


@shared_doc(ARRAYS, notes="""\
Implementation: the two fused kernels need no copy of the permuted series and no
(cells x P) array: the running mean and sum of squared deviations of each cell are
updated after each permutation (Welford's algorithm), in float64. ``'gram'``: the null
of `gram_null_moments`, with each block of series' Gram matrices computed in the block
itself (`gram_matrices`' code), where it stays in cache. ``'direct'``: per series and
permutation, the permuted rows are gathered while loading the MODWT scratch and
transformed as in `modwt_energies`. None picks the method with fewer operations
(the depth axis: always ``'gram'``; long texts on the token axis: ``'direct'``).""")
def modwt_null_moments(x, dec_lo, dec_hi, level, permutations, boundary="reflect", unit=True, method=None,
                       dtype=None):
    check_float64(dtype)
    _check_boundary(boundary)
    check_method(method)
    x = _as_float_array(x, "x", 3)
    lo, hi = _as_filters(dec_lo, dec_hi)
    level = _as_level(level)
    n_series, n_steps, d = x.shape
    permutations = check_permutations(permutations, n_steps, minimum=2)
    n_perm = permutations.shape[0]
    mean = np.empty((n_series, n_steps))
    m2 = np.empty((n_series, n_steps))
    if mean.size == 0:
        return mean, m2
    x, transposed = _series_layout(x)
    reflect = boundary == "reflect"
    tails = _reflect_tails(n_steps, lo.size, level, reflect)
    if method is None:
        # Pairs of the interior cells: (L_j (L_j + 1) / 2 per band, N positions).
        widths = [min(n_steps, (2**j - 1) * (lo.size - 1) + 1) for j in range(1, level + 1)]
        n_pairs = n_steps * sum(wd * (wd + 1) // 2 for wd in widths + widths[-1:])
        method = _null_method(n_series, n_steps, d, lo.size, level, n_perm, n_pairs, int(tails[0]))
    if method == "gram":
        _run_gram_null(x, transposed, np.empty((0, 0, 0)), True, bool(unit), permutations,
                       _tables(lo, hi, level, n_steps, boundary), level + 1, mean, m2)
    else:
        chunk = _modwt_chunk(n_steps + int(tails[0]), max(d, 1))
        _modwt_null_direct(x, transposed, lo / np.sqrt(2.0), hi / np.sqrt(2.0), level, reflect, tails, bool(unit),
                           chunk, permutations, _n_tasks(n_series), mean, m2)
    return mean, _std_from_m2(m2, n_perm)


@shared_doc(ARRAYS, notes="""\
Implementation: a C-contiguous ``x`` or the ``transpose(1, 0, 2)`` view of one is read
in place (as in `modwt_energies`); parallel over series; four rows at a time against
each later row, so that each load serves four products.""")
def gram_matrices(x, dtype=None) -> np.ndarray:
    check_float64(dtype)
    x = _as_float_array(x, "x", 3)
    n_series, n_steps, _ = x.shape
    out = np.empty((n_series, n_steps, n_steps))
    if out.size:
        x, transposed = _series_layout(x)
        _gram_matrices(x, transposed, _n_tasks(n_series), out.transpose(1, 2, 0))
    return out


def _gram_input(gram, dec_lo, dec_hi, level, boundary, dtype):
    """Checked (gram, lo, hi, level) of the `gram_*` functions."""
    check_float64(dtype)
    _check_boundary(boundary)
    lo, hi = _as_filters(dec_lo, dec_hi)
    return check_gram(gram), lo, hi, _as_level(level)


@shared_doc(ARRAYS, notes="""\
Implementation: blocks of up to 32 series are copied (normalized) into an (N, N,
lanes) scratch, so that the innermost loop of every quadratic form runs over the
series of the block; parallel over blocks. The same helpers compute the order null
(`gram_null_moments`, `modwt_null_moments`) with the steps permuted.""")
def gram_energies(gram, dec_lo, dec_hi, level, boundary="reflect", unit=True, dtype=None) -> np.ndarray:
    gram, lo, hi, level = _gram_input(gram, dec_lo, dec_hi, level, boundary, dtype)
    n_series, n_steps, _ = gram.shape
    out = np.empty((n_series, n_steps, level + 1))
    if out.size:
        tables = _tables(lo, hi, level, n_steps, boundary)
        lanes = _lanes(n_series, n_steps)
        _gram_energies(gram, bool(unit), *tables, lanes, _n_tasks(-(-n_series // lanes)), out)
    return out


@shared_doc(ARRAYS, notes="""\
Implementation: as `gram_energies`, then for each permutation the re-indexed quadratic
forms, the CSE of every position and Welford's update of its running mean and sum of
squared deviations (no (cells x P) array).""")
def gram_null_moments(gram, dec_lo, dec_hi, level, permutations, boundary="reflect", unit=True, dtype=None):
    gram, lo, hi, level = _gram_input(gram, dec_lo, dec_hi, level, boundary, dtype)
    n_series, n_steps, _ = gram.shape
    permutations = check_permutations(permutations, n_steps, minimum=2)
    mean = np.empty((n_series, n_steps))
    m2 = np.empty((n_series, n_steps))
    if mean.size:
        _run_gram_null(np.empty((0, 0, 0)), False, gram, False, bool(unit), permutations,
                       _tables(lo, hi, level, n_steps, boundary), level + 1, mean, m2)
    return mean, _std_from_m2(m2, permutations.shape[0])


@functools.lru_cache(maxsize=32)
def _quadratic_tables(lo_bytes, hi_bytes, level, n_steps, boundary):
    """`cse_kernels.filters.quadratic_tables`, cached per (filters, level, N, boundary)."""
    lo = np.frombuffer(lo_bytes, dtype=np.float64)
    hi = np.frombuffer(hi_bytes, dtype=np.float64)
    tables = quadratic_tables(lo, hi, level, n_steps, boundary)
    for array in tables:
        array.setflags(write=False)
    return tables


# --- periodized DWT over the last axis -------------------------------------------------


@jit
def _load_block(x, r0, m, a):
    """a[t, i] = x[r0 + i, t] for the m rows of the block (other lanes 0), converted to a's dtype."""
    d = x.shape[1]
    lanes = a.shape[1]
    # 8 x 8 tiles with constant trip counts, which LLVM unrolls.
    m8 = m - m % 8
    d8 = d - d % 8
    for i0 in range(0, m8, 8):
        for t0 in range(0, d8, 8):
            for t in range(8):
                for i in range(8):
                    a[t0 + t, i0 + i] = x[r0 + i0 + i, t0 + t]
        for t in range(d8, d):
            for i in range(8):
                a[t, i0 + i] = x[r0 + i0 + i, t]
    for i in range(m8, m):
        for t in range(d):
            a[t, i] = x[r0 + i, t]
    for t in range(d):
        for i in range(m, lanes):
            a[t, i] = 0.0


@jit(contract=True)
def _dwt_level(src, dst, n_cur, lo, hi, e, j):
    """One level of the periodized DWT of the lanes of src[:n_cur] (n_cur even).

    Approximation into dst[:n_cur // 2] (float64); the detail's energy per lane into
    e[j]. lo, hi : tuples of K floats (K even; a compile-time length, so the tap loop is
    unrolled and the lane loop vectorized). PyWavelets' 'periodization':
    ``c[o] = sum_k f[k] src[(2 o + K/2 - k) mod n_cur]``, summed in order k = 0..K-1.
    """
    lanes = src.shape[1]
    n_taps = len(lo)
    half_taps = n_taps // 2
    for i in range(lanes):
        e[j, i] = 0.0
    for o in range(n_cur // 2):
        base = 2 * o + half_taps
        if base - (n_taps - 1) >= 0 and base < n_cur:
            for i in range(lanes):
                acc_a = 0.0
                acc_d = 0.0
                for k in range(n_taps):
                    v = np.float64(src[base - k, i])
                    acc_a += lo[k] * v
                    acc_d += hi[k] * v
                dst[o, i] = acc_a
                e[j, i] += acc_d * acc_d
        else:
            for i in range(lanes):
                acc_a = 0.0
                acc_d = 0.0
                for k in range(n_taps):
                    v = np.float64(src[(base - k) % n_cur, i])
                    acc_a += lo[k] * v
                    acc_d += hi[k] * v
                dst[o, i] = acc_a
                e[j, i] += acc_d * acc_d


@jit
def _dwt_block(x0, a, b, n0, lo, hi, level, e):
    """Multi-level periodized DWT of the signals x0[:n0, i] (one per lane i).

    x0 : (n0 + 1, lanes) float32 or float64 holds the signals on entry (row n0 is
    scratch for an odd length); a, b : (n0 // 2 + 2, lanes) float64 scratch;
    e : (level + 1, lanes) band energies out, ordered d1..dJ, aJ.
    An odd length is extended by its last sample at every level, as PyWavelets does.
    """
    lanes = x0.shape[1]
    n_cur = n0
    if level == 0:
        for i in range(lanes):
            e[0, i] = 0.0
        for o in range(n_cur):
            for i in range(lanes):
                v = np.float64(x0[o, i])
                e[0, i] += v * v
        return
    # 1. First level from the input block.
    if n_cur % 2 == 1:
        for i in range(lanes):
            x0[n_cur, i] = x0[n_cur - 1, i]
        n_cur += 1
    _dwt_level(x0, a, n_cur, lo, hi, e, 0)
    n_cur //= 2
    # 2. Coarser levels between the two float64 buffers.
    for j in range(1, level):
        if n_cur % 2 == 1:
            for i in range(lanes):
                a[n_cur, i] = a[n_cur - 1, i]
            n_cur += 1
        _dwt_level(a, b, n_cur, lo, hi, e, j)
        a, b = b, a
        n_cur //= 2
    for i in range(lanes):
        e[level, i] = 0.0
    for o in range(n_cur):
        for i in range(lanes):
            e[level, i] += a[o, i] * a[o, i]


@jit(parallel=True)
def _dwt_energies(x, lo, hi, level, lanes, n_tasks, out):
    n, d = x.shape
    n_blocks = (n + lanes - 1) // lanes
    for task in prange(n_tasks):
        x0 = np.empty((d + 1, lanes), dtype=x.dtype)
        a = np.empty((d // 2 + 2, lanes))
        b = np.empty((d // 2 + 2, lanes))
        e = np.empty((level + 1, lanes))
        for blk in range(task * n_blocks // n_tasks, (task + 1) * n_blocks // n_tasks):
            r0 = blk * lanes
            m = min(lanes, n - r0)
            _load_block(x, r0, m, x0)
            _dwt_block(x0, a, b, d, lo, hi, level, e)
            for i in range(m):
                for j in range(level + 1):
                    out[r0 + i, j] = e[j, i]


_DWT_NOTES = """\
Implementation: blocks of ``_DWT_LANES`` rows are transposed into a scratch of shape
(d + 1, lanes) in x's dtype (every sum is float64) and transformed together, the
coarser levels in two float64 buffers; the innermost loop runs over the rows of the
block, so it vectorizes although each level decimates by 2.
"""


def _as_dwt_input(x, dec_lo, dec_hi, level):
    x = _as_float_array(x, "x", 2)
    if x.shape[1] == 0:
        raise ValueError(f"Invalid shape for 'x': expected at least one column, got shape {x.shape}")
    lo, hi = _as_filters(dec_lo, dec_hi)
    # Tuples: the filter length becomes part of the kernels' type (one compiled
    # specialization per K), which lets LLVM unroll the tap loops.
    return x, tuple(lo.tolist()), tuple(hi.tolist()), _as_level(level)


@shared_doc(ARRAYS, notes=_DWT_NOTES)
def dwt_energies(x, dec_lo, dec_hi, level, dtype=None) -> np.ndarray:
    check_float64(dtype)
    x, lo, hi, level = _as_dwt_input(x, dec_lo, dec_hi, level)
    out = np.empty((x.shape[0], level + 1), dtype=np.float64)
    if x.shape[0]:
        _dwt_energies(x, lo, hi, level, _DWT_LANES, _n_tasks(-(-x.shape[0] // _DWT_LANES)), out)
    return out


@jit(parallel=True)
def _dwt_null(x, lo, hi, level, permutations, lanes, n_tasks, out, mean, m2, moments):
    """CSE of every row under every permutation of its entries.

    Into out (n, P), or, if `moments`, only Welford's running mean and sum of squared
    deviations into mean, m2 (n, 1) (no (n, P) array).
    """
    n, d = x.shape
    n_perm = permutations.shape[0]
    n_blocks = (n + lanes - 1) // lanes
    for task in prange(n_tasks):
        xt = np.empty((d, lanes), dtype=x.dtype)
        x0 = np.empty((d + 1, lanes), dtype=x.dtype)
        a = np.empty((d // 2 + 2, lanes))
        b = np.empty((d // 2 + 2, lanes))
        e = np.empty((level + 1, lanes))
        frac = np.empty(level + 1)
        for blk in range(task * n_blocks // n_tasks, (task + 1) * n_blocks // n_tasks):
            r0 = blk * lanes
            m = min(lanes, n - r0)
            _load_block(x, r0, m, xt)
            if moments:
                for i in range(m):
                    mean[r0 + i, 0] = 0.0
                    m2[r0 + i, 0] = 0.0
            for p in range(n_perm):
                # Lane i of the permuted block is x[r0 + i, permutations[p]].
                for t in range(d):
                    src = permutations[p, t]
                    for i in range(lanes):
                        x0[t, i] = xt[src, i]
                _dwt_block(x0, a, b, d, lo, hi, level, e)
                if moments:
                    inv = 1.0 / (p + 1)
                    for i in range(m):
                        _welford(mean, m2, r0 + i, 0, _entropy_of(e[:, i], frac), inv)
                else:
                    for i in range(m):
                        out[r0 + i, p] = _entropy_of(e[:, i], frac)


@shared_doc(ARRAYS, notes="Each block of rows is transposed once; for every permutation the permuted block is gathered "
                     "from that copy into the transform's scratch and reduced to CSE at once, so memory "
                     "stays O(d) per block whatever P (no (P, n, d) copy).")
def dwt_null_entropy(x, dec_lo, dec_hi, level, permutations, dtype=None) -> np.ndarray:
    check_float64(dtype)
    x, lo, hi, level = _as_dwt_input(x, dec_lo, dec_hi, level)
    n, d = x.shape
    permutations = check_permutations(permutations, d)
    out = np.empty((n, permutations.shape[0]), dtype=np.float64)
    if out.size:
        none = np.empty((0, 1))
        _dwt_null(x, lo, hi, level, permutations, _DWT_LANES, _n_tasks(-(-n // _DWT_LANES)), out, none, none, False)
    return out


@shared_doc(ARRAYS, notes="As `dwt_null_entropy`, but each row's running mean and sum of squared deviations are "
                     "updated after each permutation (Welford's algorithm, float64): no (n, P) array.")
def dwt_null_moments(x, dec_lo, dec_hi, level, permutations, dtype=None):
    check_float64(dtype)
    x, lo, hi, level = _as_dwt_input(x, dec_lo, dec_hi, level)
    n, d = x.shape
    permutations = check_permutations(permutations, d, minimum=2)
    mean = np.empty((n, 1))
    m2 = np.empty((n, 1))
    if n:
        none = np.empty((0, 0))
        _dwt_null(x, lo, hi, level, permutations, _DWT_LANES, _n_tasks(-(-n // _DWT_LANES)), none, mean, m2, True)
    return mean[:, 0], _std_from_m2(m2[:, 0], permutations.shape[0])


# --- scale entropy ---------------------------------------------------------------------


@jit(parallel=True)
def _scale_entropy(e, cse, frac):
    for r in prange(e.shape[0]):
        cse[r] = _entropy_of(e[r], frac[r])


@shared_doc(ARRAYS)
def scale_entropy(energies):
    e = np.asarray(energies, dtype=np.float64)
    if e.ndim == 0:
        raise ValueError("Invalid shape for 'energies': expected (..., J + 1), got a scalar")
    lead, n_bands = e.shape[:-1], e.shape[-1]
    rows = np.ascontiguousarray(e.reshape(int(np.prod(lead)), n_bands))
    cse = np.empty(rows.shape[0], dtype=np.float64)
    frac = np.empty(rows.shape, dtype=np.float64)
    _scale_entropy(rows, cse, frac)
    return cse.reshape(lead), frac.reshape(e.shape)
