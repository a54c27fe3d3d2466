"""The compute path's own rules: one seed policy, what a run saves, torch threads, long texts bounded before work."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import cse
from cse import CSEInputError
from cse.settings import MeasureSettings
from cse.pipeline import plan_tokens, token_lengths
from cse.pipeline import tokenize as tokenize_module
from saved_models import TEXTS, save_tiny_model
from tiny_models import tiny_tokenizer


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return str(save_tiny_model(tmp_path_factory.mktemp("model") / "tiny"))


@pytest.fixture(scope="module")
def loaded(model_dir):
    return cse.load_model(model_dir, device="cpu")


# --- one settings owner, one seed policy -------------------------------------------------------


def test_every_entry_point_resolves_settings_alike(loaded):
    model, tok = loaded
    u = np.random.default_rng(0).standard_normal((8, 5, 16))
    for bad, match in (({"axis": "layers"}, "'axis'"), ({"boundary": "mirror"}, "'boundary'"),
                       ({"wavelet": "bior2.2"}, "not orthogonal"), ({"null_permutations": 1}, "'null_permutations'"),
                       ({"seed": -3}, "'seed'"), ({"normalize": "l1"}, "'normalize'")):
        messages = []
        for call in (lambda: cse.conditional_scale_entropy(u, **bad), lambda: cse.compute(TEXTS[:2], model, tok, **bad),
                     lambda: MeasureSettings.resolve(**bad)):
            with pytest.raises(CSEInputError, match=match) as info:
                call()
            messages.append(str(info.value))
        assert len(set(messages)) == 1, messages  # the same words from every entry point
    for bad in ({"level": 2.0}, {"seed": "1"}, {"null_permutations": 2.5}):
        for call in (lambda: cse.conditional_scale_entropy(u, **bad), lambda: cse.compute(TEXTS[:2], model, tok, **bad)):
            with pytest.raises(TypeError):
                call()


def test_seed_none_and_generators_are_drawn_and_recorded_everywhere(loaded):
    model, tok = loaded
    u = np.random.default_rng(1).standard_normal((8, 6, 16))
    for seed in (None, np.random.default_rng(7)):
        ds = cse.conditional_scale_entropy(u, null_permutations=4, seed=seed)
        again = cse.conditional_scale_entropy(u, null_permutations=4, seed=ds.attrs["seed"])
        xr.testing.assert_identical(ds, again)
        res = cse.compute(TEXTS[:3], model, tok, null_permutations=4, seed=seed)
        assert isinstance(res.attrs["seed"], int) and 0 <= res.attrs["seed"] <= 2**63 - 1
        xr.testing.assert_identical(res, cse.compute(TEXTS[:3], model, tok, null_permutations=4,
                                                     seed=res.attrs["seed"]))
    # Fresh seeds differ between calls.
    assert MeasureSettings.resolve(seed=None).seed != MeasureSettings.resolve(seed=None).seed


def test_measure_and_compute_share_one_layout(loaded):
    model, tok = loaded
    res = cse.compute(TEXTS[:1], model, tok)
    ds = cse.conditional_scale_entropy(cse.layer_updates(model, res["token_id"].values))
    for name in ("cse", "scale_fraction", "update_norm"):
        assert ds[name].dims == res[name].dims and ds[name].attrs == res[name].attrs
        np.testing.assert_allclose(ds[name].values, res[name].values, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ds["position"].values, res["position"].values)
    for name in ("layer", "depth", "scale", "boundary_affected"):
        xr.testing.assert_identical(ds[name], res[name])


# --- what a run saves --------------------------------------------------------------------------


def _gram(model, res, text: int) -> np.ndarray:
    ids = res["token_id"].values[res["text"].values == text]
    u = cse.layer_updates(model, ids).double().numpy()  # (L, T, d)
    return np.einsum("ltd,mtd->tlm", u, u)


def test_save_gram_stores_each_tokens_gram_matrix(loaded):
    model, tok = loaded
    res = cse.compute(TEXTS[:4], model, tok, batch_size=3, save="gram")
    assert res["gram"].dims == ("token", "layer", "layer2") and res["gram"].dtype == np.float64
    assert res.attrs["saved"] == "gram" and res["gram"].attrs["long_name"].startswith("Gram matrix")
    np.testing.assert_array_equal(res["layer2"].values, res["layer"].values)
    for text in range(4):
        np.testing.assert_allclose(res["gram"].values[res["text"].values == text], _gram(model, res, text),
                                   rtol=1e-5, atol=1e-7)
    # Its diagonal holds the squared update norms.
    np.testing.assert_allclose(np.sqrt(np.diagonal(res["gram"].values, axis1=1, axis2=2)), res["update_norm"].values,
                               rtol=1e-6)
    packed = cse.compute(TEXTS[:4], model, tok, batch_size=3, save=["gram_triangle"])
    rows, cols = np.triu_indices(8)
    assert packed["gram_triangle"].dims == ("token", "layer_pair")
    np.testing.assert_array_equal(packed["layer_row"].values, rows)
    np.testing.assert_array_equal(packed["gram_triangle"].values, res["gram"].values[:, rows, cols])


def test_saved_results_round_trip_and_resume(tmp_path, model_dir):
    kwargs = {"batch_size": 2, "command": "test", "save": ["gram"]}
    frame = pd.DataFrame({"text": TEXTS[:7]})
    memory = cse.compute(frame, model_dir, device="cpu", **kwargs)
    for name in ("r.nc", "r.zarr"):
        written = cse.compute(frame, model_dir, device="cpu", output=tmp_path / name, **kwargs)
        xr.testing.assert_identical(written.load(), memory)


def test_save_updates_beside_the_output(tmp_path, model_dir, loaded):
    model, tok = loaded
    memory = cse.compute(TEXTS[:5], model, tok, batch_size=2, save="updates", save_dtype="float16")
    assert memory["updates"].dims == ("token", "layer", "hidden") and memory["updates"].dtype == np.float16
    ids = memory["token_id"].values[memory["text"].values == 2]
    expected = cse.layer_updates(model, ids).numpy().transpose(1, 0, 2)
    np.testing.assert_allclose(memory["updates"].values[memory["text"].values == 2], expected, rtol=2e-3, atol=2e-3)
    out = tmp_path / "u.nc"
    res = cse.compute(TEXTS[:5], model_dir, device="cpu", batch_size=2, save="updates", output=out)
    assert res.attrs["updates_store"] == "u.nc.updates.zarr" and "updates" not in res
    store = cse.open_result(tmp_path / res.attrs["updates_store"], require=("updates",))
    assert store["updates"].dtype == np.float32 and store.sizes["token"] == res.sizes["token"]
    np.testing.assert_array_equal(store["text"].values, res["text"].values)
    np.testing.assert_allclose(store["updates"].values, memory["updates"].values.astype(np.float32), rtol=2e-3,
                               atol=2e-3)
    # The updates store is an output too: never replaced without --overwrite ...
    cse.compute(TEXTS[:5], model_dir, device="cpu", save="updates", output=tmp_path / "v.nc")
    (tmp_path / "v.nc").unlink()
    with pytest.raises(CSEInputError, match="save='updates'.*exists"):
        cse.compute(TEXTS[:5], model_dir, device="cpu", save="updates", output=tmp_path / "v.nc")
    cse.compute(TEXTS[:5], model_dir, device="cpu", save="updates", output=tmp_path / "v.nc", overwrite=True)
    # ... and a folder that cse did not write never at all.
    (tmp_path / "w.nc.updates.zarr").mkdir()
    (tmp_path / "w.nc.updates.zarr" / "photo.jpg").write_bytes(b"mine")
    with pytest.raises(CSEInputError):
        cse.compute(TEXTS[:5], model_dir, device="cpu", save="updates", output=tmp_path / "w.nc", overwrite=True)
    assert (tmp_path / "w.nc.updates.zarr" / "photo.jpg").read_bytes() == b"mine"


def test_bad_save_requests_fail_before_work(loaded):
    model, tok = loaded
    with pytest.raises(CSEInputError, match="'save'"):
        cse.compute(TEXTS[:2], model, tok, save="activations")
    with pytest.raises(CSEInputError, match="depth axis"):
        cse.compute(TEXTS[:2], model, tok, axis="hidden", save="gram")
    with pytest.raises(CSEInputError, match="not both"):
        cse.compute(TEXTS[:2], model, tok, save=["gram", "gram_triangle"])
    with pytest.raises(CSEInputError, match="'save_dtype'"):
        cse.compute(TEXTS[:2], model, tok, save="updates", save_dtype="int8")


# --- torch threads -----------------------------------------------------------------------------


def test_threads_hold_for_the_run_and_are_restored(loaded):
    import torch

    model, tok = loaded
    before = torch.get_num_threads()
    seen = []
    handle = cse.find_blocks(model)[1][0].register_forward_hook(lambda *a: seen.append(torch.get_num_threads()))
    try:
        one = cse.compute(TEXTS[:4], model, tok, batch_size=2, threads=1)
    finally:
        handle.remove()
    assert seen == [1, 1] and torch.get_num_threads() == before
    xr.testing.assert_identical(one, cse.compute(TEXTS[:4], model, tok, batch_size=2, threads=1))
    with pytest.raises(CSEInputError, match="'threads'"):
        cse.compute(TEXTS[:1], model, tok, threads=0)


# --- long texts: bounded before tokenization, tokenized in pieces --------------------------------


class _CountingTokenizer:
    """A tokenizer that records what it was asked to tokenize."""

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer
        self.calls = []

    def __call__(self, texts, **kwargs):
        self.calls.append(texts)
        return self._tokenizer(texts, **kwargs)

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)


def test_a_text_that_cannot_fit_is_refused_before_tokenization():
    tok = _CountingTokenizer(tiny_tokenizer())
    longest = tokenize_module.max_token_chars(tok)
    frame = pd.DataFrame({"text": ["short .", "x " * (64 * longest)]}, index=[3, 8])
    with pytest.raises(CSEInputError, match=r"text 8 has [\d,]+ characters.*context of 64 tokens.*window=N"):
        plan_tokens(frame, tok, max_length=64)
    assert tok.calls == []  # nothing was tokenized
    plan_tokens(frame, tok, max_length=64, window=32)  # with a window it is split


@pytest.mark.parametrize("add_bos", [False, True])
def test_long_texts_are_tokenized_in_pieces_exactly(monkeypatch, add_bos):
    tok = tiny_tokenizer(add_bos=add_bos)
    text = "  ".join(TEXTS) + "\n\n" + " ".join(reversed(TEXTS)) + "   tail"
    whole = plan_tokens(pd.DataFrame({"text": [text]}), tok, max_length=None)
    monkeypatch.setattr(tokenize_module, "PIECE_CHARS", 97)
    monkeypatch.setattr(tokenize_module, "_SEAM_CHARS", 40)
    pieces = plan_tokens(pd.DataFrame({"text": [text]}), tok, max_length=None)
    np.testing.assert_array_equal(pieces.sequences[0], whole.sequences[0])
    pd.testing.assert_frame_equal(pieces.coords, whole.coords)
    np.testing.assert_array_equal(token_lengths([text, "a b"], tok), [len(whole.sequences[0]), 3])  # one BOS either way


def test_a_long_text_without_whitespace_is_refused(monkeypatch):
    monkeypatch.setattr(tokenize_module, "PIECE_CHARS", 16)
    with pytest.raises(CSEInputError, match="text 0 has no whitespace"):
        plan_tokens(pd.DataFrame({"text": ["a " * 20 + "b" * 400]}), tiny_tokenizer(), max_length=None)


@pytest.mark.slow
def test_real_tokenizers_give_the_same_tokens_in_pieces(monkeypatch, default_model, metaphor_dir):
    _, tok = default_model
    text = " ".join(pd.read_csv(metaphor_dir / "moh-x.csv")["sentence"].head(300))
    whole = plan_tokens(pd.DataFrame({"text": [text]}), tok, max_length=None)
    monkeypatch.setattr(tokenize_module, "PIECE_CHARS", 1000)
    pieces = plan_tokens(pd.DataFrame({"text": [text]}), tok, max_length=None)
    np.testing.assert_array_equal(pieces.sequences[0], whole.sequences[0])
    pd.testing.assert_frame_equal(pieces.coords, whole.coords)
