"""The Examples sections of the kernel functions (doctests; `cse_kernels._docs` appends them).

Each runs on a small random array with the Haar filters of PyWavelets, so that the
rendered documentation shows the shapes a call takes and gives.
"""

_SETUP = """\
>>> import numpy as np, pywt, cse_kernels
>>> w = pywt.Wavelet("haar")
>>> rng = np.random.default_rng(0)"""

_SERIES = _SETUP + """
>>> x = rng.standard_normal((4, 8, 16))  # 4 tokens, 8 layers, d_model 16"""

_PERMS = """
>>> perms = np.array([rng.permutation(8) for _ in range(5)])  # 5 orderings of the layers"""

_DWT = _SETUP + """
>>> x = rng.standard_normal((4, 16))  # 4 updates of d_model 16 (the hidden axis)
>>> perms = np.array([rng.permutation(16) for _ in range(5)])"""

EXAMPLES = {
    "modwt_energies": _SERIES + """
>>> cse_kernels.modwt_energies(x, w.dec_lo, w.dec_hi, level=2).shape  # d1, d2, a2
(4, 8, 3)""",
    "modwt_null_moments": _SERIES + _PERMS + """
>>> mean, var = cse_kernels.modwt_null_moments(x, w.dec_lo, w.dec_hi, 2, perms)
>>> mean.shape, var.shape
((4, 8), (4, 8))""",
    "gram_matrices": _SERIES + """
>>> cse_kernels.gram_matrices(x).shape  # one 8 x 8 Gram matrix per token
(4, 8, 8)""",
    "gram_energies": _SERIES + """
>>> e = cse_kernels.gram_energies(cse_kernels.gram_matrices(x), w.dec_lo, w.dec_hi, 2)
>>> np.allclose(e, cse_kernels.modwt_energies(x, w.dec_lo, w.dec_hi, 2))
True""",
    "gram_null_moments": _SERIES + _PERMS + """
>>> gram = cse_kernels.gram_matrices(x)
>>> mean, var = cse_kernels.gram_null_moments(gram, w.dec_lo, w.dec_hi, 2, perms)
>>> mean.shape
(4, 8)""",
    "dwt_energies": _DWT + """
>>> cse_kernels.dwt_energies(x, w.dec_lo, w.dec_hi, level=2).shape
(4, 3)""",
    "dwt_null_entropy": _DWT + """
>>> cse_kernels.dwt_null_entropy(x, w.dec_lo, w.dec_hi, 2, perms).shape
(4, 5)""",
    "dwt_null_moments": _DWT + """
>>> mean, var = cse_kernels.dwt_null_moments(x, w.dec_lo, w.dec_hi, 2, perms)
>>> mean.shape
(4,)""",
    "scale_entropy": """\
>>> import numpy as np, cse_kernels
>>> entropy, shares = cse_kernels.scale_entropy(np.array([[1.0, 1.0, 1.0], [2.0, 1.0, 1.0]]))
>>> entropy.round(3)  # equal energies: 1; concentrated energy: lower
array([1.   , 0.946])
>>> shares[1]
array([0.5 , 0.25, 0.25])""",
    "update_norms": _SERIES + """
>>> cse_kernels.update_norms(x).shape
(4, 8)""",
}


def examples_section(name: str) -> str:
    """The numpydoc Examples section of kernel function `name` (empty for an unknown name).

    Parameters
    ----------
    name : str
        A key of `EXAMPLES`.

    Returns
    -------
    str
        ``"Examples\\n--------\\n..."``, or ``""``.
    """
    return f"\nExamples\n--------\n{EXAMPLES[name]}\n" if name in EXAMPLES else ""
