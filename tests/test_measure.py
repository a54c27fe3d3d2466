"""Tests of the NumPy reference (`cse_kernels.reference`), `conditional_scale_entropy` and
`reduce_updates`, the boundary coefficients (`cse.boundary`) and the permutation nulls.

References used: PyWavelets (`swt`, `wavedec`) and the independent, naive
implementation in tests/independent.py. Fast: small arrays only (the white-noise
acceptance checks of issue 8 take a second or two each).
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
from cse.measure import conditional_scale_entropy, reduce_gram, reduce_updates
from cse.settings import MeasureSettings
from independent import (
    naive_conditional_scale_entropy,
    naive_cse,
    naive_dwt_energies,
    naive_modwt_energies,
    naive_order_null,
)

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
    # The naive implementation is layer-major; results are token-major.
    _assert_close(ds.cse.values, cse.T, TOL[dtype])
    _assert_close(ds.scale_fraction.values, fractions.transpose(1, 0, 2), TOL[dtype])
    _assert_close(ds.update_norm.values, np.linalg.norm(u.astype(np.float64), axis=-1).T, TOL[dtype])
    assert np.isfinite(ds.cse.values).all()


def test_dataset_layout_and_attributes():
    u = _updates(np.random.default_rng(8), (8, 5, 16))
    ds = conditional_scale_entropy(u)
    assert ds.cse.dims == ("token", "layer")
    assert ds.scale_fraction.dims == ("token", "layer", "scale")
    assert ds.update_norm.dims == ("token", "layer")
    assert ds.scale.values.tolist() == ["d1", "d2", "d3", "a3"]
    assert ds.layer.values.tolist() == list(range(8)) and ds.token.values.tolist() == list(range(5))
    np.testing.assert_allclose(ds.depth.values, (np.arange(8) + 1) / 8)
    assert ds.depth.dims == ("layer",) and ds.boundary_affected.dims == ("layer",)
    assert ds.boundary_affected.values.tolist() == [True] * 7 + [False]
    assert ds.attrs == {"axis": "depth", "wavelet": "haar", "level": 3, "boundary": "reflect",
                        "normalize": "unit", "null_permutations": 0, "seed": 0, "boundary_width": 8}
    from cse.schema import variable_attrs

    for name, var in ds.data_vars.items():
        assert var.attrs == variable_attrs(name), name
        assert var.dtype == np.float64
    np.testing.assert_allclose(ds.scale_fraction.sum("scale"), 1.0, rtol=1e-12)
    hidden = conditional_scale_entropy(u, axis="hidden")
    assert hidden.attrs["wavelet"] == "db4" and hidden.attrs["normalize"] == "none"
    assert hidden.attrs["level"] == pywt.dwt_max_level(16, 8) and hidden.attrs["boundary"] == "periodization"
    assert "boundary_affected" not in hidden.coords and "boundary_width" not in hidden.attrs
    token = conditional_scale_entropy(u, axis="token", level=2)
    assert token.boundary_affected.dims == ("token",)
    assert token.boundary_affected.values.tolist() == [True, True, True, False, False]  # L_2 = 4 for haar


def test_null_kind_is_recorded():
    u = _updates(np.random.default_rng(8), (8, 8, 16))
    for axis, kind in [("depth", "layer order"), ("token", "token order"), ("hidden", "hidden dimension")]:
        ds = conditional_scale_entropy(u, axis=axis, null_permutations=5, seed=3)
        assert ds.attrs["null"] == kind and ds.attrs["null_permutations"] == 5 and ds.attrs["seed"] == 3
        assert ds.cse_z.dims == ("token", "layer")


@pytest.mark.parametrize("backend", ["reference", ref])
def test_backend_is_switchable(backend):
    u = _updates(np.random.default_rng(9), (8, 3, 6))
    by_numba = conditional_scale_entropy(u, null_permutations=4)
    other = conditional_scale_entropy(u, null_permutations=4, backend=backend)
    for name in by_numba.data_vars:
        _assert_close(other[name].values, by_numba[name].values, 1e-10)
    with pytest.raises(CSEInputError, match="'backend'.*got 'cuda'"):
        conditional_scale_entropy(u, backend="cuda")


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
    cse = ds.cse.values.T  # (layer, token)
    assert np.isnan(cse[2, 5]) and np.isnan(ds.scale_fraction.values[5, 2]).all()
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
    assert ds.update_norm.values[1, 3] == 0.0


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
    assert d.cse_null_mean.values[2, 1] == d.cse_null_mean.values[0, 0]
    assert a.attrs["seed"] == 5 and a.attrs["null_permutations"] == 20


def test_null_z_is_nan_where_null_has_no_spread():
    u = np.zeros((1, 2, 16))
    u[0, 0] = 1.0  # a constant vector: every permutation gives the same CSE
    u[0, 1] = np.random.default_rng(15).standard_normal(16)
    ds = conditional_scale_entropy(u, axis="hidden", null_permutations=10)
    # Its detail energies are rounding noise (~1e-32), so the null's spread is ~0, not a scale.
    assert ds.cse_null_std.values[0, 0] < 1e-12 and np.isnan(ds.cse_z.values[0, 0])
    assert np.isfinite(ds.cse_z.values[1, 0])


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


# --- boundary coefficients (issue 8) ----------------------------------------------------

from cse.boundary import boundary_affected, boundary_width, dependence  # noqa: E402
from cse_kernels.filters import equivalent_filters, modwt_operator  # noqa: E402


@pytest.mark.parametrize("wavelet", ["haar", "db2", "db4", "sym5", "coif2"])
@pytest.mark.parametrize("level", [1, 2, 3, 4])
def test_boundary_width_is_the_equivalent_filter_length(wavelet, level):
    w = pywt.Wavelet(wavelet)
    expected = (2**level - 1) * (w.dec_len - 1) + 1
    assert boundary_width(wavelet, level) == expected
    filters = equivalent_filters(w.dec_lo, w.dec_hi, level)
    assert len(filters[-1]) == len(filters[-2]) == expected  # aJ and dJ are the widest


@pytest.mark.parametrize("wavelet,level,n_steps", [("haar", 3, 30), ("db2", 3, 30), ("db4", 2, 40), ("haar", 2, 5),
                                                   ("db2", 3, 12), ("sym4", 1, 9)])
@pytest.mark.parametrize("boundary", ["reflect", "periodic"])
def test_boundary_affected_is_where_the_boundary_rule_matters(wavelet, level, n_steps, boundary):
    # Give the series a past: the band energies of positions t >= L_J - 1 are those of the
    # longer series (they never read the boundary rule); every earlier position differs.
    w = pywt.Wavelet(wavelet)
    past = 64
    full = np.random.default_rng(26).standard_normal((1, past + n_steps, 3))
    alone = ref.modwt_energies(full[:, past:], w.dec_lo, w.dec_hi, level, boundary, unit=False)[0]
    within = ref.modwt_energies(full, w.dec_lo, w.dec_hi, level, boundary, unit=False)[0, past:]
    same = np.isclose(alone, within, rtol=1e-12, atol=1e-12).all(axis=-1)
    np.testing.assert_array_equal(boundary_affected(n_steps, wavelet, level), ~same)
    assert boundary_affected(n_steps, wavelet, level).sum() == min(n_steps, boundary_width(wavelet, level) - 1)


def test_boundary_dependence_formulas():
    # Haar, J = 3, 30 layers (L_J = 8): reflect reads layers 0..max(t, 6 - t); periodic reads
    # 0..t and the last 7 - t layers; outside the boundary t - 7 .. t.
    n = 30
    reflect = dependence(n, "haar", 3, "reflect")
    periodic = dependence(n, "haar", 3, "periodic")
    for t in range(n):
        if t <= 6:
            assert np.flatnonzero(reflect[t]).tolist() == list(range(max(t, 6 - t) + 1))
            assert np.flatnonzero(periodic[t]).tolist() == list(range(t + 1)) + list(range(n - (7 - t), n))
        else:
            assert np.flatnonzero(reflect[t]).tolist() == list(range(t - 7, t + 1))
            assert np.flatnonzero(periodic[t]).tolist() == list(range(t - 7, t + 1))
    assert np.flatnonzero(boundary_affected(30, "db2", 3)).tolist() == list(range(21))


def test_boundary_validation():
    with pytest.raises(CSEInputError, match="'level'"):
        boundary_width("haar", 0)
    with pytest.raises(CSEInputError, match="not orthogonal"):
        boundary_affected(10, "bior2.2", 2)
    with pytest.raises(CSEInputError, match="'n_steps'"):
        boundary_affected(0, "haar", 2)
    with pytest.raises(CSEInputError, match="'boundary'"):
        dependence(10, "haar", 2, "zero")


def test_reflect_boundary_zeros_are_in_the_operator():
    # The artifact of issue 8: under reflect, Haar d1 at layer 0, d2 at layer 1 and d3 at layer 3
    # are identically zero (their taps cancel on the mirrored series).
    w = pywt.Wavelet("haar")
    weights, reads = modwt_operator(w.dec_lo, w.dec_hi, 3, 30, "reflect")
    for band, layer in [(0, 0), (1, 1), (2, 3)]:
        assert reads[band, layer].any() and np.abs(weights[band, layer]).max() < 1e-15


# --- order nulls on white noise: the acceptance check of issue 8 --------------------------


@pytest.fixture(scope="module")
def white_noise():
    return np.random.default_rng(0).standard_normal((30, 400, 64))


@pytest.mark.parametrize("wavelet,boundary,last_boundary_layer", [
    ("haar", "reflect", 6), ("db2", "reflect", 20), ("haar", "periodic", 6), ("db2", "periodic", 20),
])
def test_white_noise_z_is_standard_at_every_layer(white_noise, wavelet, boundary, last_boundary_layer):
    ds = conditional_scale_entropy(white_noise, wavelet=wavelet, boundary=boundary, null_permutations=200, seed=0)
    assert np.flatnonzero(ds.boundary_affected.values).tolist() == list(range(last_boundary_layer + 1))
    z = ds.cse_z
    assert np.isfinite(z.values).all()
    mean, sd = z.mean("token").values, z.std("token").values
    assert np.abs(mean).max() <= 0.15, mean.round(3)
    assert ((sd >= 0.7) & (sd <= 1.3)).all(), sd.round(3)
    raw = ds.cse.mean("token").values
    interior = raw[last_boundary_layer + 1:].mean()
    if boundary == "reflect":
        # The null, not a changed definition, removes the boundary's mark on raw CSE.
        assert np.abs(raw[:last_boundary_layer + 1] - interior).max() > 0.05
        if wavelet == "haar":
            assert raw[1] < raw[0] < interior and raw[1] < raw[2]  # the dip at layer 1
    else:
        assert np.abs(raw - interior).max() < 0.02  # periodic: flat


def test_null_matches_the_independent_implementation():
    rng = np.random.default_rng(17)
    u = rng.standard_normal((8, 6, 5))
    for axis, n in [("depth", 8), ("token", 6), ("hidden", 5)]:
        level = 1 if axis == "hidden" else 2
        ds = conditional_scale_entropy(u, axis=axis, wavelet="db2" if axis != "hidden" else "haar", level=level,
                                       null_permutations=7, seed=11)
        from cse.nulls import permutation_set

        mean, std = naive_order_null(u, axis, permutation_set(11, 7, n), "db2" if axis != "hidden" else "haar", level)
        _assert_close(ds.cse_null_mean.values, mean.T, 1e-10)
        _assert_close(ds.cse_null_std.values, std.T, 1e-10)
        _assert_close(ds.cse_z.values, ((ds.cse - ds.cse_null_mean) / ds.cse_null_std).values, 1e-12)


def test_depth_null_permutes_layers_with_one_set_for_every_token():
    u = _updates(np.random.default_rng(18), (8, 6, 4))
    u[:, 4] = u[:, 1]  # two tokens with the same stream get the same null
    ds = conditional_scale_entropy(u, null_permutations=9, seed=2)
    np.testing.assert_array_equal(ds.cse_null_mean.values[4], ds.cse_null_mean.values[1])
    # A stream whose layers are all alike has a degenerate null: z is NaN, not huge.
    u[:, 2] = u[0, 2]
    ds = conditional_scale_entropy(u, null_permutations=9, seed=2)
    assert (ds.cse_null_std.values[2] < 1e-12).all() and np.isnan(ds.cse_z.values[2]).all()


def test_null_seed_and_generators():
    u = _updates(np.random.default_rng(19), (8, 5, 6))
    a = conditional_scale_entropy(u, null_permutations=6, seed=4)
    xr.testing.assert_identical(a, conditional_scale_entropy(u, null_permutations=6, seed=4))
    assert not np.allclose(a.cse_null_mean, conditional_scale_entropy(u, null_permutations=6, seed=5).cse_null_mean)
    # A Generator (or None) seeds an int that the result records, so it can be reproduced.
    g = conditional_scale_entropy(u, null_permutations=6, seed=np.random.default_rng(1))
    assert isinstance(g.attrs["seed"], int)
    xr.testing.assert_identical(g, conditional_scale_entropy(u, null_permutations=6, seed=g.attrs["seed"]))
    with pytest.raises(CSEInputError, match="'seed'"):
        conditional_scale_entropy(u, null_permutations=6, seed=-1)


def test_null_memory_is_checked_before_work(monkeypatch):
    from cse import params

    settings = MeasureSettings.resolve("depth", null_permutations=1000, n_steps=30)
    assert settings.null_memory_bytes(30) == 8 * 1000 * 30 * 3  # the int64 set, the keys and their argsort
    monkeypatch.setattr(params, "MEMORY_LIMIT_BYTES", 3 * 8 * 100 * 8)
    with pytest.raises(CSEInputError, match="'null_permutations': 101 would need.*permutation set"):
        conditional_scale_entropy(np.ones((8, 4, 4)), null_permutations=101)
    conditional_scale_entropy(np.ones((8, 4, 4)), null_permutations=100)


@pytest.mark.parametrize("n_permutations", [100, 9000])
def test_null_memory_estimate_covers_the_traced_peak(n_permutations):
    import tracemalloc

    from cse.settings import null_permutations

    n_steps = 30
    estimate = MeasureSettings.resolve("depth", null_permutations=n_permutations,
                                       n_steps=n_steps).null_memory_bytes(n_steps)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        perms = null_permutations(1, n_permutations, n_steps)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert perms.shape == (n_permutations, n_steps)
    assert 0.9 * estimate <= peak <= estimate + 2**16  # counts every array the draw allocates, not far above


# --- reduce_updates: the one reduction path ----------------------------------------------


def _settings(axis, null=0, **kw):
    defaults = {"depth": ("haar", 3), "token": ("haar", 2), "hidden": ("db2", 2)}[axis]
    return MeasureSettings.resolve(axis, kw.get("wavelet", defaults[0]), kw.get("level", defaults[1]),
                                   kw.get("boundary", "reflect"), kw.get("normalize"), null, kw.get("seed", 0))


@pytest.mark.parametrize("axis", AXES)
def test_reduce_updates_is_token_major_and_matches_the_dataset(axis):
    u = _updates(np.random.default_rng(20), (8, 7, 16), np.float32)
    settings = _settings(axis, null=5)
    out = reduce_updates(u, settings)
    assert set(out) == {"cse", "scale_fraction", "update_norm", "cse_null_mean", "cse_null_std", "cse_z"}
    for name, value in out.items():
        assert value.dtype == np.float64 and value.flags.c_contiguous
        assert value.shape == ((7, 8, settings.level + 1) if name == "scale_fraction" else (7, 8))
    ds = conditional_scale_entropy(u, axis=axis, wavelet=settings.wavelet, level=settings.level,
                                   normalize=settings.normalize, null_permutations=5, seed=0)
    for name, value in out.items():
        np.testing.assert_array_equal(ds[name].values, value)
    assert settings.attrs() == ds.attrs


@pytest.mark.parametrize("axis", ["depth", "hidden"])
def test_batching_does_not_change_the_null(axis):
    # depth and hidden treat tokens independently: any split of the tokens gives the same rows.
    u = _updates(np.random.default_rng(21), (8, 10, 16), np.float32)
    settings = _settings(axis, null=6, seed=9)
    whole = reduce_updates(u, settings)
    parts = [reduce_updates(u[:, idx], settings) for idx in (slice(0, 3), slice(3, 4), slice(4, 10))]
    for name in whole:
        np.testing.assert_allclose(np.concatenate([p[name] for p in parts]), whole[name], rtol=0, atol=1e-13)


@pytest.mark.parametrize("backend", ["numba", "reference", "torch"])
@pytest.mark.parametrize("normalize", ["unit", "none"])
@pytest.mark.parametrize("wavelet,level,boundary", [("haar", 3, "reflect"), ("db2", 2, "periodic"),
                                                    ("db4", 3, "reflect")])
def test_reduce_updates_with_gram_returns_it_and_shares_it(backend, normalize, wavelet, level, boundary):
    """``gram=True``: the raw Gram matrices summed in float64, and every array computed from
    them equal to the arrays computed from the updates (to rounding), NaN cells included."""
    if backend == "torch":
        pytest.importorskip("torch")
    rng = np.random.default_rng(24)
    u = _updates(rng, (12, 9, 16), np.float32)
    u[4, 2] = 0  # a zero update
    u[:, 5] = 0  # a token whose updates are all zero: undefined everywhere
    settings = _settings("depth", null=6, wavelet=wavelet, level=level, boundary=boundary, normalize=normalize)
    array = __import__("torch").from_numpy(u) if backend == "torch" else u
    out = reduce_updates(array, settings, backend=backend, gram=True)
    expected = reduce_updates(u, settings)
    u64 = u.astype(np.float64)
    np.testing.assert_allclose(out["gram"], np.einsum("mtd,ntd->tmn", u64, u64), rtol=1e-13, atol=0)
    assert out["gram"].dtype == np.float64 and out["gram"].shape == (9, 12, 12)
    assert set(out) == set(expected) | {"gram"}
    for name in expected:
        np.testing.assert_array_equal(np.isnan(out[name]), np.isnan(expected[name]))
        _assert_close(out[name], expected[name], 1e-11)
    assert np.isnan(out["cse"][5]).all()


@pytest.mark.parametrize("null", [0, 7])
def test_reduce_gram_equals_reduce_updates(null):
    rng = np.random.default_rng(25)
    u = _updates(rng, (16, 11, 8), np.float32)
    gram = reduce_updates(u, _settings("depth"), gram=True)["gram"]
    for wavelet, level, boundary in [("haar", 4, "reflect"), ("sym4", 2, "periodic"), ("db4", 3, "reflect")]:
        for normalize in ("unit", "none"):
            settings = _settings("depth", null=null, wavelet=wavelet, level=level, boundary=boundary,
                                 normalize=normalize, seed=4)
            expected = reduce_updates(u, settings)
            got = reduce_gram(gram, settings)
            assert set(got) == set(expected)
            for name in expected:
                _assert_close(got[name], expected[name], 1e-11)


def test_gram_on_cuda_matches_numba():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    u = _updates(np.random.default_rng(27), (12, 9, 16), np.float32)
    settings = _settings("depth", null=5, wavelet="db2", level=2)
    expected = reduce_updates(u, settings, gram=True)
    got = reduce_updates(torch.from_numpy(u).cuda(), settings, backend="torch", gram=True)
    for name in expected:
        _assert_close(got[name], expected[name], 1e-10)
    again = reduce_gram(torch.from_numpy(expected["gram"]).cuda(), settings, backend="torch")
    for name in again:
        _assert_close(again[name], expected[name], 1e-10)


def test_gram_serves_the_depth_axis_only():
    u = _updates(np.random.default_rng(26), (8, 9, 16))
    with pytest.raises(CSEInputError, match=r"'gram'.*depth axis, got axis 'token'.*save the updates"):
        reduce_updates(u, _settings("token"), gram=True)
    with pytest.raises(CSEInputError, match=r"depth axis only, got axis 'hidden'.*save='updates'"):
        reduce_gram(np.zeros((3, 8, 8)), _settings("hidden"))
    with pytest.raises(CSEInputError, match=r"'gram': expected \(n_tokens, n_layers, n_layers\), got \(3, 8, 7\)"):
        reduce_gram(np.zeros((3, 8, 7)), _settings("depth"))


def test_token_null_depends_only_on_the_text_length():
    # Two texts of the same length get the same permutation set, whichever batch they are in.
    rng = np.random.default_rng(22)
    u = _updates(rng, (6, 9, 8))
    settings = _settings("token", null=8, seed=3)
    a = reduce_updates(u, settings)
    b = reduce_updates(u.copy(), settings)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    with np.errstate(all="ignore"):
        from cse.nulls import permutation_set

        perms = permutation_set(3, 8, 9)
        mean, std = ref.modwt_null_moments(u, *_filters("haar"), 2, perms)
    _assert_close(a["cse_null_mean"], mean.T, 1e-10)


def _filters(name):
    w = pywt.Wavelet(name)
    return w.dec_lo, w.dec_hi


@pytest.mark.parametrize("axis", AXES)
def test_torch_backend_matches_numba_on_cpu(axis):
    torch = pytest.importorskip("torch")
    u = _updates(np.random.default_rng(23), (8, 9, 16), np.float32)
    settings = _settings(axis, null=6)
    expected = reduce_updates(u, settings)
    got = reduce_updates(torch.from_numpy(u), settings, backend="torch")
    for name in expected:
        _assert_close(got[name], expected[name], 1e-10)


@pytest.mark.skipif(not __import__("importlib").util.find_spec("torch"), reason="needs torch")
@pytest.mark.parametrize("axis", AXES)
def test_torch_backend_on_cuda_matches_numba(axis):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    u = _updates(np.random.default_rng(24), (12, 40, 64), np.float32)
    settings = _settings(axis, null=20)
    expected = reduce_updates(u, settings)
    on_gpu = torch.from_numpy(u).cuda()
    got = reduce_updates(on_gpu, settings, backend="torch")
    # float32 updates, float64 energies on the device: agreement to float64 rounding.
    for name in expected:
        _assert_close(got[name], expected[name], 1e-9)


# --- invariance 3: orthogonal change of the hidden basis ---------------------------------


def _orthogonal(rng, d):
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


@pytest.mark.parametrize("normalize", ["unit", "none"])
@given(seed=st.integers(0, 2**32 - 1), per_token=st.booleans())
@HYP
def test_depth_axis_is_invariant_to_orthogonal_hidden_basis(normalize, seed, per_token):
    rng = np.random.default_rng(seed)
    u = _updates(rng, (8, 4, 6))
    if per_token:  # a different rotation for every token's stream
        rotated = np.stack([u[:, t] @ _orthogonal(rng, 6).T for t in range(4)], axis=1)
    else:
        rotated = u @ _orthogonal(rng, 6).T
    a = conditional_scale_entropy(u, normalize=normalize, null_permutations=4, seed=1)
    b = conditional_scale_entropy(rotated, normalize=normalize, null_permutations=4, seed=1)
    for name in ("cse", "scale_fraction", "update_norm", "cse_null_mean", "cse_null_std"):
        _assert_close(b[name].values, a[name].values, 1e-9)


@given(seed=st.integers(0, 2**32 - 1))
@HYP
def test_token_axis_is_invariant_to_a_per_layer_orthogonal_basis(seed):
    rng = np.random.default_rng(seed)
    u = _updates(rng, (3, 8, 6))
    rotated = np.stack([u[l] @ _orthogonal(rng, 6).T for l in range(3)])
    a = conditional_scale_entropy(u, axis="token")
    b = conditional_scale_entropy(rotated, axis="token")
    _assert_close(b.cse.values, a.cse.values, 1e-9)


def test_hidden_axis_is_not_invariant_to_the_hidden_basis():
    rng = np.random.default_rng(25)
    u = _updates(rng, (2, 3, 32))
    rotated = u @ _orthogonal(rng, 32).T
    a = conditional_scale_entropy(u, axis="hidden")
    b = conditional_scale_entropy(rotated, axis="hidden")
    assert np.abs(a.cse.values - b.cse.values).max() > 1e-3


def test_boundary_figure_script(tmp_path):
    # The README's figure: small white noise, both rules, one PNG.
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "boundary_figure.py"
    spec = importlib.util.spec_from_file_location("boundary_figure", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    results = module.white_noise_profiles(n_layers=12, n_tokens=20, d_model=8, null_permutations=10)
    assert set(results) == {"reflect", "periodic"}
    out = module.main(["--out", str(tmp_path / "fig.png"), "--tokens", "20", "--d-model", "8", "--permutations", "5"])
    assert out.stat().st_size > 10_000 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
