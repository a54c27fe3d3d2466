"""The one docstring table of the kernel modules: every public kernel function documented once.

The three kernel modules -- `cse_kernels.reference` (NumPy, the specification in code),
`cse_kernels._numba` (the public `cse_kernels` functions) and `cse_kernels.torch_twin`
(the GPU path) -- have the same functions with the same signatures (a test compares
them). Each function's documentation lives here, in `DOCS`, once; a module decorates
its function with ``@shared_doc(ARRAYS)`` (or ``shared_doc(ARRAYS, notes=...)`` to add
notes on how that module computes it), which fills in the module's array type
(``ndarray`` or ``torch.Tensor``), appends `cse_kernels._examples`, sets ``__doc__``.

Shared conventions (every function):

- ``x`` holds update vectors along its last axis; series (`modwt_*`, `gram_*`) run
  along axis 1: ``(n_series, n_steps, d)`` is (tokens, layers, d_model) on the depth
  axis, (layers, tokens, d_model) on the token axis.
- Products and sums accumulate in float64 (torch twin: ``dtype``); outputs are float64.
- NaN policy: CSE is NaN, never 0, where a cell's total energy is 0 or not finite;
  non-finite input makes exactly the coefficients that read it non-finite.
- Bands are ordered ``d1..dJ`` (fine to coarse), then ``aJ``.
"""

from __future__ import annotations

import re
import textwrap

from ._examples import examples_section

#: What the placeholders of `DOCS` become for each kind of array (a module's ``ARRAYS``).
KINDS = {
    "numpy": {
        "array": "ndarray",
        "float_in": "float32 or float64 (other real dtypes are converted to float64)",
        "out": "ndarray",
        "out_dtype": "float64",
        "ints": "ndarray of int",
        "dtype_doc": ("Working and output dtype. The NumPy kernels compute in float64 only: None or\n"
                      "    float64; anything else raises ValueError."),
    },
    "torch": {
        "array": "torch.Tensor",
        "float_in": "any real dtype, on any device (the output stays on it)",
        "out": "torch.Tensor",
        "out_dtype": "``dtype`` (float64 by default), on the input's device",
        "ints": "array_like or torch.Tensor of int",
        "dtype_doc": ("Working and output dtype: None (float64) or a torch floating dtype. float32 runs\n"
                      "    much faster on consumer GPUs and agrees with float64 to about 1e-6 in CSE."),
    },
}

_FILTERS = """\
dec_lo, dec_hi : array_like, shape (K,)
    Decomposition low- and high-pass filters of an orthogonal wavelet
    (``pywt.Wavelet(name).dec_lo`` / ``.dec_hi``), K even."""

_LEVEL = """\
level : int
    Number of detail bands J >= 0; the output has J + 1 bands."""

_BOUNDARY = """\
boundary : {'reflect', 'periodic'}
    ``'periodic'`` runs the circular MODWT recursion on the series itself (N' = N);
    ``'reflect'`` (default) runs it on the 2N-long ``[X_0..X_{N-1}, X_{N-1}..X_0]``
    and keeps positions 0..N-1 (PyWavelets calls this extension ``symmetric``)."""

_UNIT = """\
unit : bool
    If True (default), each step's vector is first scaled to unit L2 norm (a zero
    or NaN norm scales by 1, an infinite one leaves NaN)."""

_GRAM_IN = """\
gram : %(array)s, shape (n_series, n_steps, n_steps), float64
    The raw (unnormalized) Gram matrices of the steps of each series,
    ``gram[s, m, n] = <x[s, m], x[s, n]>`` (`gram_matrices`), symmetric."""

_PERMS = """\
permutations : %(ints)s, shape (P, n_steps), P >= 2
    Row p gives the series ``x[:, permutations[p]]``: position t of the permuted
    series holds step ``permutations[p, t]``. One set shared by every series."""

_DTYPE = """\
dtype : None or dtype
    %(dtype_doc)s"""

_MOMENTS_OUT = """\
mean, std : %(out)s, shape (n_series, n_steps), %(out_dtype)s
    Mean and standard deviation (ddof=1) over the P permutations of the CSE at
    each (series, position); dimensionless; NaN where any permutation leaves the
    cell undefined."""

