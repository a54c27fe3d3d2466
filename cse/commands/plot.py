"""`cse plot`: CSE depth profile per group, confidence bands, significant clusters shaded."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import CSEInputError
from .stats import load_result, permutation_options, run_compare, shared_options

FIGURE_FORMATS = (".png", ".pdf", ".svg")


@click.command("plot")
@shared_options
@permutation_options
@click.option("--stats", "stats_path", type=click.Path(path_type=Path), default=None,
              help="Shade the significant layers of this 'cse stats -o' file instead of testing again.")
@click.option("--no-test", is_flag=True, help="Draw the profiles only: no test, no shading.")
@click.option("--ci", type=float, default=0.95, show_default=True, help="Coverage of the bands (t interval).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Figure file (.png, .pdf or .svg).")
@click.option("--overwrite", is_flag=True, help="Replace an existing figure file.")
def plot_command(result, by, where, groups, var, include_special, paired_by, blocks, correction, n_permutations,
                 tail, threshold, cluster_alpha, alpha, n_bootstrap, seed, stats_path, no_test, ci, output, overwrite):
    """Draw the depth profile of RESULT (.nc or .zarr) per group of --by.

    Mean per layer with Student t bands against relative depth (layer index on top);
    layers significant after the correction across layers are shaded (the test runs
    with the same options as 'cse stats', or comes from --stats).

    Example: cse plot result.nc --by label --where "word == verb_idx" -o profile.png
    """
    import xarray as xr

    from ..io import atomic_path
    from ..plot import plot_depth_profile

    suffix = output.suffix.lower()
    if suffix not in FIGURE_FORMATS:
        raise CSEInputError(f"Invalid value for 'output': {str(output)!r} must end in {', '.join(FIGURE_FORMATS)}")
    from ..io import check_output

    check_output(output, inputs=[result, stats_path], overwrite=overwrite, result=False)
    ds = load_result(result)
    if stats_path is not None:
        if not stats_path.exists():
            raise CSEInputError(f"Invalid value for '--stats': {str(stats_path)!r} does not exist")
        from ..io import output_format

        try:
            if output_format(stats_path, "--stats") == "zarr":
                res = xr.open_zarr(stats_path).load()
            else:
                res = xr.open_dataset(stats_path, engine="h5netcdf").load()
        except (OSError, ValueError, KeyError) as exc:
            raise CSEInputError(f"{stats_path}: not a readable statistics file ({str(exc).splitlines()[0]})") from None
    elif no_test:
        res = None
    else:
        res = run_compare(ds, by, where, groups, var, include_special, paired_by, blocks, correction, n_permutations,
                          tail, threshold, cluster_alpha, alpha, 0, seed)
    fig = plot_depth_profile(ds, by, where, stats=res, ci=ci, groups=groups or None, var=var,
                             include_special=include_special)
    with atomic_path(output, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format=suffix[1:], dpi=150)
    click.echo(f"saved figure to {output}", err=True)
