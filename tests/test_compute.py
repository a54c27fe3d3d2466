"""The main job: `cse.compute` on tiny models, the result schema, word alignment and bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import cse
from cse import CSEInputError
from cse.pipeline import plan_tokens
from cse.io import read_texts
from tiny_models import VOCAB_SIZE, tiny_tokenizer

TEXTS = [
    "The senator attacked the proposal during the debate .",
    "She devoured the novel in a single sitting .",
    "Rain flooded the streets after the storm .",
]


@pytest.fixture(scope="module")
def llama():
    """A tiny random Llama with 8 blocks (the depth axis' default J = 3 needs 2**3 layers), context 64."""
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        num_hidden_layers=8, hidden_size=32, num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
        max_position_embeddings=64, vocab_size=VOCAB_SIZE, bos_token_id=0, eos_token_id=1, pad_token_id=2,
    )
    return transformers.LlamaForCausalLM(config).eval(), tiny_tokenizer()


@pytest.fixture(scope="module")
def result(llama):
    model, tok = llama
    frame = pd.DataFrame({"text": TEXTS, "label": [1, 1, 0], "verb_idx": [2, 1, 1]})
    return cse.compute(frame, model, tok, batch_size=2)


def test_schema(result, llama):
    model, tok = llama
    ds = result
    n_layers = model.config.num_hidden_layers
    assert set(ds.dims) == {"token", "layer", "scale"}
    assert ds.sizes["layer"] == n_layers
    assert list(ds["scale"].values) == ["d1", "d2", "d3", "a3"]
    assert ds["cse"].dims == ("token", "layer")
    assert ds["scale_fraction"].dims == ("token", "layer", "scale")
    assert ds["surprisal"].dims == ("token",)
    for name in ("text", "position", "token_id", "token_str", "word", "is_word_start", "is_special", "label", "verb_idx"):
        assert ds[name].dims == ("token",), name
    np.testing.assert_allclose(ds["depth"], (np.arange(n_layers) + 1) / n_layers)
    assert ds["cse"].attrs["units"] == "1" and ds["surprisal"].attrs["units"] == "nat"
    for key in ("model", "n_layers", "d_model", "axis", "wavelet", "level", "boundary", "normalize", "seed",
                "dtype", "cse_version", "command"):
        assert key in ds.attrs, key
    # one token entry per model token: BOS + the tokenizer's tokens, no padding
    expected = sum(len(tok(t)["input_ids"]) + 1 for t in TEXTS)
    assert ds.sizes["token"] == expected


def test_values(result):
    ds = result
    special = ds["is_special"].values
    cse_vals = ds["cse"].values[~special]
    assert np.all((cse_vals >= 0) & (cse_vals <= 1))
    np.testing.assert_allclose(ds["scale_fraction"].values[~special].sum(-1), 1.0, atol=1e-12)
    # surprisal: NaN only where no prefix exists (position 0), positive elsewhere
    assert np.isnan(ds["surprisal"].values[ds["position"].values == 0]).all()
    assert (ds["surprisal"].values[ds["position"].values > 0] > 0).all()
    assert (ds["word"].values[special] == -1).all()


