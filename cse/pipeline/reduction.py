"""One batch: forward pass with layer-update capture, reduced at once to the per-token results.

The reduction itself is `cse.measure.reduce_updates` (one path for the Numba kernels
on the CPU and the torch twin on a GPU); this module pads the batch, runs the model
and stacks the per-token arrays, so that only ``(n_tokens, n_layers, level + 1)``
numbers per batch outlive the forward pass.
"""

from __future__ import annotations

import numpy as np

from ..params import MeasureSettings, check_choice, check_seed, resolve_measure

__all__ = ["REDUCERS", "pad_batch", "resolve_settings", "run_batch"]

#: Where the updates are reduced: on their device with the torch twin, or on the CPU.
REDUCERS = ("auto", "numba", "torch")


def resolve_settings(axis="depth", wavelet=None, level=None, boundary="reflect", normalize=None,
                     null_permutations=0, seed=0, *, n_layers, d_model, min_tokens=None) -> MeasureSettings:
    """Validate the measure parameters against the model (see `cse.params.resolve_measure`).

    Parameters
    ----------
    axis, wavelet, level, boundary, normalize, null_permutations, seed
        As in `cse.conditional_scale_entropy`.
    n_layers, d_model : int
        The model's blocks and width.
    min_tokens : int, optional
        The shortest sequence (token axis).

    Returns
    -------
    MeasureSettings
    """
    seed = check_seed(seed)
    axis, wavelet, level, boundary, normalize, null_permutations = resolve_measure(
        axis, wavelet, level, boundary, normalize, null_permutations,
        n_steps={"depth": n_layers, "hidden": d_model, "token": min_tokens or 0},
    )
    return MeasureSettings(axis, wavelet.name, int(level), boundary, normalize, null_permutations,
                           0 if seed is None else seed)


def pad_batch(sequences, pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad token id sequences.

    Returns
    -------
    ids, mask : ndarray of int64, shape (batch, longest sequence)
        Token ids padded with `pad_id`, and 1 at real tokens, 0 at padding.
    """
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    ids = np.full((len(sequences), int(lengths.max())), pad_id, dtype=np.int64)
    mask = (np.arange(ids.shape[1]) < lengths[:, None]).astype(np.int64)
    ids[mask.astype(bool)] = np.concatenate(sequences)
    return ids, mask


def run_batch(model, sequences, settings: MeasureSettings, pad_id: int = 0, reducer: str = "auto") -> dict:
    """Forward one batch of sequences and return its stacked per-token results.

    Parameters
    ----------
    model : transformers.PreTrainedModel
    sequences : list of ndarray of int64
        Token ids of each sequence of the batch (right-padded with `pad_id`).
    settings : MeasureSettings
    pad_id : int
    reducer : {'auto', 'numba', 'torch'}
        Where the updates are reduced: ``'torch'`` on their device with
        `cse_kernels.torch_twin`, ``'numba'`` on the CPU with the Numba kernels;
        ``'auto'`` picks torch when the updates are on a GPU.

    Returns
    -------
    dict of ndarray, float64
        As `cse.measure.reduce_updates`, stacked over the batch's tokens in order,
        plus ``surprisal`` of shape (n_tokens,) in nats.
    """
    import torch

    from ..capture import forward_with_updates
    from ..measure import reduce_updates

    check_choice("reducer", reducer, REDUCERS)
    lengths = [len(s) for s in sequences]
    ids, mask = pad_batch(sequences, pad_id)
    updates, surprisal = forward_with_updates(model, torch.from_numpy(ids), torch.from_numpy(mask),
                                              dtype=torch.float32, zero_padding=False)
    if reducer == "auto":
        reducer = "torch" if updates.device.type == "cuda" else "numba"
    valid = mask.astype(bool).reshape(-1)
    if settings.axis == "token":
        parts = [reduce_updates(updates[:, b, :n], settings, backend=reducer) for b, n in enumerate(lengths)]
        out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    elif settings.axis == "depth" and not settings.null_permutations:
        # Tokens are independent on the depth axis: reduce the padded batch in place (a view, no
        # copy of the updates), then keep the real tokens' rows of the small results.
        out = {k: v[valid] for k, v in reduce_updates(updates.flatten(1, 2), settings, backend=reducer).items()}
    else:
        # Per-cell work is heavier (nulls, hidden-axis DWT): gather the real tokens first.
        flat = updates.flatten(1, 2)
        u = flat if valid.all() else flat[:, torch.from_numpy(valid).to(flat.device)]
        out = reduce_updates(u, settings, backend=reducer)
    del updates
    out["surprisal"] = surprisal.numpy().reshape(-1)[valid]
    return out
