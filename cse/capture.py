"""Capture layer updates from decoder-only Hugging Face models (loading them is `cse.models`).

The layer update of block l at token t is ``u[l, t] = h_{l+1}[t] - h_l[t]``, the
difference between what leaves block l and what enters it (SPEC section 2). It is
taken with forward hooks on the blocks themselves, never from
``output_hidden_states``: in GPT-2, Llama and most Hugging Face decoders the last
entry of ``hidden_states`` has the final norm (``ln_f`` / ``model.norm``) applied, so
``hidden_states[-1] - hidden_states[-2]`` is not the last block's update.

Public entry points
-------------------
find_blocks
    Locate the model's list of transformer blocks structurally.
capture_layer_updates
    Context manager that records the per-block updates of each forward pass.
layer_updates
    Updates of one sequence as a float32 tensor ``(n_layers, n_tokens, d_model)``.
forward_with_updates
    Updates and surprisal of a right-padded batch in one forward pass.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from .errors import CSEInputError

__all__ = [
    "LayerUpdateRecorder",
    "capture_layer_updates",
    "find_blocks",
    "forward_with_updates",
    "layer_updates",
]

_LAYER_COUNT_ATTRS = ("num_hidden_layers", "n_layer", "num_layers")


# --------------------------------------------------------------------------- blocks


def find_blocks(model: torch.nn.Module) -> tuple[str, torch.nn.ModuleList]:
    """Find the list of transformer blocks of a decoder-only model.

    The blocks are found structurally, not by model family: among all
    ``torch.nn.ModuleList`` submodules whose children are all instances of one
    class and hold parameters, the one whose length equals the configured
    number of layers (``config.num_hidden_layers``, ``n_layer`` or
    ``num_layers``) is preferred, then the one with the most parameters. This
    finds ``transformer.h`` (GPT-2, GPT-Neo), ``gpt_neox.layers`` (GPT-NeoX,
    Pythia) and ``model.layers`` (Llama, Mistral, Qwen, SmolLM, gpt-oss), and not
    per-layer lists of experts or heads, which hold fewer parameters.

    Parameters
    ----------
    model : torch.nn.Module
        A decoder-only causal LM (or its base model).

    Returns
    -------
    path : str
        Attribute path of the block list inside `model`, e.g. ``"model.layers"``.
    blocks : torch.nn.ModuleList, length n_layers
        The blocks, in execution order.

    Raises
    ------
    TypeError
        If `model` is not a ``torch.nn.Module``.
    CSEInputError
        If no list of identical blocks exists; the message names the model class.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Module()
    >>> net.layers = torch.nn.ModuleList(torch.nn.Linear(4, 4) for _ in range(3))
    >>> path, blocks = find_blocks(net)
    >>> path, len(blocks)
    ('layers', 3)
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"Invalid type for 'model': expected a torch.nn.Module, got {type(model).__name__}")
    config = getattr(model, "config", None)
    n_layers = None
    for attr in _LAYER_COUNT_ATTRS:
        value = getattr(config, attr, None) if config is not None else None
        if isinstance(value, int) and not isinstance(value, bool):
            n_layers = value
            break
    best, best_key = None, None
    for path, module in model.named_modules():
        if not isinstance(module, torch.nn.ModuleList) or len(module) == 0:
            continue
        classes = {type(child) for child in module}
        if len(classes) != 1:
            continue
        n_params = sum(p.numel() for p in module.parameters())
        if n_params == 0:
            continue
        key = (len(module) == n_layers, n_params, -path.count("."))
        if best_key is None or key > best_key:
            best, best_key = (path, module), key
    if best is None:
        raise CSEInputError(
            f"cannot find the transformer blocks of {type(model).__name__}: expected a "
            f"torch.nn.ModuleList of identical blocks (such as 'transformer.h' or 'model.layers'), "
            f"found none; only decoder-only models whose blocks form one ModuleList are supported"
        )
    return best


# --------------------------------------------------------------------------- capture


class LayerUpdateRecorder:
    """Holds the per-block layer updates of the last forward pass.

    Created by `capture_layer_updates`; not meant to be built directly. Each
    block's hook writes ``output - input`` into one preallocated tensor, so the
    updates of a pass cost one tensor of shape ``(n_layers, *batch_shape, d_model)``
    and nothing of the inputs is kept beyond the hook. Every forward pass
    (detected at block 0) allocates a fresh tensor, so a tensor obtained from
    `updates` stays valid after later passes.

    Attributes
    ----------
    path : str
        Attribute path of the hooked block list (see `find_blocks`).
    n_layers : int
        Number of blocks L.
    """

    def __init__(self, path: str, n_layers: int, dtype: torch.dtype | None):
        self.path = path
        self.n_layers = n_layers
        self._dtype = dtype
        self._updates: torch.Tensor | None = None
        self._seen = [False] * n_layers

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

    def _hook(self, index: int):
        def hook(module, args, kwargs, output):
            hidden_in = args[0] if args else kwargs.get("hidden_states")
            hidden_out = output if isinstance(output, torch.Tensor) else output[0]
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
                    self._updates = torch.empty(
                        (self.n_layers, *hidden_out.shape), dtype=dtype, device=hidden_out.device
                    )
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

        return hook


