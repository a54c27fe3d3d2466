"""Unit tests of the pipeline's sinks and runners: chunk-buffered writes, pending batches, the background writer.

End-to-end behaviour (resume after SIGKILL, Dask, Zarr outputs) is tested in test_resume.py,
test_distributed.py and test_zarr.py; here the pieces are checked on synthetic arrays.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from cse.layout import result_layout, result_variables
from cse.settings import MeasureSettings
from cse.pipeline import Plan
from cse.pipeline.sinks import BackgroundWriter, ChunkedZarrSink, MemorySink, ZarrSink, settle_pending

N_LAYERS = 4
SETTINGS = MeasureSettings.resolve("depth", "haar", 2, n_steps=N_LAYERS)


def result_template(plan, settings, attrs, n_layers, lazy, chunk=None):
    """The layout of a run of `plan` (as `cse.pipeline.store.run_layout` builds it)."""
    coords = {name: plan.coords[name].to_numpy() for name in plan.coords.columns}
    return result_layout(settings, n_layers, coords, attrs=attrs, names=result_variables(settings), lazy=lazy,
                         chunk=chunk)


def _plan(lengths):
    starts = np.r_[0, np.cumsum(lengths)]
    n = int(starts[-1])
    coords = pd.DataFrame({
        "text": np.repeat(np.arange(len(lengths)), lengths), "position": np.concatenate([np.arange(k) for k in lengths]),
        "token_id": np.zeros(n, dtype=np.int64), "token_str": np.array(["x"] * n, dtype=object),
        "word": np.zeros(n, dtype=np.int64), "is_word_start": np.ones(n, bool), "is_special": np.zeros(n, bool),
    })
    return Plan(sequences=[np.zeros(k, dtype=np.int64) for k in lengths], starts=starts, coords=coords)


def _arrays(rng, n):
    return {"cse": rng.random((n, N_LAYERS)), "scale_fraction": rng.random((n, N_LAYERS, 3)),
            "update_norm": rng.random((n, N_LAYERS)), "surprisal": rng.random(n)}


@pytest.fixture
def store(tmp_path):
    plan = _plan([5] * 10)  # 50 tokens; batches of 2 texts = 10 tokens; chunks of 8 tokens
    template = result_template(plan, SETTINGS, {"cse_version": "test"}, N_LAYERS, lazy=True, chunk=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        template.to_zarr(tmp_path / "s.zarr", mode="w", compute=False, consolidated=True)
    return tmp_path / "s.zarr"


def _regions():
    return {i: (10 * i, 10 * i + 10) for i in range(5)}


def test_chunked_sink_writes_complete_chunks_and_keeps_batches_durable(store, tmp_path):
    rng = np.random.default_rng(0)
    data = {i: _arrays(rng, 10) for i in range(5)}
    sink = ChunkedZarrSink(ZarrSink(store), _regions(), tmp_path / "pending")
    assert sink.write_batch(0, 0, 10, data[0]) == [0]
    # Batch 0 fills chunk 0 (tokens 0-7) entirely: on disk; chunk 1 (8-15) waits for batch 1.
    on_disk = ZarrSink(store).arrays["cse"]
    np.testing.assert_array_equal(on_disk[0:8], data[0]["cse"][:8])
    assert np.isnan(on_disk[8:16]).all()
    assert (tmp_path / "pending" / "0.npz").is_file()  # durable although chunk 1 is not written
    for i in (1, 2, 3, 4):
        assert sink.write_batch(i, *_regions()[i], data[i]) == [i]
    assert sink.flush() == []
    assert not list((tmp_path / "pending").iterdir())
    result = xr.open_zarr(store)
    for name in data[0]:
        np.testing.assert_array_equal(result[name].values, np.concatenate([data[i][name] for i in range(5)]))


def test_pending_batches_of_a_killed_run_are_settled_into_the_store(store, tmp_path):
    rng = np.random.default_rng(1)
    data = {i: _arrays(rng, 10) for i in range(5)}
    sink = ChunkedZarrSink(ZarrSink(store), _regions(), tmp_path / "pending")
    for i in (0, 1, 2):
        sink.write_batch(i, *_regions()[i], data[i])
    # "killed": no flush. Batch 2's second chunk (24-31) waits for batch 3; its file stays.
    assert sorted(p.stem for p in (tmp_path / "pending").glob("*.npz")) == ["2"]
    assert settle_pending(ZarrSink(store), tmp_path / "pending") == 1
    assert not list((tmp_path / "pending").glob("*"))
    # The resumed run computes batches 3 and 4 only; the result equals an uninterrupted run.
    resumed = ChunkedZarrSink(ZarrSink(store), {i: _regions()[i] for i in (3, 4)}, tmp_path / "pending")
    for i in (3, 4):
        resumed.write_batch(i, *_regions()[i], data[i])
    resumed.flush()
    result = xr.open_zarr(store)
    np.testing.assert_array_equal(result["scale_fraction"].values,
                                  np.concatenate([data[i]["scale_fraction"] for i in range(5)]))


def test_background_writer_reraises_the_writer_error_in_the_caller():
    class Broken(MemorySink):
        def write_batch(self, index, start, stop, arrays):
            raise OSError(28, "No space left on device")

    writer = BackgroundWriter(Broken(None), max_pending=1)
    writer.put(0, 0, 1, {})
    with pytest.raises(OSError, match="No space left"):
        for index in range(1, 10):  # the error surfaces at a later put, or at close
            writer.put(index, 0, 1, {})
        writer.close()
    with pytest.raises(OSError, match="No space left"):
        writer.close()  # stops the thread and raises the error again
    assert not writer.thread.is_alive()
    assert writer.written == []  # nothing is logged as done after a failed write


def test_background_writer_logs_only_stored_batches(tmp_path):
    class Log:
        def __init__(self):
            self.marked = []

        def mark(self, index):
            self.marked.append(index)

    plan = _plan([3, 3])
    sink = MemorySink(result_template(plan, SETTINGS, {}, N_LAYERS, lazy=False))
    log = Log()
    writer = BackgroundWriter(sink, log)
    rng = np.random.default_rng(2)
    writer.put(0, 0, 3, _arrays(rng, 3))
    writer.put(1, 3, 6, _arrays(rng, 3))
    writer.close()
    assert log.marked == [0, 1] and writer.written == [0, 1]
    assert np.isfinite(sink.ds["cse"].values).all()


def test_template_marks_boundary_coefficients_per_axis():
    plan = _plan([9, 5])
    depth = result_template(plan, MeasureSettings.resolve("depth", "haar", 2, n_steps=8), {}, 8, lazy=False)
    assert depth["boundary_affected"].dims == ("layer",)
    assert depth["boundary_affected"].values.tolist() == [True, True, True] + [False] * 5  # L_2 - 2 = 2
    token = result_template(plan, MeasureSettings.resolve("token", "haar", 2, n_steps=5), {}, 8, lazy=False)
    assert token["boundary_affected"].dims == ("token",)
    assert token["boundary_affected"].values.tolist() == ([True] * 3 + [False] * 6) + ([True] * 3 + [False] * 2)
    hidden = result_template(plan, MeasureSettings.resolve("hidden", "db4", 2, n_steps=64), {}, 8, lazy=False)
    assert "boundary_affected" not in hidden.coords
