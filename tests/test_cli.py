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
    ds.close()
    # Run twice, as a user repeating the README's command does: the example replaces its own outputs ...
    again = run_cse("compute", "--example", "-o", tmp_path / "ex.nc", "-q", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    # ... and nothing else: a figure of the user's at the plot path is refused before any work.
    png.write_bytes(b"\x89PNG\r\n\x1a\n mine")
    refused = run_cse("compute", "--example", "-o", tmp_path / "ex.nc", "-q", cwd=tmp_path)
    assert refused.returncode == 2 and "exists; pass --overwrite" in refused.stderr
    assert png.read_bytes().endswith(b"mine")


# --------------------------------------------------------------------------- issue 10: one line, signals, quiet, info


@pytest.mark.parametrize("args, pattern", [
    (["compute", "--axis", "layers"], r"Invalid value for '--axis': 'layers' is not one of"),
    (["compute", "--nope"], r"No such option '--nope'"),
    (["compute", "--batch-size", "many"], r"'many' is not a valid integer"),
    (["nocommand"], r"No such command 'nocommand'"),
    (["info"], r"Missing argument 'RESULT'"),
    (["stats", "x.nc"], r"Missing option '--by'"),
    (["stats", "x.nc", "--by", "label", "--groups", "a"], r"--groups"),
])
def test_click_usage_errors_are_one_line(tmp_path, args, pattern):
    import re

    proc = run_cse(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and re.search(pattern, lines[0]), proc.stderr
    assert "Usage:" not in proc.stderr and proc.stdout == ""


SLEEP_COMMAND = '''
import pathlib, time
import click
from cse.errors import RunInterrupted

@click.command("sleep")
@click.option("--kept", is_flag=True)
def sleep_command(kept):
    pathlib.Path("started").write_text("1")
    try:
        time.sleep(120)
    except KeyboardInterrupt as exc:
        if kept:
            raise RunInterrupted("interrupted: 3 of 9 batches of out.nc are kept in .out.nc.partial; "
                                 "rerun the same command with --resume to continue", exc.signum if hasattr(exc, "signum") else 2)
        raise
'''


@pytest.mark.parametrize("signum, status", [(2, 130), (15, 143)])
@pytest.mark.parametrize("kept", [False, True])
def test_signals_print_one_line_and_exit_128_plus_signum(tmp_path, signum, status, kept):
    import signal
    import time

    (tmp_path / "sleepcmd.py").write_text(SLEEP_COMMAND)
    script = "import sys; sys.path.insert(0, '.'); import cse.cli as c; c.COMMANDS['sleep'] = 'sleepcmd'; c.main()"
    proc = subprocess.Popen([sys.executable, "-c", script, "sleep", *(["--kept"] if kept else [])], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.Signals(signum))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    if kept:
        assert lines[0] == ("interrupted: 3 of 9 batches of out.nc are kept in .out.nc.partial; rerun the same "
                            "command with --resume to continue")
    else:
        name = "Ctrl-C (SIGINT)" if signum == 2 else "SIGTERM"
        assert lines[0].startswith(f"interrupted by {name}; no output was written")


GGUF_BAR = '''
import sys
if sys.argv[1] == "quiet-first":
    import cse.io; cse.io.silence_progress_bars()
import transformers.modeling_gguf_pytorch_utils as gguf
from transformers.utils import logging
if sys.argv[1] == "quiet-later":
    import cse.io; cse.io.silence_progress_bars()
for _ in gguf.tqdm(range(3), desc="Converting and de-quantizing GGUF tensors..."):
    pass
for _ in logging.tqdm(range(3), desc="Loading weights"):
    pass
'''


@pytest.mark.parametrize("when", ["quiet-first", "quiet-later"])
def test_quiet_silences_transformers_gguf_and_loading_bars(tmp_path, when):
    script = tmp_path / "bars.py"
    script.write_text(GGUF_BAR)
    loud = subprocess.run([sys.executable, str(script), "loud"], capture_output=True, text=True, timeout=300)
    assert "Converting and de-quantizing GGUF" in loud.stderr and "Loading weights" in loud.stderr  # the control
    quiet = subprocess.run([sys.executable, str(script), when], capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


def test_compute_quiet_prints_only_the_result_line(tmp_path, tiny_dir):
    src = tmp_path / "in.txt"
    src.write_text("The dog attacked the mailman .\nThe senator attacked the bill .\n")
    proc = run_cse("compute", src, "-o", tmp_path / "out.nc", "--model", tiny_dir, "-q")
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"wrote {tmp_path / 'out.nc'}: "), proc.stderr
    assert "\r" not in proc.stderr and "%|" not in proc.stderr


def _result(n_tokens=6, n_layers=8, **extra):
    rng = np.random.default_rng(0)
    ds = xr.Dataset(
        {"cse": (("token", "layer"), rng.random((n_tokens, n_layers))),
         "scale_fraction": (("token", "layer", "scale"), rng.random((n_tokens, n_layers, 4))),
         "surprisal": ("token", rng.random(n_tokens))},
        coords={"text": ("token", np.arange(n_tokens) // 3), "is_special": ("token", np.arange(n_tokens) % 3 == 0),
                "layer": np.arange(n_layers), "scale": ["d1", "d2", "d3", "a3"],
                "boundary_affected": ("layer", np.arange(n_layers) <= 6)},
        attrs={"axis": "depth", "model": "tiny", "null_permutations": 0},
    )
    return ds.assign(**extra)


def _info_variants():
    base = _result()
    token_axis = base.assign_coords(boundary_affected=("token", np.arange(6) % 3 == 1)).assign_attrs(axis="token")
    null = base.assign(cse_z=(("token", "layer"), np.zeros((6, 8))),
                       cse_null_mean=(("token", "layer"), np.full((6, 8), 0.5))).assign_attrs(null_permutations=20)
    return {
        "depth": (base, ["boundary  layers 0-6 of 8 are boundary_affected"]),
        "zero tokens": (_result(n_tokens=0), ["0 tokens", "no cells (the result has no tokens)"]),
        "layer-major cse": (base.assign(cse=base["cse"].transpose("layer", "token")), ["mean CSE by layer"]),
        "cse over token only": (base.assign(cse=("token", np.arange(6.0))), ["cse       mean"]),
        "missing coordinates": (base.drop_vars(["text", "is_special", "scale", "boundary_affected", "surprisal"]),
                                ["? texts", "no boundary_affected coordinate"]),
        "token axis": (token_axis, ["2 of 6 tokens are boundary_affected"]),
        "null": (null, ["null      cse_z mean 0.000", "20 permutations"]),
        "all nan": (base.assign(cse=base["cse"] * np.nan), ["mean n/a", "undefined (NaN) 32 of 32"]),
    }


@pytest.mark.parametrize("variant", list(_info_variants()))
def test_info_never_fails_on_a_result_stats_accepts(tmp_path, variant):
    from cse.io import write_result

    ds, expected = _info_variants()[variant]
    path = tmp_path / "r.zarr"
    write_result(ds, path)
    proc = run_cse("info", path)
    assert proc.returncode == 0, proc.stderr
    for text in expected:
        assert text in proc.stdout, proc.stdout
