"""Step 1 of `cse.compute`: the request — every argument validated and resolved, the texts read.

Everything that can be checked without the model is checked here, before the model
loads and before any output is touched: the measure's settings
(`cse.settings.MeasureSettings.resolve`), the output path and the resume flags, the
execution options, and the texts themselves (`cse.io.read_texts`). The request is a
plain record, grouped the way a reader thinks of a run: what is read (`Source`), which
model runs where (`ModelRequest`), where the result goes (`OutputRequest`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from ..errors import CSEInputError
from ..io import check_output, read_texts, texts_frame
from ..params import check_choice, check_int
from ..settings import MeasureSettings

#: Largest batch (sequences per forward pass) accepted.
MAX_BATCH_SIZE = 65536
#: What a run may store besides CSE (``save=``): the Gram matrices (full or packed), the updates.
SAVE_CHOICES = ("gram", "gram_triangle", "updates")
#: Storage dtypes of saved layer updates.
SAVE_DTYPES = ("float32", "float16")


def updates_name(output) -> str:
    """File name of the layer-updates store of a result (``save=["updates"]``): ``NAME.updates.zarr``.

    Parameters
    ----------
    output : str or Path
        The result's path; the store lies beside it.

    Returns
    -------
    str
    """
    return f"{Path(output).name}.updates.zarr"


@dataclasses.dataclass
class Source:
    """The texts of a run.

    Attributes
    ----------
    frame : pandas.DataFrame
        Column ``text`` and the kept input columns, indexed by input row (`cse.io.read_texts`).
    path : Path or None
        The input file, when the texts came from one.
    text_column, encoding, split : str or None
        How the file was read (recorded in the resume manifest).
    """

    frame: pd.DataFrame
    path: Path | None
    text_column: str | None
    encoding: str | None
    split: str | None = None


@dataclasses.dataclass
class ModelRequest:
    """Which model runs, and how: a name or path (loaded here or on the workers) or a loaded model.

    Attributes
    ----------
    model : str, Path, torch.nn.Module, wrapper or None
        None is the default named model.
    tokenizer : tokenizer or None
    device, dtype, device_map : as in `cse.load_model`
    threads : int or None
        torch's intra-op threads during the run (None: as they are; 1 on Dask workers).
    """

    model: object
    tokenizer: object
    device: str = "auto"
    dtype: str | None = None
    device_map: object = None
    threads: int | None = None

    @property
    def name(self) -> str | None:
        """The model's name or path, or None for a loaded model."""
        return str(self.model) if isinstance(self.model, (str, Path)) else None

    @property
    def loaded(self) -> bool:
        """Whether the user passed a loaded model (or wrapper) rather than a name."""
        return self.model is not None and self.name is None


@dataclasses.dataclass
class OutputRequest:
    """Where the result goes and how an earlier run of it is treated.

    Attributes
    ----------
    path : Path
        ``.nc`` or ``.zarr``.
    overwrite, resume, restart : bool
    zarr_chunk : int or None
        Tokens per chunk of the staging store.
    """

    path: Path
    overwrite: bool = False
    resume: bool = False
    restart: bool = False
    zarr_chunk: int | None = None


@dataclasses.dataclass
class Request:
    """A validated `cse.compute` call.

    Attributes
    ----------
    source : Source
    model : ModelRequest
    settings : cse.settings.MeasureSettings
        Resolved; the level is fitted once the model and the texts are known.
    batch_size : int
    window : int or None
    add_bos : bool
    saved : tuple of str
        What to store besides CSE, from `SAVE_CHOICES` (``save`` of `cse.compute`).
    save_dtype : str
        From `SAVE_DTYPES`.
    output : OutputRequest or None
        None: the result is returned in memory.
    workers : int or None
    scheduler : str or None
    progress : bool
    command : str or None
    non_finite : {'error', 'warn'}
        What NaN or infinite layer updates do (``non_finite`` of `cse.compute`).
    """

    source: Source
    model: ModelRequest
    settings: MeasureSettings
    batch_size: int
    window: int | None
    add_bos: bool
    saved: tuple
    save_dtype: str
    output: OutputRequest | None
    workers: int | None
    scheduler: str | None
    progress: bool
    command: str | None
    non_finite: str = "error"

    @property
    def distributed(self) -> bool:
        """Whether the batches run on a Dask cluster."""
        return self.workers is not None or self.scheduler is not None


