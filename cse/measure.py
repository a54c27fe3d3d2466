"""Conditional Scale Entropy of an array of layer updates (SPEC section 2).

`conditional_scale_entropy` validates its input and hands everything, by keyword, to
private functions that compute through a kernel backend module. The backend is any
module with the functions of `cse_kernels.reference` (same names and signatures):
switch `DEFAULT_BACKEND` to move every caller to faster kernels.
"""

from __future__ import annotations

import functools
from importlib import import_module
from types import ModuleType

import numpy as np
import xarray as xr

from .errors import CSEInputError
from .params import as_wavelet, band_labels, resolve_measure, resolve_seed
from .params import null_permutations as null_permutations_for

__all__ = ["boundary_affected", "boundary_width", "conditional_scale_entropy", "reduce_updates"]

#: Below this null standard deviation, CSE differences are rounding noise (CSE is in
#: [0, 1] and computed in float64), so ``cse_z`` is NaN rather than a huge number.
_NULL_STD_FLOOR = 1e-12

#: Module computing the energies: the Numba kernels (the public functions of
#: `cse_kernels`); ``backend="cse_kernels.reference"`` selects the NumPy reference.
DEFAULT_BACKEND = "cse_kernels"


def _resolve_backend(backend) -> ModuleType:
    if backend is None:
        backend = DEFAULT_BACKEND
    if isinstance(backend, str):
        return import_module(backend)
    return backend


def _to_numpy(updates) -> np.ndarray:
    """Torch tensors (any device/dtype) or array-likes -> float32/float64 ndarray."""
    if type(updates).__module__.split(".")[0] == "torch":
        import torch

        tensor = updates.detach()
        if tensor.is_complex():
            raise TypeError(f"Invalid type for 'updates': expected a real tensor, got dtype {tensor.dtype}")
        if tensor.dtype not in (torch.float32, torch.float64):
            tensor = tensor.to(torch.float32 if tensor.is_floating_point() else torch.float64)
        return tensor.cpu().numpy()
    array = np.asarray(updates)
    if array.dtype in (np.float32, np.float64):
        return array
    if array.dtype.kind == "f":  # float16, longdouble
        return array.astype(np.float32 if array.dtype.itemsize < 4 else np.float64)
    if array.dtype.kind in "iub":
        return array.astype(np.float64)
    raise TypeError(
        f"Invalid type for 'updates': expected a real floating array or torch tensor, got dtype {array.dtype}"
    )


