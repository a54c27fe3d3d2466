"""Dask: batches sharded over a local cluster give the single-process result; Dask-backed stats."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from cse import CSEInputError
from cse.capture import find_blocks
from cse.models import load_model
from cse.pipeline import Staging, compute
from saved_models import TEXTS, save_tiny_model

COMMAND = "cse compute test"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return str(save_tiny_model(tmp_path_factory.mktemp("model") / "tiny"))


@pytest.fixture(scope="module")
def frame():
    texts = TEXTS * 2
    return pd.DataFrame({"text": texts, "label": np.arange(len(texts)) % 2})


@pytest.fixture(scope="module")
def single(model_dir, frame):
    return compute(frame, model_dir, batch_size=3, device="cpu", command=COMMAND)


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        yield cluster, client


def test_two_workers_equal_single_process(tmp_path, model_dir, frame, single, cluster):
    import cse.pipeline.cluster

    local, client = cluster
    # Small chunks: most batches share chunks with their neighbours, written by either worker.
    result = compute(frame, model_dir, batch_size=3, device="cpu", command=COMMAND, output=tmp_path / "r.zarr",
                     scheduler=local.scheduler_address, zarr_chunk=16)
    xr.testing.assert_identical(result.load(), single)
    # Each worker loaded the model once, however many tasks it ran.
    loads = client.run(lambda: cse.pipeline.cluster.LOADS)
    assert sorted(loads.values()) == [1, 1]


@pytest.mark.parametrize("name", ["r.zarr", "r.nc"])
def test_saved_gram_matrices_and_updates_on_a_cluster(tmp_path, model_dir, frame, cluster, name):
    local, _ = cluster
    kwargs = {"batch_size": 3, "device": "cpu", "command": COMMAND, "save": ["gram", "updates"]}
    (tmp_path / "alone").mkdir()
    alone = compute(frame, model_dir, output=tmp_path / "alone" / name, **kwargs)
    sharded = compute(frame, model_dir, output=tmp_path / name, scheduler=local.scheduler_address, zarr_chunk=16,
                      **kwargs)
    xr.testing.assert_identical(sharded.load(), alone.load())
    assert sharded["gram"].dims == ("token", "layer", "layer2")
    stores = [xr.open_zarr(p / res.attrs["updates_store"]) for p, res in ((tmp_path / "alone", alone),
                                                                            (tmp_path, sharded))]
    xr.testing.assert_identical(stores[1].load(), stores[0].load())
    np.testing.assert_array_equal(stores[1]["text"].values, sharded["text"].values)


@pytest.mark.slow
def test_local_cluster_from_workers_option(tmp_path, model_dir, frame, single):
    result = compute(frame, model_dir, batch_size=3, device="cpu", command=COMMAND, output=tmp_path / "r.nc",
                     workers=2)
    xr.testing.assert_identical(result.load(), single)


@pytest.mark.parametrize("name", ["r.zarr", "r.nc"])  # a Zarr staging store, or a journaled netCDF run
def test_distributed_resume_skips_finished_batches(tmp_path, model_dir, frame, single, cluster, name):
    local, client = cluster
    output = tmp_path / name
    # Interrupt a single-process run after 4 batches ...
    model, tokenizer = load_model(model_dir, device="cpu")
    calls = {"n": 0}

    def fail(module, args, out):
        calls["n"] += 1
        if calls["n"] > 4:
            raise RuntimeError("interrupted")

    handle = find_blocks(model)[1][0].register_forward_hook(fail)
    with pytest.raises(RuntimeError, match="interrupted"):
        compute(frame, model, tokenizer, batch_size=3, command=COMMAND, output=output, zarr_chunk=16)
    handle.remove()
    staging = Staging(output)
    first_logs = {p.name for p in staging.done_dir.glob("*.log")}
    assert staging.done_batches() == {0, 1, 2, 3}
    # ... and finish it on the cluster.
    n_batches = -(-len(frame) // 3)
    before = {p.name: p.read_bytes().count(b"\n") for p in staging.done_dir.glob("*.log")}
    assert sum(before.values()) == 4 and set(before) == first_logs
    result = compute(frame, model_dir, batch_size=3, device="cpu", command=COMMAND, output=output, resume=True,
                     scheduler=local.scheduler_address)
    xr.testing.assert_identical(result.load(), single)
    assert n_batches > 4 and not staging.root.exists()


def test_distributed_needs_a_named_model_and_an_output(model_dir, frame):
    model, tokenizer = load_model(model_dir, device="cpu")
    with pytest.raises(TypeError, match="needs the model's name or path"):
        compute(frame, model, tokenizer, output="r.zarr", workers=2)
    with pytest.raises(CSEInputError, match="needs an output file"):
        compute(frame, model_dir, workers=2)
    with pytest.raises(CSEInputError, match="not both"):
        compute(frame, model_dir, output="r.zarr", workers=2, scheduler="tcp://127.0.0.1:1")
    with pytest.raises(CSEInputError, match=r"'workers': expected an integer in \[1, 4096\], got 0"):
        compute(frame, model_dir, output="r.zarr", workers=0)


def test_stats_compare_on_dask_backed_result(tmp_path, model_dir, frame, single):
    stats = pytest.importorskip("cse.stats")
    compute(frame, model_dir, batch_size=3, device="cpu", command=COMMAND, output=tmp_path / "r.zarr")
    lazy = xr.open_zarr(tmp_path / "r.zarr", chunks={"token": 100})
    assert lazy["cse"].chunks is not None  # Dask-backed
    kwargs = dict(by="label", n_permutations=199, n_bootstrap=99, seed=3)
    xr.testing.assert_identical(stats.compare(lazy, **kwargs), stats.compare(single, **kwargs))
    if hasattr(stats, "relative_depth"):
        xr.testing.assert_identical(stats.relative_depth(lazy, bins=4), stats.relative_depth(single, bins=4))


@pytest.mark.slow
def test_two_worker_default_model_run_equals_single_process(tmp_path, default_model):
    """Acceptance: the default model on real text, a 2-worker local cluster equals one process."""
    from cse.example import example_path

    model, tokenizer = default_model
    single = compute(example_path(), model, tokenizer, text_column="sentence", batch_size=4, command=COMMAND)
    result = compute(example_path(), None, text_column="sentence", batch_size=4, device="cpu", command=COMMAND,
                     output=tmp_path / "ex.zarr", workers=2)
    xr.testing.assert_identical(result.load(), single)


# --------------------------------------------------------------------------- big models: the device path


@pytest.mark.parametrize(
    "axis, extra",
    [("depth", {}), ("depth", {"boundary": "periodic", "normalize": "none"}), ("token", {"level": 2}),
     ("hidden", {"null_permutations": 5})],
)
def test_torch_reduction_matches_numba_on_cpu(model_dir, axis, extra):
    """The GPU path (reduce with the torch twin where the updates are) checked on the CPU."""
    pytest.importorskip("cse_kernels.torch_twin")
    from cse.settings import MeasureSettings
    from cse.pipeline import plan_tokens, run_batch

    model, tokenizer = load_model(model_dir, device="cpu")
    plan = plan_tokens(pd.DataFrame({"text": TEXTS[:5]}), tokenizer, max_length=128)
    settings = MeasureSettings.resolve(axis, **extra)
    settings = settings.fit(settings.series_length(8, 8, 32))
    on_device = run_batch(model, plan.sequences, settings, reducer="torch")
    on_cpu = run_batch(model, plan.sequences, settings, reducer="numba")
    assert on_device.keys() == on_cpu.keys()
    for name in on_cpu:
        assert on_device[name].dtype == np.float64 and on_device[name].shape == on_cpu[name].shape, name
        np.testing.assert_allclose(on_device[name], on_cpu[name], rtol=1e-9, atol=1e-12, err_msg=name)


def test_device_map_and_dtype_reach_the_model(model_dir, single, frame):
    pytest.importorskip("accelerate")
    mapped = compute(frame, model_dir, batch_size=3, device_map="auto", command=COMMAND)
    xr.testing.assert_identical(mapped, single)
    half = compute(frame, model_dir, batch_size=3, device="cpu", dtype="bfloat16", command=COMMAND)
    assert half.attrs["dtype"] == "bfloat16" and half["cse"].dtype == np.float64
    special = single["is_special"].values
    # bfloat16 weights change the model's numbers, not what CSE measures: close, not equal.
    np.testing.assert_allclose(half["cse"].values[~special], single["cse"].values[~special], atol=0.1)


@pytest.mark.slow
def test_threads_reach_the_workers(tmp_path, model_dir, frame, single):
    """`threads` holds on every worker: a run at two threads per worker equals one at two threads here."""
    local_two = compute(frame, model_dir, batch_size=3, device="cpu", command=COMMAND, threads=2)
    result = compute(frame, model_dir, batch_size=3, device="cpu", command=COMMAND, output=tmp_path / "r.zarr",
                     workers=2, threads=2)
    xr.testing.assert_identical(result.load(), local_two)


@pytest.mark.slow
def test_real_model_dask_run_is_identical_at_equal_threads(tmp_path, metaphor_dir):
    """The README's guarantee on the default model: 2 workers at one thread each equal one process at one thread."""
    from cse.io import read_texts

    frame = read_texts(metaphor_dir / "moh-x.csv", text_column="sentence").iloc[:40]
    single = compute(frame, None, device="cpu", threads=1, batch_size=8, command=COMMAND)
    distributed = compute(frame, None, device="cpu", batch_size=8, command=COMMAND, output=tmp_path / "r.zarr",
                          workers=2)  # Dask's workers run torch at one thread
    xr.testing.assert_identical(distributed.load(), single)


