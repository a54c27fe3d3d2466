"""The result schema of the result schema: dimension order, variable names, CF attributes.

This module is the one source of truth for what a CSE result looks like. Every writer
(`cse.compute`, `cse.conditional_scale_entropy`, the sinks of `cse.compute`) takes the
dims, ``long_name`` and ``units`` of its variables from `VARIABLES`, and the names of
the package's own coordinates from `TOKEN_COORDS` and `LAYER_COORDS`, so that an input
column can never silently take their place (see `reserved_names`).

Dimension order is ``(token, layer, scale)`` everywhere.
"""

from __future__ import annotations

#: Dimension names, in storage order.
DIMS = ("token", "layer", "scale")

#: Dimensions of what ``cse compute --save`` stores besides the result: ``layer2`` is the
#: second layer of a Gram matrix (the same values as ``layer``; xarray allows no variable
#: with two dimensions of one name), ``layer_pair`` the packed upper triangle's pairs
#: (``numpy.triu_indices(n_layers)`` order, with coordinates ``layer_row``, ``layer_col``),
#: ``hidden`` the index of the residual stream.
SAVE_DIMS = ("layer2", "layer_pair", "hidden")

#: Data variables: name -> (dims, long_name, units). CF units: "1" is dimensionless. The
#: ``long_name`` is short, so that xarray's own ``.plot()`` labels fit a default figure;
#: the definition is the ``description`` attribute (`DESCRIPTIONS`).
VARIABLES = {
    "cse": (("token", "layer"), "CSE", "1"),
    "scale_fraction": (("token", "layer", "scale"), "energy fraction", "1"),
    "update_norm": (("token", "layer"), "update norm", "units of the residual stream"),
    "surprisal": (("token",), "surprisal", "nat"),
    "cse_null_mean": (("token", "layer"), "null mean of CSE", "1"),
    "cse_null_std": (("token", "layer"), "null SD of CSE", "1"),
    "cse_z": (("token", "layer"), "CSE z", "1"),
    "gram": (("token", "layer", "layer2"), "Gram matrix", "(units of the residual stream)^2"),
    "gram_triangle": (("token", "layer_pair"), "Gram matrix, upper triangle", "(units of the residual stream)^2"),
    "updates": (("token", "layer", "hidden"), "layer update", "units of the residual stream"),
}

#: What each data variable holds, in full (its ``description`` attribute).
DESCRIPTIONS = {
    "cse": "conditional scale entropy of the layer update: the Shannon entropy of its energy's distribution "
           "over the wavelet bands, divided by ln(J + 1)",
    "scale_fraction": "fraction of layer-update energy in each wavelet band",
    "update_norm": "L2 norm of the layer update",
    "surprisal": "surprisal of the token given its prefix, -ln p(x_t | x_<t)",
    "cse_null_mean": "mean CSE over the permutations of the order null",
    "cse_null_std": "standard deviation (ddof=1) of CSE over the permutations of the order null",
    "cse_z": "CSE standardized against the permutation null, (cse - cse_null_mean) / cse_null_std",
    "gram": "Gram matrix of the token's layer updates, <u_layer, u_layer2>",
    "gram_triangle": "upper triangle (diagonal included) of the Gram matrix of the token's layer updates, "
                     "<u_layer_row, u_layer_col>",
    "updates": "layer update u[layer, token] = h_{layer+1} - h_layer",
}

#: What ``cse compute --save`` can store (``save=[...]``) -> the variable that holds it.
#: ``gram``: float64 Gram matrices, 8 L^2 bytes per token; ``gram_triangle``: the packed
#: triangle, 4 L (L + 1) bytes; ``updates``: the raw layer updates (float16 or float32),
#: in a Zarr store of their own beside the result (attribute ``updates_store``).
SAVED = {"gram": "gram", "gram_triangle": "gram_triangle", "updates": "updates"}

#: Variables present only when a null was asked for (``null_permutations > 0``).
NULL_VARIABLES = ("cse_null_mean", "cse_null_std", "cse_z")

#: Coordinates on ``token`` that the package itself writes.
TOKEN_COORDS = ("text", "position", "token_id", "token_str", "word", "is_word_start", "is_special")

#: Coordinates on ``layer`` that the package itself writes (``boundary_affected`` is on
#: ``token`` instead for the token axis).
LAYER_COORDS = ("depth", "boundary_affected")

#: CF attributes of the coordinates.
COORD_ATTRS = {
    "text": {"long_name": "text", "description": "0-based row of the text in the input"},
    "position": {"long_name": "position", "description": "position of the token in its model input sequence"},
    "token_id": {"long_name": "token id", "description": "token id in the model's vocabulary"},
    "token_str": {"long_name": "token", "description": "the token decoded on its own"},
    "word": {"long_name": "word", "description": "index of the token's word in text.split(); -1 for special tokens"},
    "is_word_start": {"long_name": "word start", "description": "the token is the first token of its word"},
    "is_special": {"long_name": "special token",
                   "description": "special token (BOS, attention sink); excluded from statistics by default"},
    "layer": {"long_name": "layer", "description": "block index (0-based)"},
    "depth": {"long_name": "relative depth", "units": "1", "description": "relative depth (layer + 1) / n_layers"},
    "boundary_affected": {
        "long_name": "boundary affected",
        "description": "a wavelet band at this position is a MODWT boundary coefficient (t <= L_J - 2)",
    },
    "scale": {"long_name": "wavelet band",
              "description": "wavelet band: details d1..dJ (fine to coarse), approximation aJ"},
    "layer2": {"long_name": "layer (second)",
               "description": "block index (0-based) of the second update of a Gram matrix entry"},
    "layer_row": {"long_name": "layer (row)",
                  "description": "first block index of the pair (numpy.triu_indices order)"},
    "layer_col": {"long_name": "layer (column)",
                  "description": "second block index of the pair (numpy.triu_indices order)"},
}


def variable_attrs(name: str) -> dict:
    """CF attributes (``long_name``, ``units``) and ``description`` of data variable `name`.

    Parameters
    ----------
    name : str
        A key of `VARIABLES` (``'cse'``, ``'gram'`` ...).

    Returns
    -------
    dict of str to str
        ``{"long_name": ..., "units": ..., "description": ...}``: a short label for plots,
        CF units, and the definition in full.

    Raises
    ------
    KeyError
        If `name` is not a variable of the schema.
    """
    _, long_name, units = VARIABLES[name]
    return {"long_name": long_name, "units": units, "description": DESCRIPTIONS[name]}


def band_labels(level: int) -> list[str]:
    """Band labels in storage order: ``d1..dJ`` (fine to coarse) then ``aJ``.

    Parameters
    ----------
    level : int
        J, the number of detail bands.

    Returns
    -------
    list of str
        J + 1 labels, e.g. ``['d1', 'd2', 'd3', 'a3']`` for J = 3.
    """
    return [f"d{j}" for j in range(1, level + 1)] + [f"a{level}"]


def reserved_names() -> frozenset[str]:
    """Names an input column may not take: dims, variables and the package's coordinates.

    Returns
    -------
    frozenset of str
        `DIMS`, `SAVE_DIMS`, the keys of `VARIABLES`, `TOKEN_COORDS`, `LAYER_COORDS`
        and the coordinates of the Gram triangle's pairs (``layer_row``, ``layer_col``).
    """
    return (frozenset(DIMS) | frozenset(SAVE_DIMS) | frozenset(VARIABLES) | frozenset(TOKEN_COORDS)
            | frozenset(LAYER_COORDS) | {"layer_row", "layer_col"})