def conditional_scale_entropy(
    updates,
    axis="depth",
    wavelet=None,
    level=None,
    boundary="reflect",
    normalize=None,
    null_permutations=0,
    seed=0,
) -> xr.Dataset:
    r"""Conditional Scale Entropy of layer updates, per layer and token.

    Parameters
    ----------
    updates : ndarray or torch.Tensor, shape (n_layers, n_tokens, d_model)
        Layer updates ``u[l, t] = h_{l+1}[t] - h_l[t]`` of one text. Any real dtype;
        torch tensors on any device (bfloat16 included) are moved to CPU as float32
        (float64 stays float64). Transforms accumulate in float64.
    axis : {'depth', 'token', 'hidden'}
        Which sequence the wavelet runs along: ``'depth'`` (default) an MODWT along
        layers of each token's layer-update stream; ``'token'`` an MODWT along token
        positions of each layer; ``'hidden'`` an orthonormal periodized DWT over the
        hidden index of each update vector.
    wavelet : str or pywt.Wavelet, optional
        Orthogonal wavelet. Default ``'haar'`` for depth/token, ``'db4'`` for hidden.
    level : int, optional
        Number of detail bands J. Default 3 for depth/token (requires
        ``2**J <= n_layers`` resp. ``n_tokens``), ``pywt.dwt_max_level(d_model, K)``
        for hidden.
    boundary : {'reflect', 'periodic'}
        MODWT boundary rule (depth and token axes; the hidden axis always uses
        PyWavelets' ``'periodization'``). ``'reflect'`` runs the circular recursion on
        the series followed by its mirror image and keeps the first half.
    normalize : {'unit', 'none'}, optional
        ``'unit'`` scales each update vector to unit L2 norm before the transform (a
        zero vector stays zero); ``'none'`` uses the raw updates. Default ``'unit'``
        for depth/token, ``'none'`` for hidden (where ``'unit'`` is accepted but cannot
        change the result, see Notes).
    null_permutations : int
        P, the number of random permutations of the hidden index for the
        dimension-permutation null (hidden axis only); 0 (default) for none, else >= 2.
    seed : int, numpy.random.Generator or None
        Seed of the permutations (one set of P permutations shared by every cell).

    Returns
    -------
    result : xarray.Dataset
        Dimensions ``layer`` (n_layers), ``token`` (n_tokens), ``scale`` (J + 1), with
        integer ``layer``/``token`` coordinates and ``scale`` labels ``d1..dJ, aJ``.

        - ``cse`` (layer, token), float64, units ``"1"``: CSE in [0, 1], NaN where
          undefined (total energy 0 or not finite).
        - ``scale_fraction`` (layer, token, scale), float64, units ``"1"``: the scale
          distribution p_j, NaN where ``cse`` is NaN.
        - ``update_norm`` (layer, token), float64, units of ``updates``: ||u[l, t]||.
        - with ``null_permutations > 0``: ``cse_null_mean``, ``cse_null_std`` (ddof=1)
          and ``cse_z = (cse - cse_null_mean) / cse_null_std`` (layer, token), float64,
          units ``"1"``; ``cse_z`` is NaN where the null's standard deviation is 0 to
          rounding (<= 1e-12, e.g. a constant vector).

        Attributes record ``axis``, ``wavelet``, ``level``, ``boundary`` (``'periodization'``
        on the hidden axis), ``normalize``, ``null_permutations`` and ``seed``.

    Raises
    ------
    CSEInputError
        If ``updates`` is not 3-D, or ``axis``, ``wavelet``, ``level``, ``boundary``,
        ``normalize`` or ``null_permutations`` has an invalid value (including a level
        too high for the length of the axis, and a null on an axis other than hidden).
    TypeError
        If ``updates`` is not real-valued, or ``level``, ``seed`` or
        ``null_permutations`` has the wrong type.

    Notes
    -----
    **Definition.** A wavelet transform along the chosen axis gives J detail bands
    W_1..W_J (fine to coarse) and an approximation V_J. At each cell (layer l, token t)
    the band energies are :math:`E_j = \sum_d W_j[l, t, d]^2` (MODWT, depth and token
    axes) or :math:`E_j = \sum_i w_{j,i}^2` over band j's coefficients (DWT, hidden
    axis). With :math:`p_j = E_j / \sum_k E_k`,

    .. math:: \mathrm{CSE} = -\frac{\sum_{j=1}^{J+1} p_j \ln p_j}{\ln(J + 1)},
              \qquad 0 \ln 0 = 0,

    which lies in [0, 1]: 0 when all energy sits in one band, 1 when it is spread
    evenly. The MODWT uses :math:`\tilde g = g/\sqrt2`, :math:`\tilde h = h/\sqrt2`
    and the pyramid recursion
    :math:`W_j[t] = \sum_k \tilde h_k V_{j-1}[(t - 2^{j-1}k) \bmod N']`,
    :math:`V_j[t] = \sum_k \tilde g_k V_{j-1}[(t - 2^{j-1}k) \bmod N']`, V_0 = X.

    **Invariance to a global rescaling** (any normalization). The transform is
    linear, so the coefficients of :math:`c\,u` are c times those of u and
    :math:`E_j(c\,u) = c^2 E_j(u)` for every band. For c != 0 the factor
    :math:`c^2 > 0` cancels in :math:`p_j = E_j / \sum_k E_k`, so p_j, and hence
    CSE, are unchanged.

    **Invariance to per-layer positive rescaling** (``normalize='unit'``). Each
    update vector is replaced by :math:`u[l, t] / \lVert u[l, t] \rVert` before the
    transform. For :math:`a_l > 0`, :math:`a_l u[l, t] / \lVert a_l u[l, t] \rVert =
    u[l, t] / \lVert u[l, t] \rVert`, so the transform's input, and everything
    computed from it, is identical: the rescaling is removed before the transform.
    The same holds for any positive rescaling of each vector u[l, t] separately.
    (With ``'none'`` the depth axis is not invariant to per-layer rescaling, nor the
    token axis to per-token rescaling: a layer's scale on the token axis is a global
    scale of that layer's series and so cancels even without normalization.)
    On the hidden axis each cell is a single vector, so unit normalization is a
    global rescaling of that vector's signal and cannot change CSE.

    **Boundary.** With ``boundary='reflect'`` the series is mirrored about its first
    sample, so with ``haar`` the detail W_1 at position 0 is
    :math:`\tilde h_0 X_0 + \tilde h_1 X_0 = 0`: CSE at the first position (layer 0 on
    the depth axis) is at most :math:`\ln J / \ln(J + 1)`.

    The dimension-permutation null recomputes the hidden-axis CSE of every cell on
    each of P permutations of the hidden index (the hidden basis has no natural
    order); on white noise ``cse_z`` is about 0.

    References
    ----------
    .. [1] D. B. Percival and A. T. Walden, *Wavelet Methods for Time Series
       Analysis*, Cambridge University Press, 2000, ch. 5 (the MODWT).
    .. [2] Chakrabarti et al., "Post-Hoc Understanding of Metaphor Processing in
       Decoder-Only Language Models via Conditional Scale Entropy", arXiv:2605.21391,
       2026.

    Examples
    --------
    >>> import numpy as np
    >>> from cse.measure import conditional_scale_entropy
    >>> u = np.random.default_rng(0).standard_normal((8, 5, 16))
    >>> ds = conditional_scale_entropy(u)
    >>> ds.cse.dims, ds.sizes["scale"]
    (('layer', 'token'), 4)
    >>> bool(((ds.cse >= 0) & (ds.cse <= 1)).all())
    True
    >>> ds.scale.values.tolist()
    ['d1', 'd2', 'd3', 'a3']
    """
    # 1. Input array.
    u = _to_numpy(updates)
    if u.ndim != 3:
        raise CSEInputError(
            f"Invalid shape for 'updates': expected 3-D (n_layers, n_tokens, d_model), got shape {u.shape}"
        )
    if 0 in u.shape:
        raise CSEInputError(f"Invalid shape for 'updates': every dimension must be non-empty, got shape {u.shape}")
    n_layers, n_tokens, d_model = u.shape

    # 2. Parameters.
    axis, wavelet, level, boundary, normalize, null_permutations = resolve_measure(
        axis, wavelet, level, boundary, normalize, null_permutations,
        n_steps={"depth": n_layers, "token": n_tokens, "hidden": d_model},
    )
    rng = resolve_seed(seed)

    # 3. Compute.
    return _conditional_scale_entropy(
        u=u,
        axis=axis,
        wavelet=wavelet,
        level=level,
        boundary=boundary,
        normalize=normalize,
        null_permutations=int(null_permutations),
        rng=rng,
        seed=seed,
    )


