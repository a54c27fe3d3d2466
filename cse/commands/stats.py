"""`cse stats`: per-layer permutation test between two groups of tokens."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from ..errors import CSEInputError
from ..stats import BOOTSTRAPS, CORRECTIONS, NULLS, STATISTICS, boundary_layers, layer_span

TAIL_NAMES = {"two-sided": 0, "0": 0, "greater": 1, "1": 1, "less": -1, "-1": -1}


def load_result(path: Path):
    """Open RESULT (.nc via h5netcdf, .zarr lazily via Dask) with one-line errors."""
    from ..io import check_coordinates, open_result

    if not Path(path).exists():
        raise CSEInputError(f"Invalid value for 'RESULT': {str(path)!r} does not exist")
    if Path(path).suffix.lower() == ".zarr":
        return check_coordinates(open_result(path, chunks={}), str(path))  # lazy: compare() loads what it selects
    return check_coordinates(open_result(path), str(path))


def shared_options(func):
    """Selection options shared by `cse stats` and `cse plot`."""
    options = [
        click.argument("result", type=click.Path(path_type=Path)),
        click.option("--by", required=True, help="Token coordinate holding the two groups, e.g. label."),
        click.option("--where", default=None,
                     help="Token selection over token coordinates: comparisons, and/or/not, 'in' a list of "
                          "constants, arithmetic on numbers; e.g. \"word == verb_idx\" or "
                          "\"is_word_start and genre == 'news'\". Never evaluated as Python."),  # fmt: skip
        click.option("--levels", "--groups", "levels", nargs=2, default=None, metavar="A B",
                     help="The two values of --by to compare; differences are B - A [default: the two found, sorted]. "
                          "--groups is the old name."),
        click.option("--var", default="cse", show_default=True,
                     help="(token, layer) variable to test, e.g. cse or cse_z (the order-null z-score)."),
        click.option("--include-special", is_flag=True, help="Keep special tokens (excluded by default)."),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


def permutation_options(func):
    """Options of the permutation test, shared by `cse stats` and `cse plot`."""
    options = [
        click.option("--paired-by", default=None, help="Token coordinate of pair ids: sign-flip test of pairs."),
        click.option("--exchangeability-blocks", "--blocks", "exchangeability_blocks", default=None,
                     help="Token coordinate of exchangeability blocks (e.g. verb, text): within-block t (block "
                          "fixed effects), labels permuted within blocks. --blocks is the old name."),
        click.option("--covariate", "covariates", multiple=True,
                     help="Numeric token coordinate entered as a nuisance regressor (Freedman-Lane), e.g. "
                          "surprisal or position; repeat for several."),
        click.option("--statistic", type=click.Choice(STATISTICS), default="auto", show_default=True,
                     help="auto: Welch t without blocks, cr (label coefficient over its block-clustered SE, valid "
                          "when the labels differ in variance) with --exchangeability-blocks, hc2 with covariates "
                          "only, paired with --paired-by; pooled: the pooled-variance t of earlier releases."),
        click.option("--null", type=click.Choice(NULLS), default="auto", show_default=True,
                     help="Null distribution of the statistic, for every p-value and correction. auto: wild (the "
                          "restricted wild cluster bootstrap, one Webb weight per block at every layer; holds "
                          "cluster mass when the effect varies between blocks) for cr, permutation otherwise."),
        click.option("--correction", "corrections", type=click.Choice(CORRECTIONS), multiple=True,
                     help="Correction across layers; repeat to compute several from the same permutations, "
                          "the first is the primary [default: cluster]."),
        click.option("--n-permutations", type=int, default=10000, show_default=True,
                     help="Random permutations (or wild bootstrap draws); a smaller space is enumerated."),
        click.option("--tail", type=click.Choice(list(TAIL_NAMES)), default="two-sided", show_default=True,
                     help="greater: B > A; less: B < A."),
        click.option("--threshold", type=float, default=None,
                     help="Cluster-forming absolute t [default: critical value at --cluster-alpha of t(G - 1) for cr "
                          "with G blocks, of N(0, 1) for other z statistics, else of t(df)]."),
        click.option("--cluster-alpha", type=float, default=0.05, show_default=True),
        click.option("--tfce-e", type=float, default=0.5, show_default=True, help="TFCE extent exponent E."),
        click.option("--tfce-h", type=float, default=2.0, show_default=True, help="TFCE height exponent H."),
        click.option("--alpha", type=float, default=0.05, show_default=True),
        click.option("--n-bootstrap", type=int, default=2000, show_default=True,
                     help="Bootstrap replicates for the intervals of Hedges' g and of the difference."),
        click.option("--bootstrap", type=click.Choice(BOOTSTRAPS), default="auto", show_default=True,
                     help="auto: t(G - 1) on the block-clustered SE with exchangeability blocks (t), tokens within "
                          "groups without blocks; blocks: resample whole blocks; cells: tokens within block-by-group "
                          "cells (earlier releases; too narrow with small blocks)."),
        click.option("--seed", type=int, default=0, show_default=True),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


def run_compare(ds, options: dict, n_bootstrap: int | None = None):
    """`cse.stats.compare` with the options of `shared_options` and `permutation_options`."""
    from ..stats import compare

    corrections = list(options["corrections"]) or ["cluster"]
    return compare(
        ds, options["by"], options["where"], levels=options["levels"] or None, var=options["var"],
        statistic=options["statistic"], bootstrap=options["bootstrap"], null=options["null"],
        paired_by=options["paired_by"], exchangeability_blocks=options["exchangeability_blocks"],
        covariates=list(options["covariates"]) or None, n_permutations=options["n_permutations"],
        correction=corrections[0], corrections=corrections, tail=TAIL_NAMES[options["tail"]],
        threshold=options["threshold"], cluster_alpha=options["cluster_alpha"], tfce_e=options["tfce_e"],
        tfce_h=options["tfce_h"], alpha=options["alpha"],
        n_bootstrap=options["n_bootstrap"] if n_bootstrap is None else n_bootstrap,
        include_special=options["include_special"], seed=options["seed"],
    )  # fmt: skip


def boundary_note(res) -> str:
    """One line naming the boundary-affected layers of a comparison ('' when unknown or none)."""
    mask = boundary_layers(res)
    if mask is None:
        return ""
    flagged = np.asarray(res["layer"].values)[mask]
    if not flagged.size:
        return "boundary-affected layers: none"
    return (f"boundary-affected layers (MODWT boundary coefficients; raw CSE there depends on the boundary rule, "
            f"compare across layers only outside them or on cse_z): {layer_span(flagged)}")  # fmt: skip


def describe_test(res) -> list[str]:
    """Header lines: the statistic, the permutation scheme, the corrections, the effect size, the tokens."""
    at = res.attrs
    a, b = at["group_a"], at["group_b"]
    wild = at.get("null") == "wild"
    scheme = f"{at['n_permutations']} " + ("restricted wild cluster bootstrap draws (Webb weights)" if wild else
                                          "permutations")  # fmt: skip
    if at["paired_by"]:
        scheme = f"{at['n_permutations']} sign flips of pairs by {at['paired_by']!r}"
    elif at["exchangeability_blocks"]:
        scheme += f" {'by' if wild else 'within'} {at['exchangeability_blocks']!r} blocks ({at['n_blocks']} blocks"
        if at["n_blocks_single_label"]:
            scheme += (f"; {at['n_blocks_single_label']} holding one label left out "
                       f"({at['n_tokens_single_label_blocks']} tokens): {at['blocks_single_label']}")  # fmt: skip
        scheme += ")"
    corrections = at["corrections"].split(", ")
    lines = [
        f"{at['var']} by {at['by']}: {at['difference']}",
        f"statistic: {at['statistic']}; {scheme}; corrections: {corrections[0]} (primary)"
        + "".join(f", {c}" for c in corrections[1:]) + f"; tail {at['tail']}, seed {at['seed']}",
        (f"null: {at.get('null', 'permutation')}; space: "
         + (f"all {at['n_permutations']} elements enumerated, exact p" if at.get("exact") else
            f"{at.get('permutation_space', np.nan):.3g} elements, {at['n_permutations']} drawn at random")
         + f"; smallest attainable p {at.get('p_min', np.nan):.3g}"
         + (f"; cluster-forming threshold {at['threshold']:.3g} ({at['threshold_rule']})"
            if at.get("threshold_rule") else "")),
        f"effect size: {at['effect_size']}; intervals: "
        + ("t(G - 1) on the block-clustered SE" if at.get("bootstrap") == "t" else
           f"percentile bootstrap ({at.get('bootstrap', '')})")
        + f", {at.get('ci', 0.95):.0%}" + (f" -- {at['interval_note']}" if at.get("interval_note") else "")
        + f"; corrections on the {at.get('scale', 't')} scale",
        f"tokens: {at['n_tokens_a']} {a}, {at['n_tokens_b']} {b}"
        + (f"; where {at['where']}" if at["where"] else "")
        + (f"; {at['n_special_excluded']} special tokens excluded" if at["n_special_excluded"] else "")
        + (f"; {at['n_tokens_incomplete']} incomplete tokens left out" if at.get("n_tokens_incomplete") else "")
        + (f"; {at['n_nonfinite']} infinite values treated as undefined" if at.get("n_nonfinite") else ""),
    ]
    return lines


def format_table(res, wide: bool = False) -> str:
    """The header, the per-layer table, the boundary note and the cluster list as text.

    Parameters
    ----------
    res : xarray.Dataset
        A `cse.stats.compare` result.
    wide : bool
        Every column (group means, intervals, df, every correction's p, n, TFCE); by
        default the table fits 120 columns: difference and its interval, the statistic
        (headed ``z`` when it is on the z scale, with no df), p uncorrected and primary
        corrected, the decision and Hedges' g. The saved result holds every column.

    Returns
    -------
    str
    """
    at = res.attrs
    a, b = at["group_a"], at["group_b"]
    corrections = at["corrections"].split(", ")
    on_z = at.get("scale") == "z"
    if wide:
        cols = ["mean_a", "mean_b", "diff", "diff_ci_low", "diff_ci_high", "t", "z", "df", "p_uncorrected",
                *[f"p_{c}" for c in corrections], "significant", "hedges_g", "g_ci_low", "g_ci_high", "n_a", "n_b",
                "tfce"]
    else:
        cols = ["diff", "diff_ci_low", "diff_ci_high", "t", "z", "p_uncorrected", f"p_{corrections[0]}", "significant",
                "hedges_g", "g_ci_low", "g_ci_high"]
    cols = [c for c in cols if c in res and not (on_z and c == "df")]
    frame = res[cols].to_dataframe()
    frame = frame[[c for c in ["depth", "boundary_affected", *cols] if c in frame.columns and (wide or c != "depth")]]
    frame = frame.rename(columns={"mean_a": f"mean[{a}]", "mean_b": f"mean[{b}]", "p_uncorrected": "p_unc",
                                  "significant": "sig", "boundary_affected": "boundary", "n_a": f"n[{a}]",
                                  "n_b": f"n[{b}]", "diff_ci_low": "ci_low", "diff_ci_high": "ci_high",
                                  "hedges_g": "g", "t": "z" if on_z else "t"})  # fmt: skip
    table = frame.to_string(float_format=lambda v: f"{v:.4g}")
    lines = [*describe_test(res), table]
    if not wide:
        lines.append("(--wide: every column; the saved result holds them all)")
    note = boundary_note(res)
    if note:
        lines.append(note)
    if "cluster" in corrections:
        lines.append(f"clusters (|{'z' if on_z else 't'}| > {at['threshold']:.3g}): {res.sizes['cluster']}")
        for k in range(res.sizes["cluster"]):
            lines.append(
                f"  layers {res.cluster_start.values[k]}-{res.cluster_stop.values[k]}  "
                f"mass {res.cluster_mass.values[k]:+.3f}  p = {res.cluster_p.values[k]:.4g}"
                + ("  *" if res.cluster_p.values[k] <= at["alpha"] else "")
            )
    n_sig = int(np.sum(res.significant.values))
    lines.append(f"significant layers at alpha {at['alpha']:g} ({corrections[0]}): {n_sig} of {res.sizes['layer']}")
    return "\n".join(lines)


@click.command("stats")
@shared_options
@permutation_options
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the per-layer statistics to this .nc (netCDF4) or .zarr file.")  # fmt: skip
@click.option("--overwrite", is_flag=True, help="Replace an existing statistics file (never RESULT itself).")
@click.option("--wide", is_flag=True, help="Print every column of the per-layer table (default: fits 120 columns).")
def stats_command(output, overwrite, wide, **options):
    """Compare two groups of tokens in RESULT (.nc or .zarr) at every layer.

    Welch t per layer with label permutations; with --exchangeability-blocks the
    within-block label effect (block fixed effects) over its block-clustered standard
    error (--statistic), labels permuted within blocks; with --covariate Freedman-Lane;
    with --paired-by sign flips of pairs. Every --correction comes from the same
    permutations (all of them when the space is small: exact p); prints a per-layer
    table with bootstrap intervals of the difference and of Hedges' g.

    Example: cse stats result.nc --by label --where "word == verb_idx" --exchangeability-blocks verb -o stats.nc
    """
    from ..io import check_output, write_result

    result = options["result"]
    if output is not None:
        check_output(output, inputs=[result], overwrite=overwrite)  # before the permutations run
    ds = load_result(result)
    res = run_compare(ds, options)
    res.attrs["source"] = str(result)
    click.echo(format_table(res, wide=wide))
    if output is not None:
        write_result(res, output, overwrite=overwrite)
        click.echo(f"saved statistics to {output}", err=True)
