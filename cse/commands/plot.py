"""`cse plot`: depth profile per group (bands, significant and boundary layers shaded), or one text's tokens."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import CSEInputError
from .stats import load_result, permutation_options, run_compare, shared_options

FIGURE_FORMATS = (".png", ".pdf", ".svg")


def load_statistics(path: Path):
    """Open a 'cse stats -o' file (.nc or .zarr) as untrusted input: codecs checked first, one-line errors."""
    from ..io import check_coordinates, open_result, output_format

    if not path.exists():
        raise CSEInputError(f"Invalid value for '--stats': {str(path)!r} does not exist")
    output_format(path, "--stats")
    with open_result(path, require=("p_corrected",)) as res:
        return check_coordinates(res.load(), str(path))


@click.command("plot")
@shared_options
@permutation_options
@click.option("--stats", "stats_path", type=click.Path(path_type=Path), default=None,
              help="Shade the significant layers of this 'cse stats -o' file instead of testing again.")
@click.option("--no-test", is_flag=True, help="Draw the profiles only: no test, no significance shading.")
@click.option("--no-boundary", is_flag=True, help="Do not hatch the boundary-affected layers.")
@click.option("--ci", type=float, default=0.95, show_default=True, help="Coverage of the bands (t interval).")
@click.option("--text", "text", type=int, default=None,
              help="Draw the tokens of text N (the 'text' coordinate) against layers instead of a profile; "
                   "--where (or --label) outlines tokens.")
@click.option("--label", default=None,
              help="With --text: outline the tokens whose value of this token coordinate is 1 (e.g. label_seq).")
@click.option("--tokens-per-row", type=int, default=60, show_default=True,
              help="With --text: tokens per row; longer texts are split into rows.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Figure file (.png, .pdf or .svg). Required for a profile; with --text default "
                   "RESULT-textN.png in the current folder.")
@click.option("--overwrite", is_flag=True, help="Replace an existing figure file.")
def plot_command(stats_path, no_test, no_boundary, ci, text, label, tokens_per_row, output, overwrite, **options):
    """Draw the depth profile of RESULT (.nc or .zarr) per group of --by, or one text's tokens (--text N).

    Profile: mean per layer with Student t bands against relative depth (layer index
    on top); layers significant after the correction across layers are shaded and the
    legend names the statistic (the test runs with the same options as 'cse stats', or
    comes from --stats); boundary-affected layers (MODWT boundary coefficients) are
    hatched. --var cse_z draws the order-null z-score.

    Tokens (--text N): a heatmap of --var for every token of text N (its strings,
    special tokens in grey) against layers; boundary-affected layers (or token
    positions, on the token axis) hatched; the tokens selected by --where or --label
    outlined.

    Examples:

      cse plot result.nc --by label --where "word == verb_idx" -o profile.png

      cse plot result.nc --text 3 --where "word == verb_idx" -o text3.png
    """
    if text is not None:
        return _tokens_figure(options, text, label, tokens_per_row, no_boundary, stats_path, output, overwrite)
    from ..io import atomic_path, check_output
    from ..plot import plot_depth_profile

    if options["by"] is None:
        raise CSEInputError("Missing option '--by': give the token coordinate holding the two groups "
                            "(or --text N for one text's tokens)")  # fmt: skip
    if label is not None:
        raise CSEInputError("Invalid option '--label': it outlines tokens of --text N; a profile selects with --where")
    if output is None:
        raise CSEInputError("Missing option '-o' / '--output': give the figure file (.png, .pdf or .svg)")
    suffix = _figure_suffix(output)
    check_output(output, inputs=[options["result"], stats_path], overwrite=overwrite, result=False)
    ds = load_result(options["result"])
    if stats_path is not None:
        res = load_statistics(stats_path)
    elif no_test:
        res = None
    else:
        res = run_compare(ds, options, n_bootstrap=0)
    fig = plot_depth_profile(ds, options["by"], options["where"], stats=res, ci=ci, levels=options["levels"] or None,
                             var=options["var"], include_special=options["include_special"],
                             shade_boundary=not no_boundary)  # fmt: skip
    with atomic_path(output, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format=suffix[1:], dpi=150)
    click.echo(f"saved figure to {output}", err=True)


# --by is required for a profile only: plot_command checks it (shared_options declares it for cse stats too).
for _param in plot_command.params:
    if _param.name == "by":
        _param.required = False
        _param.help = f"{_param.help} Required for a profile (not with --text)."


def _figure_suffix(output: Path) -> str:
    suffix = output.suffix.lower()
    if suffix not in FIGURE_FORMATS:
        raise CSEInputError(f"Invalid value for 'output': {str(output)!r} must end in {', '.join(FIGURE_FORMATS)}")
    return suffix


def _tokens_figure(options, text, label, tokens_per_row, no_boundary, stats_path, output, overwrite) -> None:
    """`cse plot RESULT --text N`: the token picture of one text."""
    from ..io import atomic_path, check_output
    from ..plot import plot_tokens

    if stats_path is not None:
        raise CSEInputError("Invalid option '--stats': it shades a depth profile; --text N draws one text's tokens")
    result = Path(options["result"])
    output = output if output is not None else Path(f"{result.stem}-text{text}.png")
    suffix = _figure_suffix(output)
    check_output(output, inputs=[result], overwrite=overwrite, result=False)
    ds = load_result(result)
    fig = plot_tokens(ds, text, var=options["var"], where=options["where"], label=label,
                      tokens_per_row=tokens_per_row, shade_boundary=not no_boundary)  # fmt: skip
    with atomic_path(output, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format=suffix[1:], dpi=150)
    click.echo(f"saved figure to {output}", err=True)
