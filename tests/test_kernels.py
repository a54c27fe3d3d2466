"""Tests of the fast kernels of `cse_kernels` against the NumPy reference.

One parametrised fixture, `impl`, runs every implementation (the Numba kernels and,
where torch is installed, the torch twin on CPU) and every test compares it with
`cse_kernels.reference` on the same inputs: random data, edge lengths (1, 2, 2^J,
non-powers of two, series shorter than the filters), zeros, NaN and inf, odd and
strided layouts. Tolerances per input dtype: 1e-10 (float64) and 1e-5 (float32),
relative to each cell's total energy (so that bands holding a rounding-level share of
a cell's energy are compared at the scale that matters). Also checked against
PyWavelets directly, and as properties (energy conservation, invariances) with
Hypothesis. Small arrays only; CUDA tests run only where a GPU is present.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import zlib

import numpy as np
import pytest
import pywt
from hypothesis import given, settings
from hypothesis import strategies as st

import cse_kernels
from cse_kernels import _numba, reference

try:
    import torch
except ImportError:  # the torch twin is optional for the kernels
    torch = None

TOL = {np.float32: 1e-5, np.float64: 1e-10}
WAVELETS = ["haar", "db2", "db4"]
HYP = settings(max_examples=30, deadline=None)
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")
needs_cuda = pytest.mark.skipif(torch is None or not torch.cuda.is_available(), reason="needs a CUDA GPU")


# --- test grids: every edge case under every setting, not every case x every setting --


FULL_GRIDS = os.environ.get("CSE_FULL_GRIDS") == "1"


def covering(cases, *factors, full=("random",)):
    """Rows ``(case, *values)`` of a covering design over the settings in `factors`.

    The cases in `full` run every combination of settings; every other case runs as many
    rows as the largest factor has values, with each value of every factor at least once,
    rotated from case to case so that the pairs of values differ between cases. A bug that
    depends on one case and one setting is caught; the full product (each case x each
    combination, 5x as many tests) adds no line or branch of `cse` or `cse_kernels` (measured
    with coverage.py, issue 24) and runs with ``CSE_FULL_GRIDS=1`` before a release.
    """
    factors = [list(f) for f in factors]
    rows = []
    for i, case in enumerate(cases):
        if FULL_GRIDS or case in full:
            rows += [(case, *combo) for combo in itertools.product(*factors)]
            continue
        width = max(len(f) for f in factors)
        for j in range(width):
            rows.append((case, *(f[(i * (k + 1) + j) % len(f)] for k, f in enumerate(factors))))
    return rows


# --- the implementations under test ----------------------------------------------------


class _TorchOnCPU:
    """The torch twin behind the NumPy calling convention of the other kernels."""

    name = "torch"

    @staticmethod
    def _t(x):
        return torch.from_numpy(np.ascontiguousarray(x))

    def modwt_energies(self, x, dec_lo, dec_hi, level, boundary="reflect", unit=True):
        from cse_kernels import torch_twin

        return torch_twin.modwt_energies(self._t(x), dec_lo, dec_hi, level, boundary=boundary, unit=unit).numpy()

    def dwt_energies(self, x, dec_lo, dec_hi, level):
        from cse_kernels import torch_twin

        return torch_twin.dwt_energies(self._t(x), dec_lo, dec_hi, level).numpy()

    def dwt_null_entropy(self, x, dec_lo, dec_hi, level, permutations):
        from cse_kernels import torch_twin

        return torch_twin.dwt_null_entropy(self._t(x), dec_lo, dec_hi, level, self._t(permutations)).numpy()

    def scale_entropy(self, energies):
        from cse_kernels import torch_twin

        cse, fractions = torch_twin.scale_entropy(self._t(np.asarray(energies, dtype=np.float64)))
        return cse.numpy(), fractions.numpy()

    def update_norms(self, x):
        from cse_kernels import torch_twin

        return torch_twin.update_norms(self._t(x)).numpy()

    def modwt_null_moments(self, x, dec_lo, dec_hi, level, permutations, boundary="reflect", unit=True,
                           method=None):
        from cse_kernels import torch_twin

        mean, std = torch_twin.modwt_null_moments(self._t(x), dec_lo, dec_hi, level, self._t(permutations),
                                                  boundary=boundary, unit=unit, method=method)
        return mean.numpy(), std.numpy()

    def gram_matrices(self, x):
        from cse_kernels import torch_twin

        return torch_twin.gram_matrices(self._t(x)).numpy()

    def gram_energies(self, gram, dec_lo, dec_hi, level, boundary="reflect", unit=True):
        from cse_kernels import torch_twin

        return torch_twin.gram_energies(self._t(gram), dec_lo, dec_hi, level, boundary=boundary, unit=unit).numpy()

    def gram_null_moments(self, gram, dec_lo, dec_hi, level, permutations, boundary="reflect", unit=True):
        from cse_kernels import torch_twin

        mean, std = torch_twin.gram_null_moments(self._t(gram), dec_lo, dec_hi, level, self._t(permutations),
                                                 boundary=boundary, unit=unit)
        return mean.numpy(), std.numpy()

    def dwt_null_moments(self, x, dec_lo, dec_hi, level, permutations):
        from cse_kernels import torch_twin

        mean, std = torch_twin.dwt_null_moments(self._t(x), dec_lo, dec_hi, level, self._t(permutations))
        return mean.numpy(), std.numpy()


class _MethodNull:
    """An implementation's order null with one of its methods forced ('gram' or 'direct')."""

    def __init__(self, module, method):
        self.module = module
        self.method = method

    def modwt_null_moments(self, x, dec_lo, dec_hi, level, permutations, boundary="reflect", unit=True):
        return self.module.modwt_null_moments(x, dec_lo, dec_hi, level, permutations, boundary, unit,
                                              method=self.method)


@pytest.fixture(params=["numba", pytest.param("torch", marks=needs_torch)])
def impl(request):
    """Every implementation of the kernel functions (same names and signatures)."""
    return _numba if request.param == "numba" else _TorchOnCPU()


@pytest.fixture(params=["numba-gram", "numba-direct", "reference-gram", pytest.param("torch-gram", marks=needs_torch),
                        pytest.param("torch-direct", marks=needs_torch)])