_ENERGIES_OUT = """\
energies : %(out)s, shape (n_series, n_steps, level + 1), %(out_dtype)s
    ``E_j[s, t] = sum_d W_j[s, t, d]**2`` for j = 1..J, then ``sum_d V_J[s, t, d]**2``;
    units of ``x`` squared (dimensionless with ``unit``)."""

_PERM_RAISES = """\
ValueError
    If ``permutations`` is not (P, n_steps) with P >= 2 or holds an index outside
    0..n_steps-1.
TypeError
    If ``permutations`` is not an integer array."""

_MODWT_REFS = """\
D. B. Percival and A. T. Walden, *Wavelet Methods for Time Series Analysis*,
Cambridge University Press, 2000, sections 5.4-5.5 (the MODWT pyramid, its
equivalent filters and boundary coefficients)."""

_GRAM_NOTES = """\
The Gram identity: every MODWT coefficient is a fixed linear combination of the
series' steps, ``W_b[t] = sum_m A_b[t, m] X[m]`` (`cse_kernels.filters.modwt_operator`),
so ``E_b[t] = sum_{m,n} A_b[t, m] A_b[t, n] G[m, n]``: the band energies depend on a
series only through its N x N Gram matrix G, under every wavelet, level and boundary
rule. Each energy is a weighted sum over the pairs (m <= n) of samples its
coefficient reads (`cse_kernels.filters.quadratic_tables`). With ``unit``, G is
first normalized from its diagonal, ``G[m, n] / (|x_m| |x_n|)``. Energies that
round below zero (cancellation, where a band holds a rounding-level share of the
energy) are clamped at 0."""

