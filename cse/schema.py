"""The result schema of SPEC section 4: dimension order, variable names, CF attributes.

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

#: Data variables: name -> (dims, long_name, units). CF units: "1" is dimensionless.
VARIABLES = {
    "cse": (("token", "layer"), "conditional scale entropy of the layer update", "1"),
    "scale_fraction": (("token", "layer", "scale"), "fraction of layer-update energy in each wavelet band", "1"),
    "update_norm": (("token", "layer"), "L2 norm of the layer update", "units of the residual stream"),
    "surprisal": (("token",), "surprisal of the token given its prefix, -ln p(x_t | x_<t)", "nat"),
    "cse_null_mean": (("token", "layer"), "mean CSE over the permutations of the null", "1"),
    "cse_null_std": (("token", "layer"), "standard deviation (ddof=1) of CSE over the permutations of the null", "1"),
    "cse_z": (("token", "layer"), "CSE standardized against the permutation null, (cse - mean) / std", "1"),
    "gram": (("token", "layer", "layer2"), "Gram matrix of the token's layer updates, <u_layer, u_layer2>",
             "(units of the residual stream)^2"),
    "gram_triangle": (("token", "layer_pair"), "upper triangle (diagonal included) of the Gram matrix of the token's "
                      "layer updates, <u_layer_row, u_layer_col>", "(units of the residual stream)^2"),
    "updates": (("token", "layer", "hidden"), "layer update u[layer, token] = h_{layer+1} - h_layer",
                "units of the residual stream"),
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
    "text": {"long_name": "0-based row of the text in the input"},
    "position": {"long_name": "position of the token in its model input sequence"},
    "token_id": {"long_name": "token id in the model's vocabulary"},
    "token_str": {"long_name": "the token decoded on its own"},
    "word": {"long_name": "index of the token's word in text.split(); -1 for special tokens"},
    "is_word_start": {"long_name": "the token is the first token of its word"},
    "is_special": {"long_name": "special token (BOS, attention sink); excluded from statistics by default"},
    "layer": {"long_name": "block index (0-based)"},
    "depth": {"long_name": "relative depth (layer + 1) / n_layers", "units": "1"},
    "boundary_affected": {
        "long_name": "a wavelet band at this position is a MODWT boundary coefficient (t <= L_J - 2)",
    },
    "scale": {"long_name": "wavelet band: details d1..dJ (fine to coarse), approximation aJ"},
    "layer2": {"long_name": "block index (0-based) of the second update of a Gram matrix entry"},
    "layer_row": {"long_name": "first block index of the pair (numpy.triu_indices order)"},
    "layer_col": {"long_name": "second block index of the pair (numpy.triu_indices order)"},
}


def variable_attrs(name: str) -> dict:
    """CF attributes (``long_name``, ``units``) of data variable `name`.

    Parameters
    ----------
    name : str
        A key of `VARIABLES` (``'cse'``, ``'gram'`` ...).

    Returns
    -------
    dict of str to str
        ``{"long_name": ..., "units": ...}``.

    Raises
    ------
    KeyError
        If `name` is not a variable of the schema.
    """
    _, long_name, units = VARIABLES[name]
    return {"long_name": long_name, "units": units}


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
