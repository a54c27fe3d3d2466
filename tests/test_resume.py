"""Resume: a run killed at any moment finishes, with --resume, identical to an uninterrupted run."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import xarray as xr

from cse import CSEInputError
from cse.capture import find_blocks
from cse.models import load_model
from cse.io import open_result
from cse.pipeline import Staging, compute
from saved_models import TEXTS, save_tiny_model

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return str(save_tiny_model(tmp_path_factory.mktemp("model") / "tiny"))


@pytest.fixture
def input_file(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("\n".join(TEXTS) + "\n")
    return path


def _interrupt(model_dir, input_file, output, n_ok=3, **kwargs):
    """Run with a model that fails on forward pass `n_ok + 1`: `n_ok` batches are left done."""
    model, tokenizer = load_model(model_dir, device="cpu")
    calls = {"n": 0}

    def fail(module, args, output):
        calls["n"] += 1
        if calls["n"] > n_ok:
            raise KeyboardInterrupt  # what Ctrl-C raises

    handle = find_blocks(model)[1][0].register_forward_hook(fail)
    try:
        with pytest.raises(KeyboardInterrupt):
            compute(input_file, model, tokenizer, output=output, **kwargs)
    finally:
        handle.remove()
    return model, tokenizer


def _count_forwards(model):
    calls = {"n": 0}

    def count(module, args, output):
        calls["n"] += 1

    return calls, find_blocks(model)[1][0].register_forward_hook(count)


def test_resume_equals_uninterrupted_without_recomputing(tmp_path, model_dir, input_file):
    kwargs = dict(batch_size=4, command="cse compute in.txt", zarr_chunk=32)
    output = tmp_path / "out.zarr"
    model, tokenizer = _interrupt(model_dir, input_file, output, n_ok=3, **kwargs)
    assert not output.exists()
    assert Staging(output).done_batches() == {0, 1, 2}
    calls, handle = _count_forwards(model)
    try:
        resumed = compute(input_file, model, tokenizer, output=output, resume=True, **kwargs).load()
    finally:
        handle.remove()
    n_batches = -(-len(TEXTS) // 4)
    assert calls["n"] == n_batches - 3  # finished batches were not recomputed
    assert not Staging(output).root.exists()
    reference = compute(input_file, model, tokenizer, output=tmp_path / "ref.zarr", **kwargs).load()
    xr.testing.assert_identical(resumed, reference)


def test_interrupted_run_is_not_discarded_silently(tmp_path, model_dir, input_file):
    output = tmp_path / "out.nc"
    model, tokenizer = _interrupt(model_dir, input_file, output, n_ok=2, batch_size=4)
    with pytest.raises(CSEInputError, match=r"left 2 of 7 batches .* add resume=True to continue it or restart=True"):
        compute(input_file, model, tokenizer, output=output, batch_size=4)
    calls, handle = _count_forwards(model)
    try:
        compute(input_file, model, tokenizer, output=output, batch_size=4, restart=True)
    finally:
        handle.remove()
    assert calls["n"] == 7 and output.is_file()
    assert not Staging(output).root.exists()


def test_resume_without_interrupted_run_starts_afresh(tmp_path, model_dir, input_file):
    output = tmp_path / "out.nc"
    ds = compute(input_file, model_dir, device="cpu", output=output, batch_size=8, resume=True)
    assert ds.sizes["token"] > 0 and output.is_file()


@pytest.mark.parametrize(
    "change, field",
    [
        ({"batch_size": 3}, "batch_size"),
        ({"level": 2}, "level"),
        ({"axis": "hidden"}, "axis"),
        ({"add_bos": False}, "add_bos"),
        ({"input": "other"}, "input_sha256"),
        ({"model": "other"}, "weights_sha256"),
    ],
)
def test_mismatched_resume_is_refused(tmp_path, model_dir, input_file, change, field):
    output = tmp_path / "out.zarr"
    kwargs = {"batch_size": 4, **change}
    if "model" in kwargs:
        model_dir = str(save_tiny_model(tmp_path / "model"))
    model, tokenizer = _interrupt(model_dir, input_file, output, n_ok=2, batch_size=4)
    path = input_file
    if kwargs.pop("input", None):
        path = tmp_path / "in2.txt"
        path.write_text("\n".join(reversed(TEXTS)) + "\n")
    if kwargs.pop("model", None):
        save_tiny_model(model_dir, seed=1)  # the same folder, retrained in place
        model, tokenizer = load_model(model_dir, device="cpu")
    with pytest.raises(CSEInputError, match=rf"cannot resume .*out\.zarr: the interrupted run has {field} = .*restart=True"):
        compute(path, model, tokenizer, output=output, resume=True, **kwargs)
    assert Staging(output).done_batches() == {0, 1}  # the refused run touched nothing


def test_a_second_writer_is_refused(tmp_path, model_dir, input_file):
    output = tmp_path / "out.nc"
    with Staging(output):
        with pytest.raises(CSEInputError, match=rf"another cse compute \(pid {os.getpid()}\) is writing"):
            compute(input_file, model_dir, device="cpu", output=output, resume=True)


def _cse(*args, cwd):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "cse.cli", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _kill_midway(args, staging: Staging, cwd, at_least: int, timeout: float = 300):
    proc = _cse(*args, cwd=cwd)
    deadline = time.monotonic() + timeout
    while len(staging.done_batches()) < at_least:
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return len(staging.done_batches())


@pytest.mark.slow
def test_sigkilled_cli_run_resumes_identically(tmp_path, model_dir, input_file):
    # Six copies of the corpus, one text per batch: 162 batches, killed after a few.
    input_file.write_text("\n".join(TEXTS * 6) + "\n")
    n_batches = len(TEXTS) * 6
    output = tmp_path / "out.nc"
    args = ["compute", input_file, "-o", output.name, "--model", model_dir, "--batch-size", "1", "--device", "cpu"]
    staging = Staging(output)
    n_done = _kill_midway([*args, "-q"], staging, tmp_path, at_least=5)
    assert not output.exists() and 0 < n_done < n_batches
    # Nothing visible looks like a result: only the hidden staging folder is left.
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == [input_file.name]

    proc = _cse(*args, "--resume", cwd=tmp_path)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    assert f"resuming {output.name}: {n_done} of {n_batches} batches already done" in err
    assert f"computed {n_batches - n_done} of {n_batches} batches" in err  # none recomputed
    assert not staging.root.exists()
    resumed = open_result(output).load()
    reference = compute(input_file, model_dir, device="cpu", batch_size=1, output=tmp_path / "ref.nc",
                        command=shlex.join(["cse", *map(str, args)]))
    xr.testing.assert_identical(resumed, reference.load())


@pytest.mark.slow
def test_sigkilled_default_model_run_resumes_identically(tmp_path, default_model):
    """Acceptance: the default model on real text, killed mid-way, resumed, equals an uninterrupted run."""
    from cse.example import example_path

    output = tmp_path / "ex.nc"
    args = ["compute", example_path(), "--text-column", "sentence", "-o", output.name, "--batch-size", "2",
            "--device", "cpu"]
    staging = Staging(output)
    n_done = _kill_midway([*args, "-q"], staging, tmp_path, at_least=2, timeout=600)
    assert not output.exists()
    proc = _cse(*args, "--resume", cwd=tmp_path)
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    assert f"resuming {output.name}: {n_done} of" in err
    resumed = open_result(output).load()
    model, tokenizer = default_model
    reference = compute(example_path(), model, tokenizer, text_column="sentence", batch_size=2,
                        command=shlex.join(["cse", *map(str, args)]))
    xr.testing.assert_identical(resumed, reference)
