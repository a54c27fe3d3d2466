"""`cse.compute`: texts in, a Dataset of Conditional Scale Entropy out (SPEC section 4).

The steps, each in its own module of `cse.pipeline`:

1. validate every parameter and the output path, read the texts (`cse.io`);
2. load the model here or on the workers (`cse.models`, `cluster`), plan the tokens
   (`plan`) and resolve the measure settings (`reduction`);
3. run the batches (`local` or `cluster`) into memory or into a staging store
   (`sinks`, `staging`), which becomes the output atomically when every batch is done.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import platform
import sys
from pathlib import Path

import numpy as np
import xarray as xr

from ..docs import fill_doc
from ..errors import CSEInputError, RunInterrupted
from ..io import check_output, read_texts, texts_frame
from ..params import (AXES, BOUNDARIES, as_wavelet, check_choice, check_int, check_memory, check_seed,
                      resolve_normalize)
from .local import run_local
from .plan import Work, check_token_axis, plan_tokens
from .reduction import resolve_settings
from .sinks import MemorySink, ZarrSink, result_template, settle_pending
from .staging import DoneLog, Staging, build_manifest, check_manifest

__all__ = ["DEFAULT_BATCH_SIZE", "compute"]

DEFAULT_BATCH_SIZE = 16
#: Largest batch (sequences per forward pass) accepted.
MAX_BATCH_SIZE = 65536

logger = logging.getLogger("cse")


@fill_doc
def compute(texts, model=None, tokenizer=None, *, text_column=None, encoding="utf-8", axis="depth", wavelet=None,
            level=None, boundary="reflect", normalize=None, null_permutations=0, seed=0,
            batch_size=DEFAULT_BATCH_SIZE, device="auto", dtype=None, device_map=None, window=None, add_bos=True,
            output=None, overwrite=False, resume=False, restart=False, workers=None, scheduler=None,
            zarr_chunk=None, progress=False, command=None, columns=None) -> xr.Dataset:
    """Compute Conditional Scale Entropy for every token of every text.

    Parameters
    ----------
    texts : str or Path, sequence of str, or pandas.DataFrame
        A file (plain text, JSON Lines or CSV; see `cse.io.read_texts`), a list
        of texts, or a DataFrame with a ``text`` column (other columns become
        token coordinates).
    model : str, None, transformers.PreTrainedModel, TransformerBridge or nnsight model
        A model name for `cse.load_model` (None: the default ``smollm2-135m``;
        ``gemma-3-270m``; a local path or a cached Hugging Face id), or a loaded
        model: a Hugging Face model, a TransformerLens ``TransformerBridge`` or an
        nnsight ``TransformersModel`` / ``LanguageModel`` (see `cse.capture.held_model`).
    tokenizer : transformers.PreTrainedTokenizerFast, optional
        Required with a loaded Hugging Face model; a wrapper's own by default.
    text_column, encoding : str
        The text column (CSV/JSON Lines file, DataFrame) and the file encoding.
    %(axis)s
    %(wavelet)s
    %(level)s
    %(boundary)s
    %(normalize)s
    %(null_permutations)s
    %(seed)s
    batch_size : int
        Sequences per forward pass. Batches are consecutive sequences; a batch
        is the unit of work of resume and of distributed runs.
    device, dtype, device_map : str, optional
        For `cse.load_model` when ``model`` is a name: ``device`` ``'auto'``,
        ``'cpu'``, ``'cuda'``, ``'cuda:N'``; ``dtype`` of the weights
        (``'float32'``, ``'bfloat16'``, ``'float16'``); ``device_map`` (e.g.
        ``'auto'``, needs accelerate) spreads a large model over devices. On a
        GPU the updates are reduced on the device (`cse_kernels.torch_twin`);
        energies are accumulated in float64 whatever the weights' dtype.
    window : int, optional
        Split texts longer than ``window`` tokens into windows instead of failing.
    add_bos : bool
        Prepend the BOS token when the tokenizer does not (see `plan_tokens`).
    output : str or Path, optional
        Write the result to ``.nc`` (netCDF4) or ``.zarr``, streaming batch by
        batch into a staging Zarr store ``.NAME.partial/`` beside it (see
        `cse.pipeline.Staging`); the output appears only when every batch is done.
        The returned Dataset is then opened lazily from the file.
    overwrite : bool
        Replace an existing ``output`` (a file, or a result store of this package;
        a folder that cse did not write is never replaced). Without it an existing
        output is an error, raised before any work.
    resume : bool
        Continue an interrupted run of the same ``output``: batches already on
        disk are not recomputed. Refused (naming the first difference) if the
        input file, the model or any setting differs. Without an interrupted run,
        starts from the beginning.
    restart : bool
        Discard the partial results of an interrupted run of ``output``. Without
        ``resume`` or ``restart``, an interrupted run with finished batches is
        an error, so that no work is lost silently.
    workers : int, optional
        Run on a `dask.distributed.LocalCluster` of this many worker processes
        (one thread each), on this machine.
    scheduler : str, optional
        Address of a running Dask scheduler (e.g. ``tcp://10.0.0.1:8786``). The
        workers need the model (``model`` must be a name or path they can load)
        and the output folder on a shared file system.
    zarr_chunk : int, optional
        Tokens per chunk of the Zarr store (default: about 4 MiB per chunk of
        ``scale_fraction``).
    progress : bool
        Show a progress bar on stderr.
    command : str, optional
        Recorded in the ``command`` attribute (default: the Python call).
    columns : sequence of str, optional
        The input columns to keep as token coordinates besides the text (default:
        all, at most `cse.io.MAX_INPUT_COLUMNS`).

    Returns
    -------
    xarray.Dataset
        Dims ``(token, layer, scale)``; variables ``cse (token, layer)``,
        ``scale_fraction (token, layer, scale)``, ``update_norm (token, layer)``,
        ``surprisal (token)`` in nats (all float64), and with a null
        ``cse_null_mean``, ``cse_null_std``, ``cse_z``; token coordinates ``text``,
        ``position``, ``token_id``, ``token_str``, ``word``, ``is_word_start``,
        ``is_special`` and the input's fields; ``depth`` and ``boundary_affected``
        on ``layer`` (``boundary_affected`` on ``token`` for the token axis); the
        run's settings, model identity and command in the attributes. Identical
        (values and attributes) whether computed in one process, on a Dask
        cluster, or resumed after an interruption.

    Raises
    ------
    CSEInputError
        Bad input file, column, parameter value, output path, a text longer than
        the model's context without ``window``, a model that cannot be loaded
        offline, a mismatched resume, an interrupted run left without ``resume``
        or ``restart``, or a file-system failure while writing (one line; the
        finished batches are kept for ``resume``).
    RunInterrupted
        On Ctrl-C or SIGTERM during a run with ``output``; the message says which
        batches were kept and how to resume.
    TypeError
        A loaded model without its tokenizer, or with ``workers``/``scheduler``.

    See Also
    --------
    cse.conditional_scale_entropy : the measure on an array of layer updates.
    cse.open_result : open a result file.
    cse.stats.compare : per-layer group comparisons of a result.

    Notes
    -----
    Each batch is computed exactly as in a single-process run (same sequences,
    same padding), whichever process computes it, so the results are identical.

    References
    ----------
    .. [1] Chakrabarti et al., "Post-Hoc Understanding of Metaphor Processing in
       Decoder-Only Language Models via Conditional Scale Entropy", arXiv:2605.21391,
       2026.
    .. [2] D. B. Percival and A. T. Walden, *Wavelet Methods for Time Series
       Analysis*, Cambridge University Press, 2000, ch. 5.

    Examples
    --------
    >>> import cse
    >>> ds = cse.compute(["The senator attacked the proposal ."])  # doctest: +SKIP
    >>> ds.cse.dims  # doctest: +SKIP
    ('token', 'layer')
    >>> ds = cse.compute("moh-x.csv", text_column="sentence", output="moh-x.nc")  # doctest: +SKIP
    """
    # 1. Validate what needs no model, check the output path, read the texts: fail before loading.
    distributed = _check_request(texts, model, output, overwrite, resume, restart, workers, scheduler, axis,
                                 boundary, normalize, wavelet, batch_size, zarr_chunk, seed, null_permutations)
    if isinstance(texts, (str, Path)):
        frame = read_texts(texts, text_column=text_column, encoding=encoding, columns=columns)
    else:
        frame = texts_frame(texts, text_column=text_column, columns=columns)

    with contextlib.ExitStack() as stack:
        # 2. Model (here, or on the workers), plan, settings.
        name = None if model is None or not isinstance(model, (str, Path)) else str(model)
        if distributed:
            from .cluster import ModelSpec, cluster_client, remote_model_info

            cluster = stack.enter_context(contextlib.ExitStack())  # closed early, before the conversion
            client = cluster.enter_context(cluster_client(workers=workers, scheduler=scheduler))
            spec = ModelSpec(name, device, dtype, device_map)
            info = remote_model_info(client, spec)
        else:
            model, info = _local_model(model, tokenizer, name, device, dtype, device_map)
        plan = plan_tokens(frame, info.tokenizer, max_length=info.max_length, window=window, add_bos=add_bos)
        if axis == "token":
            check_token_axis(plan, level)
        settings = resolve_settings(axis, wavelet, level, boundary, normalize, null_permutations, seed,
                                    n_layers=info.n_layers, d_model=info.d_model,
                                    min_tokens=min(len(s) for s in plan.sequences))
        _check_null_memory(settings, plan, info)
        attrs = attributes(info, settings, add_bos, window, command)
        batches = plan.batches(int(batch_size))

        # 3. Stream batches into memory ...
        if output is None:
            sink = MemorySink(result_template(plan, settings, attrs, info.n_layers, lazy=False))
            run_local(model, Work(plan, batches, list(range(len(batches))), settings, info.pad_id), sink)
            return sink.close()

        # ... or into the staging store, skipping batches an interrupted run finished.
        output = Path(output)
        manifest = build_manifest(texts=texts, frame=frame, text_column=text_column, encoding=encoding, info=info,
                                  settings=settings, batch_size=batch_size, window=window, add_bos=add_bos,
                                  plan=plan, n_batches=len(batches))
        staging = stack.enter_context(_staging(output))
        template = result_template(plan, settings, attrs, info.n_layers, lazy=True, chunk=zarr_chunk)
        todo = _batches_to_do(staging, manifest, template, output, resume, restart, len(batches))
        work = Work(plan, batches, todo, settings, info.pad_id)
        bar = stack.enter_context(_progress_bar(plan.n_tokens, progress, initial=plan.n_tokens - work.n_todo_tokens))
        with _interruptible(staging, len(batches)):
            if distributed:
                from .cluster import run_cluster

                run_cluster(client, spec, work, staging.store, staging.done_dir, bar)
                cluster.close()
            else:
                log = DoneLog(staging.done_dir)
                try:
                    run_local(model, work, ZarrSink(staging.store), log, bar, pending=staging.pending_dir)
                finally:
                    log.close()
        # 4. All batches done: the output appears atomically.
        bar.close()
        logger.info("computed %d of %d batches", len(todo), len(batches))
        with _file_errors(output, staging, len(batches)):
            staging.finalize(overwrite=overwrite)
    from ..io import open_result

    return open_result(output, chunks={})


def _check_request(texts, model, output, overwrite, resume, restart, workers, scheduler, axis, boundary, normalize,
                   wavelet, batch_size, zarr_chunk, seed, null_permutations) -> bool:
    """Validate every parameter that needs no model; return whether the run is distributed."""
    check_choice("axis", axis, AXES)
    check_choice("boundary", boundary, BOUNDARIES)
    resolve_normalize(axis, normalize)
    if wavelet is not None:
        as_wavelet(wavelet)
    check_int("batch_size", batch_size, 1, MAX_BATCH_SIZE)
    if zarr_chunk is not None:
        check_int("zarr_chunk", zarr_chunk, 1)
    check_seed(seed)
    null_permutations = check_int("null_permutations", null_permutations, 0)
    if null_permutations == 1:
        raise CSEInputError("Invalid value for 'null_permutations': expected 0 (no null) or an integer >= 2, got 1")
    distributed = workers is not None or scheduler is not None
    if workers is not None:
        check_int("workers", workers, 1, 4096)
        if scheduler is not None:
            raise CSEInputError("give either --workers (a local cluster) or --scheduler (a running one), not both")
    if output is not None:
        check_output(output, inputs=[texts] if isinstance(texts, (str, Path)) else [], overwrite=overwrite)
    elif resume or restart or distributed:
        flag = "resume" if resume else "restart" if restart else "workers/scheduler"
        raise CSEInputError(f"Invalid value for 'output': {flag} needs an output file (.nc or .zarr)")
    if resume and restart:
        raise CSEInputError("give either --resume (continue an interrupted run) or --restart (discard it), not both")
    if distributed and not (model is None or isinstance(model, (str, Path))):
        raise TypeError("Invalid type for 'model': a distributed run needs the model's name or path, "
                        "so that every worker loads it itself")
    return distributed


def _local_model(model, tokenizer, name, device, dtype, device_map):
    """The model and its `ModelInfo`, loading it when given by name."""
    from ..models import load_model, model_info

    if model is None or isinstance(model, (str, Path)):
        model, tokenizer = load_model(name, device=device, dtype=dtype, device_map=device_map)
    return model, model_info(model, tokenizer)


def _check_null_memory(settings, plan, info) -> None:
    """Refuse a null whose permutation set or per-batch statistics would not fit (before any compute)."""
    if not settings.null_permutations:
        return
    n_steps = {"depth": info.n_layers, "hidden": info.d_model,
               "token": int(np.diff(plan.starts).max())}[settings.axis]
    try:
        from ..measure import null_memory_bytes

        n_bytes = null_memory_bytes(settings, n_steps)
    except ImportError:  # pragma: no cover - older measure module
        n_bytes = 8.0 * settings.null_permutations * n_steps
    check_memory("null_permutations", settings.null_permutations, n_bytes,
                 f"the null's permutations over {n_steps} {settings.axis} steps")


def _staging(output: Path) -> Staging:
    if output.exists() and output.suffix.lower() == ".zarr" and not output.is_dir():
        raise CSEInputError(f"Invalid value for 'output': {str(output)!r} exists and is not a Zarr store; "
                            f"choose another output path")
    return Staging(output)


def _batches_to_do(staging: Staging, manifest: dict, template, output, resume: bool, restart: bool,
                   n_batches: int) -> list[int]:
    """Batches still to compute: all of them, or those an interrupted run did not finish (with resume)."""
    previous = None if restart else staging.read_manifest()
    done = staging.done_batches() if previous is not None else set()
    if previous is not None and resume:
        check_manifest(previous, manifest, output)
        logger.info("resuming %s: %d of %d batches already done", output, len(done), n_batches)
        with _file_errors(output, staging, n_batches):
            settle_pending(ZarrSink(staging.store), staging.pending_dir)
    elif previous is not None and done:
        raise CSEInputError(
            f"an interrupted run of {output} left {len(done)} of {previous.get('n_batches')} batches in "
            f"{staging.root}; add --resume to continue it or --restart to discard it"
        )
    else:
        if resume:
            logger.info("no interrupted run of %s to resume; starting from the beginning", output)
        done = set()
        with _file_errors(output, staging, n_batches):
            staging.initialize(template, manifest)
    return [i for i in range(n_batches) if i not in done]


@contextlib.contextmanager
def _interruptible(staging: Staging, n_batches: int):
    """Turn Ctrl-C / SIGTERM and file-system failures during the batches into one line that says what was kept."""
    with _file_errors(staging.output, staging, n_batches):
        try:
            yield
        except KeyboardInterrupt as interrupt:
            if isinstance(interrupt, RunInterrupted):
                raise
            kept = len(staging.done_batches())
            raise RunInterrupted(
                f"interrupted: {kept} of {n_batches} batches of {staging.output} are kept in {staging.root}; "
                f"rerun the same command with --resume to continue",
                getattr(interrupt, "signum", 2),
            ) from None


@contextlib.contextmanager
def _file_errors(output: Path, staging: Staging, n_batches: int):
    """One line for a file-system failure (full disk, read-only, permissions), keeping the staging for resume."""
    try:
        yield
    except OSError as error:
        if error.errno == errno.ENOENT and not staging.manifest_path.is_file():  # deleted during the run
            _remove_debris(staging, output)
            raise CSEInputError(f"cannot write {output}: its folder {str(output.parent)!r} or the staging folder was "
                                f"deleted during the run, so nothing was kept; run again") from None
        if error.errno not in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EIO,
                               errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENAMETOOLONG, errno.ENOENT):
            raise
        kept = len(staging.done_batches()) if staging.done_dir.is_dir() else 0
        reason = error.strerror or str(error)
        reason = reason[:1].lower() + reason[1:]
        where = f" ({error.filename})" if error.filename else ""
        raise CSEInputError(
            f"cannot write {output}: {reason}{where}; {kept} of {n_batches} batches are kept in {staging.root}: "
            f"fix the cause and rerun the same command with --resume"
        ) from None


def _remove_debris(staging: Staging, output: Path) -> None:
    """Remove what writes recreated after the staging folder was deleted (only empty folders beyond it)."""
    from ..io import remove_path

    remove_path(staging.root)
    try:
        os.rmdir(output.parent)  # only if empty: it held nothing but the deleted run
    except OSError:
        pass


def _progress_bar(total: int, progress: bool, initial: int = 0):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="tok", disable=not progress, file=sys.stderr,
                desc="cse compute", dynamic_ncols=True)


def attributes(info, settings, add_bos, window, command) -> dict:
    """Global attributes of a result: model identity, settings, versions, the command (CF conventions).

    Returns
    -------
    dict of str to str or int
        None values become ``""`` (netCDF attributes cannot be None).
    """
    import torch
    import transformers

    from .. import __version__

    attrs = {
        **info.identity,
        "n_layers": info.n_layers,
        "d_model": info.d_model,
        **settings.attrs(),
        "dtype": info.dtype,
        "add_bos": int(bool(add_bos)),
        "window": -1 if window is None else int(window),
        "cse_version": __version__,
        "transformers_version": transformers.__version__,
        "torch_version": str(torch.__version__),
        "python_version": platform.python_version(),
        "command": "cse.compute(...)" if command is None else command,
        "Conventions": "CF-1.10",
        "title": "Conditional Scale Entropy of transformer layer updates",
        "references": "Chakrabarti et al. 2026, arXiv 2605.21391; Percival & Walden 2000, ch. 5",
    }
    return {k: ("" if v is None else v) for k, v in attrs.items()}
