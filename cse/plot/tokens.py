"""One text's tokens against the layers, as a heatmap (`plot_tokens`; ``cse plot RESULT --text N``).

Figures are built on `matplotlib.figure.Figure` directly (Agg canvas, no pyplot, no
display, no global state), so they are safe in scripts, tests and worker processes.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..errors import CSEInputError
from .style import BOUNDARY_COLOUR, integer_ticks, runs, setting_words, var_attrs

#: Most tokens drawn in one row of `plot_tokens`; longer texts are split into rows.
TOKENS_PER_ROW = 60
#: Longest token label drawn, in characters (longer ones end in an ellipsis).
_LABEL_CHARS = 16
_OUTLINE_COLOUR = "#d62728"
_SPECIAL_COLOUR = "0.45"


def plot_tokens(ds, text, var: str = "cse", where=None, *, label: str | None = None,
                tokens_per_row: int = TOKENS_PER_ROW, shade_boundary: bool = True, vmin: float | None = None,
                vmax: float | None = None, cmap=None, title: str | None = None):  # fmt: skip
    """Draw one text's tokens against layers as a heatmap of `var`.

    Parameters
    ----------
    ds : xarray.Dataset
        A ``cse compute`` result (netCDF or Zarr, eager or lazy); only the tokens of
        `text` are loaded.
    text : int
        The text to draw: a value of the ``text`` coordinate (the row of the input).
    var : str
        A (token, layer) variable: ``cse`` (default), ``cse_z``, ``update_norm``,
        ``cse_null_mean``, ...
    where : str, dict, ndarray of bool or None
        A token selection, as in `cse.stats.compare` (an expression such as
        ``"word == target_idx"``, parsed by `cse.where`, never evaluated as Python;
        or a boolean mask over the result's tokens): the selected tokens of this text
        are outlined.
    label : str or None
        A token coordinate (e.g. VUA's ``label_seq``): tokens whose value is 1 or True
        are outlined, like a `where` selection.
    tokens_per_row : int
        Tokens per row of the figure (default `TOKENS_PER_ROW`); longer texts are
        split into rows of the same cell width.
    shade_boundary : bool
        Hatch the boundary-affected positions (MODWT boundary coefficients): the
        layers flagged ``boundary_affected`` on the depth axis, the token positions
        flagged on the token axis; a hidden-axis result has none.
    vmin, vmax : float or None
        Colour limits; default the range of the text's non-special tokens
        (symmetric about 0 for a z-score such as ``cse_z``).
    cmap : str or matplotlib colormap, optional
        Default ``viridis`` (``RdBu_r`` for z-scores). Undefined (NaN) cells are grey.
    title : str, optional
        Figure title; default names the model, the variable, the text and the measure's
        setting (axis, wavelet, level, boundary).

    Returns
    -------
    matplotlib.figure.Figure
        One row of axes per `tokens_per_row` tokens: layers upwards (layer 0 at the
        bottom), tokens left to right labelled with their strings (leading spaces
        as ``␣``, newlines as ``↵``), special tokens in grey italics, outlined tokens
        in bold; one colour bar.

    Raises
    ------
    TypeError
        If `ds` is not a Dataset or `text` not an int.
    CSEInputError
        If `var` is not a (token, layer) variable, `text` is not in the result,
        `label` is not a token coordinate, `where` is refused, or `tokens_per_row`
        is not a positive int.

    Examples
    --------
    >>> import cse
    >>> ds = cse.open_result("cse-example.nc")  # doctest: +SKIP
    >>> fig = cse.plot.plot_tokens(ds, text=0)  # doctest: +SKIP
    """
    tokens, idx = _text_tokens(ds, text, var, label, tokens_per_row)
    if isinstance(where, (np.ndarray, xr.DataArray)) and np.shape(where) == (ds.sizes["token"],):
        where = np.asarray(where, dtype=bool)[idx]  # a mask over the whole result: this text's part
    values = np.asarray(tokens[var].transpose("token", "layer").values, dtype=np.float64)  # (T, L)
    special = np.asarray(tokens["is_special"].values, dtype=bool) if "is_special" in tokens.coords else None
    special = np.zeros(len(values), dtype=bool) if special is None else special
    outlined = np.zeros(len(values), dtype=bool)
    if where is not None:
        from ..stats import select_tokens

        outlined |= select_tokens(tokens, where, include_special=True, var=var)
    if label is not None:
        outlined |= np.isin(np.asarray(tokens[label].values, dtype=object), [1, True])
    norm, cmap = _token_colours(values, special, var, vmin, vmax, cmap)
    boundary = tokens.coords.get("boundary_affected") if shade_boundary else None
    fig = _token_rows(values, _token_labels(tokens), special, outlined, boundary, norm, cmap, int(tokens_per_row))
    units = str(var_attrs(ds, var).get("units", ""))
    colour_label = var + (f" [{units}]" if units not in ("", "1") and len(units) <= 12 else "")
    fig.colorbar(fig.axes[0].images[0], ax=fig.axes, label=colour_label, shrink=0.9)
    _token_legend(fig, boundary, outlined, where, label, special)
    if title is None:
        parts = (ds.attrs.get("model", ""), f"{var} of text {text} ({len(values)} tokens)", setting_words(ds.attrs))
        title = " — ".join(part for part in parts if part)
    fig.suptitle(title, fontsize="medium", parse_math=False)
    return fig


def _text_tokens(ds, text, var, label, tokens_per_row) -> tuple[xr.Dataset, np.ndarray]:
    """The tokens of `text`, loaded, and their indices, after checking every argument that needs no drawing."""
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"Invalid type for 'ds': expected a cse result (xarray.Dataset), got {type(ds).__name__}")
    if isinstance(text, bool) or not isinstance(text, (int, np.integer)):
        raise TypeError(f"Invalid type for 'text': expected an int (a value of the 'text' coordinate), "
                        f"got {type(text).__name__}")  # fmt: skip
    if isinstance(tokens_per_row, bool) or not isinstance(tokens_per_row, (int, np.integer)) or tokens_per_row < 1:
        raise CSEInputError(f"Invalid value for 'tokens_per_row': expected a positive int, got {tokens_per_row!r}")
    if var not in ds or set(ds[var].dims) != {"token", "layer"}:
        options = [str(k) for k, v in ds.data_vars.items() if set(v.dims) == {"token", "layer"}]
        raise CSEInputError(f"Invalid value for 'var': expected a (token, layer) variable of the result "
                            f"({', '.join(options) or 'none'}), got {var!r}")  # fmt: skip
    if "text" not in ds.coords:
        raise CSEInputError("Invalid value for 'ds': the result has no 'text' coordinate on its tokens")
    texts = np.asarray(ds["text"].values)
    idx = np.flatnonzero(texts == int(text))
    if not idx.size:
        raise CSEInputError(f"Invalid value for 'text': no text {int(text)} in the result; it holds "
                            f"{np.unique(texts).size} texts from {texts.min()} to {texts.max()}")  # fmt: skip
    if label is not None and (label not in ds.coords or ds[label].dims != ("token",)):
        raise CSEInputError(f"Invalid value for 'label': expected a token coordinate of the result, got {label!r}")
    return ds.isel(token=idx).load(), idx


def _token_labels(tokens: xr.Dataset) -> list[str]:
    """Readable token strings: spaces at the ends as ␣, line breaks and tabs as arrows, no control characters."""
    name = "token_str" if "token_str" in tokens.coords else "token_id" if "token_id" in tokens.coords else None
    raw = [str(s) for s in tokens[name].values] if name else [""] * tokens.sizes["token"]
    labels = []
    for s in raw:
        s = s.replace("\r\n", "↵").replace("\n", "↵").replace("\r", "↵").replace("\t", "⇥")
        s = "".join(ch if ch.isprintable() else "�" for ch in s)
        lead, trail = len(s) - len(s.lstrip(" ")), len(s) - len(s.rstrip(" "))
        s = "␣" * lead + s.strip(" ") + "␣" * trail if s.strip(" ") else "␣" * len(s)
        labels.append(s if len(s) <= _LABEL_CHARS else s[: _LABEL_CHARS - 1] + "…")
    return labels


def _token_colours(values, special, var, vmin, vmax, cmap):
    """Colour norm and colormap: the text's range over non-special tokens, symmetric for z-scores."""
    from matplotlib import colormaps, colors

    shown = values[~special] if (~special).any() else values
    finite = shown[np.isfinite(shown)]
    z_score = var.endswith("_z")
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (-1.0, 1.0) if z_score else (0.0, 1.0)
    if z_score:
        lo, hi = -(max(abs(lo), abs(hi)) or 1.0), max(abs(lo), abs(hi)) or 1.0
    lo, hi = (lo if vmin is None else float(vmin)), (hi if vmax is None else float(vmax))
    hi = hi if hi > lo else lo + 1e-9
    cmap = colormaps[cmap or ("RdBu_r" if z_score else "viridis")] if not isinstance(cmap, colors.Colormap) else cmap
    return colors.Normalize(lo, hi), cmap.with_extremes(bad="0.82")


def _token_rows(values, labels, special, outlined, boundary, norm, cmap, per_row):
    """One axes per row of tokens: the heatmap, the token labels, hatched boundary cells, outlines."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    n_tokens, n_layers = values.shape
    n_rows = -(-n_tokens // per_row)
    width = min(per_row, n_tokens)
    label_height = 0.3 + 0.075 * max(len(s) for s in labels)
    fig = Figure(figsize=(min(max(2.2 + 0.2 * width, 6.0), 16.0),
                          n_rows * (0.45 + 0.075 * max(n_layers, 8) + label_height) + 1.0),
                 layout="constrained")  # fmt: skip
    flags = None if boundary is None else np.asarray(boundary.values, dtype=bool)
    for row, ax in enumerate(fig.subplots(n_rows, 1, squeeze=False)[:, 0]):
        part = slice(row * per_row, min((row + 1) * per_row, n_tokens))
        n = part.stop - part.start
        ax.imshow(values[part].T, origin="lower", aspect="auto", interpolation="nearest", norm=norm, cmap=cmap,
                  extent=(-0.5, n - 0.5, -0.5, n_layers - 0.5))  # fmt: skip
        ax.set_xlim(-0.5, width - 0.5)
        ax.set_ylabel("layer")
        ax.yaxis.set_major_locator(integer_ticks())
        ax.set_xticks(np.arange(n), labels[part], rotation=90, fontsize=8, parse_math=False)
        for tick, is_special, is_outlined in zip(ax.get_xticklabels(), special[part], outlined[part]):
            tick.set_color(_SPECIAL_COLOUR if is_special else "black")
            tick.set_fontstyle("italic" if is_special else "normal")
            tick.set_fontweight("bold" if is_outlined else "normal")
        ax.tick_params(axis="x", length=0)
        ax.spines[["top", "right"]].set_visible(False)
        if flags is not None:
            per_layer = boundary.dims == ("layer",)
            for a, b in runs(flags if per_layer else flags[part]):
                xy, w, h = ((-0.5, a - 0.5), n, b - a + 1) if per_layer else ((a - 0.5, -0.5), b - a + 1, n_layers)
                ax.add_patch(Rectangle(xy, w, h, fill=False, hatch="//", edgecolor=BOUNDARY_COLOUR, linewidth=0,
                                       alpha=0.55))  # fmt: skip
        for a, b in runs(outlined[part]):
            ax.add_patch(Rectangle((a - 0.5, -0.5), b - a + 1, n_layers, fill=False, edgecolor=_OUTLINE_COLOUR,
                                   linewidth=2.0, clip_on=False))  # fmt: skip
    return fig


def _token_legend(fig, boundary, outlined, where, label, special) -> None:
    """What the hatching, the outlines and the grey labels mean, below the last row."""
    from matplotlib.patches import Patch

    handles = []
    if boundary is not None and np.asarray(boundary.values, dtype=bool).any():
        what = "layers" if boundary.dims == ("layer",) else "token positions"
        handles.append(Patch(facecolor="none", edgecolor=BOUNDARY_COLOUR, hatch="//",
                             label=f"boundary-affected {what} (MODWT boundary coefficients)"))  # fmt: skip
    if outlined.any():
        chosen = " or ".join(([f"where {where}"] if isinstance(where, str) else ["selected"] if where is not None
                              else []) + ([f"{label} = 1"] if label is not None else []))  # fmt: skip
        handles.append(Patch(facecolor="none", edgecolor=_OUTLINE_COLOUR, linewidth=2.0, label=chosen))
    if special.any():
        handles.append(Patch(facecolor="none", edgecolor="none", label="grey italic labels: special tokens"))
    if handles:
        for handle in handles:
            handle.set_label(handle.get_label().replace("$", r"\$"))  # user text, not mathtext
        ncol = min(len(handles), max(1, int(fig.get_figwidth() // 5)))
        fig.legend(handles=handles, loc="outside lower center", ncol=ncol, fontsize="small", frameon=False)
