"""One batch: forward pass with layer-update capture, reduced at once to the per-token results.

The reduction itself is `cse.measure.reduce_updates` (one path for the Numba kernels
on the CPU and the torch twin on a GPU); this module pads the batch, runs the model
and stacks the per-token arrays, so that only ``(n_tokens, n_layers, level + 1)``
numbers per batch outlive the forward pass (plus what the run saves: the Gram
matrices, or the updates themselves).
"""

from __future__ import annotations

import contextlib

import numpy as np

from ..params import check_choice
from ..settings import MeasureSettings

#: Where the updates are reduced: on their device with the torch twin, or on the CPU.
REDUCERS = ("auto", "numba", "torch")


def pad_batch(sequences, pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad token id sequences.

    Parameters
    ----------
    sequences : sequence of ndarray of int64
        Token ids of each sequence (at least one, each non-empty).
    pad_id : int
        Token id written at padded positions.

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


def run_batch(model, sequences, settings: MeasureSettings, pad_id: int = 0, reducer: str = "auto", *,
              save=(), save_dtype: str = "float32", non_finite: str = "error") -> dict:
    """Forward one batch of sequences and return its stacked per-token results.

    Parameters
    ----------
    model : transformers.PreTrainedModel
    sequences : list of ndarray of int64
        Token ids of each sequence of the batch (right-padded with `pad_id`).
    settings : MeasureSettings
        Fitted settings of the run.
    pad_id : int
        Token id of the padding.
    reducer : {'auto', 'numba', 'torch'}
        Where the updates are reduced: ``'torch'`` on their device with
        `cse_kernels.torch_twin`, ``'numba'`` on the CPU with the Numba kernels;
        ``'auto'`` picks torch when the updates are on a GPU.
    save : sequence of str
        ``'gram'`` / ``'gram_triangle'`` add the tokens' raw Gram matrices of layer
        updates (float64, summed from the float32 updates); ``'updates'`` the updates.
    save_dtype : {'float32', 'float16'}
        dtype of saved updates.
    non_finite : {'error', 'warn'}
        ``'error'``: raise `NonFiniteUpdates` for NaN or infinite updates; ``'warn'``:
        return them (NaN cells; the caller warns).

    Raises
    ------
    NonFiniteUpdates
        When a real token's update is NaN or infinite (its tokens; the caller names the texts).

    Returns
    -------
    dict of ndarray
        As `cse.measure.reduce_updates` (float64), stacked over the batch's tokens in
        order, plus ``surprisal`` (n_tokens,) in nats; with `save`, ``gram`` (n_tokens,
        n_layers, n_layers) or ``gram_triangle`` (n_tokens, n_layers (n_layers + 1) / 2)
        float64, ``updates`` (n_tokens, n_layers, d_model) in `save_dtype`.
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
    gram = "gram" in save or "gram_triangle" in save  # computed once, the energies and null from it
    if settings.axis == "token":
        parts = [reduce_updates(updates[:, b, :n], settings, backend=reducer) for b, n in enumerate(lengths)]
        out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    elif settings.axis == "depth" and not settings.null_permutations:
        # Tokens are independent on the depth axis: reduce the padded batch in place (a view, no
        # copy of the updates), then keep the real tokens' rows of the small results.
        reduced = reduce_updates(updates.flatten(1, 2), settings, backend=reducer, gram=gram)
        out = {k: v[valid] for k, v in reduced.items()}
    else:
        # Per-cell work is heavier (nulls, hidden-axis DWT): gather the real tokens first.
        flat = updates.flatten(1, 2)
        u = flat if valid.all() else flat[:, torch.from_numpy(valid).to(flat.device)]
        out = reduce_updates(u, settings, backend=reducer, gram=gram)
    if "gram_triangle" in save:
        rows, cols = np.triu_indices(out["gram"].shape[1])
        out["gram_triangle"] = np.ascontiguousarray(out.pop("gram")[:, rows, cols])
    if "updates" in save:
        real = updates.flatten(1, 2)[:, torch.from_numpy(valid).to(updates.device)]  # (L, n_tokens, d)
        out["updates"] = real.transpose(0, 1).to(getattr(torch, save_dtype)).cpu().numpy()
    del updates
    out["surprisal"] = surprisal.numpy().reshape(-1)[valid]
    # A NaN or infinite update (a model or dtype that overflows) would give NaN CSE without a word.
    broken = ~np.isfinite(out["update_norm"]).all(axis=1)
    if broken.any() and non_finite == "error":
        raise NonFiniteUpdates(np.flatnonzero(broken))
    return out


class NonFiniteUpdates(ArithmeticError):
    """The forward pass gave NaN or infinite layer updates at these tokens of the batch (0-based, real tokens)."""

    def __init__(self, tokens):
        super().__init__(f"non-finite layer updates at {len(tokens)} token(s) of the batch")
        self.tokens = np.asarray(tokens, dtype=np.int64)


def non_finite_error(exc: NonFiniteUpdates, texts, start: int):
    """The one line for `exc` raised by the batch whose tokens start at `start`; `texts` is the ``text`` coordinate.

    Returns
    -------
    cse.errors.CSEInputError
        Naming the texts (0-based, as in the result's ``text`` coordinate) and the count of tokens.
    """
    from ..errors import CSEInputError

    ids = np.unique(np.asarray(texts)[start + exc.tokens])
    shown = ", ".join(str(int(k)) for k in ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
    return CSEInputError(f"the model's forward pass gave NaN or infinite layer updates for {len(exc.tokens)} token(s) "
                         f"of text(s) {shown}; nothing was written for them: check the model's weights and dtype "
                         f"(a float16 model can overflow: try --dtype float32) or leave those texts out")


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """Hold torch's intra-op threads at `threads` (None: leave them) and restore them on exit.

    Parameters
    ----------
    threads : int or None
        Threads per process for torch's CPU kernels.
    """
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)
