"""Re-measuring without the model (issue 19): `cse.remeasure` and `cse remeasure`.

A tiny random GPT-2 with 16 blocks (so 2**J fits for J = 4) runs a few sentences once;
the results carry each token's Gram matrix of layer updates (and, where a test needs
them, the updates). Re-measured results are compared with fresh `cse.compute` runs of
the same model and settings.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import xarray as xr

import cse
from cse.errors import CSEInputError
from cse.remeasuring import sequence_starts

WAVELETS = ["haar", "db2", "db4", "sym4"]
LEVELS = [2, 3, 4]
BOUNDARIES = ["reflect", "periodic"]
MEASURE = ("cse", "scale_fraction", "cse_null_mean", "cse_null_std", "cse_z")
N_LAYERS = 16


@functools.lru_cache(maxsize=None)
def deep_model():
    """A tiny random GPT-2 with 16 blocks (hidden size 32) and the offline test tokenizer."""
    import torch
    import transformers as tf

    from tiny_models import tiny_tokenizer

    config = tf.GPT2Config(n_layer=N_LAYERS, n_embd=32, n_head=4, n_positions=128, vocab_size=512, bos_token_id=0,
                           eos_token_id=1, pad_token_id=2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = tf.AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    return model, tiny_tokenizer()


def texts():
    from tiny_models import CORPUS

    return CORPUS.splitlines()[:5] + ["Time is a thief."]


def fresh(**settings) -> xr.Dataset:
    """`cse.compute` of the test texts with these settings.

    One text per batch, so that every run of these texts sees the same float32 updates
    (a padded batch can round a short text's updates differently, about 1e-7): the
    stored Gram matrices and updates (``save=...``) are those of the fresh runs they
    are compared with.
    """
    model, tokenizer = deep_model()
    return cse.compute(texts(), model, tokenizer, progress=False, batch_size=1, **settings)


@functools.lru_cache(maxsize=None)
def _stored() -> tuple:
    """The default result with the null, its Gram matrices and its updates, as `cse.compute` saves them."""
    full = fresh(null_permutations=5, seed=3, save=["gram", "updates"])
    ds = full.drop_vars(["gram", "updates", "layer2"])
    del ds.attrs["saved"]
    return ds, full["updates"].values, full


@functools.lru_cache(maxsize=None)
def _triangle() -> xr.Dataset:
    return fresh(null_permutations=5, seed=3, save=["gram_triangle"])


def with_gram(kind: str = "gram") -> xr.Dataset:
    """The default result with the Gram matrices stored by ``save=["gram"]`` (or ``["gram_triangle"]``)."""
    full = _stored()[2]
    if kind == "gram":
        return full.drop_vars("updates").assign_attrs(saved="gram")
    return _triangle().copy()


def with_updates(dtype=np.float32) -> xr.Dataset:
    ds, u, _ = _stored()
    return ds.assign(updates=(("token", "layer", "hidden"), u.astype(dtype)))


def assert_same_measure(got: xr.Dataset, expected: xr.Dataset, tol: float) -> float:
    """Every measure variable of `expected` in `got`, NaN masks equal, max |difference| <= tol; returns it."""
    worst = 0.0
    for name in MEASURE:
        assert (name in got) == (name in expected), name
        if name not in expected:
            continue
        a, b = got[name].values, expected[name].values
        assert a.shape == b.shape, name
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=name)
        diff = float(np.nanmax(np.abs(a - b), initial=0.0))
        assert diff <= tol, f"{name}: max |difference| {diff:.3g} > {tol:g}"
        worst = max(worst, diff)
    np.testing.assert_array_equal(got["scale"].values, expected["scale"].values)
    if "boundary_affected" in expected.coords:
        assert got["boundary_affected"].dims == expected["boundary_affected"].dims
        np.testing.assert_array_equal(got["boundary_affected"].values, expected["boundary_affected"].values)
    else:
        assert "boundary_affected" not in got.coords
    for key in ("axis", "wavelet", "level", "normalize", "null_permutations"):
        assert got.attrs[key] == expected.attrs[key], key
    if expected.attrs["axis"] != "hidden":  # (the hidden axis has no MODWT boundary; cse.measure says 'periodization')
        assert got.attrs["boundary"] == expected.attrs["boundary"]
    if expected.attrs["null_permutations"]:  # (without a null the seed is not used)
        assert got.attrs["seed"] == expected.attrs["seed"]
    return worst


# --- from the Gram matrices: equal to a fresh compute --------------------------------


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("wavelet", WAVELETS)
def test_from_gram_equals_a_fresh_compute(wavelet, level, boundary):
    """max |difference| <= 1e-9, NaN masks equal, for CSE, the fractions and the order null,
    boundary flags recomputed for the new filter width."""
    settings = {"wavelet": wavelet, "level": level, "boundary": boundary, "null_permutations": 4, "seed": 7}
    got = cse.remeasure(with_gram(), **settings)
    assert_same_measure(got, fresh(**settings), 1e-9)
    assert got.attrs["remeasured_with"] == "gram"


@pytest.mark.parametrize("normalize", ["unit", "none"])
def test_from_the_packed_triangle_equals_the_full_matrix(normalize):
    full = cse.remeasure(with_gram("gram"), wavelet="db2", level=2, normalize=normalize)
    packed = cse.remeasure(with_gram("gram_triangle"), wavelet="db2", level=2, normalize=normalize)
    for name in ("cse", "scale_fraction"):
        np.testing.assert_array_equal(packed[name].values, full[name].values)
    assert packed.attrs["remeasured_with"] == "gram_triangle"
    assert_same_measure(full, fresh(wavelet="db2", level=2, normalize=normalize, null_permutations=5, seed=3), 1e-9)


def test_settings_default_to_the_results():
    ds = with_gram()
    same = cse.remeasure(ds)
    assert_same_measure(same, ds, 1e-9)  # haar, J = 3, reflect, unit, the null of P = 5 with seed 3
    other = cse.remeasure(ds, wavelet="db2", null_permutations=0)
    assert (other.attrs["level"], other.attrs["boundary"], other.attrs["null_permutations"]) == (3, "reflect", 0)
    assert not any(name in other for name in ("cse_null_mean", "cse_null_std", "cse_z"))


def test_output_keeps_the_inputs_tokens_and_companions():
    ds = with_gram().assign_attrs(study_key="{}", command="cse compute x.txt -o x.nc")
    ds = ds.assign_coords(label=("token", np.arange(ds.sizes["token"]) % 2))
    out = cse.remeasure(ds, wavelet="sym4", level=2, boundary="periodic")
    for name in ("text", "position", "token_id", "token_str", "word", "is_word_start", "is_special", "label",
                 "depth", "layer2"):
        np.testing.assert_array_equal(out[name].values, ds[name].values)
    for name in ("surprisal", "update_norm", "gram"):
        xr.testing.assert_identical(out[name].variable, ds[name].variable)
    assert out.attrs["remeasured_from"] == "in-memory result"
    assert out.attrs["source_command"] == "cse compute x.txt -o x.nc"
    assert "wavelet=haar level=3" in out.attrs["source_settings"]
    assert out.attrs["command"].startswith("cse.remeasure(axis='depth', wavelet='sym4', level=2")
    assert out.attrs["boundary_width"] == 22 and "study_key" not in out.attrs and "null" in out.attrs
    assert out["cse"].attrs["units"] == "1" and out.sizes["scale"] == 3


def test_chunks_change_nothing(monkeypatch):
    from cse.remeasuring import sources

    whole = cse.remeasure(with_gram(), level=2, null_permutations=3)
    monkeypatch.setattr(sources, "CHUNK_BYTES", 8 * N_LAYERS**2 * 7)  # 7 tokens per chunk, a remainder too
    for name in MEASURE:
        np.testing.assert_array_equal(cse.remeasure(with_gram(), level=2, null_permutations=3)[name].values,
                                      whole[name].values)


# --- from the updates ------------------------------------------------------------------


@pytest.mark.parametrize("axis,settings", [
    ("depth", {"wavelet": "db4", "level": 2, "null_permutations": 0}),
    ("token", {"level": 2, "null_permutations": 3, "seed": 7}),
    ("hidden", {"null_permutations": 3, "seed": 7}),
])
def test_from_float32_updates_equals_a_fresh_compute(monkeypatch, axis, settings):
    from cse.remeasuring import sources

    expected = fresh(axis=axis, **settings)
    monkeypatch.setattr(sources, "CHUNK_BYTES", 8 * N_LAYERS * 32 * 9)  # 9 tokens a chunk; whole texts on 'token'
    got = cse.remeasure(with_updates(), axis=axis, **settings)
    assert_same_measure(got, expected, 1e-9)
    assert got.attrs["remeasured_with"] == "updates (float32)"


#: The largest |difference| of CSE from float16 updates, measured on this model (README).
FLOAT16_CSE_ERROR = 5e-4


@pytest.mark.parametrize("axis", ["depth", "token", "hidden"])
def test_from_float16_updates_within_the_stated_error(axis):
    settings = {"level": 2, "null_permutations": 0} if axis != "hidden" else {"null_permutations": 0}
    got = cse.remeasure(with_updates(np.float16), axis=axis, **settings)
    expected = fresh(axis=axis, **settings)
    np.testing.assert_array_equal(np.isnan(got["cse"].values), np.isnan(expected["cse"].values))
    error = float(np.nanmax(np.abs(got["cse"].values - expected["cse"].values)))
    assert 0 < error <= FLOAT16_CSE_ERROR
    assert got.attrs["remeasured_with"] == "updates (float16)"


def test_sequence_starts():
    np.testing.assert_array_equal(sequence_starts([0, 0, 0, 1, 1, 2, 2, 2], [0, 1, 2, 0, 1, 0, 1, 2]), [0, 3, 5, 8])
    # windows of one text restart their positions; a gap in positions also starts a sequence
    np.testing.assert_array_equal(sequence_starts([4, 4, 4, 4, 4], [0, 1, 0, 1, 3]), [0, 2, 4, 5])
    np.testing.assert_array_equal(sequence_starts([], []), [0])


# --- files, the updates store and the command line ------------------------------------


def _write_with_store(tmp_path, dtype="float32"):
    """A result file with its Gram matrices and, beside it, its updates store (the layout of --save updates)."""
    from cse.io import write_result

    ds = with_gram()
    store = ds[["surprisal"]].drop_vars("surprisal").assign(
        updates=(("token", "layer", "hidden"), _stored()[1].astype(dtype)))
    store = store.drop_vars([c for c in store.coords if c not in ("text", "position", "token_id", "is_special", "layer")])
    write_result(store, tmp_path / "r.nc.updates.zarr")
    write_result(ds.assign_attrs(updates_store="r.nc.updates.zarr", saved="gram,updates"), tmp_path / "r.nc")
    return tmp_path / "r.nc"


def test_from_files_reads_lazily_and_finds_the_store(tmp_path):
    path = _write_with_store(tmp_path)
    with cse.remeasure(path, wavelet="db2", level=2, null_permutations=0) as out:
        assert out["gram"].chunks is not None  # still lazy
        assert_same_measure(out, fresh(wavelet="db2", level=2), 1e-9)
        assert out.attrs["remeasured_from"] == str(path) and out.attrs["source_updates_store"] == "r.nc.updates.zarr"
    with cse.remeasure(path, axis="token", level=2, null_permutations=3) as out:
        assert_same_measure(out, fresh(axis="token", level=2, null_permutations=3, seed=3), 1e-9)


def test_a_float16_updates_store_is_read(tmp_path):
    """``--save-dtype float16`` stores: the result allow-list accepts float16 arrays."""
    path = _write_with_store(tmp_path, "float16")
    with cse.remeasure(path, axis="hidden", null_permutations=0) as out:
        assert out.attrs["remeasured_with"] == "updates (float16)"
        error = np.nanmax(np.abs(out["cse"].values - fresh(axis="hidden")["cse"].values))
        assert 0 < error <= FLOAT16_CSE_ERROR


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_command_line(tmp_path, capsys, suffix):
    from cse.cli import run
    from cse.io import is_package_result

    path = _write_with_store(tmp_path)
    out = tmp_path / f"db4{suffix}"
    assert run(["remeasure", str(path), "-o", str(out), "--wavelet", "db4", "--level", "2", "--null-permutations",
                "0"]) == 0
    assert f"wrote {out}" in capsys.readouterr().err
    assert is_package_result(out)
    with cse.open_result(out) as ds:
        assert_same_measure(ds, fresh(wavelet="db4", level=2), 1e-9)
        assert ds.attrs["command"].startswith(f"cse remeasure {path} -o {out} --wavelet db4 --level 2")
        assert ds.attrs["updates_store"] == "r.nc.updates.zarr"  # the same folder: the store is still beside it
    # refused without --overwrite, and over the input itself even with it
    assert run(["remeasure", str(path), "-o", str(out)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert run(["remeasure", str(path), "-o", str(path), "--overwrite"]) == 2
    assert "is an input of this command" in capsys.readouterr().err
    assert run(["remeasure", str(path), "-o", str(out), "--overwrite", "--level", "2"]) == 0


def test_command_line_refuses_in_one_line(tmp_path, capsys):
    from cse.cli import run
    from cse.io import write_result

    plain = write_result(fresh(), tmp_path / "plain.nc")
    assert run(["remeasure", str(plain), "-o", str(tmp_path / "o.nc"), "--wavelet", "db2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--save gram" in err and "--save updates" in err
    assert not (tmp_path / "o.nc").exists()


# --- refusals ----------------------------------------------------------------------------


def test_refuses_what_the_axis_cannot_be_measured_from():
    with pytest.raises(CSEInputError, match=r"cannot re-measure the depth axis: it holds neither Gram matrices nor "
                                            r"layer updates; compute it with save='gram'"):
        cse.remeasure(fresh())
    with pytest.raises(CSEInputError, match=r"cannot re-measure the token axis: it holds Gram matrices only, which "
                                            r"give the depth axis only; compute it with save='updates'"):
        cse.remeasure(with_gram(), axis="token")


def test_refuses_stored_arrays_that_are_not_what_compute_writes():
    ds = with_gram()
    bad = ds.assign(gram=ds["gram"] + np.triu(np.ones((N_LAYERS, N_LAYERS)), 1)[None])
    with pytest.raises(CSEInputError, match=r"'gram' is not symmetric at token 0"):
        cse.remeasure(bad)
    with pytest.raises(CSEInputError, match=r"variable 'gram' has dims \('token', 'layer2', 'layer'\)"):
        cse.remeasure(ds.assign(gram=ds["gram"].transpose("token", "layer2", "layer")))
    with pytest.raises(CSEInputError, match=r"variable 'gram' has .* dtype int64"):
        cse.remeasure(ds.assign(gram=ds["gram"].astype(np.int64)))
    packed = with_gram("gram_triangle")
    with pytest.raises(CSEInputError, match=r"'layer_row' is not in numpy.triu_indices order"):
        cse.remeasure(packed.assign_coords(layer_row=packed["layer_row"][::-1]))
    with pytest.raises(CSEInputError, match=r"layer updates have dims .* expected \('token', 'layer', 'hidden'\)"):
        cse.remeasure(ds.assign(updates=(("token", "layer", "d"), np.zeros(ds["gram"].shape))), axis="hidden")


def test_refuses_a_store_that_is_not_beside_the_result_or_not_its_own(tmp_path):
    from cse.io import write_result

    path = _write_with_store(tmp_path)
    with cse.open_result(path) as ds:
        ds = ds.load()
    for name in ("../r.nc.updates.zarr", "/tmp/x.zarr", "x.nc"):
        with pytest.raises(CSEInputError, match=r"updates_store=.* is not a plain file name ending in .zarr"):
            cse.remeasure(ds.assign_attrs(updates_store=name), axis="hidden")
    bare = ds.drop_vars("gram")
    bare.encoding = {}  # not opened from a file
    with pytest.raises(CSEInputError, match=r"beside the result file, which an in-memory result does not know"):
        cse.remeasure(bare, axis="hidden")
    other = ds.isel(token=slice(0, 10))
    write_result(other.assign_attrs(updates_store="r.nc.updates.zarr"), tmp_path / "other.nc")
    with pytest.raises(CSEInputError, match=r"its tokens are not those of .*other.nc.*updates store of another"):
        cse.remeasure(tmp_path / "other.nc", axis="hidden")


def test_refuses_invalid_settings_asked_or_read():
    ds = with_gram()
    with pytest.raises(CSEInputError, match=r"'level': level 5 needs 2\*\*5 = 32 steps along the 'depth' axis.*or "
                                            r"lower$"):
        cse.remeasure(ds, level=5)  # (asked, not taken from the result: no note)
    with pytest.raises(CSEInputError, match=r"'axis': expected one of"):
        cse.remeasure(ds, axis="layers")
    with pytest.raises(CSEInputError, match=r"'wavelet'.*taken from in-memory result: wavelet='bior2.2'; pass it"):
        cse.remeasure(ds.assign_attrs(wavelet="bior2.2"))
    with pytest.raises(CSEInputError, match=r"'boundary'.*taken from in-memory result: boundary='mirror'"):
        cse.remeasure(ds.assign_attrs(boundary="mirror"))
    with pytest.raises(CSEInputError, match=r"its attribute axis='layers' is not an axis; pass axis explicitly"):
        cse.remeasure(ds.assign_attrs(axis="layers"))
    with pytest.raises(TypeError, match=r"'ds': expected an xarray.Dataset or a result path"):
        cse.remeasure(np.zeros(3))


# --- documentation ---------------------------------------------------------------------


@pytest.mark.parametrize("module", ["cse.remeasuring", "cse.remeasuring.api", "cse.remeasuring.sources", "cse.reduce",
                                    "cse.schema", "cse_kernels", "cse_kernels.reference", "cse_kernels.torch_twin",
                                    "cse_kernels._docs", "cse_studies.metaphor.sensitivity"])
def test_exported_functions_document_every_parameter(module):
    """numpydoc: every parameter of every function (and class) in ``__all__`` is in its
    Parameters section (a dataclass's fields in Attributes), and every function has a
    Returns section."""
    import importlib
    import inspect

    from numpydoc.docscrape import ClassDoc, FunctionDoc

    if module == "cse_kernels.torch_twin":
        pytest.importorskip("torch")
    mod = importlib.import_module(module)
    names = getattr(mod, "__all__", None) or [n for n, o in vars(mod).items() if not n.startswith("_")
                                              and getattr(o, "__module__", None) == mod.__name__]
    for name in names:
        obj = getattr(mod, name)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        doc = (FunctionDoc if inspect.isfunction(obj) else ClassDoc)(obj)
        sections = doc["Parameters"] + (doc["Attributes"] if inspect.isclass(obj) else [])  # dataclasses: Attributes
        documented = {part.strip() for p in sections for part in p.name.split(",")}
        params = set(inspect.signature(obj).parameters) - {"self"}
        assert params <= documented, (module, name, params - documented)
        assert not inspect.isfunction(obj) or doc["Returns"], (module, name)