@pytest.mark.slow
def test_a_journaled_resume_reads_what_a_store_holds(tmp_path, model_dir, frame, single, monkeypatch):
    """A netCDF run interrupted while it filled a Zarr store is resumed journaled (in memory), and vice versa."""
    from cse.pipeline import store as store_module

    model, tokenizer = load_model(model_dir, device="cpu")
    for first, then in ((0, store_module.JOURNAL_BYTES), (store_module.JOURNAL_BYTES, 0)):
        output = tmp_path / f"r{first}.nc"
        calls = {"n": 0}

        def fail(module, args, out):
            calls["n"] += 1
            if calls["n"] > 3:
                raise RuntimeError("interrupted")

        monkeypatch.setattr(store_module, "JOURNAL_BYTES", first)  # 0: never journaled
        handle = find_blocks(model)[1][0].register_forward_hook(fail)
        with pytest.raises(RuntimeError, match="interrupted"):
            compute(frame, model, tokenizer, batch_size=3, command=COMMAND, output=output, zarr_chunk=4)
        handle.remove()
        staging = Staging(output)
        assert staging.done_batches() == {0, 1, 2} and staging.has_store == (first == 0)
        monkeypatch.setattr(store_module, "JOURNAL_BYTES", then)
        result = compute(frame, model, tokenizer, batch_size=3, command=COMMAND, output=output, resume=True,
                         zarr_chunk=4)
        xr.testing.assert_identical(result.load(), single.assign_attrs(command=COMMAND))
        assert not staging.root.exists()