def null_impl(request):
    """Every implementation of the order null: both methods of the Numba kernels (the
    public function picks one of them; `cse.measure`'s tests run that choice), the
    reference's Gram path (its default is the plain 'direct' one, the specification)
    and both methods of the torch twin."""
    module, method = request.param.split("-")
    module = {"numba": _numba, "reference": reference}.get(module) or _TorchOnCPU()
    return _MethodNull(module, method)


@pytest.fixture(params=["numba", "reference", pytest.param("torch", marks=needs_torch)])
def gram_impl(request):
    """Every implementation of the Gram path (compared with the MODWT of the reference)."""
    return {"numba": _numba, "reference": reference}.get(request.param) or _TorchOnCPU()


# --- comparison helpers ----------------------------------------------------------------


def assert_energies_close(actual, expected, tol):
    """Same shape, float64, same NaN/inf pattern, finite bands within `tol` of the cell total."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape
    assert actual.dtype == np.float64
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    np.testing.assert_array_equal(np.isinf(actual), np.isinf(expected))
    finite = np.isfinite(expected)
    scale = np.where(finite, expected, 0.0).sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):
        err = np.abs(np.where(finite, actual - expected, 0.0))
    worst = np.max(err - tol * scale, initial=-np.inf)
    assert worst <= 0.0, f"energies differ by up to {np.max(err / np.where(scale > 0, scale, 1.0)):.3g} of the total"


def assert_cse_close(actual, expected, tol):
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape and actual.dtype == np.float64
    np.testing.assert_allclose(actual, expected, rtol=0, atol=tol, equal_nan=True)


def _filters(name):
    w = pywt.Wavelet(name)
    return w.dec_lo, w.dec_hi


@pytest.mark.parametrize("boundary", ["reflect", "periodic"])
@pytest.mark.parametrize("wavelet", ["haar", "db2"])
def test_modwt_hidden_dimension_chunks_match_reference(monkeypatch, wavelet, boundary):
    """A small scratch budget splits the hidden dimension into chunks (a remainder chunk
    included): energies add up over chunks to the reference's, with and without the null."""
    monkeypatch.setattr(_numba, "_MODWT_SCRATCH_BYTES", 4096)
    x = np.random.default_rng(5).standard_normal((3, 40, 150))
    lo, hi = _filters(wavelet)
    assert _numba._modwt_chunk(40 + 40, 150) < 150
    expected = reference.modwt_energies(x, lo, hi, 2, boundary=boundary, unit=True)
    actual = _numba.modwt_energies(x, lo, hi, 2, boundary=boundary, unit=True)
    assert_energies_close(actual, expected, 1e-12)
    perms = np.stack([np.random.default_rng(p).permutation(40) for p in range(3)])
    ref_mean, ref_std = reference.modwt_null_moments(x, lo, hi, 2, perms, boundary=boundary, unit=True)
    for method in ("direct", "gram"):
        mean, std = _numba.modwt_null_moments(x, lo, hi, 2, perms, boundary=boundary, unit=True, method=method)
        np.testing.assert_allclose(mean, ref_mean, rtol=0, atol=1e-12)
        np.testing.assert_allclose(std, ref_std, rtol=0, atol=1e-10)


# --- inputs: random data and edge cases ------------------------------------------------


def _modwt_input(case, dtype):
    """(x, level) for a named MODWT case; x is (n_series, n_steps, d)."""
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    shapes = {
        "random": ((3, 11, 5), 3),  # N not a power of two
        "pow2": ((2, 8, 4), 3),  # N = 2^J
        "long": ((2, 64, 3), 3),  # reflected tail shorter than N (for db4: 49 < 64)
        "n1": ((2, 1, 3), 1),  # a single step
        "n2": ((3, 2, 6), 1),
        "d1": ((2, 16, 1), 2),  # a single hidden dimension
        "short": ((2, 5, 4), 3),  # 2^J > N: filters wrap several times
        "level0": ((2, 6, 3), 0),  # no detail band
    }
    if case in shapes:
        shape, level = shapes[case]
        return rng.standard_normal(shape).astype(dtype), level
    x = rng.standard_normal((3, 12, 4)).astype(dtype)
    if case == "zeros":
        x[:] = 0
    elif case == "zero_vectors":
        x[0, 3] = 0  # one zero update inside a series
        x[1] = 0
    elif case == "nan":
        x[1, 5, 2] = np.nan
    elif case == "inf":
        x[0, 0, 0] = np.inf
        x[2, 7, 1] = -np.inf
    elif case == "huge":
        x *= 1e30 if dtype == np.float32 else 1e150  # squares overflow the input dtype
    elif case == "constant":
        x[:] = x[:, :1]  # constant along the series: all energy in the approximation
    else:
        raise ValueError(case)
    return x, 3


MODWT_CASES = ["random", "pow2", "long", "n1", "n2", "d1", "short", "level0", "zeros", "zero_vectors", "nan",
               "inf", "huge", "constant"]


@pytest.mark.parametrize("case, wavelet, boundary, unit, dtype",
                         covering(MODWT_CASES, WAVELETS, ["reflect", "periodic"], [True, False], [np.float32, np.float64]))
def test_modwt_energies_match_reference(impl, case, wavelet, boundary, unit, dtype):
    x, level = _modwt_input(case, dtype)
    lo, hi = _filters(wavelet)
    with np.errstate(all="ignore"):
        expected = reference.modwt_energies(x, lo, hi, level, boundary=boundary, unit=unit)
    actual = impl.modwt_energies(x, lo, hi, level, boundary=boundary, unit=unit)
    assert_energies_close(actual, expected, TOL[dtype])
    with np.errstate(all="ignore"):
        assert_cse_close(impl.scale_entropy(actual)[0], reference.scale_entropy(expected)[0], TOL[dtype])


LONG_FILTERS = ["sym5", "coif3", "db10", "sym8", "db20"]


@pytest.mark.parametrize("boundary", ["reflect", "periodic"])
@pytest.mark.parametrize("wavelet", LONG_FILTERS)
def test_modwt_long_filters_match_reference(impl, wavelet, boundary):
    x = np.random.default_rng(7).standard_normal((2, 40, 3))
    lo, hi = _filters(wavelet)
    for level in (1, 3):
        expected = reference.modwt_energies(x, lo, hi, level, boundary=boundary, unit=True)
        assert_energies_close(impl.modwt_energies(x, lo, hi, level, boundary=boundary, unit=True), expected, 1e-10)


