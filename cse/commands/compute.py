"""`cse compute`: texts in, a result file of Conditional Scale Entropy out."""

from __future__ import annotations

import logging
import shlex
import sys
import warnings
from pathlib import Path

import click

from ..errors import CSEInputError
from ..params import AXES, BOUNDARIES, NORMALIZATIONS


@click.command("compute")
@click.argument("input", required=False, type=click.Path(dir_okay=True, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=True, path_type=Path),
              help="Result file: .nc (netCDF4) or .zarr. Default with --example: cse-example.nc.")
@click.option("--example", is_flag=True, help="Run the built-in labelled example and print a per-layer summary.")
@click.option("--text-column", help="CSV column / JSON Lines key with the text (default: text, then sentence).")
@click.option("--columns", default=None,
              help="Input columns to keep as token coordinates, comma-separated (default: all, at most 256).")
@click.option("--encoding", default="utf-8", show_default=True, help="Input encoding, e.g. cp1252.")
@click.option("--split", default=None, help="The split of a Hugging Face datasets folder holding several.")
@click.option("--model", "model_name", default=None,
              help="smollm2-135m (default), gemma-3-270m, a local path or a Hugging Face id in the local cache "
                   "(cse models lists them).")
@click.option("--axis", type=click.Choice(AXES), default="depth", show_default=True)
@click.option("--wavelet", default=None, help="Orthogonal PyWavelets wavelet [default: haar; db4 for hidden].")
@click.option("--level", type=int, default=None, help="Decomposition level J [default: 3; max for hidden].")
@click.option("--boundary", type=click.Choice(BOUNDARIES), default="reflect", show_default=True)
@click.option("--normalize", type=click.Choice(NORMALIZATIONS), default=None,
              help="unit: scale each update to norm 1 first [default for depth/token]; none: raw.")
@click.option("--null-permutations", type=int, default=0, show_default=True,
              help="P permutations of the null: layer order (depth), token order (token) or hidden index "
                   "(hidden); adds cse_null_mean, cse_null_std, cse_z.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--batch-size", type=int, default=16, show_default=True, help="Sequences per forward pass.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float16"]), default=None,
              help="Model weights dtype (default: the model's).")
@click.option("--device-map", default=None,
              help="Spread a model too large for one device over several (accelerate), e.g. auto.")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted run of OUTPUT with the same command: finished batches are kept.")
@click.option("--restart", is_flag=True, help="Discard the partial results of an interrupted run of OUTPUT.")
@click.option("--workers", type=int, default=None,
              help="Shard the batches over a local Dask cluster of N worker processes.")
@click.option("--scheduler", default=None,
              help="Shard the batches over the Dask cluster of this scheduler address (tcp://HOST:PORT).")
@click.option("--threads", type=int, default=None,
              help="torch threads per process (here, or on every Dask worker). Results are bitwise identical "
                   "between runs with the same threads per process [default: torch's; 1 on Dask workers].")
@click.option("--save", "save", multiple=True, type=click.Choice(["gram", "gram_triangle", "updates"]),
              help="Also store what re-measuring needs (cse remeasure): gram, each token's Gram matrix of layer "
                   "updates (depth axis; gram_triangle: packed); updates, the layer updates in NAME.updates.zarr. "
                   "Repeatable.")
@click.option("--save-dtype", type=click.Choice(["float32", "float16"]), default="float32", show_default=True,
              help="Storage dtype of --save updates.")
@click.option("--on-non-finite", "non_finite", type=click.Choice(["error", "warn"]), default="error",
              show_default=True,
              help="A forward pass giving NaN or infinite layer updates: stop naming the texts, or keep going with "
                   "NaN cells and one warning.")
@click.option("--window", type=int, default=None,
              help="Split texts longer than N tokens into windows (default: longer than the context is an error).")
