"""Whole studies (`cse_studies.metaphor`, `cse_studies.cross_depth`) and `cse study`.

Fast tests run on tiny randomly initialised Llamas (8 and 12 blocks: the depth axis'
default J = 3 needs 2**3 = 8 layers) over the first sentences of the real data files;
they skip cleanly when the data folder is absent. Slow tests rerun `cse study` with the
real models.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from cse_studies.common import corpus_specs, read_corpus, sequence_words

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


RUN = {"n_pairs": 10, "n_permutations": 199, "n_bootstrap": 99, "null_permutations": 4}


@pytest.fixture(scope="module")
def tiny_metaphor(metaphor_dir, tmp_path_factory):
    from cse_studies.metaphor.run import run

    out = tmp_path_factory.mktemp("metaphor")
    result = run(metaphor_dir, out, loaded=[tiny_llama()], limit=LIMIT, command="pytest tiny metaphor", **RUN)
    return out, result


def test_metaphor_report_has_every_section(tiny_metaphor):
    out, result = tiny_metaphor
    text = (out / "report.md").read_text()
    (slug, summary), = result["verdict"].items()
    for heading in ("## How it was made", "## Across models", f"## Model `{slug}`",
                    "### Does the published finding hold for this model?", "### All tests", "### `mohx`", "### `vua`",
                    "#### By genre and by POS", "### `pairs`", "#### Mixed model", "## Notes on the method"):
        assert heading in text
    assert f"**The published finding {summary['overall']} for `{slug}`**" in text
    for name in (f"{slug}/profile-mohx.png", f"{slug}/profile-vua.png", f"{slug}/effects.png",
                 f"{slug}/controls.png", f"{slug}/mixed.png", "effects-by-model.png", "layers.csv", "clusters.csv",
                 "pairs.csv"):
        assert (out / name).stat().st_size > 0
    layers = pd.read_csv(out / "layers.csv")
    expected = {"mohx", "mohx:control", "mohx:shuffled", "mohx:token", "mohx:hidden", "mohx:hidden_z", "vua",
                "vua:control", "vua:shuffled", "pairs", "pairs:control", "pairs:shuffled", "pairs:token",
                "pairs:hidden", "pairs:hidden_z"}
    assert expected <= set(layers["test"])
    assert (layers.groupby("test").size() == 8).all()  # one row per layer of the tiny model


def _in_mixed_blocks(labels: pd.Series, blocks: pd.Series, attrs: dict) -> pd.Series:
    """Tokens a within-block test uses: those of blocks holding both labels (when compare leaves the others out)."""
    if "n_tokens_single_label_blocks" not in attrs:
        return pd.Series(True, index=labels.index)
    return labels.groupby(blocks).transform("nunique") == 2


def test_study_files_get_the_users_umask_not_0600(tiny_metaphor):
    import os
    import stat

    out, _ = tiny_metaphor
    umask = os.umask(0)
    os.umask(umask)
    for name in ("report.md", "layers.csv"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o666 & ~umask, name


def test_metaphor_tests_select_the_right_tokens(tiny_metaphor, metaphor_dir):
    _, result = tiny_metaphor
    (tests,) = result["tests"].values()
    mohx, vua = (read_corpus(s, limit=LIMIT) for s in corpus_specs(metaphor_dir))
    # One target token per MOH-X sentence, split by label; blocks with one label contribute nothing.
    frame, attrs = mohx.frame, tests["mohx"].attrs
    used = _in_mixed_blocks(frame["label"], frame["exchangeability_block"], attrs)
    assert attrs["n_tokens_b"] == int(((frame["label"] == 1) & used).sum())
    assert attrs["n_tokens_a"] == int(((frame["label"] == 0) & used).sum())
    assert attrs["n_tokens"] + attrs.get("n_tokens_single_label_blocks", 0) == len(frame)
    # Control: sentences whose target is not the first word.
    control = tests["mohx:control"].attrs
    assert control["n_tokens"] + control.get("n_tokens_single_label_blocks", 0) == int((frame["target"] > 0).sum())
    # Pairs: every drawn pair, both sides.
    assert tests["pairs"].attrs["n_tokens_a"] == len(result["pairs"]) == tests["pairs"].attrs["n_tokens_b"]
    assert tests["pairs"].attrs["test"] == "sign-flip"
    # VUA: every content word (a letter or digit, not tagged PUNCT), within texts.
    words, attrs = sequence_words(vua), tests["vua"].attrs
    words = words.loc[words["content"]]
    used = _in_mixed_blocks(words["label"], words["block"], attrs)
    assert attrs["n_tokens_b"] == int(((words["label"] == 1) & used).sum())
    assert attrs["n_tokens_a"] == int(((words["label"] == 0) & used).sum())


def _mark_boundary_and_z(compute_results, boundary: int):
    """Wrap `compute_results` so depth results carry what the new measure adds: boundary_affected, cse_z."""
    def wrapped(*args, **kwargs):
        computed = compute_results(*args, **kwargs)
        for name, ds in computed.results.items():
            if name.endswith("-depth"):
                z = (ds["cse"] - ds["cse"].mean("token")) / ds["cse"].std("token")
                computed.results[name] = ds.assign(cse_z=z).assign_coords(
                    boundary_affected=("layer", np.arange(ds.sizes["layer"]) < boundary))
        return computed
    return wrapped


@pytest.mark.slow
def test_metaphor_two_models_new_corpus_boundary_and_cse_z(metaphor_dir, tmp_path, monkeypatch):
    """Several models, a corpus given by option, and the activation of the boundary/cse_z code paths."""
    from cse_studies.metaphor import run as run_module

    monkeypatch.setattr(run_module, "compute_results", _mark_boundary_and_z(run_module.compute_results, 7))
    specs = corpus_specs(metaphor_dir, [f"val={metaphor_dir / 'vua-seq-val.csv'}"])
    result = run_module.run(None, tmp_path, corpora=specs, loaded=[tiny_llama(8), tiny_llama(12)], limit=30,
                            command="pytest two models", **{**RUN, "n_permutations": 99})
    assert set(result["pairs"]["met_corpus"]) | set(result["pairs"]["lit_corpus"]) == {"vua", "val"}
    text = (tmp_path / "report.md").read_text()
    slugs = list(result["verdict"])
    assert len(slugs) == 2 and all(f"## Model `{s}`" in text for s in slugs)
    assert "cp1252 (detected: not valid UTF-8)" in text  # the VUA validation split
    summary = text.split("## Across models", 1)[1].split("## Model", 1)[0]
    for key in ("mohx", "mohx:cse_z", "vua", "vua:cse_z", "val", "val:cse_z", "pairs", "pairs:cse_z"):
        assert all(f"| {key} | {s} |" in summary for s in slugs), key
    assert "boundary-affected layers 0-6 of 8" in text and "boundary-affected layers 0-6 of 12" in text
    assert all("overall_cse_z" in v for v in result["verdict"].values())
    layers = pd.read_csv(tmp_path / "layers.csv")
    assert set(layers["model"]) == set(slugs) and "boundary" in layers.columns
    assert (tmp_path / "effects-by-model.png").stat().st_size > 0


def test_metaphor_on_corpora_it_has_never_seen(metaphor_dir, tmp_path):
    """Other column names, boolean and space-separated labels, no POS/genre/text id, odd whitespace, rows over lines."""
    from cse_studies.metaphor.run import run

    m = pd.read_csv(metaphor_dir / "moh-x.csv").head(24)
    pd.DataFrame({"Text": ["  " + s.strip().replace(" ", "  ", 1) + "\n" for s in m["sentence"]],
                  "Word_Index": m["verb_idx"], "Metaphorical": m["label"].map({1: "True", 0: "false"})}
                 ).to_csv(tmp_path / "target.tsv", sep="\t", index=False)
    v = pd.read_csv(metaphor_dir / "vua-seq-val.csv", encoding="cp1252").head(24)
    pd.DataFrame({"sentence": v["sentence"].str.replace(" , ", " ,\n ", regex=False),
                  "labels": v["label_seq"].str.strip("[]").str.replace(",", "")}
                 ).to_csv(tmp_path / "seq.csv", index=False, encoding="cp1252")
    specs = corpus_specs(corpora=[f"tw={tmp_path / 'target.tsv'}", f"sq={tmp_path / 'seq.csv'}"])
    result = run(None, tmp_path / "out", corpora=specs, loaded=[tiny_llama()], command="pytest unseen", **RUN)
    (tests,) = result["tests"].values()
    tw = tests["tw"].attrs
    assert tw["n_tokens"] + tw.get("n_tokens_single_label_blocks", 0) == 24
    assert {"tw", "sq", "tw:control", "sq:control"} <= set(tests)
    text = (tmp_path / "out" / "report.md").read_text()
    assert "columns: sentence `Text`, target `Word_Index`, label `Metaphorical`" in text
    assert "labels permuted within exchangeability blocks (the target word's form)" in text
    assert "#### By genre and by POS" not in text  # the sequence corpus has neither


def test_metaphor_study_rejects_bad_input(metaphor_dir, tmp_path):
    from cse.errors import CSEInputError
    from cse_studies.metaphor.run import run

    with pytest.raises(CSEInputError, match="'--data'.*not a folder"):
        run(tmp_path / "nope", tmp_path / "out")
    with pytest.raises(CSEInputError, match="'n_pairs'"):
        run(metaphor_dir, tmp_path / "out", n_pairs=0)
    with pytest.raises(CSEInputError, match="'--out'"):
        run(metaphor_dir, tmp_path / "a" / "b" / "c")
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "thesis.tex").write_text("precious")
    with pytest.raises(CSEInputError, match="holds files and was not written by cse study"):
        run(metaphor_dir, tmp_path / "user")
    with pytest.raises(CSEInputError, match="never into the data folder"):
        run(metaphor_dir, metaphor_dir)
    assert (tmp_path / "user" / "thesis.tex").read_text() == "precious"


@pytest.mark.slow
def test_metaphor_rerun_reuses_results_and_reproduces_numbers(tiny_metaphor, metaphor_dir):
    from cse_studies.metaphor.run import run

    out, _ = tiny_metaphor
    before = (out / "layers.csv").read_text()
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.nc")}
    run(metaphor_dir, out, loaded=[tiny_llama()], limit=LIMIT, command="pytest tiny metaphor", **RUN)
    assert (out / "layers.csv").read_text() == before
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.nc")} == stamps  # cached, not recomputed


def test_cross_depth_two_models_reusing_the_metaphor_cache(tiny_metaphor, metaphor_dir, tmp_path):
    from cse_studies.cross_depth.run import run

    cache, _ = tiny_metaphor
    stamps = {p.name: p.stat().st_mtime_ns for p in cache.glob("*-depth-*.nc")}
    result = run(metaphor_dir, tmp_path, loaded=[tiny_llama(8), tiny_llama(12)], cache=cache, limit=LIMIT,
                 command="pytest tiny cross-depth")
    text = (tmp_path / "report.md").read_text()
    for heading in ("## 1. Depth profiles", "## 2. Profile similarity", "## 3. Layer-by-layer coupling"):
        assert heading in text
    with xr.open_dataset(tmp_path / "profiles.nc", engine="h5netcdf") as profiles:
        assert profiles["cse_mean"].dims == ("model", "corpus", "relative_depth")
        assert profiles.sizes["model"] == 2 and np.isfinite(profiles["cse_mean"].values).any()
    slugs = list(result["coupling"])
    js = result["coupling"][slugs[1]]["vua"]["js"].values
    assert js.shape == (12, 12) and np.allclose(np.diag(js), 0) and np.allclose(js, js.T)
    assert f"| mohx | {slugs[0]} | {slugs[1]} |" in text
    # The 8-block model's depth results came from the metaphor study's folder, unchanged.
    assert {n: p for n, p in stamps.items()} == {p.name: p.stat().st_mtime_ns for p in cache.glob("*-depth-*.nc")
                                                 if p.name in stamps}


# --------------------------------------------------------------------------- command line


def _cli(args, capsys):
    from cse.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code, capsys.readouterr().err.strip()


def test_cli_bad_input_is_one_line(metaphor_dir, tmp_path, capsys):
    code, err = _cli(["study", "metaphor", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and err.startswith("Error: Invalid value for '--data'") and "\n" not in err
    (tmp_path / "d").mkdir()
    code, err = _cli(["study", "cross-depth", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "has no moh-x.csv" in err
    code, err = _cli(["study", "metaphor", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "Missing corpora" in err
    code, err = _cli(["study", "metaphor", "--corpus", "x", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "'--corpus': expected NAME=PATH" in err and "\n" not in err
    bad = tmp_path / "bad.csv"
    bad.write_text("sentence,score\na b,1\n")
    code, err = _cli(["study", "metaphor", "--corpus", f"x={bad}", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "neither a target-word file" in err and "\n" not in err
    code, err = _cli(["study", "metaphor", "--data", str(metaphor_dir), "--out", str(metaphor_dir)], capsys)
    assert code == 2 and "never into the data folder" in err


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
    assert "published finding, SmolLM2" in first.output
