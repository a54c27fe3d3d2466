"""Hooks that record the layer update of every block during forward passes."""

from __future__ import annotations

from contextlib import contextmanager

import torch

from .blocks import hook_sites
from .wrappers import held_model


class LayerUpdateRecorder:
    """Holds the per-block layer updates of the last forward pass.

    Created by `capture_layer_updates`; not meant to be built directly. Each
    block's hook writes ``output - input`` into one preallocated tensor, so the
    updates of a pass cost one tensor of shape ``(n_layers, *batch_shape, d_model)``
    and nothing of the inputs is kept beyond the block. Every forward pass
    (detected at block 0) allocates a fresh tensor, so a tensor obtained from
    `updates` stays valid after later passes.

    Parameters
    ----------
    path : str
        Attribute path of the hooked block list (see `cse.capture.find_blocks`),
        kept as the attribute ``path``.
    n_layers : int
        Number of blocks L (attribute ``n_layers``).
    dtype : torch.dtype or None
        dtype in which the differences are taken and stored (None: the hidden
        states' own).
    """

    def __init__(self, path: str, n_layers: int, dtype: torch.dtype | None):
        self.path = path
        self.n_layers = n_layers
        self._dtype = dtype
        self._updates: torch.Tensor | None = None
        self._seen = [False] * n_layers
        self._entering: dict[int, torch.Tensor] = {}

    @property
    def updates(self) -> torch.Tensor:
        """Layer updates of the last forward pass.

        Returns
        -------
        updates : torch.Tensor, shape (n_layers, *batch_shape, d_model)
            ``updates[l] = h_{l+1} - h_l``, detached, on the device of the first
            block's output, in the capture dtype (the model's output dtype by
            default). ``batch_shape`` is that of the block's hidden state,
            ``(batch, seq)`` for Hugging Face decoders.

        Raises
        ------
        RuntimeError
            If no forward pass ran inside the context, or a block did not run.
        """
        if self._updates is None:
            raise RuntimeError("no forward pass has run inside capture_layer_updates()")
        missing = [i for i, seen in enumerate(self._seen) if not seen]
        if missing:
            raise RuntimeError(
                f"blocks {missing} of {self.path!r} did not run in the last forward pass; "
                f"their layer updates are undefined"
            )
        return self._updates

    def reset(self) -> None:
        """Forget the last pass (drops the reference to its updates)."""
        self._updates = None
        self._seen = [False] * self.n_layers
        self._entering.clear()

    def _record(self, index: int, module, hidden_in, hidden_out) -> None:
        """Store ``hidden_out - hidden_in`` as block `index`'s update of this pass."""
        if not isinstance(hidden_in, torch.Tensor) or not isinstance(hidden_out, torch.Tensor):
            raise RuntimeError(
                f"block {index} of {self.path!r} ({type(module).__name__}) did not take and "
                f"return a hidden-state tensor; cannot capture its layer update"
            )
        if hidden_in.shape != hidden_out.shape:
            raise RuntimeError(
                f"block {index} of {self.path!r} changed the hidden-state shape from "
                f"{tuple(hidden_in.shape)} to {tuple(hidden_out.shape)}; not a residual block"
            )
        dtype = self._dtype or hidden_out.dtype
        if index == 0 or self._updates is None or self._updates.shape[1:] != hidden_out.shape:
            # A normal tensor even under torch.inference_mode(), so that callers may
            # modify it in place (normalise, mask) after the forward pass.
            with torch.inference_mode(False):
                self._updates = torch.empty((self.n_layers, *hidden_out.shape), dtype=dtype, device=hidden_out.device)
            self._seen = [False] * self.n_layers
        target = self._updates[index]
        with torch.no_grad():
            # Subtract in the capture dtype: a float32 capture of a bf16 model keeps
            # the difference exact instead of rounding it to bf16 again.
            new, old = hidden_out.detach().to(dtype), hidden_in.detach().to(dtype)
            if target.device == new.device:
                torch.sub(new, old, out=target)
            else:  # blocks spread over devices by a device_map
                target.copy_(new - old)
        self._seen[index] = True

    def _hook(self, index: int):
        """Forward hook (with kwargs) on a block: its input hidden state and its output."""

        def hook(module, args, kwargs, output):
            hidden_in = args[0] if args else kwargs.get("hidden_states")
            hidden_out = output if isinstance(output, torch.Tensor) else output[0]
            self._record(index, module, hidden_in, hidden_out)

        return hook

    def _entering_hook(self, index: int):
        """Forward hook on a block's ``hook_in`` point: the residual stream entering it."""

        def hook(module, args, output):
            self._entering[index] = output  # a reference until the block's hook_out fires

        return hook

    def _leaving_hook(self, index: int):
        """Forward hook on a block's ``hook_out`` point: the residual stream leaving it."""

        def hook(module, args, output):
            hidden_in = self._entering.pop(index, None)
            if hidden_in is None:
                raise RuntimeError(f"block {index} of {self.path!r}: hook_out ran before hook_in")
            self._record(index, module, hidden_in, output)

        return hook


