"""Markdown helpers shared by the studies' reports (tables, p-values, provenance lines).

`layer_span` and `boundary_layers` live in `cse.stats` (one home for `cse stats`,
`cse plot` and the studies) and are re-exported here.
"""

from __future__ import annotations

import platform

import numpy as np
import pandas as pd

import cse
from cse.stats import boundary_layers, layer_span  # noqa: F401 - one home in cse, re-exported for the studies


def md_table(frame: pd.DataFrame, floats: dict | None = None, index: bool = False) -> str:
    """A GitHub Markdown table of `frame`; `floats` maps columns to format strings (default ``{:.4g}``)."""
    floats = floats or {}
    if index:
        frame = frame.reset_index()
    cols = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    for row in frame.itertuples(index=False):
        cells = []
        for c, v in zip(frame.columns, row):
            fmt = floats.get(c)
            if isinstance(v, (float, np.floating)):
                cells.append("" if np.isnan(v) else (fmt.format(v) if fmt else f"{v:.4g}"))
            else:
                cells.append(str(v).replace("|", "\\|"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def p_text(p) -> str:
    """A p-value for text: 4 decimals, or scientific below 0.0001; ``""`` when undefined."""
    if p is None or not np.isfinite(p):
        return ""
    return f"{p:.4f}" if p >= 0.0001 else f"{p:.1e}"


def model_line(identity: dict, slug: str, attrs: dict | None = None) -> str:
    """One line naming a model: slug, id, class, blocks, d_model, weights dtype and file hash or revision."""
    attrs = attrs or {}
    return (f"`{slug}`: `{identity['model']}` ({identity['model_class']}, {identity['n_layers']} blocks, d_model "
            f"{identity['d_model']}" + (f", weights {attrs['dtype']}" if attrs.get("dtype") else "") + ")"
            + (f", file SHA-256 `{identity['model_sha256']}`" if identity.get("model_sha256") else "")
            + (f", revision `{identity['revision']}`" if identity.get("revision") else ""))


def software_line(attrs: dict, elapsed: float) -> str:
    """Versions of the software that made a result, and the run time."""
    return (f"cse {cse.__version__}, torch {attrs.get('torch_version', '')}, transformers "
            f"{attrs.get('transformers_version', '')}, Python {platform.python_version()}; run time "
            f"{elapsed / 60:.1f} min")