def _scale_energies(u, axis, wavelet, level, boundary, unit, backend=None) -> np.ndarray:
    """Band energies of validated updates, shape (n_layers, n_tokens, level + 1), float64.

    `u` is a float32/float64 ndarray (n_layers, n_tokens, d_model); `backend` a module
    (or module name) with the `cse_kernels.reference` functions, default
    `DEFAULT_BACKEND`.
    """
    kernels = _resolve_backend(backend)
    n_layers, n_tokens, d_model = u.shape
    if axis == "depth":
        series = np.transpose(u, (1, 0, 2))  # (n_tokens, n_layers, d): a view the kernels read in place
        energies = kernels.modwt_energies(series, wavelet.dec_lo, wavelet.dec_hi, level, boundary=boundary, unit=unit)
        return np.transpose(energies, (1, 0, 2))
    if axis == "token":
        return kernels.modwt_energies(
            np.ascontiguousarray(u), wavelet.dec_lo, wavelet.dec_hi, level, boundary=boundary, unit=unit
        )
    rows = _hidden_rows(u, unit, kernels)
    energies = kernels.dwt_energies(rows, wavelet.dec_lo, wavelet.dec_hi, level)
    return energies.reshape(n_layers, n_tokens, level + 1)


def _hidden_rows(u, unit, kernels) -> np.ndarray:
    """Update vectors as rows (n_layers * n_tokens, d_model), unit-normalized if asked."""
    rows = u.reshape(-1, u.shape[-1])
    if not unit:
        return rows
    norms = kernels.update_norms(rows)[:, None]
    with np.errstate(invalid="ignore"):
        return np.asarray(rows, dtype=np.float64) / np.where(norms > 0, norms, 1.0)


