"""The local runner: batches forwarded in this process, written by a background thread.

Each batch is forwarded and reduced here while the previous one is written into its
token region (`BackgroundWriter`), so the sink's write overlaps the next forward
pass. A batch is recorded as done only after its write returned: an interrupted
run resumes exactly.
"""

from __future__ import annotations

from .plan import Work
from .reduction import run_batch
from .sinks import BackgroundWriter, ChunkedZarrSink, ZarrSink

__all__ = ["run_local"]


def run_local(model, work: Work, sink, log=None, bar=None, pending=None, max_pending: int = 2) -> list[int]:
    """Compute the batches `work.todo` with `model` and write them into `sink`.

    Parameters
    ----------
    model : transformers.PreTrainedModel
    work : Work
    sink : cse.pipeline.sinks.MemorySink or ZarrSink
        With `pending`, a `ZarrSink` is wrapped in a `ChunkedZarrSink`: each chunk
        is written once, each batch saved in `pending` until its chunks are.
    log : cse.pipeline.staging.DoneLog, optional
        Records each batch after its write (for resume).
    bar : tqdm, optional
        Advanced by each batch's tokens once written.
    pending : Path, optional
        The staging folder's ``pending/`` (see `cse.pipeline.staging.Staging`).
    max_pending : int
        Batches that may wait for the writer (bounds memory).

    Returns
    -------
    list of int
        The batches written (all of `work.todo` unless an exception propagates).

    Raises
    ------
    Exception
        Any error of the forward pass, the reduction or the writer; batches written
        before it stay recorded in `log`. A `KeyboardInterrupt` lets the writer finish
        what is queued first.
    """
    if isinstance(sink, ZarrSink) and pending is not None:
        sink = ChunkedZarrSink(sink, {index: work.region(index) for index in work.todo}, pending)
    writer = BackgroundWriter(sink, log, max_pending=max_pending)
    reported = 0
    try:
        for index in work.todo:
            arrays = run_batch(model, work.sequences(index), work.settings, work.pad_id)
            start, stop = work.region(index)
            writer.put(index, start, stop, arrays)
            reported = _advance(bar, work, writer.written, reported)
    finally:
        writer.close()
        _advance(bar, work, writer.written, reported)
    return list(writer.written)


def _advance(bar, work: Work, written: list, reported: int) -> int:
    """Move the progress bar by the tokens of batches written since the last call."""
    done = list(written)
    if bar is not None:
        for index in done[reported:]:
            start, stop = work.region(index)
            bar.update(stop - start)
    return len(done)