def test_batching_does_not_change_results(llama, result):
    model, tok = llama
    frame = pd.DataFrame({"text": TEXTS, "label": [1, 1, 0], "verb_idx": [2, 1, 1]})
    single = cse.compute(frame, model, tok, batch_size=1)
    np.testing.assert_allclose(single["cse"], result["cse"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(single["surprisal"], result["surprisal"], rtol=1e-4)


def test_matches_measure_on_one_text(llama, result):
    model, tok = llama
    ids = [tok.bos_token_id] + tok(TEXTS[0])["input_ids"]
    ref = cse.conditional_scale_entropy(cse.layer_updates(model, ids))
    got = result.isel(token=result["text"].values == 0)
    np.testing.assert_allclose(got["cse"].values, ref["cse"].values, rtol=1e-5, atol=1e-6)


def test_word_alignment_selects_target_words(result, llama):
    _, tok = llama
    ds = result
    target = ds.where((ds["word"] == ds["verb_idx"]), drop=True)
    for text_index in range(len(TEXTS)):
        sel = target["text"].values == text_index
        pieces = "".join(target["token_str"].values[sel]).strip()
        words = TEXTS[text_index].split()
        assert pieces == words[int(ds["verb_idx"].values[ds["text"].values == text_index][0])]
    # every word starts exactly once
    for text_index in range(len(TEXTS)):
        sel = (ds["text"].values == text_index) & ds["is_word_start"].values
        assert list(ds["word"].values[sel]) == list(range(len(TEXTS[text_index].split())))


def test_per_word_fields_become_token_coordinates(llama):
    model, tok = llama
    frame = pd.DataFrame({
        "text": ["Up went the price", "It fell"],
        "label_seq": ["[1, 0, 0, 1]", "[0, 1]"],
        "pos_seq": ["['ADP', 'VERB', 'DET', 'NOUN']", "['PRON', 'VERB']"],
        "genre": ["news", "fiction"],
    })
    ds = cse.compute(frame, model, tok)
    starts = ds.isel(token=ds["is_word_start"].values)
    assert list(starts["label_seq"].values) == [1, 0, 0, 1, 0, 1]
    assert list(starts["pos_seq"].values) == ["ADP", "VERB", "DET", "NOUN", "PRON", "VERB"]
    assert list(np.unique(ds["genre"].values)) == ["fiction", "news"]
    special = ds["is_special"].values
    assert (ds["label_seq"].values[special] == -1).all()


@pytest.mark.parametrize("axis", ["token", "hidden"])
def test_other_axes(llama, axis):
    model, tok = llama
    kwargs = {"level": 2} if axis == "token" else {"null_permutations": 8}
    ds = cse.compute(TEXTS, model, tok, axis=axis, **kwargs)
    assert ds.attrs["axis"] == axis
    assert np.nanmax(ds["cse"].values) <= 1
    if axis == "hidden":
        assert {"cse_null_mean", "cse_null_std", "cse_z"} <= set(ds.data_vars)


def test_netcdf_output_round_trip(tmp_path, llama, result):
    model, tok = llama
    frame = pd.DataFrame({"text": TEXTS, "label": [1, 1, 0], "verb_idx": [2, 1, 1]})
    out = tmp_path / "r.nc"
    ds = cse.compute(frame, model, tok, batch_size=2, output=out, command="test")
    assert out.is_file()
    assert not list(tmp_path.glob(".*partial*"))
    back = xr.open_dataset(out, engine="h5netcdf").load()
    expected = result.assign_attrs(command="test")
    xr.testing.assert_allclose(back.drop_vars("token_str"), expected.drop_vars("token_str"))
    assert list(back["token_str"].values) == list(result["token_str"].values)
    assert back.attrs == expected.attrs
    assert ds.sizes == back.sizes


def test_window_splits_long_texts(llama):
    model, tok = llama
    long_text = " ".join(["word"] * 80)
    with pytest.raises(CSEInputError, match=r"text 0 has \d+ tokens, more than the model's context of 64"):
        cse.compute([long_text], model, tok)
    ds = cse.compute([long_text], model, tok, window=32)
    assert ds["position"].values.max() == 31
    assert (ds["text"].values == 0).all()


# ------------------------------------------------------------------ bad input


def test_level_too_high_for_depth(llama):
    model, tok = llama
    with pytest.raises(CSEInputError, match="level 4 needs 2\\*\\*4 = 16 steps along the 'depth' axis"):
        cse.compute(TEXTS, model, tok, level=4)


@pytest.mark.parametrize("axis", ["depth", "token"])
def test_order_null_on_every_axis(llama, axis):
    model, tok = llama
    kwargs = {"level": 1} if axis == "token" else {}
    res = cse.compute(TEXTS, model, tok, axis=axis, null_permutations=10, seed=3, **kwargs)
    for name in ("cse_null_mean", "cse_null_std", "cse_z"):
        assert res[name].dims == ("token", "layer") and np.isfinite(res[name].values).any()
    again = cse.compute(TEXTS, model, tok, axis=axis, null_permutations=10, seed=3, batch_size=1, **kwargs)
    # Same permutations whatever the batching; only the float32 forward pass of padded
    # batches differs (~1e-5 relative), which z amplifies by 1/std.
    np.testing.assert_allclose(res["cse_z"].values, again["cse_z"].values, rtol=1e-3, atol=1e-3)


def test_bad_axis_before_model(llama):
    with pytest.raises(CSEInputError, match="Invalid value for 'axis'"):
        cse.compute(TEXTS, "no/such-model", axis="layers")


def test_read_texts_formats(tmp_path):
    (tmp_path / "a.txt").write_text("one text\n\n  \ntwo text\n")
    with pytest.warns(UserWarning, match="skipped 2 empty"):
        frame = read_texts(tmp_path / "a.txt")
    assert list(frame["text"]) == ["one text", "two text"] and list(frame.index) == [0, 3]
    (tmp_path / "b.jsonl").write_text(json.dumps({"text": "x y", "label": 1}) + "\n")
    assert read_texts(tmp_path / "b.jsonl")["label"].tolist() == [1]
    (tmp_path / "c.csv").write_text("sentence,label\nhello there,1\n")
    frame = read_texts(tmp_path / "c.csv", text_column="sentence")
    assert frame.columns.tolist() == ["text", "label"]


@pytest.mark.parametrize(
    "content, kwargs, message",
    [
        (None, {}, "does not exist"),
        (b"", {}, "is empty"),
        (b"sentence,label\nhi,1\n", {"text_column": "txt"}, "'txt' is not a column .* \\(columns: sentence, label\\)"),
        (b"text\nok\ncaf\xe9\n", {}, "line 3 is not valid utf-8 .* try encoding='cp1252'"),
        (b"text\n \n\n", {}, "every text is empty"),
    ],
)
def test_read_texts_errors(tmp_path, content, kwargs, message):
    path = tmp_path / "in.csv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CSEInputError, match=message):
        read_texts(path, **kwargs)


def test_cp1252_vua_file_reads_with_encoding(metaphor_dir):
    with pytest.raises(CSEInputError, match="try encoding='cp1252'"):
        read_texts(metaphor_dir / "vua-seq-val.csv")
    frame = read_texts(metaphor_dir / "vua-seq-val.csv", encoding="cp1252")
    assert len(frame) == 1550


def test_plan_tokens_offsets_exact(llama):
    _, tok = llama
    frame = pd.DataFrame({"text": ["  leading spaces  and   gaps ."]})
    plan = plan_tokens(frame, tok, max_length=64)
    coords = plan.coords
    words = frame["text"][0].split()
    got = {}
    for w, s in zip(coords["word"], coords["token_str"]):
        if w >= 0:
            got.setdefault(w, []).append(s)
    assert ["".join(v).strip() for _, v in sorted(got.items())] == words


@pytest.mark.slow
def test_default_model_on_moh_x(tmp_path, default_model, metaphor_dir):
    """Acceptance: MOH-X on the default model; word == verb_idx picks each sentence's verb."""
    model, tok = default_model
    frame = read_texts(metaphor_dir / "moh-x.csv", text_column="sentence").iloc[:40]
    ds = cse.compute(frame, model, tok, batch_size=16, output=tmp_path / "m.nc")
    assert ds.sizes["layer"] == 30
    ok = ~ds["is_special"].values
    assert np.nanmin(ds["cse"].values[ok]) >= 0 and np.nanmax(ds["cse"].values[ok]) <= 1
    for column in ("arg1", "arg2", "verb", "verb_idx", "label"):
        assert column in ds.coords
    target = ds.isel(token=(ds["word"] == ds["verb_idx"]).values & ds["is_word_start"].values)
    assert target.sizes["token"] == 40
    for text, piece in zip(target["text"].values, target["token_str"].values):
        words = frame.loc[text, "text"].split()
        assert words[int(frame.loc[text, "verb_idx"])].startswith(piece.strip())
