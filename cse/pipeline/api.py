"""`cse.compute`: texts in, a Dataset of Conditional Scale Entropy out (the result schema).

One straight path, each step a module of `cse.pipeline` that the data enters once:

1. `request`: every parameter and the output path validated, the texts read (`cse.io`);
2. `executor`: the model loaded, here or on the workers of a Dask cluster (`cluster`);
3. `plan`: the texts tokenized and laid out, the measure's settings fitted, the batches;
4. `store`: in memory, or a staging folder beside the output (resume, manifest);
5. the executor runs the batches into the store (`batch`: capture and reduction at once);
6. the store makes the output appear atomically (`finalize`).
"""

from __future__ import annotations

import contextlib
import sys

import xarray as xr

from ..docs import fill_doc
from .executor import open_executor
from .plan import plan_run
from .request import make_request
from .store import open_store

DEFAULT_BATCH_SIZE = 16


@fill_doc
def compute(texts, model=None, tokenizer=None, *, text_column=None, encoding="utf-8", axis="depth", wavelet=None,
            level=None, boundary="reflect", normalize=None, null_permutations=0, seed=0,
            batch_size=DEFAULT_BATCH_SIZE, device="auto", dtype=None, device_map=None, window=None, add_bos=True,
            output=None, overwrite=False, resume=False, restart=False, workers=None, scheduler=None,
            zarr_chunk=None, progress=False, command=None, columns=None, split=None, threads=None, save=None,
            save_dtype="float32", non_finite="error") -> xr.Dataset:
    """Compute Conditional Scale Entropy for every token of every text.

    Parameters
    ----------
    texts : str or Path, sequence of str, or pandas.DataFrame
        A file (plain text, JSON Lines, CSV/TSV, Parquet or a Hugging Face
        ``datasets`` folder; see `cse.io.read_texts`), a list of texts, or a
        DataFrame with a ``text`` column (other columns become token coordinates).
    model : str, None, transformers.PreTrainedModel, TransformerBridge or nnsight model
        A model name for `cse.load_model` (None: the default ``smollm2-135m``;
        ``gemma-3-270m``; a local path or a cached Hugging Face id), or a loaded
        model: a Hugging Face model, a TransformerLens ``TransformerBridge`` or an
        nnsight ``TransformersModel`` / ``LanguageModel`` (see `cse.capture.held_model`).
    tokenizer : transformers.PreTrainedTokenizerFast, optional
        Required with a loaded Hugging Face model; a wrapper's own by default.
    text_column : str, optional
        The text column of a CSV/JSON Lines/Parquet file or a DataFrame (default
        ``text``, then ``sentence``).
    encoding : str
        The encoding of a text, JSON Lines or CSV file (default ``'utf-8'``; a
        byte-order mark decides between UTF encodings).
    axis : %(axis)s
    wavelet : %(wavelet)s
    level : %(level)s
    boundary : %(boundary)s
    normalize : %(normalize)s
    null_permutations : %(null_permutations)s
    seed : %(seed)s
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
        Tokens per chunk of the Zarr store (default: about 4 MiB per chunk of the
        widest variable).
    progress : bool
        Show a progress bar on stderr.
    command : str, optional
        Recorded in the ``command`` attribute (default: the Python call).
    columns : sequence of str, optional
        The input columns to keep as token coordinates besides the text (default:
        all, at most `cse.io.MAX_INPUT_COLUMNS`).
    split : str, optional
        The split of a Hugging Face ``DatasetDict`` folder (required for one).
    threads : int, optional
        The number of torch's intra-op threads during the run (restored afterwards), in this
        process or on every Dask worker. Default: as they are here, 1 on Dask
        workers. float32 sums depend on the threads, so results are bitwise
        identical between runs with the same threads per process (see Notes).
    save : str or sequence of str, optional
        What to store besides CSE, to re-measure without the model
        (`cse.remeasure`): ``'gram'``, each token's raw L x L Gram matrix of layer
        updates ``gram (token, layer, layer2)``, float64, 8 L^2 bytes per token
        (depth axis; sufficient for depth-axis CSE under any wavelet, level,
        boundary, normalization and order null); ``'gram_triangle'``, its packed
        upper triangle ``gram_triangle (token, layer_pair)``, 4 L (L + 1) bytes per
        token; ``'updates'``, the raw layer updates ``updates (token, layer,
        hidden)`` (any axis), in a Zarr store ``NAME.updates.zarr`` beside the
        output (attribute ``updates_store``), or as a variable of an in-memory
        result.
    save_dtype : {'float32', 'float16'}
        Storage dtype of saved updates (2 or 4 bytes per number).
    non_finite : {'error', 'warn'}
        What a forward pass giving NaN or infinite layer updates does: ``'error'``
        (default) stops the run with a `CSEInputError` naming the texts (batches
        computed before stay kept for ``resume``); ``'warn'`` keeps going, with NaN
        cells where the values reached (never 0), and warns once with the count of
        tokens and texts (``--on-non-finite warn``).

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
        A loaded model without its tokenizer, or with ``workers``/``scheduler``; a
        wrongly typed parameter.

    See Also
    --------
    cse.conditional_scale_entropy : The measure on an array of layer updates.
    cse.open_result : Open a result file.
    cse.stats.compare : Per-layer group comparisons of a result.

    Notes
    -----
    Each batch is computed exactly as in a single-process run (same sequences,
    same padding), whichever process computes it. With the same torch threads per
    process (``threads``) a Dask run is bitwise identical to a single-process
    run; with different ones, float32 sums are taken in another order and results
    differ by rounding (README, "Large corpora").

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
    # 1. The request: every argument checked, the texts read; nothing loaded or written yet.
    request = make_request(
        texts, model, tokenizer, text_column=text_column, encoding=encoding, columns=columns, split=split,
        settings={"axis": axis, "wavelet": wavelet, "level": level, "boundary": boundary, "normalize": normalize,
                  "null_permutations": null_permutations, "seed": seed},
        batch_size=batch_size, window=window, add_bos=add_bos, save=save, save_dtype=save_dtype, output=output,
        overwrite=overwrite, resume=resume, restart=restart, zarr_chunk=zarr_chunk, workers=workers,
        scheduler=scheduler, threads=threads, device=device, dtype=dtype, device_map=device_map, progress=progress,
        command=command, non_finite=non_finite,
    )
    with contextlib.ExitStack() as stack:
        # 2. The model, here or on the workers (a cluster is closed before the output is written).
        executor_scope = stack.enter_context(contextlib.ExitStack())
        executor = executor_scope.enter_context(open_executor(request))
        # 3. The plan: tokens, fitted settings, batches, attributes.
        run = plan_run(request, executor.info)
        # 4. The store: memory, or the staging folder (what an interrupted run left is resumed or refused).
        store = stack.enter_context(open_store(request, run, executor.info))
        # 5. The batches.
        bar = stack.enter_context(_progress_bar(run.plan.n_tokens, request.progress,
                                                initial=run.plan.n_tokens - run.n_tokens_of(store.todo)))
        with store.guard():
            executor.run(run, store, bar)
        executor_scope.close()
        bar.close()
        # 6. The output, atomically.
        result = store.finalize()
    if request.non_finite == "warn":
        _warn_non_finite(result)
    return result


def _warn_non_finite(ds: xr.Dataset) -> None:
    """One warning with the count of tokens (and texts) whose layer updates were NaN or infinite."""
    import warnings

    import numpy as np

    broken = ~np.isfinite(np.asarray(ds["update_norm"].values)).all(axis=1)
    if broken.any():
        texts = np.unique(np.asarray(ds["text"].values)[broken])
        warnings.warn(f"the model's forward pass gave NaN or infinite layer updates for {int(broken.sum())} token(s) "
                      f"of {len(texts)} text(s) (first: {', '.join(str(int(k)) for k in texts[:5])}); their cells "
                      f"are NaN", UserWarning, stacklevel=3)


def _progress_bar(total: int, progress: bool, initial: int = 0):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="tok", disable=not progress, file=sys.stderr,
                desc="cse compute", dynamic_ncols=True)
