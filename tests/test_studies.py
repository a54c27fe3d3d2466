"""Tests of the studies (`cse_studies.metaphor`, `cse_studies.cross_depth`) and `cse study`.

Fast tests run on a tiny randomly initialised Llama with 8 blocks (the depth axis'
default J = 3 needs 2**3 = 8 layers) over the first sentences of the real data
files; they skip cleanly when the data folder is absent. One slow test reruns
`cse study metaphor` with the default model and checks that the numbers reproduce.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from cse.errors import CSEInputError
from cse_studies.metaphor import analysis as A
from cse_studies.metaphor.data import build_pairs, load_mohx, load_vua, vua_words

LIMIT = 40


@functools.lru_cache(maxsize=None)
def tiny_llama(n_layers: int = 8):
    """A tiny random Llama with enough blocks for the default depth transform, and the tiny tokenizer."""
    import torch
    import transformers as tf

    from tests.tiny_models import VOCAB_SIZE, tiny_tokenizer

    config = tf.LlamaConfig(num_hidden_layers=n_layers, hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                            intermediate_size=64, max_position_embeddings=512, vocab_size=VOCAB_SIZE,
                            bos_token_id=0, eos_token_id=1, pad_token_id=2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = tf.AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    return model, tiny_tokenizer()


# --------------------------------------------------------------------------- pairs


def _words(rows):
    """A `vua_words`-like frame from (row, word, form, pos, label, n_words) tuples."""
    frame = pd.DataFrame(rows, columns=["row", "word", "form", "pos", "label", "n_words"])
    frame["txt_id"] = "t" + frame["row"].astype(str)
    frame["genre"] = "news"
    return frame


def test_build_pairs_respects_form_pos_length_and_sentence():
    words = _words([
        (0, 0, "grasp", "VERB", 1, 10),   # metaphorical
        (1, 3, "grasp", "VERB", 0, 16),   # literal, length differs by 6: not allowed
        (2, 1, "grasp", "NOUN", 0, 10),   # other POS: not allowed
        (0, 4, "grasp", "VERB", 0, 10),   # same sentence: not allowed
        (3, 2, "grasped", "VERB", 0, 10),  # other form: not allowed
        (4, 5, "grasp", "VERB", 0, 15),   # allowed (difference 5)
    ])
    pairs = build_pairs(words, n_pairs=10, seed=0)
    assert len(pairs) == 1
    p = pairs.iloc[0]
    assert (p.met_row, p.met_word, p.lit_row, p.lit_word) == (0, 0, 4, 5)
    assert build_pairs(words, n_pairs=10, seed=0, max_length_diff=4).empty


def test_build_pairs_uses_each_word_once_and_caps_the_number():
    words = _words([(r, 0, "run", "VERB", 1, 8) for r in range(5)] + [(10 + r, 0, "run", "VERB", 0, 8)
                                                                       for r in range(3)])
    pairs = build_pairs(words, n_pairs=10, seed=1)
    assert len(pairs) == 3  # only three literal partners
    assert pairs["lit_row"].is_unique and pairs["met_row"].is_unique
    assert len(build_pairs(words, n_pairs=2, seed=1)) == 2


def test_build_pairs_rejects_bad_counts():
    with pytest.raises(CSEInputError, match="'n_pairs'"):
        build_pairs(_words([(0, 0, "a", "VERB", 1, 3)]), n_pairs=-1)


def test_vua_pairs_are_matched_and_reproducible(metaphor_dir):
    words = vua_words(load_vua(metaphor_dir))
    pairs = build_pairs(words, n_pairs=200, seed=0)
    assert len(pairs) == 200
    key = words.set_index(["row", "word"])
    met = key.loc[list(zip(pairs["met_row"], pairs["met_word"]))]
    lit = key.loc[list(zip(pairs["lit_row"], pairs["lit_word"]))]
    assert (met["label"].to_numpy() == 1).all() and (lit["label"].to_numpy() == 0).all()
    assert (met["form"].to_numpy() == lit["form"].to_numpy()).all()
    assert (met["pos"].to_numpy() == lit["pos"].to_numpy()).all()
    assert set(pairs["pos"]) <= {"VERB", "NOUN", "ADJ", "ADV"}
    assert (np.abs(met["n_words"].to_numpy() - lit["n_words"].to_numpy()) <= 5).all()
    assert (pairs["met_row"] != pairs["lit_row"]).all()
    sides = pd.concat([pairs[["met_row", "met_word"]].set_axis(["r", "w"], axis=1),
                       pairs[["lit_row", "lit_word"]].set_axis(["r", "w"], axis=1)])
    assert not sides.duplicated().any()
    # Same seed, same pairs, whatever the row order; another seed, other pairs.
    pd.testing.assert_frame_equal(pairs, build_pairs(words.sample(frac=1, random_state=5), n_pairs=200, seed=0))
    assert not pairs.equals(build_pairs(words, n_pairs=200, seed=1))


def test_loaders_align_targets(metaphor_dir):
    mohx = load_mohx(metaphor_dir, limit=50)
    targets = [w[i] for w, i in zip(mohx["word_str"], mohx["verb_idx"])]
    # The target word is an inflection of the verb lemma (e.g. absorb -> absorbed).
    assert np.mean([t.startswith(v[:3].lower()) for t, v in zip(targets, mohx["verb"])]) > 0.9
    vua = load_vua(metaphor_dir, limit=20)
    assert (vua["label_seq"].map(len) == vua["text"].str.split().map(len)).all()
    with pytest.raises(CSEInputError, match="'--data'"):
        load_mohx(metaphor_dir / "missing-folder")


def test_shuffled_labels_stay_in_their_blocks():
    labels = np.array([0, 1, 1, 0, 1, 0, 0, 0, 1])
    blocks = np.array(["a", "a", "a", "b", "b", "c", "c", "c", "c"])
    out = A.shuffled_labels(labels, blocks, seed=3)
    for b in np.unique(blocks):
        assert sorted(out[blocks == b]) == sorted(labels[blocks == b])
    np.testing.assert_array_equal(out, A.shuffled_labels(labels, blocks, seed=3))


# --------------------------------------------------------------------------- cross-depth measures


def test_js_coupling_matches_scipy():
    from scipy.spatial.distance import jensenshannon

    from cse_studies.cross_depth.run import js_coupling

    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4), size=(7, 5))
    p[2, 1] = [1.0, 0.0, 0.0, 0.0]  # zeros follow 0 log 0 = 0
    p[3, 4] = np.nan  # undefined cells are skipped
    got = js_coupling(p, chunk=3)
    want = np.zeros((5, 5))
    for i in range(5):
        for j in range(5):
            vals = [jensenshannon(p[t, i], p[t, j], base=2) ** 2 for t in range(7)
                    if np.isfinite(p[t, i]).all() and np.isfinite(p[t, j]).all()]
            want[i, j] = np.mean(vals) if i != j else 0.0
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert np.allclose(got, got.T) and (got >= 0).all() and (got <= 1).all()


# --------------------------------------------------------------------------- whole studies on a tiny model


@pytest.fixture(scope="module")
def tiny_metaphor(metaphor_dir, tmp_path_factory):
    from cse_studies.metaphor.run import run

    out = tmp_path_factory.mktemp("metaphor")
    model, tokenizer = tiny_llama()
    result = run(metaphor_dir, out, model, tokenizer, seed=0, n_pairs=10, n_permutations=199, n_bootstrap=99,
                 null_permutations=4, limit=LIMIT, command="pytest tiny metaphor")
    return out, result


def test_metaphor_report_has_every_section(tiny_metaphor):
    out, result = tiny_metaphor
    text = (out / "report.md").read_text()
    for heading in ("## How it was made", "## Does the published finding hold here?", "## All tests",
                    "## 1. MOH-X target verbs", "## 2. VUA test split, every content word", "### By genre and by POS",
                    "## 3. VUA matched pairs", "### Mixed model", "## Notes on the method"):
        assert heading in text
    assert f"**The published finding {result['verdict']['overall']} here**" in text
    for name in ("profile_mohx.png", "profile_vua.png", "effects.png", "controls.png", "mixed.png", "layers.csv",
                 "clusters.csv", "pairs.csv"):
        assert (out / name).stat().st_size > 0
    layers = pd.read_csv(out / "layers.csv")
    expected = {"mohx", "mohx_control", "mohx_shuffled", "mohx_token", "mohx_hidden", "mohx_hidden_z", "vua",
                "vua_control", "vua_shuffled", "pairs", "pairs_control", "pairs_shuffled", "pairs_token",
                "pairs_hidden", "pairs_hidden_z"}
    assert expected <= set(layers["test"])
    assert (layers.groupby("test").size() == 8).all()  # one row per layer of the tiny model


def test_metaphor_tests_select_the_right_tokens(tiny_metaphor, metaphor_dir):
    _, result = tiny_metaphor
    tests = result["tests"]
    mohx = load_mohx(metaphor_dir, limit=LIMIT)
    # One target token per MOH-X sentence, split by label; verbs with one label only contribute nothing.
    attrs = tests["mohx"].attrs
    single = mohx.groupby("verb")["label"].transform("nunique") == 1
    assert attrs["n_tokens_b"] == int(((mohx["label"] == 1) & ~single).sum())
    assert attrs["n_tokens_a"] == int(((mohx["label"] == 0) & ~single).sum())
    assert attrs["n_tokens_single_label_blocks"] == int(single.sum())
    # Control: sentences whose verb is not the first word.
    control = tests["mohx_control"].attrs
    assert control["n_tokens"] + control["n_tokens_single_label_blocks"] == int((mohx["verb_idx"] > 0).sum())
    # Pairs: every drawn pair, both sides.
    assert tests["pairs"].attrs["n_tokens_a"] == len(result["pairs"]) == tests["pairs"].attrs["n_tokens_b"]
    assert tests["pairs"].attrs["test"] == "sign-flip"
    # VUA: every word but punctuation.
    vua = vua_words(load_vua(metaphor_dir, limit=LIMIT))
    content = vua.loc[vua["pos"] != "PUNCT"]
    assert tests["vua"].attrs["n_tokens_b"] == int((content["label"] == 1).sum())
    assert tests["vua"].attrs["n_tokens_a"] == int((content["label"] == 0).sum())


@pytest.mark.slow
def test_metaphor_rerun_reuses_results_and_reproduces_numbers(tiny_metaphor, metaphor_dir):
    from cse_studies.metaphor.run import run

    out, _ = tiny_metaphor
    before = (out / "layers.csv").read_text()
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.nc")}
    model, tokenizer = tiny_llama()
    run(metaphor_dir, out, model, tokenizer, seed=0, n_pairs=10, n_permutations=199, n_bootstrap=99,
        null_permutations=4, limit=LIMIT, command="pytest tiny metaphor")
    assert (out / "layers.csv").read_text() == before
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.nc")} == stamps  # cached, not recomputed


def test_metaphor_study_rejects_bad_input(metaphor_dir, tmp_path):
    from cse_studies.metaphor.run import run

    with pytest.raises(CSEInputError, match="'--data'.*not a folder"):
        run(tmp_path / "nope", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CSEInputError, match="has no moh-x.csv"):
        run(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(CSEInputError, match="'n_pairs'"):
        run(metaphor_dir, tmp_path / "out", n_pairs=0)
    with pytest.raises(CSEInputError, match="'--out'"):
        run(metaphor_dir, tmp_path / "a" / "b" / "c")


def test_cross_depth_on_tiny_model(metaphor_dir, tmp_path):
    from cse_studies.cross_depth.run import run

    result = run(metaphor_dir, tmp_path, loaded=[tiny_llama()], limit=LIMIT, command="pytest tiny cross-depth")
    text = (tmp_path / "report.md").read_text()
    for heading in ("## 1. Depth profiles", "## 2. Profile similarity", "## 3. Layer-by-layer coupling"):
        assert heading in text
    assert "Only one model was given" in text
    profiles = xr.open_dataset(tmp_path / "profiles.nc", engine="h5netcdf")
    assert profiles["cse_mean"].dims == ("model", "corpus", "relative_depth")
    assert np.isfinite(profiles["cse_mean"].values).any()
    (slug, coupling), = result["coupling"].items()
    js = coupling["vua"]["js"].values
    assert js.shape == (8, 8) and np.allclose(np.diag(js), 0) and np.allclose(js, js.T)
    assert (tmp_path / f"coupling-{slug}.png").stat().st_size > 0


# --------------------------------------------------------------------------- command line


def test_cli_bad_data_folder_is_one_line(tmp_path, capsys):
    from cse.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["study", "metaphor", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("Error: Invalid value for '--data'") and "\n" not in err
    (tmp_path / "d").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        main(["study", "cross-depth", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert "has no moh-x.csv" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_metaphor_reproduces_with_the_same_seed(metaphor_dir, tmp_path):
    """`cse study metaphor` twice from scratch (CSE recomputed) gives the same tables."""
    from click.testing import CliRunner

    from cse.cli import cli

    args = ["study", "metaphor", "--data", str(metaphor_dir), "--limit", "16", "--n-permutations", "499",
            "--null-permutations", "4", "--seed", "3", "-q"]
    runner = CliRunner()
    first = runner.invoke(cli, args + ["--out", str(tmp_path / "a")], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    second = runner.invoke(cli, args + ["--out", str(tmp_path / "b"), "--recompute"], catch_exceptions=False)
    assert second.exit_code == 0, second.output
    a = pd.read_csv(tmp_path / "a" / "layers.csv")
    b = pd.read_csv(tmp_path / "b" / "layers.csv")
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9)
    assert (tmp_path / "a" / "clusters.csv").read_text() == (tmp_path / "b" / "clusters.csv").read_text()
    assert "published finding:" in first.output