@click.option("--no-bos", is_flag=True, help="Do not prepend the BOS token when the tokenizer does not add one.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="With --example: PNG of the summary (default: cse-example.png).")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing OUTPUT (a file, or a result store of cse; other folders never).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def compute_command(input, output, example, text_column, columns, encoding, split, model_name, axis, wavelet, level,
                    boundary, normalize, null_permutations, seed, batch_size, device, dtype, device_map, resume,
                    restart, workers, scheduler, threads, save, save_dtype, non_finite, window, no_bos, plot_path,
                    overwrite, quiet):
    """Compute CSE for every token of INPUT (text, JSON Lines, CSV, Parquet, datasets folder) and write OUTPUT.

    Empty and whitespace-only texts are skipped with a warning; their rows keep
    their indices in the `text` coordinate.

    OUTPUT is written batch by batch into a hidden staging folder beside it
    (.OUTPUT.partial) and appears only when every batch is done. If a run is
    interrupted, rerun the same command with --resume to continue it; with
    --workers N or --scheduler ADDRESS the batches are computed on a Dask cluster.
    The result is the same whichever way it is computed.
    """
    if quiet:  # before torch and transformers are imported: their bars read the environment then
        from ..io import silence_progress_bars

        silence_progress_bars()
    from ..pipeline import compute

    if example:
        from ..example import example_path

        if input is not None:
            raise CSEInputError("give either INPUT or --example, not both")
        input, text_column = example_path(), "sentence"
        output = output or Path("cse-example.nc")
        plot_path = plot_path or output.with_suffix(".png")
        from ..example import previous_example_outputs
        from ..io import check_output

        # The example replaces what an earlier example run wrote, and nothing else without --overwrite.
        overwrite = overwrite or previous_example_outputs(output, plot_path)
        check_output(plot_path, inputs=[input], overwrite=overwrite, name="--plot", result=False)
    elif input is None:
        raise CSEInputError("missing INPUT: give a text, JSON Lines or CSV file, or --example")
    elif output is None:
        raise CSEInputError("missing --output: give a result path ending in .nc or .zarr")
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        # Unclosed sockets and files of the libraries (Dask's on Ctrl-C) are theirs to fix, not the user's business.
        warnings.filterwarnings("ignore", category=ResourceWarning)
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        warnings.filterwarnings("ignore", message=".*StringDType.*")
        warnings.formatwarning = lambda message, *a, **k: f"Warning: {message}\n"
        handler = _log_handler(quiet)
        try:
            ds = compute(input, model_name, text_column=text_column, columns=columns, encoding=encoding, split=split,
                         axis=axis, wavelet=wavelet, level=level, boundary=boundary, normalize=normalize,
                         null_permutations=null_permutations, seed=seed, batch_size=batch_size, device=device,
                         dtype=dtype, device_map=device_map, window=window, add_bos=not no_bos, output=output,
                         resume=resume, restart=restart, workers=workers, scheduler=scheduler, threads=threads,
                         save=list(save) or None, save_dtype=save_dtype, non_finite=non_finite, progress=not quiet,
                         overwrite=overwrite,
                         command=recorded_command(sys.argv[1:]))
        finally:
            logging.getLogger("cse").removeHandler(handler)
    click.echo(f"wrote {output}: {ds.sizes['token']} tokens x {ds.sizes['layer']} layers "
               f"({ds.attrs['axis']} axis, {ds.attrs['wavelet']}, J={ds.attrs['level']})", err=True)
    if example:
        from ..example import depth_summary, plot_summary, summary_text

        table = depth_summary(ds)
        click.echo(summary_text(table))
        from ..io import atomic_path

        with atomic_path(plot_path, overwrite=overwrite) as tmp:
            plot_summary(table, tmp.with_suffix(".png"), f"CSE depth profile, built-in example ({ds.attrs['model']})")
            tmp.with_suffix(".png").rename(tmp)
        click.echo(f"saved plot to {plot_path}", err=True)


#: Options that say how a run went, not how its result was made: left out of its `command` attribute,
#: so that a resumed run records the same command as an uninterrupted one.
EXECUTION_FLAGS = ("--resume", "--restart", "--overwrite", "-q", "--quiet")
#: --scheduler ADDRESS is left out too: an address of the computing site's network (as a path would be).
EXECUTION_OPTIONS = ("--scheduler",)
# --workers N and --threads N are recorded: the result says how it was made (the command that was run).


def recorded_command(argv) -> str:
    """The command line to record in a result: ``cse`` + `argv` without execution-only options.

    Examples
    --------
    >>> recorded_command(["compute", "in.txt", "-o", "out.zarr", "--workers", "2", "--resume"])
    'cse compute in.txt -o out.zarr --workers 2'
    """
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in EXECUTION_FLAGS:
            continue
        elif arg in EXECUTION_OPTIONS:
            skip = True
        elif arg.startswith(tuple(f"{o}=" for o in EXECUTION_OPTIONS)):
            continue
        else:
            kept.append(arg)
    from ..io.encoding import utf8_text

    return utf8_text(shlex.join(["cse", *kept]))  # a non-ASCII path under a non-UTF-8 locale: still writable


def _log_handler(quiet: bool) -> logging.Handler:
    """Print the pipeline's messages (resume, cluster) on stderr as 'cse: ...' unless quiet."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("cse: %(message)s"))
    logger = logging.getLogger("cse")
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.addHandler(handler)
    return handler
