"""`cse plot`: depth profile per group, confidence bands, significant layers and boundary layers shaded."""

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
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Figure file (.png, .pdf or .svg).")
@click.option("--overwrite", is_flag=True, help="Replace an existing figure file.")
def plot_command(stats_path, no_test, no_boundary, ci, output, overwrite, **options):
    """Draw the depth profile of RESULT (.nc or .zarr) per group of --by.

    Mean per layer with Student t bands against relative depth (layer index on top);
    layers significant after the correction across layers are shaded and the legend
    names the statistic (the test runs with the same options as 'cse stats', or comes
    from --stats); boundary-affected layers (MODWT boundary coefficients) are hatched.
    --var cse_z draws the order-null z-score.

    Example: cse plot result.nc --by label --where "word == verb_idx" -o profile.png
    """
    from ..io import atomic_path, check_output
    from ..plot import plot_depth_profile

    suffix = output.suffix.lower()
    if suffix not in FIGURE_FORMATS:
        raise CSEInputError(f"Invalid value for 'output': {str(output)!r} must end in {', '.join(FIGURE_FORMATS)}")
    check_output(output, inputs=[options["result"], stats_path], overwrite=overwrite, result=False)
    ds = load_result(options["result"])
    if stats_path is not None:
        res = load_statistics(stats_path)
    elif no_test:
        res = None
    else:
        res = run_compare(ds, options, n_bootstrap=0)
    fig = plot_depth_profile(ds, options["by"], options["where"], stats=res, ci=ci, groups=options["groups"] or None,
                             var=options["var"], include_special=options["include_special"],
                             shade_boundary=not no_boundary)  # fmt: skip
    with atomic_path(output, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format=suffix[1:], dpi=150)
    click.echo(f"saved figure to {output}", err=True)