@contextmanager
def capture_layer_updates(model, dtype: torch.dtype | None = None):
    """Record the layer update of every block during forward passes.

    For a Hugging Face model (bare or inside an nnsight wrapper), attaches one
    forward hook (``with_kwargs=True``) to each block found by
    `cse.capture.find_blocks`; the hook reads the block's input hidden state
    (positional ``args[0]`` or ``kwargs["hidden_states"]``) and its output (a
    tensor, or a tuple whose first element is the hidden state). For a
    TransformerLens ``TransformerBridge``, hooks each block's ``hook_in`` and
    ``hook_out`` points instead. Either way ``output - input`` is stored at
    once, detached. Hooks are removed when the context exits, also on an
    exception.

    Parameters
    ----------
    model : torch.nn.Module, TransformerBridge or nnsight model
        A decoder-only causal LM, as a Hugging Face model or wrapped (see
        `cse.capture.held_model`). Run the forward pass on what the wrapper runs:
        the bridge itself, or an nnsight wrapper's Hugging Face module.
    dtype : torch.dtype or None
        Dtype in which the difference is taken and stored; None keeps the
        model's hidden-state dtype.

    Yields
    ------
    recorder : LayerUpdateRecorder
        ``recorder.updates`` is a tensor of shape ``(n_layers, batch, seq, d_model)``
        holding ``h_{l+1} - h_l`` for the last forward pass.

    Raises
    ------
    TypeError
        If `model` is not a model or a known wrapper, or `dtype` not a torch.dtype.
    CSEInputError
        If the model's blocks cannot be found (see `cse.capture.find_blocks`).

    Notes
    -----
    Hidden states are the residual stream: ``h_0`` is the embedding output and
    ``h_{l+1} = h_l + u[l]``. The last update is block L-1's own contribution,
    before the final norm; ``output_hidden_states`` would give the normed stream
    for its last entry instead (the definition, user guide).

    References
    ----------
    .. [1] TransformerLens issues #1618, #1639, #1648: residual updates that were
       not what the model added.

    Examples
    --------
    >>> with capture_layer_updates(model) as rec:  # doctest: +SKIP
    ...     model(input_ids)
    >>> rec.updates.shape  # doctest: +SKIP
    torch.Size([30, 1, 12, 576])
    """
    if dtype is not None and not isinstance(dtype, torch.dtype):
        raise TypeError(f"Invalid type for 'dtype': expected a torch.dtype or None, got {type(dtype).__name__}")
    sites = hook_sites(held_model(model))
    recorder = LayerUpdateRecorder(sites.path, len(sites.blocks), dtype)
    handles = []
    try:
        if sites.points is None:
            for index, block in enumerate(sites.blocks):
                handles.append(block.register_forward_hook(recorder._hook(index), with_kwargs=True))
        else:
            for index, (entering, leaving) in enumerate(sites.points):
                handles.append(entering.register_forward_hook(recorder._entering_hook(index)))
                handles.append(leaving.register_forward_hook(recorder._leaving_hook(index)))
        yield recorder
    finally:
        for handle in handles:
            handle.remove()
        recorder._entering.clear()