def make_request(texts, model, tokenizer, *, text_column, encoding, columns, split, settings: dict, batch_size,
                 window, add_bos, save, save_dtype, output, overwrite, resume, restart, zarr_chunk, workers, scheduler,
                 threads, device, dtype, device_map, progress, command, non_finite="error") -> Request:
    """Validate every argument of `cse.compute` that needs no model, then read the texts.

    Parameters
    ----------
    texts, model, tokenizer, text_column, encoding, columns, split, batch_size, window : object
        As in `cse.compute`.
    add_bos, save, save_dtype, output, overwrite, resume, restart, zarr_chunk : object
        As in `cse.compute`.
    workers, scheduler, threads, device, dtype, device_map, progress, command, non_finite : object
        As in `cse.compute`.
    settings : dict
        The measure's parameters of `cse.compute` (axis, wavelet, level, boundary,
        normalize, null_permutations, seed), for `MeasureSettings.resolve`.

    Returns
    -------
    Request

    Raises
    ------
    CSEInputError, TypeError
        As `cse.compute`, before the model loads and before any output is touched.
    """
    # 1. The measure, the execution, the output: no file is read before all of them pass.
    resolved = MeasureSettings.resolve(**settings)
    batch_size = check_int("batch_size", batch_size, 1, MAX_BATCH_SIZE)
    if zarr_chunk is not None:
        check_int("zarr_chunk", zarr_chunk, 1)
    if threads is not None:
        threads = check_int("threads", threads, 1, 4096)
    save = _check_save(save, resolved)
    check_choice("save_dtype", save_dtype, SAVE_DTYPES)
    check_choice("non_finite", non_finite, ("error", "warn"))
    _check_execution(model, workers, scheduler, output, resume, restart)
    source_path = Path(texts) if isinstance(texts, (str, Path)) else None
    out = None
    if output is not None:
        inputs = [source_path] if source_path else []
        out = OutputRequest(check_output(output, inputs=inputs, overwrite=overwrite), bool(overwrite), bool(resume),
                            bool(restart), zarr_chunk)
        if "updates" in save:
            check_output(out.path.parent / updates_name(out.path), inputs=inputs, overwrite=overwrite,
                         name="save='updates'")
    # 2. The texts.
    if source_path is not None:
        frame = read_texts(source_path, text_column=text_column, encoding=encoding, columns=columns, split=split)
    else:
        if split is not None:
            raise TypeError("'split' applies to a datasets folder given by path, not to texts in memory")
        frame = texts_frame(texts, text_column=text_column, columns=columns)
    return Request(
        source=Source(frame, source_path, text_column, encoding if source_path else None, split),
        model=ModelRequest(model, tokenizer, device, dtype, device_map, threads),
        settings=resolved, batch_size=batch_size, window=window, add_bos=bool(add_bos), saved=save,
        save_dtype=save_dtype, output=out, workers=workers, scheduler=scheduler, progress=bool(progress),
        command=command, non_finite=non_finite,
    )


def _check_save(save, settings: MeasureSettings) -> tuple:
    if save is None:
        return ()
    items = [save] if isinstance(save, str) else list(save)
    for item in items:
        check_choice("save", item, SAVE_CHOICES)
    if "gram" in items and "gram_triangle" in items:
        raise CSEInputError("Invalid value for 'save': give 'gram' (the full matrices) or 'gram_triangle' (their "
                            "packed upper triangle), not both")
    if any(item.startswith("gram") for item in items) and settings.axis != "depth":
        raise CSEInputError(f"Invalid value for 'save': the Gram matrices re-measure the depth axis; this run's axis "
                            f"is {settings.axis!r} (use save='updates' for the token and hidden axes)")
    return tuple(dict.fromkeys(items))


def _check_execution(model, workers, scheduler, output, resume, restart) -> None:
    distributed = workers is not None or scheduler is not None
    if workers is not None:
        check_int("workers", workers, 1, 4096)
        if scheduler is not None:
            raise CSEInputError("give either --workers (a local cluster) or --scheduler (a running one), not both")
    if output is None and (resume or restart or distributed):
        flag = "resume" if resume else "restart" if restart else "workers/scheduler"
        raise CSEInputError(f"Invalid value for 'output': {flag} needs an output file (.nc or .zarr)")
    if resume and restart:
        raise CSEInputError("give either resume=True (continue an interrupted run) or restart=True (discard it), not both")
    if distributed and not (model is None or isinstance(model, (str, Path))):
        raise TypeError("Invalid type for 'model': a distributed run needs the model's name or path, "
                        "so that every worker loads it itself")