def _cse_arrays(u, axis, wavelet, level, boundary, unit, permutations=None, backend=None) -> dict:
    """CSE, scale fractions, update norms and the null of validated updates.

    Parameters
    ----------
    u : ndarray, shape (n_layers, n_tokens, d_model)
        float32 or float64 layer updates.
    permutations : ndarray of int64, shape (P, d_model), optional
        Shared dimension permutations (``hidden`` axis null).

    Returns
    -------
    dict of ndarray, float64
        ``cse``, ``update_norm`` (n_layers, n_tokens); ``scale_fraction``
        (n_layers, n_tokens, level + 1); with permutations also
        ``cse_null_mean``, ``cse_null_std``, ``cse_z`` (n_layers, n_tokens).
    """
    kernels = _resolve_backend(backend)
    n_layers, n_tokens, d_model = u.shape
    # 1. Scale energies and their entropy.
    energies = _scale_energies(u, axis, wavelet, level, boundary, unit, backend=kernels)
    cse, fractions = kernels.scale_entropy(energies)
    out = {"cse": cse, "scale_fraction": fractions, "update_norm": kernels.update_norms(u)}
    # 2. Dimension-permutation null (hidden axis only; validated by the caller).
    if permutations is not None and len(permutations):
        rows = _hidden_rows(u, unit, kernels)
        null = kernels.dwt_null_entropy(rows, wavelet.dec_lo, wavelet.dec_hi, level, permutations)
        null = null.reshape(n_layers, n_tokens, len(permutations))
        mean = null.mean(axis=-1)
        std = null.std(axis=-1, ddof=1)
        # A spread at rounding level means the null is degenerate (e.g. a constant vector): z is undefined.
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(std > _NULL_STD_FLOOR, (cse - mean) / np.where(std > 0, std, 1.0), np.nan)
        out.update(cse_null_mean=mean, cse_null_std=std, cse_z=z)
    return out


def _conditional_scale_entropy(u, axis, wavelet, level, boundary, normalize, null_permutations, rng, seed,
                               backend=None) -> xr.Dataset:
    n_layers, n_tokens, d_model = u.shape
    permutations = null_permutations_for(rng, null_permutations, d_model)
    arrays = _cse_arrays(u, axis, wavelet, level, boundary, normalize == "unit", permutations, backend)
    cse, fractions, norms = arrays["cse"], arrays["scale_fraction"], arrays["update_norm"]

    # 2. Dataset with CF attributes.
    dims = ("layer", "token")
    ds = xr.Dataset(
        {
            "cse": (dims, cse, {"long_name": "conditional scale entropy", "units": "1"}),
            "scale_fraction": (
                dims + ("scale",),
                fractions,
                {"long_name": "fraction of update energy in wavelet band", "units": "1"},
            ),
            "update_norm": (dims, norms, {"long_name": "L2 norm of layer update", "units": "1"}),
        },
        coords={
            "layer": ("layer", np.arange(n_layers), {"long_name": "block index (0-based)"}),
            "token": ("token", np.arange(n_tokens), {"long_name": "token position"}),
            "scale": ("scale", band_labels(level), {"long_name": "wavelet band (d1..dJ fine to coarse, aJ)"}),
        },
    )

    # 3. Dimension-permutation null (hidden axis only; validated by the caller).
    if null_permutations:
        mean, std, z = arrays["cse_null_mean"], arrays["cse_null_std"], arrays["cse_z"]
        ds["cse_null_mean"] = (dims, mean, {"long_name": "mean CSE under hidden-dimension permutations", "units": "1"})
        ds["cse_null_std"] = (
            dims,
            std,
            {"long_name": "standard deviation (ddof=1) of CSE under hidden-dimension permutations", "units": "1"},
        )
        ds["cse_z"] = (dims, z, {"long_name": "CSE z-score against the hidden-dimension permutation null",
                                 "units": "1"})

    ds.attrs.update(
        axis=axis,
        wavelet=wavelet.name,
        level=int(level),
        boundary=boundary if axis != "hidden" else "periodization",
        normalize=normalize,
        null_permutations=int(null_permutations),
        seed=int(seed) if isinstance(seed, (int, np.integer)) else repr(seed),
    )
    return ds


@functools.lru_cache(maxsize=32)
def _shared_permutations(seed, n_permutations: int, n: int):
    return null_permutations_for(seed, n_permutations, n)


