"""Issue 10 defects whose fix lives in `cse compute` (the lead's area), as the user meets them.

Each test states the behaviour the issue asks for, on real runs of the command line.

File-system faults are injected where results go to disk, `zarr.Array.__setitem__` of the
staging store's ``cse`` array, in a wrapper around
the real entry point (`cse.cli.main`), so the tests do not depend on how compute is split
into modules.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import xarray as xr

from cse import CSEInputError
from cse.io import open_result
from saved_models import TEXTS, save_tiny_model

REPO = Path(__file__).resolve().parents[1]

WRAPPER = '''
import errno, os, shutil, sys
import zarr

MODE = os.environ.get("CSE_TEST_FAULT", "none")
_setitem = zarr.Array.__setitem__

if MODE.startswith("pending:"):
    # A fault while the third batch is saved (a disk that fills, a folder deleted): every run saves each
    # batch at once, and a journaled run (a small netCDF output) writes nothing else until the end.
    import numpy as np

    _savez, _calls, _fault = np.savez, [], MODE.split(":")[1]

    def _full(*args, **kwargs):
        _calls.append(1)
        if len(_calls) == 3:
            if _fault == "rmtree":
                shutil.rmtree(os.environ["CSE_TEST_FOLDER"])
            else:
                code = getattr(errno, _fault)
                raise OSError(code, os.strerror(code), "pending")
        return _savez(*args, **kwargs)

    np.savez = _full
    MODE = "none"


def _faulty(self, key, value):
    # The first write of results into the staging store: the batches computed by then are on disk
    # (a local run saves every batch at once and writes each store chunk when it is complete).
    if MODE != "none" and self.path.rsplit("/", 1)[-1] == "cse" and isinstance(key, slice):
        if MODE == "rmtree":
            shutil.rmtree(os.environ["CSE_TEST_FOLDER"])
        else:
            code = getattr(errno, MODE)
            raise OSError(code, os.strerror(code), self.path)
    return _setitem(self, key, value)


zarr.Array.__setitem__ = _faulty
from cse.cli import main

if __name__ == "__main__":  # Dask's worker processes start by importing this script (multiprocessing spawn)
    main(sys.argv[1:])
'''


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return str(save_tiny_model(tmp_path_factory.mktemp("model") / "tiny"))


@pytest.fixture(scope="module")
def wrapper(tmp_path_factory):
    path = tmp_path_factory.mktemp("wrapper") / "run_cse.py"
    path.write_text(WRAPPER)
    return path


def _env(**extra):
    return {**os.environ, "HF_HUB_OFFLINE": "1", **extra,
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def run_cse(wrapper, *args, cwd, fault="none", **env):
    return subprocess.run([sys.executable, str(wrapper), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env=_env(CSE_TEST_FAULT=fault, **env), timeout=600)


def one_line(proc) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("Warning:")]
    assert proc.returncode != 0 and "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr[-3000:]
    return lines[0]


def texts_file(folder: Path, n: int = 6) -> Path:
    path = folder / "in.txt"
    path.write_text("\n".join(TEXTS[:n]) + "\n")
    return path


def done_batches(output: Path) -> int:
    done = output.parent / f".{output.name}.partial" / "done"
    return sum(len(p.read_bytes().split(b"\n")) - 1 for p in done.glob("*.log")) if done.is_dir() else 0


# --------------------------------------------------------------------------- checked before any work


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("x"), "exists; pass overwrite=True"),
    (lambda p: (p.mkdir(), (p / "notes.txt").write_text("mine")), "folder"),
])
def test_output_is_checked_before_the_model_loads(tmp_path, make, message):
    from cse import compute

    output = tmp_path / "out.nc"
    make(output)
    with pytest.raises(CSEInputError, match=message):
        compute(TEXTS[:2], "/nonexistent/model", output=output)


@pytest.mark.parametrize("seed", [-1, 2**63, 2**70])
def test_seed_out_of_range_is_refused_before_any_work(tmp_path, seed):
    from cse import compute

    output = tmp_path / "out.nc"
    with pytest.raises(CSEInputError, match="'seed'") as error:  # not the model: the seed is checked first
        compute(TEXTS[:2], "/nonexistent/model", seed=seed, output=output)
    assert "9223372036854775807" in str(error.value) or "2**63" in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_seed_2_70_with_netcdf_output_fails_once_and_leaves_nothing(tmp_path, model_dir):
    from cse import compute

    with pytest.raises(CSEInputError, match="seed"):
        compute(TEXTS[:3], model_dir, device="cpu", seed=2**70, output=tmp_path / "out.nc", batch_size=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no staging to resume forever


def test_huge_null_permutations_are_refused_with_the_memory_limit(tmp_path, model_dir):
    from cse import compute

    start = time.perf_counter()
    with pytest.raises(CSEInputError, match=r"null_permutations.*GiB"):
        compute(TEXTS[:2], model_dir, device="cpu", axis="hidden", null_permutations=10**9, output=tmp_path / "o.nc")
    assert time.perf_counter() - start < 30
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- file-system faults during the batches


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory, model_dir, wrapper):
    folder = tmp_path_factory.mktemp("clean")
    texts_file(folder)
    proc = run_cse(wrapper, "compute", "in.txt", "-o", "out.nc", "--model", model_dir, "--batch-size", "1", "-q",
                   cwd=folder)
    assert proc.returncode == 0, proc.stderr
    return open_result(folder / "out.nc").load()


SLOW = pytest.mark.slow  # the fast tier keeps one case of each path (a store's chunk, a journaled batch's file)


@pytest.mark.parametrize("fault, words, output", [
    ("ENOSPC", "space", "out.zarr"), pytest.param("EROFS", "read-only", "out.zarr", marks=SLOW),
    pytest.param("EACCES", "ermission", "out.zarr", marks=SLOW),
    pytest.param("pending:ENOSPC", "space", "out.zarr", marks=SLOW),  # a Zarr output: a batch's file
    ("pending:ENOSPC", "space", "out.nc"), pytest.param("pending:EROFS", "read-only", "out.nc", marks=SLOW),
])
def test_a_file_system_fault_is_one_line_and_resumable(tmp_path, model_dir, wrapper, clean_run, fault, words, output):
    texts_file(tmp_path)
    args = ("compute", "in.txt", "-o", output, "--model", model_dir, "--batch-size", "1", "-q")
    line = one_line(run_cse(wrapper, *args, cwd=tmp_path, fault=fault))
    assert words in line and "--resume" in line, line
    assert not (tmp_path / output).exists() and done_batches(tmp_path / output) >= 1  # the work is kept
    resumed = run_cse(wrapper, *args, "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    resumed = open_result(tmp_path / output).load()
    assert resumed.attrs["command"] == clean_run.attrs["command"].replace("out.nc", output)
    xr.testing.assert_identical(resumed.assign_attrs(command=clean_run.attrs["command"]), clean_run)


@pytest.mark.parametrize("fault, output", [("rmtree", "out.zarr"), ("pending:rmtree", "out.nc")])
def test_output_folder_deleted_during_compute_is_one_line(tmp_path, model_dir, wrapper, fault, output):
    folder = tmp_path / "results"
    folder.mkdir()
    texts_file(tmp_path)
    proc = run_cse(wrapper, "compute", "in.txt", "-o", folder / output, "--model", model_dir, "--batch-size", "1",
                   "-q", cwd=tmp_path, fault=fault, CSE_TEST_FOLDER=str(folder))
    line = one_line(proc)
    assert "results" in line and ("no longer exists" in line or "deleted" in line or "not found" in line), line
    assert not folder.exists()


def test_a_zarr_output_that_is_a_regular_file_is_refused_before_compute(tmp_path, model_dir, wrapper):
    texts_file(tmp_path)
    (tmp_path / "out.zarr").write_text("mine")
    line = one_line(run_cse(wrapper, "compute", "in.txt", "-o", "out.zarr", "--model", model_dir, "--overwrite", "-q",
                            cwd=tmp_path))
    assert "is a regular file, not a Zarr store" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.zarr"]  # no stranded store


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder_is_refused_before_compute(tmp_path, model_dir, wrapper):
    texts_file(tmp_path)
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        line = one_line(run_cse(wrapper, "compute", "in.txt", "-o", folder / "out.nc", "--model", model_dir, "-q",
                                cwd=tmp_path))
    finally:
        folder.chmod(0o755)
    assert "is not writable" in line


# --------------------------------------------------------------------------- signals after some batches


@pytest.mark.parametrize("signum, status, workers", [(signal.SIGINT, 130, None),
                                                     pytest.param(signal.SIGTERM, 143, None, marks=SLOW),
                                                     pytest.param(signal.SIGINT, 130, 2, marks=SLOW)])
def test_interrupt_after_some_batches_says_what_was_kept(tmp_path, model_dir, wrapper, signum, status, workers):
    """One line whatever runs the batches: this process or a local Dask cluster (whose workers stay quiet)."""
    path = tmp_path / "in.txt"
    path.write_text("\n".join(TEXTS * (40 if workers else 8)) + "\n")
    args = ["compute", "in.txt", "-o", "out.zarr", "--model", model_dir, "--batch-size", "1", "-q"]
    args += ["--workers", str(workers)] if workers else []
    proc = subprocess.Popen([sys.executable, str(wrapper), *args], cwd=tmp_path, env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while done_batches(tmp_path / "out.zarr") < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == status, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    import re

    assert re.search(r"\d+ of \d+ batches", lines[0]) and "--resume" in lines[0], lines[0]
    resumed = run_cse(wrapper, *args, "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr


# --------------------------------------------------------------------------- measure


def test_a_meta_device_tensor_is_one_line():
    import torch

    import cse

    with pytest.raises(CSEInputError) as error:
        cse.conditional_scale_entropy(torch.empty(8, 5, 16, device="meta"))
    assert "\n" not in str(error.value) and "meta" in str(error.value)


def test_columns_keeps_only_the_named_input_columns(tmp_path, model_dir, wrapper):
    path = tmp_path / "in.csv"
    path.write_text("text,a,b,c\n" + "".join(f'"{t}",{k},x{k},{k * 2}\n' for k, t in enumerate(TEXTS[:3])))
    proc = run_cse(wrapper, "compute", "in.csv", "-o", "out.nc", "--model", model_dir, "--columns", "a,c", "-q",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    ds = open_result(tmp_path / "out.nc")
    assert "a" in ds.coords and "c" in ds.coords and "b" not in ds.coords
    assert "--columns a,c" in ds.attrs["command"]
