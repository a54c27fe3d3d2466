"""`cse stats`: per-layer permutation test between two groups of tokens."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import CSEInputError

TAIL_NAMES = {"two-sided": 0, "0": 0, "greater": 1, "1": 1, "less": -1, "-1": -1}


def load_result(path: Path):
    """Open RESULT (.nc via h5netcdf, .zarr lazily via Dask) with one-line errors."""
    from ..io import open_result

    if not Path(path).exists():
        raise CSEInputError(f"Invalid value for 'RESULT': {str(path)!r} does not exist")
    if Path(path).suffix.lower() == ".zarr":
        return open_result(path, chunks={})  # lazy: compare() loads only the selected tokens
    return open_result(path)


def shared_options(func):
    """Selection options shared by `cse stats` and `cse plot`."""
    options = [
        click.argument("result", type=click.Path(path_type=Path)),
        click.option("--by", required=True, help="Token coordinate holding the two groups, e.g. label."),
        click.option("--where", default=None,
                     help="Token selection, a pandas expression over token coordinates, "
                          "e.g. \"word == verb_idx\" or \"is_word_start and genre == 'news'\"."),  # fmt: skip
        click.option("--groups", nargs=2, default=None, metavar="A B",
                     help="The two values of --by to compare; differences are B - A [default: the two found, sorted]."),
        click.option("--var", default="cse", show_default=True, help="(token, layer) variable to test."),
        click.option("--include-special", is_flag=True, help="Keep special tokens (excluded by default)."),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


def permutation_options(func):
    """Options of the permutation test, shared by `cse stats` and `cse plot`."""
    options = [
        click.option("--paired-by", default=None, help="Token coordinate of pair ids: sign-flip test of pairs."),
        click.option("--blocks", default=None, help="Token coordinate of exchangeability blocks (e.g. verb, text)."),
        click.option("--correction", type=click.Choice(["cluster", "maxT", "fdr_bh"]), default="cluster",
                     show_default=True),
        click.option("--n-permutations", type=int, default=10000, show_default=True),
        click.option("--tail", type=click.Choice(list(TAIL_NAMES)), default="two-sided", show_default=True,
                     help="greater: B > A; less: B < A."),
        click.option("--threshold", type=float, default=None,
                     help="Cluster-forming |t| [default: t critical value at --cluster-alpha]."),
        click.option("--cluster-alpha", type=float, default=0.05, show_default=True),
        click.option("--alpha", type=float, default=0.05, show_default=True),
        click.option("--n-bootstrap", type=int, default=2000, show_default=True,
                     help="Bootstrap replicates for the interval of Hedges' g."),
        click.option("--seed", type=int, default=0, show_default=True),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


def run_compare(ds, by, where, groups, var, include_special, paired_by, blocks, correction, n_permutations, tail,
                threshold, cluster_alpha, alpha, n_bootstrap, seed):  # fmt: skip
    from ..stats import compare

    return compare(
        ds, by, where, groups=groups or None, var=var, paired_by=paired_by, blocks=blocks,
        n_permutations=n_permutations, correction=correction, tail=TAIL_NAMES[tail], threshold=threshold,
        cluster_alpha=cluster_alpha, alpha=alpha, n_bootstrap=n_bootstrap, include_special=include_special,
        seed=seed,
    )  # fmt: skip


def format_table(res) -> str:
    """The per-layer table and the cluster list as text."""
    import numpy as np

    a, b = res.attrs["group_a"], res.attrs["group_b"]
    cols = ["mean_a", "mean_b", "diff", "t", "p_uncorrected", "p_corrected", "significant",
            "hedges_g", "g_ci_low", "g_ci_high", "n_a", "n_b"]  # fmt: skip
    frame = res[cols].to_dataframe()
    frame = frame[[c for c in ["depth", *cols] if c in frame.columns]]
    frame = frame.rename(columns={"mean_a": f"mean[{a}]", "mean_b": f"mean[{b}]", "p_uncorrected": "p_unc",
                                  "p_corrected": f"p_{res.attrs['correction']}", "significant": "sig",
                                  "n_a": f"n[{a}]", "n_b": f"n[{b}]"})  # fmt: skip
    lines = [
        f"{res.attrs['var']} by {res.attrs['by']}: {res.attrs['difference']}; test {res.attrs['test']}, "
        f"{res.attrs['n_permutations']} permutations, correction {res.attrs['correction']}, "
        f"tail {res.attrs['tail']}, seed {res.attrs['seed']}",
        f"tokens: {res.attrs['n_tokens_a']} {a}, {res.attrs['n_tokens_b']} {b}"
        + (f"; where {res.attrs['where']}" if res.attrs["where"] else "")
        + (f"; {res.attrs['n_special_excluded']} special tokens excluded" if res.attrs["n_special_excluded"] else ""),
        frame.to_string(float_format=lambda v: f"{v:.4g}"),
    ]
    if res.attrs["correction"] == "cluster":
        lines.append(f"clusters (|t| > {res.attrs['threshold']:.3g}): {res.sizes['cluster']}")
        for k in range(res.sizes["cluster"]):
            lines.append(
                f"  layers {res.cluster_start.values[k]}-{res.cluster_stop.values[k]}  "
                f"mass {res.cluster_mass.values[k]:+.3f}  p = {res.cluster_p.values[k]:.4g}"
                + ("  *" if res.cluster_p.values[k] <= res.attrs["alpha"] else "")
            )
    n_sig = int(np.sum(res.significant.values))
    lines.append(f"significant layers at alpha {res.attrs['alpha']:g}: {n_sig} of {res.sizes['layer']}")
    return "\n".join(lines)


@click.command("stats")
@shared_options
@permutation_options
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the per-layer statistics to this .nc (netCDF4) or .zarr file.")  # fmt: skip
@click.option("--overwrite", is_flag=True, help="Replace an existing statistics file (never RESULT itself).")
def stats_command(result, by, where, groups, var, include_special, paired_by, blocks, correction, n_permutations,
                  tail, threshold, cluster_alpha, alpha, n_bootstrap, seed, output, overwrite):  # fmt: skip
    """Compare two groups of tokens in RESULT (.nc or .zarr) at every layer.

    Welch t per layer with label permutations (within --blocks when given) or sign
    flips of pairs (--paired-by), corrected across layers; prints a per-layer table.

    Example: cse stats result.nc --by label --where "word == verb_idx" -o stats.nc
    """
    from ..io import check_output, write_result

    if output is not None:
        check_output(output, inputs=[result], overwrite=overwrite)  # before the permutations run
    ds = load_result(result)
    res = run_compare(ds, by, where, groups, var, include_special, paired_by, blocks, correction, n_permutations,
                      tail, threshold, cluster_alpha, alpha, n_bootstrap, seed)  # fmt: skip
    res.attrs["source"] = str(result)
    click.echo(format_table(res))
    if output is not None:
        write_result(res, output, overwrite=overwrite)
        click.echo(f"saved statistics to {output}", err=True)