def reduce_updates(u, settings, backend="numba") -> dict:
    """Reduce layer updates to the per-token result arrays, with one kernel module.

    Parameters
    ----------
    u : ndarray or torch.Tensor, shape (n_layers, n_tokens, d_model)
        Layer updates (one sequence for the token axis; any tokens otherwise).
    settings : cse.params.MeasureSettings
    backend : {'numba', 'reference', 'torch'}
        ``'torch'`` reduces on the tensor's device with `cse_kernels.torch_twin`.

    Returns
    -------
    dict of ndarray, float64
        Token-major: ``cse``, ``update_norm`` (n_tokens, n_layers),
        ``scale_fraction`` (n_tokens, n_layers, level + 1), and with a null
        ``cse_null_mean``, ``cse_null_std``, ``cse_z``.
    """
    permutations = _shared_permutations(settings.seed, settings.null_permutations, u.shape[-1])
    if backend == "torch":
        return _reduce_updates_torch(u, settings, permutations)
    kernels = {"numba": "cse_kernels", "reference": "cse_kernels.reference"}.get(backend, backend)
    out = _cse_arrays(_to_numpy(u), settings.axis, as_wavelet(settings.wavelet), settings.level, settings.boundary,
                      settings.normalize == "unit", permutations, kernels)
    return {name: np.swapaxes(value, 0, 1) for name, value in out.items()}


def _reduce_updates_torch(u, settings, permutations=None) -> dict:
    """`reduce_updates` on the tensor's own device, with `cse_kernels.torch_twin`.

    The GPU path: layer updates are reduced to scale energies where the model ran,
    so only ``(n_tokens, n_layers, level + 1)`` numbers leave the device.

    Parameters
    ----------
    u : torch.Tensor, shape (n_layers, n_tokens, d_model)
        Layer updates on any device; bfloat16/float16 are taken as float32.
    settings, permutations
        As in `reduce_updates`.

    Returns
    -------
    dict of ndarray
        As `reduce_updates`, float64 on the CPU. Band energies and norms are
        accumulated in float64 on the device.
    """
    import torch

    from cse_kernels import torch_twin

    wavelet = as_wavelet(settings.wavelet)
    lo, hi = np.asarray(wavelet.dec_lo), np.asarray(wavelet.dec_hi)
    unit = settings.normalize == "unit"
    if u.dtype not in (torch.float32, torch.float64):
        u = u.float()
    n_layers, n_tokens, d_model = u.shape
    tokens_first = u.transpose(0, 1)  # (n_tokens, n_layers, d_model)
    # 1. Update norms, one layer at a time so that no float64 copy of u exists.
    norms = torch.stack([torch.linalg.vector_norm(u[l].double(), dim=-1) for l in range(n_layers)], dim=1)
    # 2. Band energies, token-major (n_tokens, n_layers, level + 1).
    rows = None
    if settings.axis == "depth":
        energies = torch_twin.modwt_energies(tokens_first.contiguous(), lo, hi, settings.level,
                                             boundary=settings.boundary, unit=unit)
    elif settings.axis == "token":
        energies = torch_twin.modwt_energies(u.contiguous(), lo, hi, settings.level,
                                             boundary=settings.boundary, unit=unit).transpose(0, 1)
    else:
        rows = tokens_first.reshape(-1, d_model)
        if unit:
            row_norms = norms.reshape(-1, 1).to(rows.dtype)
            rows = rows / torch.where(row_norms > 0, row_norms, torch.ones_like(row_norms))
        energies = torch_twin.dwt_energies(rows, lo, hi, settings.level).reshape(n_tokens, n_layers, -1)
    cse, fractions = torch_twin.scale_entropy(torch.as_tensor(energies).double())
    out = {"cse": cse, "scale_fraction": fractions, "update_norm": norms}
    # 3. Dimension-permutation null (hidden axis).
    if permutations is not None and len(permutations):
        perms = torch.as_tensor(np.asarray(permutations), device=rows.device)
        null = torch.as_tensor(torch_twin.dwt_null_entropy(rows, lo, hi, settings.level, perms)).double()
        null = null.reshape(n_tokens, n_layers, -1)
        mean, std = null.mean(-1), null.std(-1, correction=1)
        z = torch.where(std > _NULL_STD_FLOOR, (cse - mean) / torch.where(std > 0, std, torch.ones_like(std)),
                        torch.full_like(std, float("nan")))
        out.update(cse_null_mean=mean, cse_null_std=std, cse_z=z)
    return {name: torch.as_tensor(value).double().cpu().numpy() for name, value in out.items()}


def boundary_width(wavelet, level: int) -> int:
    """Width L_J = (2**J - 1)(K - 1) + 1 of the level-J MODWT equivalent filter (Percival & Walden 2000, ch. 5)."""
    return (2**int(level) - 1) * (as_wavelet(wavelet).dec_len - 1) + 1


def boundary_affected(n_steps: int, wavelet, level: int) -> np.ndarray:
    """True at positions t <= L_J - 2, whose MODWT coefficients depend on the boundary rule (bool, (n_steps,))."""
    return np.arange(int(n_steps)) <= boundary_width(wavelet, level) - 2
