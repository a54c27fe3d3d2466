r"""Conditional Scale Entropy of layer updates (the definition, user guide).

`conditional_scale_entropy` validates (`cse.settings.MeasureSettings`), reduces the
updates through the one reduction path (`cse.reduce`: `reduce_updates`, re-exported
here with `reduce_gram` and `resolve_backend`) and lays out the result
(`cse.layout.result_layout`); `cse.compute` calls `reduce_updates` batch by batch.
Boundary coefficients are in `cse.boundary`, the nulls' permutations in `cse.nulls`.
"""

from __future__ import annotations


import numpy as np
import xarray as xr

from .docs import fill_doc
from .errors import CSEInputError
from .layout import result_layout
from .reduce import BACKENDS, as_updates, reduce_gram, reduce_updates, resolve_backend
from .settings import MeasureSettings

@fill_doc
def conditional_scale_entropy(updates, axis="depth", wavelet=None, level=None, boundary="reflect", normalize=None,
                              null_permutations=0, seed=0, backend=None) -> xr.Dataset:
    r"""Conditional Scale Entropy of layer updates, per token and layer.

    Parameters
    ----------
    updates : ndarray or torch.Tensor, shape (n_layers, n_tokens, d_model)
        Layer updates ``u[l, t] = h_{l+1}[t] - h_l[t]`` of one text. Any real dtype;
        float32 and float64 are kept, bfloat16 and float16 become float32. Torch
        tensors stay on their device with ``backend='torch'``, else move to the CPU.
        Transforms accumulate in float64.
    axis : %(axis)s
    wavelet : %(wavelet)s
    level : %(level)s
    boundary : %(boundary)s
    normalize : %(normalize)s
    null_permutations : %(null_permutations)s
    seed : %(seed)s
    backend : {None, 'numba', 'reference', 'torch'} or module
        Kernel module (see `reduce_updates`); None is ``'numba'``.

    Returns
    -------
    result : xarray.Dataset
        Dimensions ``token`` (n_tokens), ``layer`` (n_layers), ``scale`` (J + 1),
        laid out by `cse.layout.result_layout` as every result is. Coordinates:
        ``position`` on ``token`` (0-based position in the text), ``layer``
        (0-based ints), ``scale`` (``d1..dJ, aJ``), ``depth`` on ``layer``
        ((layer + 1) / n_layers) and
        ``boundary_affected`` (bool) on ``layer`` for the depth axis, on ``token``
        for the token axis, absent for the hidden axis (see `cse.boundary`).
        Variables, float64, with CF ``long_name`` and ``units`` from `cse.schema`:

        - ``cse`` (token, layer), units ``"1"``: CSE in [0, 1], NaN where undefined
          (total energy 0 or not finite);
        - ``scale_fraction`` (token, layer, scale), ``"1"``: the scale distribution
          p_j, NaN where ``cse`` is NaN;
        - ``update_norm`` (token, layer), units of ``updates``: ||u[l, t]||;
        - with ``null_permutations`` = P > 0: ``cse_null_mean``, ``cse_null_std``
          (ddof=1) and ``cse_z = (cse - cse_null_mean) / cse_null_std`` (token,
          layer), ``"1"``; ``cse_z`` is NaN where the null's standard deviation is
          at rounding level (<= 1e-12, e.g. a constant vector on the hidden axis).

        Attributes: `MeasureSettings.attrs` (the settings, ``boundary_width``,
        ``null``).

    Raises
    ------
    CSEInputError
        If ``updates`` is not 3-D or has an empty dimension; if ``axis``,
        ``wavelet``, ``level``, ``boundary``, ``normalize``, ``null_permutations``,
        ``seed`` or ``backend`` has an invalid value (including a level too high for
        the axis); if the null's permutation set would exceed
        `cse.params.MEMORY_LIMIT_BYTES`.
    TypeError
        If ``updates`` is not real-valued, or ``level``, ``seed`` or
        ``null_permutations`` has the wrong type.

    See Also
    --------
    cse.compute : CSE of texts through a model, batch by batch.
    cse.stats.boundary_layers : The layers whose coefficients read the boundary rule.

    Notes
    -----
    **Definition.** A wavelet transform along the axis gives J detail bands
    W_1..W_J (fine to coarse) and an approximation V_J. At each cell (layer l,
    token t) the band energies are :math:`E_j = \sum_d W_j[l, t, d]^2` (MODWT:
    depth and token axes) or :math:`E_j = \sum_i w_{j,i}^2` over band j's
    coefficients (DWT: hidden axis). With :math:`p_j = E_j / \sum_k E_k`,

    .. math:: \mathrm{CSE} = -\frac{\sum_{j=1}^{J+1} p_j \ln p_j}{\ln(J + 1)},
              \qquad 0 \ln 0 = 0,

    in [0, 1]: 0 when all energy is in one band, 1 when it is spread evenly. The
    MODWT uses :math:`\tilde g = g/\sqrt2`, :math:`\tilde h = h/\sqrt2` and the
    pyramid :math:`W_j[t] = \sum_k \tilde h_k V_{j-1}[(t - 2^{j-1}k) \bmod N']`,
    :math:`V_j[t] = \sum_k \tilde g_k V_{j-1}[(t - 2^{j-1}k) \bmod N']`, V_0 = X.

    **Invariance 1, global rescaling** (any normalization). The transform is
    linear, so :math:`E_j(c\,u) = c^2 E_j(u)` for every band; for c != 0 the factor
    :math:`c^2 > 0` cancels in :math:`p_j = E_j / \sum_k E_k`, so p_j and CSE are
    unchanged.

    **Invariance 2, per-vector positive rescaling** (``normalize='unit'``). Each
    update vector is replaced by :math:`u[l, t] / \lVert u[l, t] \rVert` before
    the transform, and for :math:`a > 0`, :math:`a u / \lVert a u \rVert = u /
    \lVert u \rVert`: the transform's input is identical. (With ``'none'`` the
    depth axis is not invariant to per-layer rescaling, nor the token axis to
    per-token rescaling; on the hidden axis each cell is one vector, so
    normalization is a global rescaling and cannot change CSE.)

    **Invariance 3, orthogonal change of the hidden basis** (depth axis, and token
    axis). Every MODWT coefficient is a fixed linear combination of the series'
    vectors, :math:`W_j[t] = \sum_m a_{j,t}[m] X_m` (`cse_kernels.filters`), so

    .. math:: E_j[t] = \Big\lVert \sum_m a_{j,t}[m] X_m \Big\rVert^2
              = \sum_{m,n} a_{j,t}[m]\, a_{j,t}[n]\, G_{mn},
              \qquad G_{mn} = \langle X_m, X_n \rangle :

    band energies depend on the series only through its Gram matrix G (for the
    depth axis, the token's L x L matrix of inner products of its layer updates,
    after normalization). For any orthogonal Q (:math:`Q^\top Q = I`) applied to
    every vector of a series, :math:`\langle Q X_m, Q X_n \rangle = \langle X_m,
    X_n \rangle` and :math:`\lVert Q X_m \rVert = \lVert X_m \rVert` (so unit
    normalization commutes with Q): G, every E_j, p_j and CSE are unchanged, and so
    is the order null (it only re-indexes G). Q may differ from token to token on
    the depth axis and from layer to layer on the token axis. The hidden axis is
    not invariant: its DWT runs over the coordinates of the basis.

    **Boundary coefficients.** At level j the equivalent filter has width
    :math:`L_j = (2^j - 1)(K - 1) + 1`; coefficients at positions
    :math:`t \le L_J - 2` read samples before the start of the series, which the
    boundary rule supplies (Percival & Walden 2000, sections 4.11, 5.5). They are
    flagged in ``boundary_affected`` (Haar, J = 3: positions 0-6). E.g. under
    ``reflect`` the Haar detail d1 at position 0 is :math:`\tilde h_0 X_0 +
    \tilde h_1 X_0 = 0`. The MODWT is causal: outside the boundary, CSE at layer l
    depends on layers :math:`l - L_J + 1 \ldots l`; at a boundary layer it also
    reads layers :math:`l + 1 \ldots L_J - 2 - l` (``reflect``) or the last
    :math:`L_J - 1 - l` layers (``periodic``); see `cse.boundary`. Raw CSE at
    boundary positions is therefore not comparable with CSE elsewhere, nor
    across models whose boundary covers a different share of depth; ``cse_z`` is.

    **Order nulls.** With ``null_permutations`` = P > 0, CSE is recomputed under
    P permutations: of the layer order of each token's update stream (depth), of
    the token order within the text (token), of the hidden index (hidden); one
    seeded set (`cse.nulls.permutation_set`) for every token, layer or cell. A
    permuted stream has the same boundary coefficients at the same positions, so
    the boundary's effect appears in ``cse_null_mean`` too and cancels in
    ``cse_z``: on white noise ``cse_z`` has mean about 0 and spread about 1 at
    every position. On the depth axis the null is computed from the Gram identity
    above: a permutation pi only re-indexes G, :math:`G_{\pi(m)\pi(n)}`.

    References
    ----------
    .. [1] D. B. Percival and A. T. Walden, *Wavelet Methods for Time Series
       Analysis*, Cambridge University Press, 2000, ch. 4-5 (the MODWT, its
       equivalent filters and boundary coefficients).
    .. [2] Chakrabarti et al., "Post-Hoc Understanding of Metaphor Processing in
       Decoder-Only Language Models via Conditional Scale Entropy", arXiv:2605.21391,
       2026.
    .. [3] B. P. Welford, "Note on a method for calculating corrected sums of squares
       and products", *Technometrics* 4(3), 1962 (the null's running moments).

    Examples
    --------
    >>> import numpy as np
    >>> import cse
    >>> u = np.random.default_rng(0).standard_normal((8, 5, 16))
    >>> ds = cse.conditional_scale_entropy(u)  # u: (layer, token, d_model)
    >>> ds.cse.dims, ds.sizes["scale"]
    (('token', 'layer'), 4)
    >>> bool(((ds.cse >= 0) & (ds.cse <= 1)).all())
    True
    >>> ds.boundary_affected.values.tolist()
    [True, True, True, True, True, True, True, False]
    >>> z = cse.conditional_scale_entropy(u, null_permutations=20, seed=1).cse_z
    >>> z.dims, z.attrs["units"]
    (('token', 'layer'), '1')
    """
    # 1. Input array and parameters.
    kernels = resolve_backend(backend)
    u = as_updates(updates, kernels)
    if u.ndim != 3:
        raise CSEInputError(f"Invalid shape for 'updates': expected 3-D (n_layers, n_tokens, d_model), "
                            f"got shape {tuple(u.shape)}")
    if 0 in u.shape:
        raise CSEInputError(f"Invalid shape for 'updates': every dimension must be non-empty, "
                            f"got shape {tuple(u.shape)}")
    n_layers, n_tokens, d_model = u.shape
    settings = MeasureSettings.resolve(axis, wavelet, level, boundary, normalize, null_permutations, seed)
    settings = settings.fit(settings.series_length(n_layers, n_tokens, d_model))
    settings.check_memory(settings.series_length(n_layers, n_tokens, d_model))

    # 2. Reduce, then lay out the Dataset.
    arrays = reduce_updates(u, settings, kernels)
    return result_layout(settings, n_layers, {"position": np.arange(n_tokens, dtype=np.int64)},
                         attrs=settings.attrs(), arrays=arrays)