DOCS = {
    "modwt_energies": """\
MODWT band energies along axis 1, summed over the hidden dimension.

Parameters
----------
x : %(array)s, shape (n_series, n_steps, d), %(float_in)s
    Independent vector-valued series; the transform runs along axis 1 for each
    series and each hidden dimension separately.
""" + _FILTERS + "\n" + _LEVEL + "\n" + _BOUNDARY + "\n" + _UNIT + "\n" + _DTYPE + """

Returns
-------
""" + _ENERGIES_OUT + """
    Non-finite input gives non-finite energies wherever a filter touches it.

Raises
------
ValueError
    If ``x`` is not 3-D, ``boundary`` is unknown, the filters differ in length or
    have odd length, or ``level`` is negative.

Notes
-----
With g~ = dec_lo / sqrt(2), h~ = dec_hi / sqrt(2) and V_0 = X,
``W_j[t] = sum_k h~[k] V_{j-1}[(t - 2^{j-1} k) mod N']`` and
``V_j[t] = sum_k g~[k] V_{j-1}[(t - 2^{j-1} k) mod N']`` (Percival & Walden 2000,
eqs. 96a-b, the pyramid of section 5.4). With ``'periodic'`` the band energies
over all t sum to ||X||^2.
%(notes)s
References
----------
""" + _MODWT_REFS,
    "modwt_null_moments": """\
Mean and standard deviation of CSE under permutations of the series order (the order null).

Parameters
----------
x : %(array)s, shape (n_series, n_steps, d), %(float_in)s
    As in `modwt_energies`.
""" + _FILTERS + "\n" + _LEVEL + "\n" + _PERMS + "\n" + _BOUNDARY + "\n" + _UNIT + """
method : {None, 'gram', 'direct'}
    How it is computed; both give the same result to rounding. ``'direct'``
    permutes each series and transforms it again; ``'gram'`` computes each
    series' Gram matrix once (`gram_matrices`) and re-indexes it per permutation
    (`gram_null_moments`). None picks the module's default (see Notes).
""" + _DTYPE + """

Returns
-------
""" + _MOMENTS_OUT + """

Raises
------
""" + _PERM_RAISES + """
ValueError
    Also as `modwt_energies`, and for an unknown ``method``.

Notes
-----
The null permutes the order of each series' steps and recomputes CSE, so it keeps
every step and its energy and destroys only their arrangement along the axis. A
permutation pi only re-indexes the Gram matrix, ``G_pi[m, n] = G[pi[m], pi[n]]``,
which the ``'gram'`` method uses.
%(notes)s
References
----------
""" + _MODWT_REFS,
    "gram_matrices": """\
Raw Gram matrix of the steps of each series: ``G[s, m, n] = <x[s, m], x[s, n]>``.

Parameters
----------
x : %(array)s, shape (n_series, n_steps, d), %(float_in)s
    Independent vector-valued series (on the depth axis: the tokens' layer updates,
    ``u.transpose(1, 0, 2)`` of updates of shape (n_layers, n_tokens, d_model)).
""" + _DTYPE + """

Returns
-------
gram : %(out)s, shape (n_series, n_steps, n_steps), %(out_dtype)s
    Symmetric, unnormalized (the squared norms on the diagonal); units of ``x``
    squared. Summed in float64 from the input's values; inf or NaN where a vector
    is not finite (or its squares overflow float64).

Raises
------
ValueError
    If ``x`` is not 3-D.

Notes
-----
G is the sufficient statistic of depth-axis CSE: `gram_energies` and
`gram_null_moments` compute every setting's band energies and order null from it
(see `gram_energies`). Memory: ``8 n_series n_steps**2`` bytes.
%(notes)s""",
    "gram_energies": """\
MODWT band energies of each series from its Gram matrix: the same as `modwt_energies` of the series.

Parameters
----------
""" + _GRAM_IN + "\n" + _FILTERS + "\n" + _LEVEL + "\n" + _BOUNDARY + "\n" + _UNIT + "\n" + _DTYPE + """

Returns
-------
""" + _ENERGIES_OUT + """
    Equal to ``modwt_energies(x, ...)`` for the ``x`` whose Gram matrices these are,
    to rounding (about 1e-15 of each cell's total energy); NaN where a sample the
    coefficient reads has a non-finite entry in G.

Raises
------
ValueError
    If ``gram`` is not (n_series, n_steps, n_steps), or as `modwt_energies`.

Notes
-----
""" + _GRAM_NOTES + """
%(notes)s
References
----------
""" + _MODWT_REFS,
    "gram_null_moments": """\
The order null of `modwt_null_moments` from each series' Gram matrix.

Parameters
----------
""" + _GRAM_IN + "\n" + _FILTERS + "\n" + _LEVEL + "\n" + _PERMS + "\n" + _BOUNDARY + "\n" + _UNIT + "\n" + _DTYPE + """

Returns
-------
""" + _MOMENTS_OUT + """
    Equal to ``modwt_null_moments(x, ...)`` for the ``x`` whose Gram matrices these are.

Raises
------
""" + _PERM_RAISES + """
ValueError
    Also as `gram_energies`.

Notes
-----
A permutation pi of the steps only re-indexes the Gram matrix,
``G_pi[m, n] = G[pi[m], pi[n]]``, so each permutation costs one multiply-add per
pair of samples a coefficient reads and nothing proportional to d.
""" + _GRAM_NOTES + """
%(notes)s
References
----------
""" + _MODWT_REFS,
    "dwt_energies": """\
Band energies of the orthonormal periodized DWT over the last axis.

Parameters
----------
x : %(array)s, shape (n, d), %(float_in)s
    One vector per row (e.g. the update vectors of all (layer, token) cells).
""" + _FILTERS + """
level : int
    Number of detail bands J, ``1 <= J <= pywt.dwt_max_level(d, K)`` (higher levels
    keep repeating a length-1 approximation, as PyWavelets does).
""" + _DTYPE + """

Returns
-------
energies : %(out)s, shape (n, level + 1), %(out_dtype)s
    Sum of squared coefficients per band, d1..dJ then aJ; equal to the band energies
    of ``pywt.wavedec(x, wavelet, mode='periodization', level=level, axis=-1)``
    (which returns aJ, dJ..d1), including PyWavelets' handling of odd lengths at
    coarse levels (the last sample is repeated, e.g. 45 -> 23 for d = 2880 with db4
    at level 8).

Raises
------
ValueError
    If ``x`` is not 2-D or has no columns, or the filters differ in length.

Notes
-----
For even lengths at every level the transform is orthonormal and the band energies
sum to ||x||^2 (Percival & Walden 2000, ch. 4).
%(notes)s
References
----------
D. B. Percival and A. T. Walden, *Wavelet Methods for Time Series Analysis*,
Cambridge University Press, 2000, ch. 4 (the DWT).""",
    "dwt_null_entropy": """\
Normalized CSE of each row under each permutation of the hidden index.

Parameters
----------
x : %(array)s, shape (n, d), %(float_in)s
    One vector per row.
""" + _FILTERS + """
level : int
    Number of detail bands J.
permutations : %(ints)s, shape (P, d)
    Each row a permutation of ``range(d)``; row p gives ``x[:, permutations[p]]``.
""" + _DTYPE + """

Returns
-------
null_cse : %(out)s, shape (n, P), %(out_dtype)s
    ``scale_entropy(dwt_energies(x[:, perm], ...))[0]`` for every permutation;
    dimensionless, in [0, 1], NaN where undefined.

Raises
------
ValueError
    If ``permutations`` is not (P, d) or holds an index outside ``0..d-1``, or as
    `dwt_energies`.
TypeError
    If ``permutations`` is not an integer array.
%(notes_section)s""",
    "dwt_null_moments": """\
Mean and standard deviation of CSE under permutations of the hidden index.

Parameters
----------
x : %(array)s, shape (n, d), %(float_in)s
    One vector per row.
""" + _FILTERS + """
level : int
    Number of detail bands J.
permutations : %(ints)s, shape (P, d), P >= 2
    As in `dwt_null_entropy`.
""" + _DTYPE + """

Returns
-------
mean, std : %(out)s, shape (n,), %(out_dtype)s
    Mean and standard deviation (ddof=1) of `dwt_null_entropy` over the
    permutations; dimensionless; NaN where any permutation leaves the row undefined.

Raises
------
ValueError, TypeError
    As `dwt_null_entropy`, and for fewer than 2 permutations.
%(notes_section)s""",
    "scale_entropy": """\
Normalized Shannon entropy of the scale distribution.

Parameters
----------
energies : %(array)s, shape (..., J + 1)
    Non-negative band energies, last axis the bands.

Returns
-------
cse : %(out)s, shape (...)
    ``-sum_j p_j ln p_j / ln(J + 1)`` with ``0 ln 0 = 0``, clipped to [0, 1]
    against rounding; dimensionless. NaN where the total energy is 0 or not
    finite, or any band is not finite.
fractions : %(out)s, shape (..., J + 1)
    The scale distribution ``p_j = E_j / sum_k E_k``; NaN where ``cse`` is NaN.

Raises
------
ValueError
    If ``energies`` is a scalar.
%(notes_section)s""",
    "update_norms": """\
L2 norm of each update vector, accumulated in float64.

Parameters
----------
x : %(array)s, shape (..., d), %(float_in)s
    Update vectors along the last axis.
""" + _DTYPE + """

Returns
-------
norms : %(out)s, shape (...), %(out_dtype)s
    ``sqrt(sum(x**2, axis=-1))``; inf or NaN where the vector is not finite.

Raises
------
ValueError
    If ``x`` is a scalar.
%(notes_section)s""",
}

