"""The command line as a user meets it: real subprocesses, exit codes, stderr, files left behind."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from tiny_models import VOCAB_SIZE, tiny_tokenizer


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A tiny random Llama (8 blocks) and its tokenizer saved as a local model folder."""
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        num_hidden_layers=8, hidden_size=32, num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
        max_position_embeddings=64, vocab_size=VOCAB_SIZE, bos_token_id=0, eos_token_id=1, pad_token_id=2,
    )
    folder = tmp_path_factory.mktemp("tiny-llama")
    transformers.LlamaForCausalLM(config).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


def run_cse(*args, cwd=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "cse.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def test_compute_and_info(tmp_path, tiny_dir):
    src = tmp_path / "in.csv"
    src.write_text("sentence,label\nThe dog attacked the mailman .,0\nThe senator attacked the bill .,1\n")
    out = tmp_path / "out.nc"
    proc = run_cse("compute", src, "--text-column", "sentence", "-o", out, "--model", tiny_dir, "-q")
    assert proc.returncode == 0, proc.stderr
    ds = xr.open_dataset(out, engine="h5netcdf")
    assert ds.sizes["layer"] == 8 and "label" in ds.coords
    assert ds.attrs["command"].startswith("cse compute")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    info = run_cse("info", out)
    assert info.returncode == 0, info.stderr
    assert "8 layers" in info.stdout and "axis=depth" in info.stdout and "label" in info.stdout


def _assert_clean_failure(proc, out, pattern):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr
    assert lines and lines[-1].startswith("Error:"), proc.stderr
    import re

    assert re.search(pattern, lines[-1]), lines[-1]
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


@pytest.mark.parametrize(
    "content, extra, pattern",
    [
        (None, [], "does not exist"),
        (b"", [], "is empty"),
        (b"sentence,label\nhi there,1\n", ["--text-column", "txt"], "'txt' is not a column"),
        (b"text\nfine\ncaf\xe9 au lait\n", [], "line 3 is not valid utf-8.*--encoding cp1252"),
        (b"text\nok here\n", ["--level", "4"], "level 4 needs 2\\*\\*4 = 16 steps"),
        (b"text\nok here\n", ["--wavelet", "bior2.2"], "not orthogonal"),
        (b"text\nok here\n", ["--null-permutations", "5"], "hidden"),
        (b"text\n" + b"word " * 100 + b"\n", [], "text 0 has \\d+ tokens, more than the model's context of 64"),
        (b"text\nok here\n", ["--batch-size", "0"], "batch_size"),
    ],
)
def test_bad_input_exits_2_without_output(tmp_path, tiny_dir, content, extra, pattern):
    src = tmp_path / "in.csv"
    if content is not None:
        src.write_bytes(content)
    out = tmp_path / "out.nc"
    proc = run_cse("compute", src, "-o", out, "--model", tiny_dir, "-q", *extra)
    _assert_clean_failure(proc, out, pattern)


def test_model_not_available_offline(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("one text\n")
    out = tmp_path / "out.nc"
    proc = run_cse("compute", src, "-o", out, "--model", "no-such-org/no-such-model")
    _assert_clean_failure(proc, out, "cannot load model 'no-such-org/no-such-model' offline")


def test_usage_errors_exit_2(tmp_path):
    proc = run_cse("compute", "--axis", "layers")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    proc = run_cse("compute", tmp_path / "x.txt")
    assert proc.returncode == 2 and "missing --output" in proc.stderr
    proc = run_cse("info", tmp_path / "nothing.nc")
    assert proc.returncode == 2 and "does not exist" in proc.stderr


@pytest.mark.slow
def test_example_on_default_model(tmp_path):
    """Acceptance: the README's first command prints the summary and writes the plot."""
    proc = run_cse("compute", "--example", "-o", tmp_path / "ex.nc", "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Mean CSE of the target verbs (first token) by layer and label" in proc.stdout
    assert "metaphorical - literal" in proc.stdout
    png = tmp_path / "ex.png"
    assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"
    ds = xr.open_dataset(tmp_path / "ex.nc", engine="h5netcdf")
    assert ds.sizes["layer"] == 30
    assert set(np.unique(ds["label"].values)) == {"literal", "metaphorical"}
