"""Forward passes with layer-update capture: one sequence, or a right-padded batch with surprisal."""

from __future__ import annotations

import torch

from ..errors import CSEInputError
from .recorder import capture_layer_updates
from .wrappers import held_model


def _input_device(model: torch.nn.Module) -> torch.device:
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if embeddings is not None and getattr(embeddings, "weight", None) is not None:
        return embeddings.weight.device
    return next(model.parameters()).device


def _as_ids(name: str, value, ndims: tuple[int, ...]) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        tensor = value
    else:
        if getattr(getattr(value, "flags", None), "writeable", True) is False:
            value = value.copy()  # a read-only array (e.g. xarray's values): torch wants its own
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
        raise CSEInputError(
            f"Invalid shape for {name!r}: expected {expected} dimensions, got shape {tuple(tensor.shape)}"
        )
    return tensor.long()


def _check_context(model: torch.nn.Module, n_tokens: int) -> None:
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if isinstance(limit, int) and n_tokens > limit:
        raise CSEInputError(
            f"Invalid length of 'input_ids': {n_tokens} tokens exceed the model's context of {limit}; "
            f"split the text into windows"
        )


def layer_updates(model, input_ids, keep_device: bool = False) -> torch.Tensor:
    """Layer updates of one sequence.

    Parameters
    ----------
    model : torch.nn.Module, TransformerBridge or nnsight model
        A decoder-only causal LM in eval mode: a Hugging Face model, a
        TransformerLens ``TransformerBridge`` or an nnsight ``TransformersModel`` /
        ``LanguageModel`` (see `cse.capture.held_model`).
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
        If `input_ids` are not integers, or `model` is not a model.
    CSEInputError
        If `input_ids` has the wrong shape, is empty or exceeds the model's
        context, or the model's blocks cannot be found.

    See Also
    --------
    forward_with_updates : The batched version, with surprisal.

    Examples
    --------
    Token ids are taken as given: the tokenizer of the default model adds no BOS token,
    while `cse.compute` prepends one (``add_bos=True``), so prepend it yourself to
    reproduce `cse.compute` by hand.

    >>> import cse, torch
    >>> model, tokenizer = cse.load_model()  # doctest: +SKIP
    >>> ids = tokenizer("The senator attacked the proposal .").input_ids  # doctest: +SKIP
    >>> ids = torch.tensor([tokenizer.bos_token_id] + ids)  # as cse.compute does  # doctest: +SKIP
    >>> u = cse.layer_updates(model, ids)  # doctest: +SKIP
    >>> ds = cse.conditional_scale_entropy(u.numpy())  # doctest: +SKIP
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
    held = held_model(model)
    _check_context(held.hf_model, ids.shape[1])
    ids = ids.to(_input_device(held.hf_model))
    with torch.inference_mode(), capture_layer_updates(model, dtype=torch.float32) as recorder:
        held.logits(ids)
        updates = recorder.updates[:, 0]
    return updates if keep_device else updates.cpu()


def forward_with_updates(model, input_ids, attention_mask,
                         dtype: torch.dtype | None = None,
                         zero_padding: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Layer updates and surprisal of a right-padded batch in one forward pass.

    Parameters
    ----------
    model : torch.nn.Module, TransformerBridge or nnsight model
        A decoder-only causal LM in eval mode, bare or wrapped (as in
        `layer_updates`).
    input_ids : torch.Tensor of int, shape (batch, seq)
        Token ids, right-padded.
    attention_mask : torch.Tensor, shape (batch, seq)
        1 at real tokens, 0 at padding; every row is ones followed by zeros.
    dtype : torch.dtype, optional
        The dtype of the returned updates; the difference is taken in it, so
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
        If `input_ids` are not integers, or `model` is not a model.
    CSEInputError
        If the shapes disagree, the mask is not right-padded, a sequence exceeds
        the model's context, or the model's blocks cannot be found.

    Notes
    -----
    The log-softmax is taken one sequence at a time, in place on the logits of its
    real positions (``torch.log_softmax(..., out=)``), so that no second tensor of
    shape (seq, vocab) is created (the logits are not returned).
    Right padding leaves the positions of real tokens unchanged, so the real
    positions match an unpadded forward pass of each sequence. The logits are
    those of what runs: a bridge's own forward (processed weights included), or
    the Hugging Face module inside an nnsight wrapper.

    Examples
    --------
    >>> import cse
    >>> model, tokenizer = cse.load_model()  # doctest: +SKIP
    >>> batch = tokenizer(["The senator attacked the proposal ."], return_tensors="pt")  # doctest: +SKIP
    >>> updates, surprisal = cse.forward_with_updates(  # doctest: +SKIP
    ...     model, batch.input_ids, batch.attention_mask)
    >>> updates.shape  # (batch, tokens, layers, d_model)  # doctest: +SKIP
    torch.Size([1, 7, 30, 576])
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
    held = held_model(model)
    _check_context(held.hf_model, int(mask.sum(1).max()))
    device = _input_device(held.hf_model)
    ids, mask = ids.to(device), mask.to(device)
    with torch.inference_mode(), capture_layer_updates(model, dtype=dtype) as recorder:
        logits = held.logits(ids, mask)
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
