"""Tests of the NumPy reference (`cse_kernels.reference`) and `conditional_scale_entropy`.

References used: PyWavelets (`swt`, `wavedec`) and the independent, naive
implementation in tests/independent.py. Fast: small arrays only.
"""

from __future__ import annotations

import numpy as np
import pytest
import pywt
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import cse_kernels.reference as ref
from cse.errors import CSEInputError
from cse.measure import _scale_energies, conditional_scale_entropy
from independent import naive_conditional_scale_entropy, naive_cse, naive_dwt_energies, naive_modwt_energies

TOL = {np.float32: 1e-5, np.float64: 1e-10}
WAVELETS = ["haar", "db2", "db4", "sym4"]
AXES = ["depth", "token", "hidden"]
HYP = settings(max_examples=25, deadline=None)


def _updates(rng, shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


def _assert_close(actual, expected, tol):
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol, equal_nan=True)


# --- reference transforms against PyWavelets -------------------------------------------


@pytest.mark.parametrize("wavelet", WAVELETS)
@given(seed=st.integers(0, 2**32 - 1), n_steps=st.integers(2, 24), level=st.integers(1, 3))
@HYP
def test_periodic_modwt_conserves_energy(wavelet, seed, n_steps, level):
    w = pywt.Wavelet(wavelet)
    x = _updates(np.random.default_rng(seed), (3, n_steps, 4))
    e = ref.modwt_energies(x, w.dec_lo, w.dec_hi, level, boundary="periodic", unit=False)
    # PyWavelets' sym4 filters are orthonormal to ~1e-11 only, hence the relative tolerance.
    np.testing.assert_allclose(e.sum(axis=(1, 2)), (x**2).sum(axis=(1, 2)), rtol=1e-9)


@pytest.mark.parametrize("wavelet", WAVELETS)
@pytest.mark.parametrize("n_steps,level", [(8, 3), (16, 2), (24, 3), (32, 4)])
def test_periodic_modwt_band_totals_match_swt(wavelet, n_steps, level):
    w = pywt.Wavelet(wavelet)
    x = _updates(np.random.default_rng(n_steps), (n_steps, 5))
    e = ref.modwt_energies(x[None], w.dec_lo, w.dec_hi, level, boundary="periodic", unit=False)[0].sum(axis=0)
    # swt returns [aJ, dJ, ..., d1] (and its time alignment differs; band totals do not).
    coeffs = pywt.swt(x, w, level=level, norm=True, trim_approx=True, axis=0)
    expected = [np.sum(c**2) for c in coeffs[:0:-1]] + [np.sum(coeffs[0] ** 2)]
    _assert_close(e, expected, 1e-10)


@pytest.mark.parametrize("wavelet", WAVELETS)
@pytest.mark.parametrize("d", [16, 33, 90, 577, 2880])
def test_dwt_energies_match_wavedec_periodization(wavelet, d):
    # d=90 (db4: 90 -> 45 -> 23) and d=2880 (db4 level 8: ... 45 -> 23) hit odd coarse lengths.
    w = pywt.Wavelet(wavelet)
    level = pywt.dwt_max_level(d, w.dec_len)
    x = _updates(np.random.default_rng(d), (6, d))
    e = ref.dwt_energies(x, w.dec_lo, w.dec_hi, level)
    coeffs = pywt.wavedec(x, w, mode="periodization", level=level, axis=-1)
    expected = np.stack([np.sum(c**2, axis=-1) for c in coeffs[::-1]], axis=-1)
    assert e.shape == (6, level + 1) and e.dtype == np.float64
    _assert_close(e, expected, 1e-10)


