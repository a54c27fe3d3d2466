"""The one reduction path: layer updates (or their Gram matrices) to the per-token result arrays.

`reduce_updates` turns the layer updates of a set of tokens into the result arrays
through a kernel module (the Numba kernels of `cse_kernels`, the NumPy reference or
the torch twin on the updates' device), and with ``gram=True`` also returns the
tokens' Gram matrices, from which it then computes everything; `reduce_gram` computes
the same depth-axis arrays from stored Gram matrices (`cse.remeasure`).
`cse.conditional_scale_entropy` and `cse.compute` (batch by batch) call
`reduce_updates`; `cse.measure` re-exports these functions.
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

import numpy as np

from .errors import CSEInputError
from .nulls import null_z, permutation_set
from .settings import MeasureSettings

#: Kernel modules by name (``backend=`` of `reduce_updates`).
BACKENDS = {"numba": "cse_kernels", "reference": "cse_kernels.reference", "torch": "cse_kernels.torch_twin"}


def resolve_backend(backend) -> ModuleType:
    """The kernel module of `backend`: a name of `BACKENDS`, a module name, or a module.

    Parameters
    ----------
    backend : {None, 'numba', 'reference', 'torch'}, str or module
        None is ``'numba'``; a module name must start with ``cse_kernels``; a module
        must have the functions of `cse_kernels.reference` (same names and
        signatures) and may set ``ARRAYS = "torch"`` to receive torch tensors.

    Returns
    -------
    module

    Raises
    ------
    CSEInputError
        For an unknown name.
    """
    if backend is None:
        backend = "numba"
    if isinstance(backend, str):
        name = BACKENDS.get(backend, backend)
        if not name.startswith("cse_kernels"):
            raise CSEInputError(f"Invalid value for 'backend': expected one of {', '.join(map(repr, BACKENDS))} "
                                f"or a kernel module, got {backend!r}")
        return import_module(name)
    return backend


def _is_tensor(x) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def as_updates(updates, kernels: ModuleType):
    """Updates as a float32/float64 array of the backend: an ndarray, or a tensor on its device.

    Parameters
    ----------
    updates : array_like or torch.Tensor
        Layer updates of any real dtype (float16 and bfloat16 become float32, integers
        and booleans float64).
    kernels : module
        A kernel module (`resolve_backend`); with ``ARRAYS = "torch"`` the result is a
        tensor (on the updates' device), else an ndarray (tensors move to the CPU).

    Returns
    -------
    ndarray or torch.Tensor, float32 or float64

    Raises
    ------
    TypeError
        For complex or non-numeric input.
    CSEInputError
        For a tensor on the meta device (no values).
    """
    wants_torch = getattr(kernels, "ARRAYS", "numpy") == "torch"
    if _is_tensor(updates):
        import torch

        if updates.is_complex():
            raise TypeError(f"Invalid type for 'updates': expected a real tensor, got dtype {updates.dtype}")
        if updates.device.type == "meta":
            raise CSEInputError("Invalid value for 'updates': a tensor on the meta device has no values; "
                                "pass a tensor with data (load the model with real weights)")
        tensor = updates.detach()
        if tensor.dtype not in (torch.float32, torch.float64):
            tensor = tensor.to(torch.float32 if tensor.is_floating_point() else torch.float64)
        return tensor if wants_torch else tensor.cpu().numpy()
    array = np.asarray(updates)
    if array.dtype.kind == "f" and array.dtype not in (np.float32, np.float64):  # float16, longdouble
        array = array.astype(np.float32 if array.dtype.itemsize < 4 else np.float64)
    elif array.dtype.kind in "iub":
        array = array.astype(np.float64)
    elif array.dtype.kind != "f":
        raise TypeError(f"Invalid type for 'updates': expected a real floating array or torch tensor, "
                        f"got dtype {array.dtype}")
    if wants_torch:
        import torch

        return torch.from_numpy(array)
    return array


def _to_float64(x) -> np.ndarray:
    if _is_tensor(x):
        import torch

        x = x.detach().to(torch.float64).cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def reduce_updates(u, settings: MeasureSettings, backend="numba", gram: bool = False) -> dict:
    """Reduce layer updates to the per-token result arrays: the one reduction path.

    Parameters
    ----------
    u : ndarray or torch.Tensor, shape (n_layers, n_tokens, d_model)
        Layer updates, float32 or float64 (other real dtypes are converted: bfloat16
        and float16 to float32). For the ``token`` axis, the tokens of ONE text (or
        window) in order; for ``depth`` and ``hidden``, any set of tokens.
    settings : MeasureSettings
        Resolved and fitted settings (`cse.settings.MeasureSettings`); level and wavelet must suit
        the axis' length (they are not checked again here).
    backend : {'numba', 'reference', 'torch'} or module
        The kernel module (`resolve_backend`): the Numba kernels (default), the NumPy
        reference, the torch twin (on ``u``'s device: updates stay float32 there,
        energies are float64 there, only the results leave the device).
    gram : bool
        Depth axis only: also return each token's raw Gram matrix of its layer
        updates, computed once in one pass over the updates, and compute the energies,
        the null and the norms from it (`reduce_gram`) instead of from the updates.

    Returns
    -------
    dict of str to ndarray, float64, token-major
        ``cse``, ``update_norm`` (n_tokens, n_layers); ``scale_fraction`` (n_tokens,
        n_layers, level + 1); with ``settings.null_permutations`` = P > 0 also
        ``cse_null_mean``, ``cse_null_std`` and ``cse_z`` (n_tokens, n_layers), as in
        `conditional_scale_entropy`; with ``gram`` also ``gram`` (n_tokens, n_layers,
        n_layers), ``gram[t, m, n] = <u[m, t], u[n, t]>`` summed in float64.

    Raises
    ------
    CSEInputError
        For ``gram=True`` on another axis than depth, or an unknown backend.

    Notes
    -----
    The null's permutations come from `cse.nulls.permutation_set` (settings.seed, P,
    n) with n the length of the permuted axis: the same set for every batch, every
    worker and every text of the same length, so batching never changes a result.
    On the hidden axis the unit normalization is skipped: it rescales each cell's
    single vector, which cannot change its CSE, fractions or null (invariance to a
    global rescaling; exact up to overflow of float64 squares above ~1e154). With
    ``gram`` the energies come from the Gram identity and equal those of the MODWT
    of the updates to rounding (about 1e-15 of each cell's total energy).
    """
    kernels = resolve_backend(backend)
    u = as_updates(u, kernels)
    if gram and settings.axis != "depth":
        raise CSEInputError(f"Invalid value for 'gram': the Gram matrices of layer updates serve the depth axis, "
                            f"got axis {settings.axis!r}; save the updates for the {settings.axis} axis instead")
    perms = None
    if settings.null_permutations:
        perms = permutation_set(settings.seed, settings.null_permutations, settings.series_length(*u.shape))
    if not gram:
        return _reduce(u, settings, kernels, perms)
    matrices = kernels.gram_matrices(u.swapaxes(0, 1))
    return {**_from_gram(matrices, settings, kernels, perms), "gram": _to_float64(matrices)}


def reduce_gram(gram, settings: MeasureSettings, backend="numba") -> dict:
    """Depth-axis result arrays from the tokens' raw Gram matrices of layer updates.

    Parameters
    ----------
    gram : ndarray or torch.Tensor, shape (n_tokens, n_layers, n_layers), float64
        ``gram[t, m, n] = <u[m, t], u[n, t]>``, unnormalized (as ``reduce_updates(...,
        gram=True)`` returns and ``cse compute --save gram`` stores it); symmetric.
    settings : MeasureSettings
        Resolved depth-axis settings (any wavelet, level, boundary, normalization
        and null; not checked again here).
    backend : {'numba', 'reference', 'torch'} or module
        The kernel module (`resolve_backend`).

    Returns
    -------
    dict of str to ndarray, float64, token-major
        As `reduce_updates` without ``gram``; ``update_norm`` is the square root of
        the diagonal. Equal to ``reduce_updates(u, settings)`` for the updates ``u``
        whose Gram matrices these are, to rounding.

    Raises
    ------
    CSEInputError
        For another axis than depth, or ``gram`` not of shape (n_tokens, L, L).

    Notes
    -----
    Every band energy is a quadratic form of G, ``E_j[t] = sum_{m,n} a_{j,t}[m]
    a_{j,t}[n] G[m, n]``, with coefficients set by the wavelet, level, boundary rule and
    position only; unit normalization divides by the norms on its diagonal, and the
    order null re-indexes it (`cse_kernels.gram_energies`, `gram_null_moments`).
    """
    if settings.axis != "depth":
        raise CSEInputError(f"Invalid value for 'settings': Gram matrices give the depth axis only, got axis "
                            f"{settings.axis!r}; re-measure other axes from the updates (save='updates')")
    kernels = resolve_backend(backend)
    if getattr(kernels, "ARRAYS", "numpy") == "torch":
        import torch

        gram = torch.as_tensor(gram)
    else:
        gram = np.asarray(gram)
    if gram.ndim != 3 or gram.shape[1] != gram.shape[2]:
        raise CSEInputError(f"Invalid shape for 'gram': expected (n_tokens, n_layers, n_layers), got "
                            f"{tuple(gram.shape)}")
    perms = None
    if settings.null_permutations:
        perms = permutation_set(settings.seed, settings.null_permutations, gram.shape[1])
    return _from_gram(gram, settings, kernels, perms)


def _from_gram(gram, settings: MeasureSettings, kernels: ModuleType, perms) -> dict:
    """The depth-axis result arrays from Gram matrices (S, L, L) of the backend's kind."""
    wavelet = settings.pywt_wavelet
    args = (np.asarray(wavelet.dec_lo), np.asarray(wavelet.dec_hi), settings.level)
    options = {"boundary": settings.boundary, "unit": settings.normalize == "unit"}
    cse, fractions = kernels.scale_entropy(kernels.gram_energies(gram, *args, **options))
    with np.errstate(invalid="ignore"):
        out = {"cse": _to_float64(cse), "scale_fraction": _to_float64(fractions),
               "update_norm": np.sqrt(_to_float64(gram.diagonal(0, 1, 2)))}
    if perms is not None:
        mean, std = (_to_float64(m) for m in kernels.gram_null_moments(gram, *args, perms, **options))
        out.update(cse_null_mean=mean, cse_null_std=std, cse_z=null_z(out["cse"], mean, std))
    return out


def _reduce(u, settings: MeasureSettings, kernels: ModuleType, perms) -> dict:
    """`reduce_updates` with the backend's array `u` and the null's permutations (or None)."""
    n_layers, n_tokens, d_model = u.shape
    wavelet = settings.pywt_wavelet
    lo, hi, level = np.asarray(wavelet.dec_lo), np.asarray(wavelet.dec_hi), settings.level
    unit = settings.normalize == "unit"
    n_perm = 0 if perms is None else len(perms)

    # 1. Band energies and the null's moments. The depth axis reads the tokens' streams
    #    as a (n_tokens, n_layers, d) view (token-major); the others are layer-major.
    null = None
    if settings.axis == "depth":
        series = u.swapaxes(0, 1)
        energies = kernels.modwt_energies(series, lo, hi, level, boundary=settings.boundary, unit=unit)
        if n_perm:
            null = kernels.modwt_null_moments(series, lo, hi, level, perms, boundary=settings.boundary, unit=unit)
    elif settings.axis == "token":
        energies = kernels.modwt_energies(u, lo, hi, level, boundary=settings.boundary, unit=unit)
        if n_perm:
            null = kernels.modwt_null_moments(u, lo, hi, level, perms, boundary=settings.boundary, unit=unit)
    else:
        rows = u.reshape(n_layers * n_tokens, d_model)
        energies = kernels.dwt_energies(rows, lo, hi, level).reshape(n_layers, n_tokens, level + 1)
        if n_perm:
            null = tuple(m.reshape(n_layers, n_tokens) for m in kernels.dwt_null_moments(rows, lo, hi, level, perms))
    cse, fractions = kernels.scale_entropy(energies)

    # 2. Float64 on the host, token-major.
    def token_major(x, layer_major=settings.axis != "depth"):
        x = _to_float64(x)
        return np.ascontiguousarray(x.swapaxes(0, 1)) if layer_major else x

    out = {
        "cse": token_major(cse),
        "scale_fraction": token_major(fractions),
        "update_norm": token_major(kernels.update_norms(u), layer_major=True),
    }
    if null is not None:
        mean, std = (token_major(m) for m in null)
        out.update(cse_null_mean=mean, cse_null_std=std, cse_z=null_z(out["cse"], mean, std))
    return out


def kernels_compiled() -> bool:
    """Whether the Numba kernels' machine code is cached on this machine (False: the first run compiles it).

    Looks for the index files Numba writes (``*.nbi``) in ``NUMBA_CACHE_DIR`` or beside
    the kernels' module, without importing Numba. A cache elsewhere (Numba's per-user
    folder, used when the package folder is read-only) reads as not compiled.

    Returns
    -------
    bool
    """
    import os
    from importlib.util import find_spec
    from pathlib import Path

    spec = find_spec("cse_kernels")
    if spec is None or not spec.submodule_search_locations:
        return True  # nothing to compile here
    folder = Path(list(spec.submodule_search_locations)[0])
    places = [folder / "__pycache__"]
    if os.environ.get("NUMBA_CACHE_DIR"):
        places.insert(0, Path(os.environ["NUMBA_CACHE_DIR"]))
    return any(next(place.rglob("_numba.*.nbi"), None) is not None for place in places if place.is_dir())