@contextmanager
def capture_layer_updates(model: torch.nn.Module, dtype: torch.dtype | None = None):
    """Record the layer update of every block during forward passes.

    Attaches one forward hook (``with_kwargs=True``) to each block found by
    `find_blocks`. The hook reads the block's input hidden state (positional
    ``args[0]`` or ``kwargs["hidden_states"]``) and its output (a tensor, or a
    tuple whose first element is the hidden state) and stores
    ``output - input`` at once, detached. Hooks are removed when the context
    exits, also on an exception.

    Parameters
    ----------
    model : torch.nn.Module
        A decoder-only causal LM.
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
    CSEInputError
        If the model's blocks cannot be found (see `find_blocks`).

    Notes
    -----
    Hidden states are the residual stream: ``h_0`` is the embedding output and
    ``h_{l+1} = h_l + u[l]``. The last update is block L-1's own contribution,
    before the final norm; ``output_hidden_states`` would give the normed stream
    for its last entry instead (SPEC section 2).

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
    path, blocks = find_blocks(model)
    recorder = LayerUpdateRecorder(path, len(blocks), dtype)
    handles = []
    try:
        for index, block in enumerate(blocks):
            handles.append(block.register_forward_hook(recorder._hook(index), with_kwargs=True))
        yield recorder
    finally:
        for handle in handles:
            handle.remove()


# --------------------------------------------------------------------------- forward


def _input_device(model: torch.nn.Module) -> torch.device:
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if embeddings is not None and getattr(embeddings, "weight", None) is not None:
        return embeddings.weight.device
    return next(model.parameters()).device


def _as_ids(name: str, value, ndims: tuple[int, ...]) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        tensor = value
    else:
        try:
            tensor = torch.as_tensor(value)
        except (TypeError, ValueError, RuntimeError) as error:
            raise TypeError(
                f"Invalid type for {name!r}: expected a tensor or nested list of ints, got "
                f"{type(value).__name__} ({error})"
            ) from None
        if tensor.numel() == 0:  # torch.as_tensor([]) is float32
            tensor = tensor.long()
    if tensor.dtype.is_floating_point or tensor.dtype.is_complex or tensor.dtype == torch.bool:
        raise TypeError(f"Invalid dtype for {name!r}: expected integer token ids, got {tensor.dtype}")
    if tensor.ndim not in ndims:
        expected = " or ".join(str(n) for n in ndims)
        raise CSEInputError(f"Invalid shape for {name!r}: expected {expected} dimensions, got shape {tuple(tensor.shape)}")
    return tensor.long()


def _check_context(model: torch.nn.Module, n_tokens: int) -> None:
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if isinstance(limit, int) and n_tokens > limit:
        raise CSEInputError(
            f"Invalid length of 'input_ids': {n_tokens} tokens exceed the model's context of {limit}; "
            f"split the text into windows"
        )


def layer_updates(model: torch.nn.Module, input_ids, keep_device: bool = False) -> torch.Tensor:
    """Layer updates of one sequence.

    Parameters
    ----------
    model : torch.nn.Module
        A decoder-only causal LM in eval mode.
    input_ids : torch.Tensor or list of int, shape (n_tokens,) or (1, n_tokens)
        Token ids of one sequence (no padding).
    keep_device : bool
        Keep the result on the model's device instead of moving it to the CPU.

    Returns
    -------
    updates : torch.Tensor, shape (n_layers, n_tokens, d_model), float32
        ``updates[l, t] = h_{l+1}[t] - h_l[t]``, the update block l adds to the
        residual stream at token t, in the residual stream's units. Taken in
        float32 from bf16/fp16 hidden states.

    Raises
    ------
    TypeError
        If `input_ids` are not integers.
    CSEInputError
        If `input_ids` has the wrong shape, is empty or exceeds the model's
        context, or the model's blocks cannot be found.

    See Also
    --------
    forward_with_updates : the batched version, with surprisal.
    """
    ids = _as_ids("input_ids", input_ids, (1, 2))
    if ids.ndim == 1:
        ids = ids[None]
    if ids.shape[0] != 1:
        raise CSEInputError(
            f"Invalid shape for 'input_ids': expected (n_tokens,) or (1, n_tokens) for one sequence, "
            f"got {tuple(ids.shape)}; use forward_with_updates for a batch"
        )
    if ids.shape[1] == 0:
        raise CSEInputError("Invalid value for 'input_ids': expected at least one token, got none")
    _check_context(model, ids.shape[1])
    ids = ids.to(_input_device(model))
    with torch.inference_mode(), capture_layer_updates(model, dtype=torch.float32) as recorder:
        model(input_ids=ids, use_cache=False)
        updates = recorder.updates[:, 0]
    return updates if keep_device else updates.cpu()


def forward_with_updates(model: torch.nn.Module, input_ids, attention_mask,
                         dtype: torch.dtype | None = None,
                         zero_padding: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Layer updates and surprisal of a right-padded batch in one forward pass.

    Parameters
    ----------
    model : torch.nn.Module
        A decoder-only causal LM in eval mode.
    input_ids : torch.Tensor, shape (batch, seq), integer
        Token ids, right-padded.
    attention_mask : torch.Tensor, shape (batch, seq)
        1 at real tokens, 0 at padding; every row is ones followed by zeros.
    dtype : torch.dtype, optional
        dtype of the returned updates; the difference is taken in it, so
        ``torch.float32`` keeps a bfloat16/float16 model's updates from being
        rounded to half precision. Default: the model's hidden-state dtype.
    zero_padding : bool
        Set the updates at padded positions to 0 (default). A caller that drops
        padded positions itself passes False and saves a pass over the updates.

    Returns
    -------
    updates : torch.Tensor, shape (n_layers, batch, seq, d_model)
        ``h_{l+1} - h_l`` per block, on the device of the model's blocks, in
        ``dtype`` (the caller reduces it). Zero at padded positions (with
        `zero_padding`; otherwise whatever the model computed there).
    surprisal : torch.Tensor, shape (batch, seq), float64, on the CPU
        ``-ln p(x_t | x_<t)`` in nats for t >= 1, from the float32 log-softmax of
        the logits at t - 1. NaN at t = 0 (no prefix) and at padded positions.

    Raises
    ------
    TypeError
        If `input_ids` are not integers.
    CSEInputError
        If the shapes disagree, the mask is not right-padded, a sequence exceeds
        the model's context, or the model's blocks cannot be found.

    Notes
    -----
    The log-softmax is taken one sequence at a time, in place on the logits of its
    real positions (``torch.log_softmax(..., out=)``), so that no second tensor of
    shape (seq, vocab) is created (the logits are not returned).
    Right padding leaves the positions of real tokens unchanged, so the real
    positions match an unpadded forward pass of each sequence.
    """
    ids = _as_ids("input_ids", input_ids, (2,))
    if isinstance(attention_mask, torch.Tensor) and attention_mask.dtype == torch.bool:
        attention_mask = attention_mask.long()
    mask = _as_ids("attention_mask", attention_mask, (2,))
    if mask.shape != ids.shape:
        raise CSEInputError(
            f"Invalid shape for 'attention_mask': expected {tuple(ids.shape)} like 'input_ids', "
            f"got {tuple(mask.shape)}"
        )
    if ids.shape[1] == 0:
        raise CSEInputError("Invalid value for 'input_ids': expected at least one token, got none")
    if ((mask != 0) & (mask != 1)).any() or (mask[:, 1:] > mask[:, :-1]).any():
        raise CSEInputError(
            "Invalid value for 'attention_mask': expected right padding (each row ones then zeros); "
            "set tokenizer.padding_side = 'right'"
        )
    _check_context(model, int(mask.sum(1).max()))
    device = _input_device(model)
    ids, mask = ids.to(device), mask.to(device)
    with torch.inference_mode(), capture_layer_updates(model, dtype=dtype) as recorder:
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
        updates = recorder.updates
        padding = ~mask.to(updates.device).bool()
        if zero_padding and padding.any():
            updates.masked_fill_(padding[None, :, :, None], 0)
    surprisal = _surprisal(logits, ids.to(logits.device), mask.to(logits.device))
    return updates, surprisal


def _surprisal(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """-ln softmax(logits[:, t-1])[ids[:, t]] in nats; NaN at t = 0 and padding. Overwrites `logits`."""
    batch, seq = ids.shape
    surprisal = torch.full((batch, seq), float("nan"), dtype=torch.float64)
    lengths = mask.sum(1).tolist()
    with torch.inference_mode():
        # One sequence at a time, real positions only, in place: no second (seq, vocab) tensor.
        for b in range(batch):
            n = int(lengths[b])
            if n < 2:
                continue
            step = logits[b, : n - 1]
            if step.dtype != torch.float32:
                step = step.float()  # a copy; half-precision logits are not overwritten
            torch.log_softmax(step, dim=-1, out=step)  # fused, vectorized, in place
            surprisal[b, 1:n] = -step.gather(-1, ids[b, 1:n, None])[:, 0].double().cpu()
    return surprisal
