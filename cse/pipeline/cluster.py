"""The Dask runner: `cse compute` batches sharded over workers, one Zarr store.

The client plans the run (tokenizes every text, sizes the staging store, see
`cse.pipeline.staging.Staging`); the workers compute. Work is cut into the same batches
as a single-process run (consecutive sequences, same padding), so each batch is
computed exactly as it would be in one process and the result is identical.
Consecutive batches are grouped into tasks; a task runs on one worker, which

1. gets the model from its per-process cache (`worker_model`): every worker
   process loads the model once, on its first task, and keeps it;
2. forwards each batch, reduces the layer updates (on the GPU when the model is
   on one) and writes the batch's token region of the store;
3. records the batch in its own completion log, after the write returned, so a
   resumed run (``--resume``) skips it.

Regions that share a Zarr chunk with a neighbouring batch are merged into it
(read, merge, write); such a chunk is written under a `distributed.Lock` named
after the run and the chunk, so two workers never merge into one chunk at once.
The store's folder must be on a file system every worker sees (always true for
a `LocalCluster`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import uuid
import warnings

from ..errors import CSEInputError

#: Batches per task: enough tasks to balance the workers, few enough for the scheduler.
MAX_BATCHES_PER_TASK = 32
TASKS_PER_WORKER = 8

# Per-process model cache of the workers: ModelSpec -> (model, tokenizer, lock).
_MODELS: dict = {}
_MODELS_LOCK = threading.Lock()
#: Number of models this process has loaded (read by the tests: one per worker).
LOADS = 0
# Per-process completion logs, by staging folder.
_LOGS: dict = {}


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """How a worker loads the model: the arguments of `cse.load_model`.

    Parameters
    ----------
    name : str or None
        A named model, a path or a cached Hugging Face id (None: the default).
    device, dtype, device_map : str, torch.dtype or dict, optional
        As in `cse.load_model`.
    """

    name: str | None
    device: str = "auto"
    dtype: str | None = None
    device_map: str | None = None


def worker_model(spec: ModelSpec):
    """The model of `spec` in this process, loaded on first use and kept.

    Parameters
    ----------
    spec : ModelSpec

    Returns
    -------
    model, tokenizer, lock
        ``lock`` (a `threading.Lock`) serializes forward passes: the layer-update
        hooks of one model must not see two batches at once.
    """
    global LOADS
    with _MODELS_LOCK:
        if spec not in _MODELS:
            from ..models import load_model

            model, tokenizer = load_model(spec.name, device=spec.device, dtype=spec.dtype,
                                          device_map=spec.device_map)
            _MODELS[spec] = (model, tokenizer, threading.Lock())
            LOADS += 1
        return _MODELS[spec]


def _model_info_task(spec: ModelSpec):
    from ..models import model_info

    model, tokenizer, _ = worker_model(spec)
    return model_info(model, tokenizer)


def remote_model_info(client, spec: ModelSpec):
    """`cse.models.ModelInfo` of the model as loaded on a worker (tokenizer included).

    The client never loads the model: only a worker does, and keeps it.

    Parameters
    ----------
    client : dask.distributed.Client
    spec : ModelSpec

    Returns
    -------
    cse.models.ModelInfo
    """
    return client.submit(_model_info_task, spec, pure=False).result()


@contextlib.contextmanager
def cluster_client(workers: int | None = None, scheduler: str | None = None):
    """A `dask.distributed.Client` for a local cluster of ``workers`` processes or a running scheduler.

    Parameters
    ----------
    workers : int, optional
        Start a `LocalCluster` of this many worker processes with one thread each,
        on the loopback interface, without a dashboard and with the workers' log
        lines silenced (their errors reach the client); it is closed on exit.
    scheduler : str, optional
        Connect to the scheduler at this address instead.

    Raises
    ------
    CSEInputError
        If the scheduler cannot be reached within 10 s, or the local cluster cannot start.
    """
    from dask.distributed import Client, LocalCluster

    cluster = None
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise CSEInputError(f"cannot connect to the Dask scheduler at {scheduler!r}: {reason}") from None
    else:
        with warnings.catch_warnings():
            # The scheduler's HTTP endpoint moves to a free port if 8787 is taken: nothing to warn about.
            warnings.filterwarnings("ignore", message="Port .* is already in use")
            # The workers' own log lines (a cancelled task on Ctrl-C, a slow exit) are not the user's
            # business: every error of a task reaches the client and is reported there, in one line.
            _quiet_resource_tracker()
            try:
                with _workers_ignore_ctrl_c():
                    cluster = LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=True,
                                           host="127.0.0.1", dashboard_address=None, silence_logs=logging.CRITICAL)
            except (OSError, RuntimeError, TimeoutError) as error:
                reason = str(error).splitlines()[0] if str(error) else type(error).__name__
                raise CSEInputError(f"cannot start a local Dask cluster of {workers} workers ({reason}); run "
                                    f"without --workers, or with fewer") from None
        client = Client(cluster)
    try:
        yield client
    finally:
        nanny = logging.getLogger("distributed.nanny")
        level = nanny.level
        nanny.setLevel(logging.ERROR)  # "worker process still alive ..., killing": a slow exit, not a fault
        try:
            client.close()
            if cluster is not None:
                cluster.close()
        finally:
            nanny.setLevel(level)


def _chunk_lock(prefix: str):
    from dask.distributed import Lock

    def lock(index: int):
        return Lock(f"{prefix}-{index}")

    return lock


def _done_log(done_dir):
    from .staging import DoneLog

    key = str(done_dir)
    if key not in _LOGS:
        _LOGS[key] = DoneLog(done_dir)
    return _LOGS[key]


def _worker_sink(store: str, updates_store: str | None, lock):
    from .sinks import SplitSink, ZarrSink

    sink = ZarrSink(store, lock=lock)
    return sink if updates_store is None else SplitSink(sink, ZarrSink(updates_store, lock=lock))


def _run_task(spec: ModelSpec, store: str, updates_store: str | None, done_dir: str, items: list, run_options: dict,
              lock_prefix: str) -> int:
    """Compute and write a group of batches on a worker; return the number of tokens written."""
    from pathlib import Path

    from .batch import NonFiniteUpdates, run_batch, torch_threads

    if not Path(store, "zarr.json").is_file():
        raise CSEInputError(f"the worker cannot see the staging store {store}; the output folder must be on a "
                            f"file system shared by the client and every worker")
    model, _, model_lock = worker_model(spec)
    sink = _worker_sink(store, updates_store, _chunk_lock(lock_prefix))
    log = _done_log(done_dir)
    n_tokens = 0
    threads = run_options.pop("threads")
    for index, start, stop, sequences in items:
        with model_lock, torch_threads(threads):
            try:
                arrays = run_batch(model, sequences, **run_options)
            except NonFiniteUpdates as exc:  # the client names the texts: token indices of the whole run
                raise NonFiniteUpdates(start + exc.tokens) from None
        sink.write_batch(index, start, stop, arrays)
        log.mark(index)
        n_tokens += stop - start
    return n_tokens


@contextlib.contextmanager
def _workers_ignore_ctrl_c():
    """Start processes with SIGINT ignored: Ctrl-C in a terminal reaches the whole process group, and the
    workers would print their own KeyboardInterrupt tracebacks; the client stops them instead."""
    import signal

    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: nothing to change
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _quiet_resource_tracker() -> None:
    """Start multiprocessing's resource tracker with its stderr on the null device, if it is not running yet.

    On Ctrl-C in a terminal the workers of a local cluster die with the client; the
    tracker then removes the semaphores they held and prints "There appear to be N
    leaked semaphore objects to clean up at shutdown" after cse's one line. It still
    removes them; only its message goes.
    """
    import os
    import sys
    from multiprocessing import resource_tracker

    if getattr(resource_tracker._resource_tracker, "_fd", None) is not None:  # noqa: SLF001  already running
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        return
    try:
        quiet = os.open(os.devnull, os.O_WRONLY)
        os.dup2(quiet, 2)
        os.close(quiet)
        resource_tracker.ensure_running()
    except OSError:
        pass
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def run_cluster(client, spec: ModelSpec, run, store, bar=None, threads: int | None = None) -> None:
    """Compute the batches ``store.todo`` on the cluster into the staging store.

    Parameters
    ----------
    client : dask.distributed.Client
    spec : ModelSpec
    run : cse.pipeline.plan.Run
    store : cse.pipeline.store.StagedStore
        Its staging folder must be on a file system every worker sees.
    bar : tqdm, optional
        Advanced by the tokens of each finished task.
    threads : int, optional
        torch's intra-op threads on the workers (default 1, Dask's one thread per worker).

    Raises
    ------
    Exception
        The first error of a task; the other tasks are cancelled, and the batches
        already written stay recorded for ``--resume``.
    """
    from dask.distributed import as_completed

    from .batch import NonFiniteUpdates, non_finite_error

    todo = store.todo
    if not todo:
        return
    staging = store.staging
    updates_store = str(staging.updates_store) if "updates" in run.saved else None
    n_workers = max(1, len(client.scheduler_info(n_workers=-1).get("workers", {})))
    size = max(1, min(MAX_BATCHES_PER_TASK, -(-len(todo) // (TASKS_PER_WORKER * n_workers))))
    prefix = f"cse-{uuid.uuid4().hex}"
    options = {"settings": run.settings, "pad_id": run.pad_id, "save": run.saved, "save_dtype": run.save_dtype,
               "non_finite": run.non_finite, "threads": 1 if threads is None else int(threads)}
    futures = []
    for k in range(0, len(todo), size):
        items = [(i, *run.region(i), run.sequences(i)) for i in todo[k:k + size]]
        futures.append(client.submit(_run_task, spec, str(staging.store), updates_store, str(staging.done_dir),
                                     items, dict(options), prefix, pure=False))
    try:
        for future in as_completed(futures):
            n_tokens = future.result()
            if bar is not None:
                bar.update(n_tokens)
    except NonFiniteUpdates as exc:
        client.cancel(futures)
        raise non_finite_error(exc, run.plan.coords["text"].to_numpy(), 0) from None
    except BaseException:
        client.cancel(futures)
        raise


class ClusterExecutor:
    """Runs the batches on the workers of a Dask cluster; the model is loaded there only.

    Parameters
    ----------
    client : dask.distributed.Client
    spec : ModelSpec
    threads : int or None
        torch's intra-op threads on the workers.
    """

    def __init__(self, client, spec: ModelSpec, threads=None):
        self.client, self.spec, self.threads = client, spec, threads
        self.info = remote_model_info(client, spec)

    def run(self, run, store, bar=None) -> None:
        """Compute the batches ``store.todo`` into the store (see `run_cluster`)."""
        run_cluster(self.client, self.spec, run, store, bar, self.threads)


@contextlib.contextmanager
def open_cluster(request):
    """A `ClusterExecutor` for the request's ``workers`` or ``scheduler``; the cluster is closed on exit.

    Parameters
    ----------
    request : cse.pipeline.request.Request

    Yields
    ------
    ClusterExecutor
    """
    spec = ModelSpec(request.model.name, request.model.device, request.model.dtype, request.model.device_map)
    with cluster_client(workers=request.workers, scheduler=request.scheduler) as client:
        yield ClusterExecutor(client, spec, request.model.threads)