#: The functions every kernel module has, in the order of `DOCS`.
FUNCTIONS = tuple(DOCS)

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def render(name: str, kind: str, notes: str = "") -> str:
    """The docstring of kernel function `name` for a module of array kind `kind`.

    Parameters
    ----------
    name : str
        A key of `DOCS`.
    kind : {'numpy', 'torch'}
        The module's ``ARRAYS``.
    notes : str
        Notes on how that module computes it (dedented text): the Notes section.

    Returns
    -------
    str
        The docstring, with the Examples of `cse_kernels._examples`.
    """
    notes = textwrap.dedent(notes).strip("\n")
    values = {**KINDS[kind], "notes": f"\n{notes}\n" if notes else "",
              "notes_section": f"\nNotes\n-----\n{notes}" if notes else ""}
    text = _PLACEHOLDER.sub(lambda m: values[m.group(1)], DOCS[name]).rstrip() + "\n"
    return text + examples_section(name)


def shared_doc(kind: str, notes: str = ""):
    """Decorator: set a kernel function's ``__doc__`` from `DOCS` (see the module docstring).

    Parameters
    ----------
    kind : {'numpy', 'torch'}
        The module's ``ARRAYS``.
    notes : str
        Module-specific notes (see `render`).

    Returns
    -------
    callable
        The decorator; it raises KeyError for a function that `DOCS` lacks.
    """
    def decorate(func):
        func.__doc__ = render(func.__name__, kind, notes)
        return func
    return decorate


def summary() -> str:
    """One line per kernel function: its name and the first line of its documentation.

    Returns
    -------
    str
        ``name`` lines, each with an indented summary line (for `cse_kernels`'s docstring).
    """
    return "\n".join(f"{name}\n    {DOCS[name].splitlines()[0]}" for name in FUNCTIONS)