@pytest.mark.parametrize("wavelet", ["haar", "db4"])
def test_naive_dwt_matches_wavedec(wavelet):
    # The independent reference must itself follow PyWavelets' periodization convention.
    w = pywt.Wavelet(wavelet)
    x = _updates(np.random.default_rng(5), (2, 90))
    level = pywt.dwt_max_level(90, w.dec_len)
    coeffs = pywt.wavedec(x, w, mode="periodization", level=level, axis=-1)
    expected = np.stack([np.sum(c**2, axis=-1) for c in coeffs[::-1]], axis=-1)
    _assert_close(naive_dwt_energies(x, wavelet, level), expected, 1e-10)


# --- reference transforms against the independent implementation ---------------------


@pytest.mark.parametrize("wavelet", WAVELETS)
@pytest.mark.parametrize("boundary", ["reflect", "periodic"])
@pytest.mark.parametrize("unit", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_modwt_energies_match_naive(wavelet, boundary, unit, dtype):
    w = pywt.Wavelet(wavelet)
    x = _updates(np.random.default_rng(3), (3, 7, 4), dtype)
    e = ref.modwt_energies(x, w.dec_lo, w.dec_hi, 2, boundary=boundary, unit=unit)
    assert e.shape == (3, 7, 3) and e.dtype == np.float64
    _assert_close(e, naive_modwt_energies(x, wavelet, 2, boundary, unit), TOL[dtype])


def test_scale_entropy_matches_naive_and_handles_edges():
    rng = np.random.default_rng(4)
    e = rng.random((5, 4))
    e[1] = [1.0, 0.0, 0.0, 0.0]  # all energy in one band: CSE 0
    e[2] = 1.0  # even spread: CSE 1
    e[3] = 0.0  # undefined
    e[4, 2] = np.inf  # undefined
    cse, p = ref.scale_entropy(e)
    ncse, np_ = naive_cse(e)
    _assert_close(cse, ncse, 1e-12)
    _assert_close(p, np_, 1e-12)
    assert cse[1] == 0.0 and cse[2] == pytest.approx(1.0, abs=1e-15)
    assert np.isnan(cse[3:]).all() and np.isnan(p[3:]).all()


def test_dwt_null_entropy_is_cse_of_permuted_rows():
    w = pywt.Wavelet("db2")
    rng = np.random.default_rng(6)
    x = _updates(rng, (4, 32))
    perms = np.argsort(rng.random((3, 32)), axis=1)
    null = ref.dwt_null_entropy(x, w.dec_lo, w.dec_hi, 3, perms)
    expected = np.stack([naive_cse(naive_dwt_energies(x[:, p], "db2", 3))[0] for p in perms], axis=-1)
    assert null.shape == (4, 3)
    _assert_close(null, expected, 1e-10)


def test_update_norms_in_float64():
    x = np.full((2, 3), 1e20, dtype=np.float32)  # squares overflow float32
    np.testing.assert_allclose(ref.update_norms(x), np.sqrt(3) * 1e20, rtol=1e-7)


# --- conditional_scale_entropy against the independent implementation -----------------


@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("wavelet", WAVELETS)
@pytest.mark.parametrize("boundary", ["reflect", "periodic"])
@pytest.mark.parametrize("normalize", ["unit", "none"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_independent_implementation(axis, wavelet, boundary, normalize, dtype):
    rng = np.random.default_rng(7)
    if axis == "hidden":
        u, level = _updates(rng, (3, 4, 40), dtype), None
    else:
        u, level = _updates(rng, (7, 9, 5), dtype), 2
    ds = conditional_scale_entropy(u, axis=axis, wavelet=wavelet, level=level, boundary=boundary,
                                   normalize=normalize)
    cse, fractions = naive_conditional_scale_entropy(u, axis, wavelet, level, boundary, normalize)
    _assert_close(ds.cse.values, cse, TOL[dtype])
    _assert_close(ds.scale_fraction.values, fractions, TOL[dtype])
    _assert_close(ds.update_norm.values, np.linalg.norm(u.astype(np.float64), axis=-1), TOL[dtype])
    assert np.isfinite(ds.cse.values).all()


def test_dataset_layout_and_attributes():
    u = _updates(np.random.default_rng(8), (8, 5, 16))
    ds = conditional_scale_entropy(u)
    assert ds.cse.dims == ("layer", "token")
    assert ds.scale_fraction.dims == ("layer", "token", "scale")
    assert ds.update_norm.dims == ("layer", "token")
    assert ds.scale.values.tolist() == ["d1", "d2", "d3", "a3"]
    assert ds.layer.values.tolist() == list(range(8)) and ds.token.values.tolist() == list(range(5))
    assert ds.attrs == {"axis": "depth", "wavelet": "haar", "level": 3, "boundary": "reflect",
                        "normalize": "unit", "null_permutations": 0, "seed": 0}
    for name, var in ds.data_vars.items():
        assert var.attrs["units"] == "1" and var.attrs["long_name"], name
        assert var.dtype == np.float64
    np.testing.assert_allclose(ds.scale_fraction.sum("scale"), 1.0, rtol=1e-12)
    hidden = conditional_scale_entropy(u, axis="hidden")
    assert hidden.attrs["wavelet"] == "db4" and hidden.attrs["normalize"] == "none"
    assert hidden.attrs["level"] == pywt.dwt_max_level(16, 8) and hidden.attrs["boundary"] == "periodization"


def test_backend_is_switchable():
    u = _updates(np.random.default_rng(9), (8, 3, 6))
    w = pywt.Wavelet("haar")
    by_name = _scale_energies(u, "depth", w, 3, "reflect", True, backend="cse_kernels.reference")
    by_module = _scale_energies(u, "depth", w, 3, "reflect", True, backend=ref)
    assert by_name.shape == (8, 3, 4)
    np.testing.assert_array_equal(by_name, by_module)


# --- invariances (SPEC section 2, Notes of conditional_scale_entropy) -----------------

MODES = [(axis, normalize) for axis in AXES for normalize in ("unit", "none")]
scales = st.one_of(st.floats(-1e3, -1e-3), st.floats(1e-3, 1e3))


@pytest.mark.parametrize("axis,normalize", MODES)
@given(seed=st.integers(0, 2**32 - 1), c=scales)
@HYP
def test_invariant_to_global_scale(axis, normalize, seed, c):
    u = _updates(np.random.default_rng(seed), (8, 8, 16))
    a = conditional_scale_entropy(u, axis=axis, normalize=normalize)
    b = conditional_scale_entropy(c * u, axis=axis, normalize=normalize)
    _assert_close(b.cse.values, a.cse.values, 1e-10)
    _assert_close(b.scale_fraction.values, a.scale_fraction.values, 1e-10)


@pytest.mark.parametrize("axis", ["depth", "token"])
@given(seed=st.integers(0, 2**32 - 1), log_scales=st.lists(st.floats(-6, 6), min_size=8, max_size=8))
@HYP
def test_unit_normalization_removes_per_layer_scales(axis, seed, log_scales):
    rng = np.random.default_rng(seed)
    u = _updates(rng, (8, 8, 16))
    a = np.exp(np.array(log_scales))[:, None, None]
    before = conditional_scale_entropy(u, axis=axis, normalize="unit")
    after = conditional_scale_entropy(a * u, axis=axis, normalize="unit")
    _assert_close(after.cse.values, before.cse.values, 1e-10)
    # The proof covers any positive scale of each vector separately, per token too.
    b = np.exp(rng.uniform(-6, 6, (8, 8, 1)))
    _assert_close(conditional_scale_entropy(b * u, axis=axis).cse.values, before.cse.values, 1e-10)


@pytest.mark.parametrize("axis", ["depth", "token"])
def test_raw_updates_are_not_invariant_to_per_vector_scales(axis):
    # Counterexample: without normalization, amplifying one element of each series (a layer
    # of a depth stream, a token of a token series) moves energy between bands.
    u = _updates(np.random.default_rng(10), (8, 8, 16))
    a = np.ones((8, 8, 1))
    if axis == "depth":
        a[3] = 100.0  # one layer
    else:
        a[:, 3] = 100.0  # one token
    before = conditional_scale_entropy(u, axis=axis, normalize="none")
    after = conditional_scale_entropy(a * u, axis=axis, normalize="none")
    assert np.abs(after.cse.values - before.cse.values).max() > 1e-2
    # ... while unit normalization removes it.
    _assert_close(conditional_scale_entropy(a * u, axis=axis).cse.values,
                  conditional_scale_entropy(u, axis=axis).cse.values, 1e-10)


@pytest.mark.parametrize("axis,normalize", MODES)
@given(seed=st.integers(0, 2**32 - 1), sparsity=st.floats(0, 0.9))
@HYP
def test_values_in_unit_interval(axis, normalize, seed, sparsity):
    rng = np.random.default_rng(seed)
    u = _updates(rng, (8, 8, 16)) * (rng.random((8, 8, 16)) >= sparsity)
    ds = conditional_scale_entropy(u, axis=axis, normalize=normalize)
    cse = ds.cse.values[np.isfinite(ds.cse.values)]
    assert ((cse >= 0) & (cse <= 1)).all()
    p = ds.scale_fraction.values
    assert (p[np.isfinite(p)] >= 0).all()


# --- undefined cells ------------------------------------------------------------------


@pytest.mark.parametrize("axis,normalize", MODES)
def test_all_zero_input_is_nan_not_zero(axis, normalize):
    ds = conditional_scale_entropy(np.zeros((8, 8, 16)), axis=axis, normalize=normalize)
    assert np.isnan(ds.cse.values).all() and np.isnan(ds.scale_fraction.values).all()
    assert (ds.update_norm.values == 0).all()


@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("normalize", ["unit", "none"])
def test_non_finite_cells_are_nan(axis, bad, normalize):
    u = _updates(np.random.default_rng(11), (8, 8, 16))
    u[2, 5, 3] = bad
    ds = conditional_scale_entropy(u, axis=axis, normalize=normalize)
    cse = ds.cse.values
    assert np.isnan(cse[2, 5]) and np.isnan(ds.scale_fraction.values[2, 5]).all()
    # Cells whose transform never touches the bad value stay defined.
    if axis == "depth":  # series are tokens
        assert np.isfinite(np.delete(cse, 5, axis=1)).all()
    elif axis == "token":  # series are layers
        assert np.isfinite(np.delete(cse, 2, axis=0)).all()
    else:
        assert np.isnan(cse).sum() == 1


def test_zero_update_in_a_stream_stays_defined():
    u = _updates(np.random.default_rng(12), (8, 4, 16))
    u[3, 1] = 0.0
    ds = conditional_scale_entropy(u)
    assert np.isfinite(ds.cse.values).all()
    assert ds.update_norm.values[3, 1] == 0.0


# --- validation -----------------------------------------------------------------------


def test_level_too_high_raises():
    with pytest.raises(CSEInputError, match="'level'.*level 3 needs 2\\*\\*3 = 8"):
        conditional_scale_entropy(np.ones((4, 8, 8)), axis="depth")
    with pytest.raises(CSEInputError, match="'level'.*allows levels 1..2, got 5"):
        conditional_scale_entropy(np.ones((4, 8, 32)), axis="hidden", level=5)


@pytest.mark.parametrize("shape", [(8, 16), (2, 8, 4, 16), (16,)])
def test_requires_three_dimensions(shape):
    with pytest.raises(CSEInputError, match=r"expected 3-D \(n_layers, n_tokens, d_model\), got shape"):
        conditional_scale_entropy(np.ones(shape))


def test_invalid_parameters_raise():
    u = np.ones((8, 8, 16))
    with pytest.raises(CSEInputError, match="'axis'.*got 'layers'"):
        conditional_scale_entropy(u, axis="layers")
    with pytest.raises(CSEInputError, match="'boundary'"):
        conditional_scale_entropy(u, boundary="zero")
    with pytest.raises(CSEInputError, match="'normalize'"):
        conditional_scale_entropy(u, normalize="l1")
    with pytest.raises(CSEInputError, match="not orthogonal"):
        conditional_scale_entropy(u, wavelet="bior2.2")
    with pytest.raises(CSEInputError, match="null.*hidden axis"):
        conditional_scale_entropy(u, axis="depth", null_permutations=10)
    with pytest.raises(CSEInputError, match="'null_permutations'.*>= 2, got 1"):
        conditional_scale_entropy(u, axis="hidden", null_permutations=1)
    with pytest.raises(TypeError, match="'null_permutations'"):
        conditional_scale_entropy(u, axis="hidden", null_permutations=2.5)
    with pytest.raises(TypeError, match="'updates'"):
        conditional_scale_entropy(u.astype(complex))


# --- dimension-permutation null -------------------------------------------------------


def test_null_z_is_centred_on_white_noise():
    u = _updates(np.random.default_rng(13), (2, 50, 64))
    ds = conditional_scale_entropy(u, axis="hidden", null_permutations=200, seed=1)
    z = ds.cse_z.values
    assert np.isfinite(z).all()
    assert abs(z.mean()) < 0.3
    assert 0.5 < z.std() < 1.5
    _assert_close(z, (ds.cse - ds.cse_null_mean).values / ds.cse_null_std.values, 1e-12)


def test_null_is_seeded_and_shared():
    u = _updates(np.random.default_rng(14), (2, 3, 32))
    a = conditional_scale_entropy(u, axis="hidden", null_permutations=20, seed=5)
    b = conditional_scale_entropy(u, axis="hidden", null_permutations=20, seed=5)
    c = conditional_scale_entropy(u, axis="hidden", null_permutations=20, seed=6)
    xr.testing.assert_identical(a, b)
    assert not np.allclose(a.cse_null_mean, c.cse_null_mean)
    # One set of permutations for every cell: two identical cells get identical nulls.
    u[1, 2] = u[0, 0]
    d = conditional_scale_entropy(u, axis="hidden", null_permutations=20, seed=5)
    assert d.cse_null_mean.values[1, 2] == d.cse_null_mean.values[0, 0]
    assert a.attrs["seed"] == 5 and a.attrs["null_permutations"] == 20


def test_null_z_is_nan_where_null_has_no_spread():
    u = np.zeros((1, 2, 16))
    u[0, 0] = 1.0  # a constant vector: every permutation gives the same CSE
    u[0, 1] = np.random.default_rng(15).standard_normal(16)
    ds = conditional_scale_entropy(u, axis="hidden", null_permutations=10)
    # Its detail energies are rounding noise (~1e-32), so the null's spread is ~0, not a scale.
    assert ds.cse_null_std.values[0, 0] < 1e-12 and np.isnan(ds.cse_z.values[0, 0])
    assert np.isfinite(ds.cse_z.values[0, 1])


# --- torch input ----------------------------------------------------------------------


@pytest.mark.parametrize("axis", AXES)
def test_torch_input_matches_numpy(axis):
    torch = pytest.importorskip("torch")
    u = _updates(np.random.default_rng(16), (8, 8, 16), np.float32)
    expected = conditional_scale_entropy(u, axis=axis)
    xr.testing.assert_identical(conditional_scale_entropy(torch.from_numpy(u), axis=axis), expected)
    bf16 = torch.from_numpy(u).to(torch.bfloat16)
    xr.testing.assert_identical(
        conditional_scale_entropy(bf16, axis=axis),
        conditional_scale_entropy(bf16.float().numpy(), axis=axis),
    )
    # bfloat16 keeps ~3 significant digits: the measure moves, but only a little.
    _assert_close(conditional_scale_entropy(bf16, axis=axis).cse.values, expected.cse.values, 5e-2)
    f64 = conditional_scale_entropy(torch.from_numpy(u.astype(np.float64)), axis=axis)
    _assert_close(f64.cse.values, expected.cse.values, TOL[np.float32])
