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
    """Path of the example CSV inside the installed package."""
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
        Index ``layer`` (with a ``depth`` column), one column of mean CSE per group
        and ``n_<group>`` token counts.
    """
    from .stats import select_tokens

    sub = ds["cse"].isel(token=np.flatnonzero(select_tokens(ds, where))).load()
    groups = sub[by].to_numpy()
    table = pd.DataFrame({"depth": ds["depth"].to_numpy()}, index=pd.Index(ds["layer"].to_numpy(), name="layer"))
    for group in sorted(np.unique(groups).tolist()):
        values = sub.isel(token=np.flatnonzero(groups == group)).to_numpy()
        table[str(group)] = np.nanmean(values, axis=0)
        table[f"n_{group}"] = values.shape[0]
    return table


def plot_summary(table: pd.DataFrame, path, title: str) -> None:
    """Save a PNG of mean CSE against relative depth, one line per group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for column in table.columns:
        if column == "depth" or column.startswith("n_"):
            continue
        ax.plot(table["depth"], table[column], marker="o", ms=3, label=f"{column} (n={table[f'n_{column}'].iloc[0]})")
    ax.set_xlabel("relative depth (layer + 1) / L")
    ax.set_ylabel("mean CSE (first token of the target verb)")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    from . import __version__

    fig.savefig(path, dpi=120, format="png", metadata={"Software": f"cse {__version__} (example)"})
    plt.close(fig)


def previous_example_outputs(output, plot_path) -> bool:
    """True if `output` and `plot_path` are absent or are what an earlier ``cse compute --example`` wrote.

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
