"""Step 4 of `cse.compute`: the executor — the model, and the batches run through it.

`open_executor` loads the model (`cse.models.load_model`, or the model the user holds)
and describes it (`cse.models.model_info`), here or, for a distributed run, on the
workers of a Dask cluster (`cse.pipeline.cluster`). Its ``run`` forwards the batches the
store has left (`cse.pipeline.batch.run_batch`: capture and reduction at once) and writes
each into the store's sink.

Locally, each batch is written by a background thread while the next is forwarded
(`BackgroundWriter`), and a batch is recorded as done only after its write returned,
so an interrupted run resumes exactly. The run holds torch's intra-op threads at
``threads`` when given, and restores them afterwards: results are bitwise identical
between runs with the same threads per process (float32 sums depend on their order).
"""

from __future__ import annotations

import contextlib
import logging

from ..errors import CSEInputError
from .batch import NonFiniteUpdates, non_finite_error, run_batch, torch_threads
from .plan import Run
from .sinks import BackgroundWriter


def run_batches(model, run: Run, todo, sink, log=None, bar=None, max_pending: int = 2) -> list[int]:
    """Compute the batches `todo` with `model` and write them into `sink`, in the background.

    Parameters
    ----------
    model : torch.nn.Module
        The model (or a wrapper that `cse.capture` accepts).
    run : Run
    todo : sequence of int
        Indices of the batches to compute, ascending.
    sink : MemorySink, ChunkedZarrSink or SplitSink
        Anything with ``write_batch(index, start, stop, arrays)`` and ``flush()``.
    log : cse.pipeline.staging.DoneLog, optional
        Records each batch after its write (for resume).
    bar : tqdm, optional
        Advanced by each batch's tokens once written.
    max_pending : int
        Batches that may wait for the writer (bounds memory).

    Returns
    -------
    list of int
        The batches written (all of `todo` unless an exception propagates).

    Raises
    ------
    Exception
        Any error of the forward pass, the reduction or the writer; batches written
        before it stay recorded in `log`. A `KeyboardInterrupt` lets the writer finish
        what is queued first.
    """
    writer = BackgroundWriter(sink, log, max_pending=max_pending)
    reported = 0
    try:
        for index in todo:
            try:
                arrays = run_batch(model, run.sequences(index), run.settings, run.pad_id, save=run.saved,
                                   save_dtype=run.save_dtype, non_finite=run.non_finite)
            except NonFiniteUpdates as exc:
                raise non_finite_error(exc, run.plan.coords["text"].to_numpy(), run.region(index)[0]) from None
            writer.put(index, *run.region(index), arrays)
            reported = _advance(bar, run, writer.written, reported)
    finally:
        writer.close()
        _advance(bar, run, writer.written, reported)
    return list(writer.written)


def _advance(bar, run: Run, written: list, reported: int) -> int:
    """Move the progress bar by the tokens of batches written since the last call."""
    done = list(written)
    if bar is not None:
        bar.update(run.n_tokens_of(done[reported:]))
    return len(done)


class LocalExecutor:
    """Runs the batches in this process.

    Parameters
    ----------
    model : torch.nn.Module
        Loaded and in eval mode.
    info : cse.models.ModelInfo
    threads : int or None
        torch's intra-op threads during the run.
    """

    def __init__(self, model, info, threads=None):
        self.model, self.info, self.threads = model, info, threads

    def run(self, run: Run, store, bar=None) -> None:
        """Compute the batches ``store.todo`` into the store."""
        from ..reduce import kernels_compiled

        if store.todo and not kernels_compiled():  # else the bar sits at 0 % for about a minute, unexplained
            logging.getLogger("cse").info("compiling the wavelet kernels (Numba) for this machine: the first run "
                                          "waits about a minute before its first batch; later runs do not")
        log = store.done_log()
        try:
            with torch_threads(self.threads):
                run_batches(self.model, run, store.todo, store.sink(), log, bar)
        finally:
            if log is not None:
                log.close()


def _local_executor(request) -> LocalExecutor:
    from ..models import load_model, model_info

    spec = request.model
    model, tokenizer = spec.model, spec.tokenizer
    if not spec.loaded:
        model, tokenizer = load_model(spec.name, device=spec.device, dtype=spec.dtype, device_map=spec.device_map)
    # A wrapper (TransformerBridge, nnsight) brings its own tokenizer; a bare model needs one (model_info says so).
    return LocalExecutor(model, model_info(model, tokenizer), spec.threads)


@contextlib.contextmanager
def open_executor(request):
    """The executor of a request: this process, or a Dask cluster (closed on exit).

    Parameters
    ----------
    request : cse.pipeline.request.Request

    Yields
    ------
    LocalExecutor or cse.pipeline.cluster.ClusterExecutor
        With ``info`` (the model's `cse.models.ModelInfo`) and ``run(run, store, bar)``.

    Raises
    ------
    CSEInputError
        A model that cannot be loaded offline, a scheduler that cannot be reached.
    """
    if request.distributed:
        if request.output is None:  # pragma: no cover - refused by the request
            raise CSEInputError("a distributed run needs an output file")
        from .cluster import open_cluster

        with open_cluster(request) as executor:
            yield executor
    else:
        yield _local_executor(request)
