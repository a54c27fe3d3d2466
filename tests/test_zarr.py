"""Zarr output: written region by region into a staging store, identical to netCDF, atomic."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from cse import CSEInputError
from cse.io import open_result
from cse.layout import token_chunk
from cse.pipeline import Staging, compute
from cse.pipeline.sinks import ZarrSink
from saved_models import TEXTS, save_tiny_model

COMMAND = "cse compute test"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return str(save_tiny_model(tmp_path_factory.mktemp("model") / "tiny"))


@pytest.fixture(scope="module")
def frame():
    return pd.DataFrame({"text": TEXTS, "label": np.arange(len(TEXTS)) % 2, "genre": ["news", "fiction", "academic"] * 9})


@pytest.fixture(scope="module")
def in_memory(model_dir, frame):
    return compute(frame, model_dir, batch_size=4, device="cpu", command=COMMAND)


def test_zarr_identical_to_netcdf_and_memory(tmp_path, model_dir, frame, in_memory):
    # A small chunk: batches start and end inside chunks, so region writes merge into shared chunks.
    kwargs = dict(batch_size=4, device="cpu", command=COMMAND, zarr_chunk=50)
    nc = compute(frame, model_dir, output=tmp_path / "r.nc", **kwargs)
    zr = compute(frame, model_dir, output=tmp_path / "r.zarr", **kwargs)
    from_zarr = xr.open_zarr(tmp_path / "r.zarr").load()
    xr.testing.assert_identical(from_zarr, open_result(tmp_path / "r.nc").load())
    xr.testing.assert_identical(from_zarr, in_memory)
    xr.testing.assert_identical(zr.load(), nc.load())
    assert not np.isnan(from_zarr["cse"].values[~from_zarr["is_special"].values]).any()


def test_zarr_store_is_consolidated_and_chunked(tmp_path, model_dir, frame):
    import zarr

    compute(frame, model_dir, batch_size=4, device="cpu", output=tmp_path / "r.zarr", zarr_chunk=64)
    group = zarr.open_consolidated(str(tmp_path / "r.zarr"), mode="r")
    assert group["cse"].chunks[0] == 64
    assert group["scale_fraction"].chunks[1:] == group["scale_fraction"].shape[1:]
    # Nothing of the run's bookkeeping is left beside or in the output.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.zarr"]
    assert not (tmp_path / "r.zarr" / "manifest.json").exists()


def test_token_chunk_targets_a_few_mebibytes():
    assert token_chunk(10**7, 30, 4) == 4096  # 4096 * 30 * 4 * 8 bytes = 3.75 MiB
    assert token_chunk(100, 30, 4) == 100  # never more than the tokens
    assert token_chunk(10**7, 2000, 12) == 256  # at least 256 tokens


def test_shared_chunks_are_the_partly_covered_ones(tmp_path, model_dir, frame):
    compute(frame, model_dir, batch_size=4, device="cpu", output=tmp_path / "r.zarr", zarr_chunk=10)
    sink = ZarrSink(tmp_path / "r.zarr")
    n = sink.n_tokens
    assert sink.shared_chunks(0, 10) == []
    assert sink.shared_chunks(0, 15) == [1]
    assert sink.shared_chunks(5, 10) == [0]
    assert sink.shared_chunks(5, 35) == [0, 3]
    assert sink.shared_chunks(12, 18) == [1]
    assert sink.shared_chunks(n - n % 10 if n % 10 else n - 10, n) == []  # the last, short chunk is whole


def test_failed_run_leaves_no_output(tmp_path, model_dir, frame):
    from cse.capture import find_blocks
    from cse.models import load_model

    model, tokenizer = load_model(model_dir, device="cpu")
    calls = {"n": 0}

    def fail_on_third_batch(module, args, output):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("simulated failure")

    handle = find_blocks(model)[1][0].register_forward_hook(fail_on_third_batch)
    try:
        for name in ("r.nc", "r.zarr"):
            calls["n"] = 0
            with pytest.raises(RuntimeError, match="simulated failure"):
                compute(frame, model, tokenizer, batch_size=4, output=tmp_path / name)
            assert not (tmp_path / name).exists()
            # Only the hidden staging folder remains, with the two finished batches recorded.
            staging = Staging(tmp_path / name)
            assert staging.done_batches() == {0, 1}
            assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == []
    finally:
        handle.remove()


def test_output_errors_before_work(tmp_path, model_dir, frame):
    with pytest.raises(CSEInputError, match=r"must end in \.nc .* or \.zarr"):
        compute(frame, model_dir, output=tmp_path / "r.csv")
    with pytest.raises(CSEInputError, match="does not exist; create it first"):
        compute(frame, model_dir, device="cpu", output=tmp_path / "missing" / "r.zarr")
    with pytest.raises(CSEInputError, match="resume needs an output file"):
        compute(frame, model_dir, resume=True)