def _dwt_input(case, dtype):
    """x (n, d) for a named DWT case; n = 70 spans several row blocks of the kernels."""
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    sizes = {"d1": 1, "d2": 2, "d7": 7, "d16": 16, "d90": 90, "d577": 577}
    if case in sizes:
        return rng.standard_normal((70, sizes[case])).astype(dtype)
    x = rng.standard_normal((70, 48)).astype(dtype)
    if case == "one_row":
        return x[:1]
    if case == "zeros":
        x[::3] = 0
    elif case == "nan":
        x[4, 17] = np.nan
    elif case == "inf":
        x[5, 0] = np.inf
        x[40, 47] = -np.inf
    elif case == "constant":
        x[:] = x[:, :1]
    else:
        raise ValueError(case)
    return x


DWT_CASES = ["d1", "d2", "d7", "d16", "d90", "d577", "one_row", "zeros", "nan", "inf", "constant"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("wavelet", WAVELETS)
@pytest.mark.parametrize("case", DWT_CASES)
def test_dwt_energies_match_reference(impl, case, wavelet, dtype):
    x = _dwt_input(case, dtype)
    lo, hi = _filters(wavelet)
    # The default level, and one past it (coarse levels of length 1 keep repeating).
    max_level = max(1, pywt.dwt_max_level(x.shape[1], len(lo)))
    for level in (max_level, max_level + 1):
        with np.errstate(all="ignore"):
            expected = reference.dwt_energies(x, lo, hi, level)
        actual = impl.dwt_energies(x, lo, hi, level)
        assert_energies_close(actual, expected, TOL[dtype])


@pytest.mark.parametrize("wavelet", WAVELETS + ["sym5"])
@pytest.mark.parametrize("d", [16, 33, 90, 576, 2880])
def test_dwt_energies_match_wavedec_periodization(impl, wavelet, d):
    # d = 90 (db4: 90 -> 45 -> 23) and 2880 (db4 at level 8: ... 45 -> 23) have odd coarse lengths.
    w = pywt.Wavelet(wavelet)
    level = pywt.dwt_max_level(d, w.dec_len)
    x = np.random.default_rng(d).standard_normal((5, d))
    coeffs = pywt.wavedec(x, w, mode="periodization", level=level, axis=-1)
    expected = np.stack([np.sum(c**2, axis=-1) for c in coeffs[::-1]], axis=-1)  # d1..dJ, aJ
    assert_energies_close(impl.dwt_energies(x, w.dec_lo, w.dec_hi, level), expected, 1e-10)


@pytest.mark.parametrize("wavelet", WAVELETS)
@pytest.mark.parametrize("n_steps,level", [(8, 3), (16, 2), (24, 3)])
def test_periodic_modwt_band_totals_match_swt(impl, wavelet, n_steps, level):
    w = pywt.Wavelet(wavelet)
    x = np.random.default_rng(n_steps).standard_normal((n_steps, 5))
    e = impl.modwt_energies(x[None], w.dec_lo, w.dec_hi, level, boundary="periodic", unit=False)[0].sum(axis=0)
    # swt returns [aJ, dJ, ..., d1]; its time alignment differs, band totals do not.
    coeffs = pywt.swt(x, w, level=level, norm=True, trim_approx=True, axis=0)
    expected = [np.sum(c**2) for c in coeffs[:0:-1]] + [np.sum(coeffs[0] ** 2)]
    np.testing.assert_allclose(e, expected, rtol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("wavelet", WAVELETS)
def test_dwt_null_entropy_matches_reference(impl, wavelet, dtype):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((37, 40)).astype(dtype)  # 37 rows: a full block of 32 and a partial one
    x[3] = 0  # undefined under every permutation
    x[5, 7] = np.nan
    x[9] = x[9, :1]  # constant: all energy in the approximation before permuting, still after
    perms = np.argsort(rng.random((6, 40)), axis=1)
    lo, hi = _filters(wavelet)
    level = pywt.dwt_max_level(40, len(lo))
    with np.errstate(all="ignore"):
        expected = reference.dwt_null_entropy(x, lo, hi, level, perms)
    actual = impl.dwt_null_entropy(x, lo, hi, level, perms)
    assert actual.shape == (37, 6)
    assert_cse_close(actual, expected, TOL[dtype])
    assert np.isnan(actual[3]).all() and np.isnan(actual[5]).all() and np.isfinite(actual[9]).all()


def test_dwt_null_entropy_identity_permutation_is_cse(impl):
    x = np.random.default_rng(12).standard_normal((9, 64))
    lo, hi = _filters("db4")
    cse = impl.scale_entropy(impl.dwt_energies(x, lo, hi, 3))[0]
    null = impl.dwt_null_entropy(x, lo, hi, 3, np.arange(64)[None].repeat(2, axis=0))
    np.testing.assert_allclose(null, np.stack([cse, cse], axis=-1), rtol=0, atol=1e-13)


def assert_moments_close(actual, expected, tol):
    for a, e in zip(actual, expected):
        assert_cse_close(a, e, tol)


NULL_CASES = ["random", "pow2", "long", "n1", "n2", "d1", "short", "level0", "zeros", "zero_vectors", "nan", "inf",
              "huge", "constant"]


@pytest.mark.parametrize("case, wavelet, boundary, unit_dtype",
                         covering(NULL_CASES, WAVELETS, ["reflect", "periodic"], [(True, np.float32), (False, np.float64)]))
def test_modwt_null_moments_match_reference(null_impl, case, wavelet, boundary, unit_dtype):
    unit, dtype = unit_dtype
    x, level = _modwt_input(case, dtype)
    perms = np.argsort(np.random.default_rng(zlib.crc32(case.encode()) + 1).random((5, x.shape[1])), axis=1)
    lo, hi = _filters(wavelet)
    with np.errstate(all="ignore"):
        expected = reference.modwt_null_moments(x, lo, hi, level, perms, boundary=boundary, unit=unit)
        actual = null_impl.modwt_null_moments(x, lo, hi, level, perms, boundary=boundary, unit=unit)
    assert actual[0].shape == actual[1].shape == x.shape[:2]
    assert_moments_close(actual, expected, TOL[dtype])


@pytest.mark.parametrize("boundary", ["reflect", "periodic"])
@pytest.mark.parametrize("wavelet", LONG_FILTERS[:3])
def test_modwt_null_long_filters_match_reference(null_impl, wavelet, boundary):
    # Equivalent filters longer than the (reflected) series: aliased taps add up.
    x = np.random.default_rng(27).standard_normal((3, 12, 4))
    perms = np.argsort(np.random.default_rng(28).random((4, 12)), axis=1)
    lo, hi = _filters(wavelet)
    expected = reference.modwt_null_moments(x, lo, hi, 3, perms, boundary=boundary)
    assert_moments_close(null_impl.modwt_null_moments(x, lo, hi, 3, perms, boundary=boundary), expected, 1e-10)


def test_modwt_null_moments_of_identity_permutations_are_cse(null_impl):
    x = np.random.default_rng(29).standard_normal((7, 10, 5))
    lo, hi = _filters("db2")
    cse = reference.scale_entropy(reference.modwt_energies(x, lo, hi, 3))[0]
    mean, std = null_impl.modwt_null_moments(x, lo, hi, 3, np.tile(np.arange(10), (3, 1)))
    np.testing.assert_allclose(mean, cse, rtol=0, atol=1e-12)
    assert np.abs(std).max() < 1e-12


def test_modwt_null_reads_the_depth_view_in_place(null_impl):
    u = np.random.default_rng(30).standard_normal((9, 40, 6)).astype(np.float32)  # (layers, tokens, d)
    perms = np.argsort(np.random.default_rng(31).random((4, 9)), axis=1)
    lo, hi = _filters("haar")
    expected = reference.modwt_null_moments(u.transpose(1, 0, 2), lo, hi, 3, perms)
    assert_moments_close(null_impl.modwt_null_moments(u.transpose(1, 0, 2), lo, hi, 3, perms), expected, 1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("wavelet", WAVELETS)
def test_dwt_null_moments_match_reference(impl, wavelet, dtype):
    rng = np.random.default_rng(32)
    x = rng.standard_normal((37, 40)).astype(dtype)
    x[3] = 0
    x[5, 7] = np.nan
    x[9] = x[9, :1]
    perms = np.argsort(rng.random((6, 40)), axis=1)
    lo, hi = _filters(wavelet)
    level = pywt.dwt_max_level(40, len(lo))
    with np.errstate(all="ignore"):
        expected = reference.dwt_null_moments(x, lo, hi, level, perms)
    actual = impl.dwt_null_moments(x, lo, hi, level, perms)
    assert actual[0].shape == (37,)
    assert_moments_close(actual, expected, TOL[dtype])
    assert np.isnan(actual[0][[3, 5]]).all() and actual[1][9] < 1e-12


def test_null_moments_need_two_permutations():
    x = np.zeros((2, 8, 3))
    lo, hi = _filters("haar")
    for module in (_numba, reference):
        with pytest.raises(ValueError, match=r"'permutations': expected at least 2 rows, got 1"):
            module.modwt_null_moments(x, lo, hi, 2, np.arange(8)[None])
        with pytest.raises(ValueError, match=r"'permutations': expected \(P, 8\), got \(3, 7\)"):
            module.modwt_null_moments(x, lo, hi, 2, np.zeros((3, 7), dtype=int))
        with pytest.raises(ValueError, match=r"indices must lie in 0..1"):
            module.dwt_null_moments(x[:, 0].T, lo, hi, 2, np.full((3, 2), 9))
    with pytest.raises(ValueError, match=r"'method'"):
        _numba.modwt_null_moments(x, lo, hi, 2, np.zeros((3, 8), dtype=int), method="fast")


def test_null_method_choice():
    # The depth axis (tens of layers) always takes the Gram kernel; long texts the direct one.
    assert _numba._null_method(4096, 30, 576, 2, 3, 100, 2550, 14) == "gram"
    assert _numba._null_method(30, 4096, 576, 8, 3, 100, 4096 * 2839, 49) == "direct"


# --- the Gram path: G from the updates, energies and the null from G ------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", MODWT_CASES)
def test_gram_matrices_match_reference(gram_impl, case, dtype):
    x, _ = _modwt_input(case, dtype)
    with np.errstate(all="ignore"):
        expected = reference.gram_matrices(x)
        actual = gram_impl.gram_matrices(x)
    assert actual.shape == x.shape[:2] + (x.shape[1],) and actual.dtype == np.float64
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(np.where(finite, actual, 0), np.where(finite, expected, 0), rtol=1e-12, atol=1e-300)
    np.testing.assert_array_equal(actual, np.swapaxes(actual, 1, 2))  # exactly symmetric


@pytest.mark.parametrize("case, wavelet, boundary, unit",
                         covering(MODWT_CASES, WAVELETS, ["reflect", "periodic"], [True, False]))
def test_gram_energies_match_reference(gram_impl, case, wavelet, boundary, unit):
    """Energies from G against the reference's Gram identity, every edge case (NaN, inf,
    overflow, zero vectors, series shorter than the filters, level 0)."""
    x, level = _modwt_input(case, np.float64)
    lo, hi = _filters(wavelet)
    with np.errstate(all="ignore"):
        gram = reference.gram_matrices(x)
        expected = reference.gram_energies(gram, lo, hi, level, boundary=boundary, unit=unit)
        actual = gram_impl.gram_energies(gram, lo, hi, level, boundary=boundary, unit=unit)
    assert_energies_close(actual, expected, 1e-12)
    assert not (actual < 0).any()


@pytest.mark.parametrize("case, wavelet, boundary, unit",
                         covering(["random", "pow2", "long", "n1", "n2", "d1", "short", "level0", "zeros",
                                   "zero_vectors", "nan", "inf", "constant"],
                                  WAVELETS + ["sym4", "db10"], ["reflect", "periodic"], [True, False]))
def test_gram_energies_equal_the_modwt(gram_impl, case, wavelet, boundary, unit):
    """The Gram identity: energies of the Gram matrices equal the MODWT's of the series
    (to rounding, relative to each cell's total), non-finite in the same cells (inf in
    the MODWT may be NaN from G: inf - inf); and the CSE, NaN in the same cells."""
    x, level = _modwt_input(case, np.float32)
    lo, hi = _filters(wavelet)
    with np.errstate(all="ignore"):
        expected = reference.modwt_energies(x, lo, hi, level, boundary=boundary, unit=unit)
        actual = gram_impl.gram_energies(gram_impl.gram_matrices(x), lo, hi, level, boundary=boundary, unit=unit)
        np.testing.assert_array_equal(np.isfinite(actual), np.isfinite(expected))
        finite = np.isfinite(expected).all(axis=-1, keepdims=True)
        assert_energies_close(np.where(finite, actual, 0.0), np.where(finite, expected, 0.0), 1e-12)
        assert_cse_close(reference.scale_entropy(actual)[0], reference.scale_entropy(expected)[0], 1e-12)


def test_gram_energies_of_overflowing_vectors_are_undefined(gram_impl):
    """Squares that overflow float64: the MODWT divides by an infinite norm (energies 0),
    the Gram path leaves NaN on the diagonal; either way the CSE is NaN, never a number."""
    x, level = np.random.default_rng(44).standard_normal((2, 12, 4)) * 1e160, 3
    lo, hi = _filters("db2")
    with np.errstate(all="ignore"):
        direct = reference.scale_entropy(reference.modwt_energies(x, lo, hi, level))[0]
        via_gram = reference.scale_entropy(gram_impl.gram_energies(gram_impl.gram_matrices(x), lo, hi, level))[0]
    assert np.isnan(direct).all() and np.isnan(via_gram).all()


@pytest.mark.parametrize("wavelet", ["haar", "db4"])
def test_gram_energies_round_below_zero_are_clamped(gram_impl, wavelet):
    """Nearly identical updates from layer to layer: the detail energies are a
    rounding-level share of the total, where the quadratic form cancels; never below 0."""
    rng = np.random.default_rng(40)
    base = rng.standard_normal((50, 1, 64))
    x = base + 1e-9 * rng.standard_normal((50, 16, 64))
    lo, hi = _filters(wavelet)
    energies = gram_impl.gram_energies(gram_impl.gram_matrices(x), lo, hi, 3, unit=False)
    expected = reference.modwt_energies(x, lo, hi, 3, unit=False)
    assert (energies >= 0).all()
    assert_energies_close(energies, expected, 1e-12)


@pytest.mark.parametrize("case, wavelet, boundary, unit",
                         covering(["random", "pow2", "n2", "short", "level0", "zero_vectors", "nan", "inf", "constant"],
                                  WAVELETS, ["reflect", "periodic"], [True, False]))
def test_gram_null_moments_match_reference(gram_impl, case, wavelet, boundary, unit):
    x, level = _modwt_input(case, np.float64)
    perms = np.argsort(np.random.default_rng(zlib.crc32(case.encode()) + 2).random((5, x.shape[1])), axis=1)
    lo, hi = _filters(wavelet)
    with np.errstate(all="ignore"):
        gram = reference.gram_matrices(x)
        expected = reference.modwt_null_moments(x, lo, hi, level, perms, boundary=boundary, unit=unit)
        from_gram = reference.gram_null_moments(gram, lo, hi, level, perms, boundary=boundary, unit=unit)
        actual = gram_impl.gram_null_moments(gram, lo, hi, level, perms, boundary=boundary, unit=unit)
    assert_moments_close(from_gram, expected, 1e-12)
    assert_moments_close(actual, expected, 1e-12)


def test_gram_path_reads_the_depth_view_in_place():
    u = np.random.default_rng(41).standard_normal((9, 40, 6)).astype(np.float32)  # (layers, tokens, d)
    np.testing.assert_array_equal(_numba.gram_matrices(u.transpose(1, 0, 2)),
                                  _numba.gram_matrices(np.ascontiguousarray(u.transpose(1, 0, 2))))


@pytest.mark.parametrize("unit", [True, False])
def test_fused_gram_null_equals_the_null_of_the_gram_matrices(unit):
    """`modwt_null_moments` (method 'gram') computes each block's Gram matrices in the
    block itself; the same helpers as `gram_matrices` then `gram_null_moments`, exactly."""
    x = np.random.default_rng(42).standard_normal((45, 8, 5)).astype(np.float32)
    perms = np.argsort(np.random.default_rng(43).random((3, 8)), axis=1)
    lo, hi = _filters("db2")
    fused = _numba.modwt_null_moments(x, lo, hi, 2, perms, unit=unit, method="gram")
    split = _numba.gram_null_moments(_numba.gram_matrices(x), lo, hi, 2, perms, unit=unit)
    for a, b in zip(fused, split):
        np.testing.assert_array_equal(a, b)


def test_gram_errors_name_the_parameter():
    lo, hi = _filters("haar")
    for module in (_numba, reference):
        with pytest.raises(ValueError, match=r"'gram': expected \(n_series, n_steps, n_steps\), got \(2, 4, 3\)"):
            module.gram_energies(np.zeros((2, 4, 3)), lo, hi, 1)
        with pytest.raises(ValueError, match=r"'boundary'"):
            module.gram_null_moments(np.zeros((2, 4, 4)), lo, hi, 1, np.tile(np.arange(4), (2, 1)), boundary="x")
        with pytest.raises(ValueError, match=r"'dtype': the NumPy kernels compute in float64 only"):
            module.gram_matrices(np.zeros((2, 4, 3)), dtype=np.float32)
        with pytest.raises(ValueError, match=r"'method': expected None, 'gram' or 'direct', got 'fast'"):
            module.modwt_null_moments(np.zeros((2, 4, 3)), lo, hi, 1, np.tile(np.arange(4), (2, 1)), method="fast")


# --- filters: the MODWT as matrices and the Gram identity ----------------------------


@pytest.mark.parametrize("wavelet", WAVELETS + ["sym5"])
@pytest.mark.parametrize("n_steps", [1, 2, 5, 8, 30])
@pytest.mark.parametrize("boundary", ["reflect", "periodic"])
def test_modwt_operator_reproduces_the_pyramid(wavelet, n_steps, boundary):
    from cse_kernels.filters import modwt_operator, quadratic_tables

    lo, hi = _filters(wavelet)
    x = np.random.default_rng(33).standard_normal((3, n_steps, 4))
    weights, reads = modwt_operator(lo, hi, 3, n_steps, boundary)
    coefficients = np.einsum("btm,smd->stbd", weights, x)
    expected = reference.modwt_energies(x, lo, hi, 3, boundary=boundary, unit=False)
    np.testing.assert_allclose((coefficients**2).sum(-1), expected, rtol=1e-10, atol=1e-12)
    # The Gram identity: E_b[t] = sum over pairs of w G[m, n], G = X X^T per series.
    starts, first, second, weight = quadratic_tables(lo, hi, 3, n_steps, boundary)
    gram = np.einsum("smd,snd->smn", x, x)
    terms = weight * gram[:, first, second]
    energies = np.add.reduceat(terms, starts[:-1], axis=1).reshape(3, 4, n_steps).transpose(0, 2, 1)
    np.testing.assert_allclose(energies, expected, rtol=1e-10, atol=1e-12)


def test_equivalent_filters_of_haar():
    from cse_kernels.filters import equivalent_filters, equivalent_width

    lo, hi = _filters("haar")
    bands = equivalent_filters(lo, hi, 2)
    np.testing.assert_allclose(bands[0], [-0.5, 0.5] if hi[0] < 0 else [0.5, -0.5])
    np.testing.assert_allclose(np.abs(bands[1]), 0.25)
    np.testing.assert_allclose(bands[2], 0.25)
    assert [len(b) for b in bands] == [equivalent_width(2, 1), equivalent_width(2, 2), equivalent_width(2, 2)]


def test_scale_entropy_matches_reference(impl):
    rng = np.random.default_rng(13)
    e = rng.random((4, 3, 5))
    e[0, 0] = [1.0, 0.0, 0.0, 0.0, 0.0]  # one band: CSE 0
    e[0, 1] = 1.0  # even spread: CSE 1
    e[0, 2] = 0.0  # undefined
    e[1, 0, 2] = np.inf  # undefined
    e[1, 1, 4] = np.nan  # undefined
    e[1, 2] = [1e308, 1e308, 1e308, 0.0, 0.0]  # total overflows: undefined
    e[2, 0] = [1e-300, 0.0, 3e-300, 0.0, 0.0]  # tiny but defined
    cse, fractions = impl.scale_entropy(e)
    with np.errstate(over="ignore"):
        ref_cse, ref_fractions = reference.scale_entropy(e)
    assert cse.shape == (4, 3) and fractions.shape == (4, 3, 5)
    assert_cse_close(cse, ref_cse, 1e-12)
    np.testing.assert_allclose(fractions, ref_fractions, rtol=1e-12, atol=1e-300, equal_nan=True)
    assert cse[0, 0] == 0.0 and cse[0, 1] == pytest.approx(1.0, abs=1e-15)
    assert np.isnan(cse[0, 2]) and np.isnan(cse[1]).all() and np.isnan(fractions[1]).all()
    assert np.isfinite(cse[2, 0])


@pytest.mark.parametrize("shape", [(5, 4), (3, 2), (4,), (0, 4), (2, 0, 3)])
def test_scale_entropy_shapes(impl, shape):
    e = np.random.default_rng(14).random(shape)
    cse, fractions = impl.scale_entropy(e)
    ref_cse, ref_fractions = reference.scale_entropy(e)
    assert cse.shape == ref_cse.shape and fractions.shape == ref_fractions.shape
    assert_cse_close(cse, ref_cse, 1e-12)


@pytest.mark.parametrize("shape", [(7,), (3, 7), (2, 3, 7), (2, 2, 3, 7)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_update_norms_match_reference(impl, shape, dtype):
    x = np.random.default_rng(15).standard_normal(shape).astype(dtype)
    np.testing.assert_allclose(impl.update_norms(x), reference.update_norms(x), rtol=1e-12)


def test_update_norms_accumulate_in_float64(impl):
    x = np.full((2, 3), 1e20, dtype=np.float32)  # squares overflow float32
    np.testing.assert_allclose(impl.update_norms(x), np.sqrt(3) * 1e20, rtol=1e-7)
    x[1, 0] = np.nan
    assert np.isnan(impl.update_norms(x)[1])


# --- layouts and determinism (Numba) ---------------------------------------------------


def test_modwt_reads_any_layout():
    rng = np.random.default_rng(16)
    u = rng.standard_normal((6, 9, 5)).astype(np.float32)  # (n_layers, n_tokens, d)
    lo, hi = _filters("haar")
    expected = _numba.modwt_energies(np.ascontiguousarray(u.transpose(1, 0, 2)), lo, hi, 2)
    for view in (u.transpose(1, 0, 2), np.asfortranarray(u).transpose(1, 0, 2), u[:, ::-1].transpose(1, 0, 2)[::-1]):
        np.testing.assert_array_equal(_numba.modwt_energies(view, lo, hi, 2), expected)
    strided = rng.standard_normal((4, 12, 10))[:, ::2, ::2]
    np.testing.assert_array_equal(
        _numba.modwt_energies(strided, lo, hi, 2), _numba.modwt_energies(np.ascontiguousarray(strided), lo, hi, 2)
    )


def test_dwt_reads_any_layout():
    x = np.random.default_rng(17).standard_normal((10, 64))
    lo, hi = _filters("db4")
    expected = _numba.dwt_energies(np.ascontiguousarray(x[:, ::2]), lo, hi, 3)
    np.testing.assert_array_equal(_numba.dwt_energies(x[:, ::2], lo, hi, 3), expected)
    np.testing.assert_array_equal(_numba.dwt_energies(np.asfortranarray(x[:, ::2]), lo, hi, 3), expected)


def test_results_do_not_depend_on_thread_count():
    import numba

    rng = np.random.default_rng(18)
    x = rng.standard_normal((40, 8, 6))
    rows = rng.standard_normal((70, 32))
    perms = np.argsort(rng.random((3, 32)), axis=1)
    lo, hi = _filters("db2")

    def run():
        return (
            _numba.modwt_energies(x, lo, hi, 2),
            _numba.dwt_energies(rows, lo, hi, 3),
            _numba.dwt_null_entropy(rows, lo, hi, 3, perms),
        )

    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single = run()
    finally:
        numba.set_num_threads(before)
    for a, b in zip(single, run()):
        np.testing.assert_array_equal(a, b)


def test_integer_input_is_accepted_as_float64():
    x = np.arange(2 * 8 * 3).reshape(2, 8, 3)
    lo, hi = _filters("haar")
    np.testing.assert_array_equal(
        _numba.modwt_energies(x, lo, hi, 2), _numba.modwt_energies(x.astype(np.float64), lo, hi, 2)
    )


# --- properties (Numba) ----------------------------------------------------------------


@pytest.mark.parametrize("wavelet", WAVELETS)
@given(seed=st.integers(0, 2**32 - 1), n_steps=st.integers(1, 24), level=st.integers(1, 4))
@HYP
def test_periodic_modwt_conserves_energy(wavelet, seed, n_steps, level):
    lo, hi = _filters(wavelet)
    x = np.random.default_rng(seed).standard_normal((3, n_steps, 4))
    e = _numba.modwt_energies(x, lo, hi, level, boundary="periodic", unit=False)
    np.testing.assert_allclose(e.sum(axis=(1, 2)), (x**2).sum(axis=(1, 2)), rtol=1e-10)


@given(seed=st.integers(0, 2**32 - 1), log_n=st.integers(1, 6), wavelet=st.sampled_from(WAVELETS))
@HYP
def test_dwt_of_even_lengths_conserves_energy(seed, log_n, wavelet):
    lo, hi = _filters(wavelet)
    d = 2**log_n * 3
    x = np.random.default_rng(seed).standard_normal((5, d))
    e = _numba.dwt_energies(x, lo, hi, log_n)  # every level has even length
    np.testing.assert_allclose(e.sum(axis=-1), (x**2).sum(axis=-1), rtol=1e-10)


@given(
    seed=st.integers(0, 2**32 - 1),
    c=st.floats(1e-3, 1e3) | st.floats(-1e3, -1e-3),
    boundary=st.sampled_from(["reflect", "periodic"]),
    unit=st.booleans(),
)
@HYP
def test_cse_invariant_to_global_scale(seed, c, boundary, unit):
    lo, hi = _filters("db2")
    x = np.random.default_rng(seed).standard_normal((3, 10, 4))
    cse = _numba.scale_entropy(_numba.modwt_energies(x, lo, hi, 3, boundary=boundary, unit=unit))[0]
    scaled = _numba.scale_entropy(_numba.modwt_energies(c * x, lo, hi, 3, boundary=boundary, unit=unit))[0]
    np.testing.assert_allclose(scaled, cse, rtol=0, atol=1e-12)


@given(seed=st.integers(0, 2**32 - 1), log_scales=st.lists(st.floats(-8, 8), min_size=10, max_size=10))
@HYP
def test_unit_energies_invariant_to_per_step_positive_scale(seed, log_scales):
    lo, hi = _filters("haar")
    x = np.random.default_rng(seed).standard_normal((2, 10, 6))
    scaled = x * np.exp(np.asarray(log_scales))[None, :, None]
    np.testing.assert_allclose(
        _numba.modwt_energies(scaled, lo, hi, 3), _numba.modwt_energies(x, lo, hi, 3), rtol=1e-12, atol=1e-15
    )


# --- errors ----------------------------------------------------------------------------


def test_errors_name_the_parameter():
    lo, hi = _filters("db2")
    x = np.zeros((2, 8, 3))
    with pytest.raises(ValueError, match=r"'boundary': expected 'reflect' or 'periodic', got 'mirror'"):
        _numba.modwt_energies(x, lo, hi, 2, boundary="mirror")
    with pytest.raises(ValueError, match=r"Invalid shape for 'x': expected 3 dimensions"):
        _numba.modwt_energies(x[0], lo, hi, 2)
    with pytest.raises(ValueError, match=r"Invalid shape for 'x': expected 2 dimensions"):
        _numba.dwt_energies(x, lo, hi, 2)
    with pytest.raises(ValueError, match=r"at least one column"):
        _numba.dwt_energies(np.zeros((3, 0)), lo, hi, 1)
    with pytest.raises(ValueError, match=r"same even length, got 3 and 3"):
        _numba.modwt_energies(x, lo[:3], hi[:3], 2)
    with pytest.raises(ValueError, match=r"same even length, got 4 and 2"):
        _numba.dwt_energies(x[0], lo, hi[:2], 1)
    with pytest.raises(ValueError, match=r"'level': expected an integer >= 0, got -1"):
        _numba.modwt_energies(x, lo, hi, -1)


def test_null_permutations_are_checked_before_indexing():
    x = np.zeros((4, 8))
    lo, hi = _filters("haar")
    with pytest.raises(ValueError, match=r"'permutations': expected \(P, 8\), got \(2, 7\)"):
        _numba.dwt_null_entropy(x, lo, hi, 2, np.zeros((2, 7), dtype=int))
    with pytest.raises(ValueError, match=r"'permutations': indices must lie in 0..7"):
        _numba.dwt_null_entropy(x, lo, hi, 2, np.full((2, 8), 8))
    with pytest.raises(ValueError, match=r"'permutations': indices must lie in 0..7"):
        _numba.dwt_null_entropy(x, lo, hi, 2, np.full((2, 8), -1))
    with pytest.raises(TypeError, match=r"'permutations': expected integers, got dtype float64"):
        _numba.dwt_null_entropy(x, lo, hi, 2, np.zeros((2, 8)))


@needs_torch
def test_torch_twin_errors():
    from cse_kernels import torch_twin

    lo, hi = _filters("haar")
    with pytest.raises(ValueError, match=r"'boundary'"):
        torch_twin.modwt_energies(torch.zeros(2, 4, 3), lo, hi, 1, boundary="mirror")
    with pytest.raises(ValueError, match=r"Invalid shape for 'x'"):
        torch_twin.dwt_energies(torch.zeros(2, 4, 3), lo, hi, 1)
    with pytest.raises(ValueError, match=r"'permutations': expected \(P, 4\)"):
        torch_twin.dwt_null_entropy(torch.zeros(2, 4), lo, hi, 1, torch.zeros(3, 5, dtype=torch.long))


# --- package layout --------------------------------------------------------------------


KERNEL_FUNCTIONS = ("modwt_energies", "modwt_null_moments", "gram_matrices", "gram_energies", "gram_null_moments",
                    "dwt_energies", "dwt_null_entropy", "dwt_null_moments", "scale_entropy", "update_norms")


def _kernel_modules():
    modules = [reference, _numba]
    if torch is not None:
        from cse_kernels import torch_twin

        modules.append(torch_twin)
    return modules


def test_public_functions_are_the_numba_kernels():
    from cse_kernels import _docs

    for name in KERNEL_FUNCTIONS:
        assert getattr(cse_kernels, name) is getattr(_numba, name)
    assert cse_kernels.reference is reference
    assert set(_docs.FUNCTIONS) == set(KERNEL_FUNCTIONS)
    for module in _kernel_modules():
        defined = {n for n, f in vars(module).items() if callable(f) and not n.startswith("_")
                   and getattr(f, "__module__", None) == module.__name__}
        assert set(KERNEL_FUNCTIONS) <= defined, module.__name__
    assert set(cse_kernels.__all__) == set(KERNEL_FUNCTIONS)


def test_kernel_modules_share_names_and_signatures():
    """Same parameters (names, order, kinds, defaults) in the three kernel modules; only
    the array type of the return annotation differs."""
    import inspect

    for name in KERNEL_FUNCTIONS:
        signatures = {}
        for module in _kernel_modules():
            params = inspect.signature(getattr(module, name)).parameters.values()
            signatures[module.__name__] = [(p.name, p.kind, p.default) for p in params]
        assert len({repr(v) for v in signatures.values()}) == 1, (name, signatures)


def test_kernel_docstrings_come_from_one_table():
    """Every kernel function's docstring is rendered from `cse_kernels._docs` (one entry
    per function), documents every parameter of the signature, and names the module's
    array type."""
    import inspect

    from cse_kernels import _docs

    for module in _kernel_modules():
        for name in KERNEL_FUNCTIONS:
            func = getattr(module, name)
            template = _docs.render(name, module.ARRAYS)
            doc = func.__doc__
            # The module may only append notes: the rendered table text (up to Notes) is there verbatim.
            head = template.split("\nNotes\n")[0].split("\nReferences\n")[0].split("\nExamples\n")[0]
            assert doc.startswith(head), (module.__name__, name)
            assert doc.endswith(template[template.index("\nExamples\n"):]), (module.__name__, name)  # examples last
            documented = set()
            for line in doc.split("Parameters\n----------\n")[1].split("\n\n")[0].splitlines():
                if line and not line.startswith(" "):
                    documented.update(part.strip() for part in line.split(":")[0].split(","))
            assert documented == set(inspect.signature(func).parameters), (module.__name__, name, documented)
            assert ("torch.Tensor" in doc) == (module.ARRAYS == "torch"), (module.__name__, name)


def test_importing_the_kernels_does_not_import_torch():
    code = "import sys, cse_kernels; cse_kernels.scale_entropy([[1.0, 2.0]]); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# --- torch twin specifics --------------------------------------------------------------


@needs_torch
def test_torch_twin_float32_working_dtype_is_close():
    from cse_kernels import torch_twin

    x = torch.from_numpy(np.random.default_rng(19).standard_normal((4, 16, 8)))
    lo, hi = _filters("db4")
    e64 = torch_twin.modwt_energies(x, lo, hi, 3)
    e32 = torch_twin.modwt_energies(x, lo, hi, 3, dtype=torch.float32)
    assert e32.dtype == torch.float32 and e64.dtype == torch.float64
    assert_cse_close(
        torch_twin.scale_entropy(e32.double())[0].numpy(), torch_twin.scale_entropy(e64)[0].numpy(), 1e-5
    )


@needs_torch
def test_torch_twin_keeps_bfloat16_input_on_its_device():
    from cse_kernels import torch_twin

    x = torch.from_numpy(np.random.default_rng(20).standard_normal((3, 8, 4))).to(torch.bfloat16)
    lo, hi = _filters("haar")
    e = torch_twin.modwt_energies(x, lo, hi, 2)
    assert e.dtype == torch.float64 and e.device == x.device
    expected = _numba.modwt_energies(x.double().numpy(), lo, hi, 2)
    assert_energies_close(e.numpy(), expected, 1e-10)


@needs_cuda
@pytest.mark.parametrize("boundary", ["reflect", "periodic"])
def test_torch_twin_on_cuda_matches_numba(boundary):
    from cse_kernels import torch_twin

    rng = np.random.default_rng(21)
    u = rng.standard_normal((6, 9, 32)).astype(np.float32)
    lo, hi = _filters("db2")
    on_gpu = torch.from_numpy(u).cuda()
    e = torch_twin.modwt_energies(on_gpu, lo, hi, 2, boundary=boundary)
    assert e.device == on_gpu.device
    assert_energies_close(e.cpu().numpy(), _numba.modwt_energies(u, lo, hi, 2, boundary=boundary), 1e-10)
    rows = u.reshape(-1, 32)
    d = torch_twin.dwt_energies(on_gpu.reshape(-1, 32), lo, hi, 3)
    assert d.device == on_gpu.device
    assert_energies_close(d.cpu().numpy(), _numba.dwt_energies(rows, lo, hi, 3), 1e-10)
    perms = np.argsort(rng.random((4, 32)), axis=1)
    null = torch_twin.dwt_null_entropy(on_gpu.reshape(-1, 32), lo, hi, 3, torch.from_numpy(perms).cuda())
    assert_cse_close(null.cpu().numpy(), _numba.dwt_null_entropy(rows, lo, hi, 3, perms), 1e-10)
    cse, fractions = torch_twin.scale_entropy(e)
    assert cse.device == on_gpu.device and fractions.device == on_gpu.device


@needs_torch
@pytest.mark.parametrize("axis", ["depth", "token", "hidden"])
def test_torch_twin_matches_numba_on_cpu(axis):
    # Layer updates of a small model-sized batch, reduced as `cse compute` does on each path.
    from cse_kernels import torch_twin

    rng = np.random.default_rng(22)
    u = rng.standard_normal((12, 40, 64)).astype(np.float32)  # (n_layers, n_tokens, d_model)
    u[3, 5] = 0  # a zero update
    if axis == "hidden":
        lo, hi = _filters("db4")
        rows = u.reshape(-1, 64)
        perms = np.argsort(rng.random((5, 64)), axis=1)
        expected = _numba.dwt_energies(rows, lo, hi, 3)
        actual = torch_twin.dwt_energies(torch.from_numpy(rows), lo, hi, 3).numpy()
        null = torch_twin.dwt_null_entropy(torch.from_numpy(rows), lo, hi, 3, torch.from_numpy(perms)).numpy()
        with np.errstate(invalid="ignore"):
            assert_cse_close(null, _numba.dwt_null_entropy(rows, lo, hi, 3, perms), 1e-10)
    else:
        lo, hi = _filters("haar")
        series = u.transpose(1, 0, 2) if axis == "depth" else u
        expected = _numba.modwt_energies(series, lo, hi, 3)
        actual = torch_twin.modwt_energies(torch.from_numpy(u).transpose(0, 1) if axis == "depth"
                                           else torch.from_numpy(u), lo, hi, 3).numpy()
    assert_energies_close(actual, expected, 1e-10)
    assert_cse_close(torch_twin.scale_entropy(torch.from_numpy(actual))[0].numpy(),
                     _numba.scale_entropy(expected)[0], 1e-10)
