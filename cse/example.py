"""The built-in example: labelled literal and metaphorical sentences shipped with cse.

Twelve pairs written by the cse authors: each verb is used once in a
metaphorical and once in a literal sense, in sentences of similar length.
Columns: ``pair``, ``verb``, ``label`` (``metaphorical``/``literal``),
``target_idx`` (0-based index of the verb in ``sentence.split()``), ``sentence``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr


def example_path() -> Path:
    """Path of the example CSV inside the installed package.

    Returns
    -------
    pathlib.Path
        ``cse/data/example.csv``: columns ``pair``, ``verb``, ``label``, ``target_idx``,
        ``sentence`` (see the module docstring).
    """
    return Path(resources.files("cse.data") / "example.csv")


def depth_summary(
    ds: xr.Dataset, by: str = "label", where: str | None = "word == target_idx and is_word_start"
) -> pd.DataFrame:
    """Mean CSE per layer and group over the selected tokens (special tokens excluded).

    Parameters
    ----------
    ds : xarray.Dataset
        A result of `cse.compute`.
    by : str
        Token coordinate whose values define the groups.
    where : str, optional
        A token selection as in `cse.stats.select_tokens` (special tokens are excluded).

    Returns
    -------
    pandas.DataFrame
        Index ``layer`` (with a ``depth`` column), one column of mean CSE per group,
        ``n_<group>`` token counts and, where the result flags them on ``layer``, a
        boolean ``boundary_affected`` column (MODWT boundary coefficients).
    """
    from .stats import select_tokens

    sub = ds["cse"].isel(token=np.flatnonzero(select_tokens(ds, where))).load()
    groups = sub[by].to_numpy()
    table = pd.DataFrame({"depth": ds["depth"].to_numpy()}, index=pd.Index(ds["layer"].to_numpy(), name="layer"))
    for group in sorted(np.unique(groups).tolist()):
        values = sub.isel(token=np.flatnonzero(groups == group)).to_numpy()
        table[str(group)] = np.nanmean(values, axis=0)
        table[f"n_{group}"] = values.shape[0]
    if "boundary_affected" in ds.coords and ds["boundary_affected"].dims == ("layer",):
        table["boundary_affected"] = np.asarray(ds["boundary_affected"].values, dtype=bool)
    return table


def _group_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c not in ("depth", "boundary_affected") and not c.startswith("n_")]


def _layer_runs(layers) -> str:
    """Layer indices as runs, e.g. ``0-6`` or ``0-2, 5``."""
    layers = np.asarray(layers, dtype=np.int64)
    breaks = np.flatnonzero(np.diff(layers) != 1) + 1
    runs = [(run[0], run[-1]) for run in np.split(layers, breaks) if run.size]
    return ", ".join(f"{a}-{b}" if b > a else f"{a}" for a, b in runs)


def summary_text(table: pd.DataFrame) -> str:
    """The printed summary of ``cse compute --example``: the table, its boundary layers marked, the difference.

    Parameters
    ----------
    table : pandas.DataFrame
        From `depth_summary`, with the groups ``metaphorical`` and ``literal``.

    Returns
    -------
    str
        Lines: a heading, the table (boundary-affected layers marked ``*`` in a
        ``boundary`` column), a note on what the marks mean, and the mean and largest
        metaphorical - literal difference.
    """
    shown = table.drop(columns=["boundary_affected"], errors="ignore").round(4)
    flagged = table.index[table["boundary_affected"]] if "boundary_affected" in table else table.index[:0]
    lines = ["Mean CSE of the target verbs (first token) by layer and label:"]
    if len(flagged):
        shown["boundary"] = np.where(table["boundary_affected"], "*", "")
    lines.append(shown.to_string())
    if len(flagged):
        lines.append(f"* boundary-affected layers {_layer_runs(flagged)}: their MODWT coefficients read values the "
                     f"boundary rule invents, so their raw CSE is shaped by the rule, not only by the model; "
                     f"compare raw CSE across layers only outside them, or compare cse_z (--null-permutations).")
    diff = table["metaphorical"] - table["literal"]
    lines.append(f"metaphorical - literal: mean {diff.mean():+.4f}; largest {diff.max():+.4f} at layer "
                 f"{int(diff.idxmax())} (relative depth {table.loc[diff.idxmax(), 'depth']:.2f}). "
                 f"Twelve pairs are a demonstration, not a test: use 'cse stats' for inference.")  # fmt: skip
    return "\n".join(lines)


def plot_summary(table: pd.DataFrame, path, title: str) -> None:
    """Save `summary_figure` as a PNG that names cse as its software.

    Parameters
    ----------
    table : pandas.DataFrame
        From `depth_summary`.
    path : str or Path
        The PNG file to write; its ``Software`` text chunk names cse, so that a later
        ``cse compute --example`` may replace it (see `previous_example_outputs`).
    title : str
        Axes title.
    """
    from . import __version__

    summary_figure(table, title).savefig(path, dpi=120, format="png",
                                         metadata={"Software": f"cse {__version__} (example)"})  # fmt: skip


def summary_figure(table: pd.DataFrame, title: str):
    """Mean CSE against relative depth, one line per group, boundary-affected layers hatched.

    Parameters
    ----------
    table : pandas.DataFrame
        From `depth_summary`.
    title : str
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure
        Relative depth below, the layer index above; the legend names the
        boundary-affected layers.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from .plot import BOUNDARY_COLOUR

    fig = Figure(figsize=(6.5, 4.6), layout="constrained")
    ax = fig.add_subplot()
    depth = table["depth"].to_numpy()
    half = 0.5 * (depth[1] - depth[0]) if len(depth) > 1 else 0.5
    if "boundary_affected" in table and table["boundary_affected"].any():
        flagged = depth[table["boundary_affected"].to_numpy()]
        ax.axvspan(flagged.min() - half, flagged.max() + half, facecolor="none", edgecolor=BOUNDARY_COLOUR,
                   hatch="//", linewidth=0, alpha=0.6, zorder=0,
                   label=f"boundary-affected layers {_layer_runs(table.index[table['boundary_affected']])}: "
                         f"raw CSE shaped by the boundary rule")  # fmt: skip
    for column in _group_columns(table):
        ax.plot(depth, table[column], marker="o", ms=3, label=f"{column} (n={table[f'n_{column}'].iloc[0]})")
    n_layers = len(depth)
    top = ax.secondary_xaxis("top", functions=(lambda d: d * n_layers - 1, lambda layer: (layer + 1) / n_layers))
    top.xaxis.set_major_locator(MaxNLocator(integer=True))
    top.set_xlabel("layer")
    ax.set_xlabel("relative depth (layer + 1) / L")
    ax.set_ylabel("mean CSE (first token of the target verb)")
    ax.set_title(title, fontsize="medium")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize="small", frameon=False)
    ax.grid(alpha=0.3)
    return fig


def previous_example_outputs(output, plot_path) -> bool:
    """True if `output` and `plot_path` are absent or are what an earlier ``cse compute --example`` wrote.

    Parameters
    ----------
    output : str or Path
        The example's result file.
    plot_path : str or Path
        The example's figure.

    The result must be a result of cse whose recorded command used ``--example``, and
    the figure a PNG that names cse as its software; anything else is the user's and is
    never replaced without ``--overwrite``.
    """
    from pathlib import Path

    from .io import is_package_result, result_attrs

    output, plot_path = Path(output), Path(plot_path)
    if output.exists() or output.is_symlink():
        try:
            if not (is_package_result(output) and "--example" in str(result_attrs(output).get("command", ""))):
                return False
        except Exception:  # unreadable or refused: not ours
            return False
    if plot_path.exists() or plot_path.is_symlink():
        if plot_path.is_symlink() or not plot_path.is_file():
            return False
        try:
            from PIL import Image

            with Image.open(plot_path) as image:
                return str(getattr(image, "text", {}).get("Software", "")).startswith("cse ")
        except Exception:  # not a PNG
            return False
    return True
