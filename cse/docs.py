"""Shared parameter documentation, written once and reused (as MNE's ``docdict`` does).

A public function whose docstring holds ``name : %(name)s`` (or ``%(name)s``) on a
line of its own is decorated with `fill_doc`; the line is replaced by
``docdict[name]``, indented like it. Writing the parameter's name before the
placeholder keeps it visible to readers and tools that read the source. Only
``%(name)s`` placeholders whose name is in `docdict` are touched, so other ``%``
signs in docstrings stay as they are.

Examples
--------
>>> @fill_doc
... def f(seed=0):
...     '''Do something.
...
...     Parameters
...     ----------
...     seed : %(seed)s
...     '''
>>> "numpy.random.Generator" in f.__doc__
True
"""

from __future__ import annotations

import re
import textwrap

docdict: dict[str, str] = {}

docdict["seed"] = """
seed : int, numpy.random.Generator or None
    Seed of every random draw (permutations, sign flips, bootstrap resamples).
    One policy everywhere (`cse.params.draw_seed`): an int in [0, 2**63 - 1] is
    used as it is; None draws a fresh seed from the operating system; a Generator
    yields one. The int used is recorded in the result's ``seed`` attribute, so
    every result can be reproduced from its attributes.
"""

docdict["axis"] = """
axis : {'depth', 'token', 'hidden'}
    Which sequence the wavelet runs along (the definition, user guide): ``'depth'`` (default),
    an MODWT along layers of each token's layer-update stream; ``'token'``, an
    MODWT along the token positions of each layer; ``'hidden'``, an orthonormal
    periodized DWT over the hidden index of each update vector.
"""

docdict["wavelet"] = """
wavelet : str or pywt.Wavelet, optional
    Orthogonal PyWavelets wavelet (haar, dbN, symN, coifN). Default ``'haar'`` for
    the depth and token axes, ``'db4'`` for the hidden axis.
"""

docdict["level"] = """
level : int, optional
    Number of detail bands J. Default 3 for the depth and token axes (which
    require ``2**J <= n_layers`` resp. the shortest sequence's length);
    ``pywt.dwt_max_level(d_model, K)`` for the hidden axis.
"""

docdict["boundary"] = """
boundary : {'reflect', 'periodic'}
    MODWT boundary rule (depth and token axes; the hidden axis always uses
    PyWavelets' ``'periodization'``). ``'reflect'`` (default) runs the circular
    recursion on the series followed by its mirror image and keeps the first
    half: the half-sample symmetric extension, which PyWavelets calls
    ``'symmetric'`` (PyWavelets' own ``'reflect'`` does not repeat the edge
    sample and is not this rule); ``'periodic'`` wraps the series. Either way the coefficients at positions
    ``t <= L_J - 2`` are boundary coefficients, with
    ``L_J = (2**J - 1)(K - 1) + 1`` (Percival & Walden 2000, ch. 4-5); results
    mark them in ``boundary_affected``.
"""

docdict["normalize"] = """
normalize : {'unit', 'none'}, optional
    ``'unit'`` scales each update vector to unit L2 norm before the transform (a
    zero vector stays zero); ``'none'`` uses the raw updates. Default ``'unit'``
    for the depth and token axes, ``'none'`` for the hidden axis.
"""

docdict["null_permutations"] = """
null_permutations : int
    P, the number of permutations of the null (0, the default, for none; else
    >= 2): the layer order of each token's update stream (depth axis), the token
    order within each text (token axis) or the hidden index (hidden axis), one
    seeded set shared by every cell. Adds ``cse_null_mean``, ``cse_null_std`` and
    ``cse_z``.
"""

docdict["where"] = """
where : None, str, dict or bool DataArray over ``token``
    Token selection applied before grouping. A string is an expression over the
    token coordinates (and 1-D token variables such as ``surprisal``), parsed with
    `ast` by `cse.where.evaluate` and never evaluated as Python: it may use only
    comparisons (``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, chained as in
    ``0 < position <= 5``), ``in`` / ``not in`` with a list, tuple or set of
    constants, ``and``, ``or``, ``not``, arithmetic on numbers (``+ - * / // %
    **``, unary ``-``/``+``, in float64), constants (str, int, float, bool, None)
    and coordinate names, e.g. ``"word == verb_idx"`` or ``"is_word_start and
    genre == 'news'"``; anything else (attribute access, calls, subscripts,
    lambdas, comprehensions, f-strings) is refused with one line naming it, as
    are expressions over 10,000 characters or nested over 100 levels. A dict
    ``{coord: value}`` keeps tokens whose coordinate equals the value (or is in
    it, for a list). A boolean DataArray over ``token`` is used as is.
"""

docdict["include_special"] = """
include_special : bool
    Keep special tokens (``is_special``, e.g. the attention-sink first position).
    Default False: statistics exclude them by default.
"""

_PLACEHOLDER = re.compile(r"^([ \t]*)(?:(\w+) : )?%\((\w+)\)s[ \t]*$", re.MULTILINE)


def fill_doc(func):
    """Replace ``%(name)s`` lines of ``func.__doc__`` with ``docdict[name]``, indented alike.

    Parameters
    ----------
    func : callable
        A function or class with a docstring.

    Returns
    -------
    func
        The same object, its docstring filled.

    Raises
    ------
    KeyError
        If a placeholder names an entry that `docdict` lacks (a typo would
        otherwise leave the placeholder in the rendered docs).
    """
    doc = func.__doc__
    if not doc:
        return func

    def replace(match: re.Match) -> str:
        indent, named, name = match.group(1), match.group(2), match.group(3)
        if name not in docdict:
            raise KeyError(f"fill_doc: {func.__qualname__} uses %({name})s, which cse.docs.docdict lacks")
        if named is not None and named != name:
            raise KeyError(f"fill_doc: {func.__qualname__} documents {named!r} with %({name})s")
        return textwrap.indent(docdict[name].strip("\n"), indent)

    func.__doc__ = _PLACEHOLDER.sub(replace, doc)
    return func
