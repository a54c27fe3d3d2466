"""The transformer blocks of a model, and where their layer updates are read."""

from __future__ import annotations

import dataclasses
import weakref

import torch

from ..errors import CSEInputError
from .wrappers import HeldModel, held_model

_LAYER_COUNT_ATTRS = ("num_hidden_layers", "n_layer", "num_layers")


# model -> (path, blocks, number of blocks) of its last structural search (see `_search_blocks`).
_FOUND: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def find_blocks(model) -> tuple[str, torch.nn.ModuleList]:
    """Find the list of transformer blocks of a decoder-only model.

    The blocks are found structurally, not by model family: among all
    ``torch.nn.ModuleList`` submodules whose children are all instances of one
    class and hold parameters, the one whose length equals the configured
    number of layers (``config.num_hidden_layers``, ``n_layer`` or
    ``num_layers``) is preferred, then the one with the most parameters. This
    finds ``transformer.h`` (GPT-2, GPT-Neo), ``gpt_neox.layers`` (GPT-NeoX,
    Pythia) and ``model.layers`` (Llama, Mistral, Qwen, SmolLM, gpt-oss), and not
    per-layer lists of experts or heads, which hold fewer parameters. A
    TransformerLens ``TransformerBridge`` gives its own ``blocks``; an nnsight
    wrapper the blocks of the Hugging Face model it wraps.

    Parameters
    ----------
    model : torch.nn.Module, TransformerBridge or nnsight model
        A decoder-only causal LM (or its base model), as a Hugging Face model or
        wrapped (see `cse.capture.held_model`).

    Returns
    -------
    path : str
        Attribute path of the block list inside the model that runs, e.g.
        ``"model.layers"`` (``"blocks"`` for a bridge).
    blocks : torch.nn.ModuleList, length n_layers
        The blocks, in execution order.

    Raises
    ------
    TypeError
        If `model` is neither a ``torch.nn.Module`` nor a known wrapper.
    CSEInputError
        If no list of identical blocks exists (the message names the model class),
        or the blocks of a Hugging Face model were replaced by TransformerLens
        components (pass the bridge itself).

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Module()
    >>> net.layers = torch.nn.ModuleList(torch.nn.Linear(4, 4) for _ in range(3))
    >>> path, blocks = find_blocks(net)
    >>> path, len(blocks)
    ('layers', 3)
    """
    sites = hook_sites(held_model(model))
    return sites.path, sites.blocks


@dataclasses.dataclass(frozen=True)
class HookSites:
    """Where the layer updates of a model's blocks are read.

    Attributes
    ----------
    path : str
        Attribute path of the block list.
    blocks : torch.nn.ModuleList
        The blocks. With ``points`` None, a forward hook on each block reads its
        input hidden state and its output.
    points : list of (torch.nn.Module, torch.nn.Module) or None
        For a TransformerLens bridge, each block's ``hook_in`` and ``hook_out`` hook
        points, whose outputs are the residual stream entering and leaving it.
    """

    path: str
    blocks: torch.nn.ModuleList
    points: list | None


def hook_sites(held: HeldModel) -> HookSites:
    """Where to read the layer updates of `held` (see `HookSites`).

    Parameters
    ----------
    held : HeldModel
        From `cse.capture.held_model`.

    Returns
    -------
    HookSites

    Raises
    ------
    CSEInputError
        As `find_blocks`.
    """
    if held.library == "transformer_lens":
        blocks = getattr(held.module, "blocks", None)
        points = [(getattr(b, "hook_in", None), getattr(b, "hook_out", None)) for b in blocks or []]
        if not points or not all(isinstance(p, torch.nn.Module) for pair in points for p in pair):
            raise CSEInputError(
                f"cannot find the blocks of this TransformerBridge ({held.wrapper} {held.wrapper_version}): "
                f"expected 'blocks', each with the hook points 'hook_in' and 'hook_out'"
            )
        return HookSites("blocks", blocks, points)
    path, blocks = _search_blocks(held.module)
    owner = type(blocks[0]).__module__.split(".")[0]
    if owner == "transformer_lens":
        raise CSEInputError(
            f"the blocks of {type(held.module).__name__} ({path!r}) are TransformerLens components: a "
            f"TransformerBridge was booted on this model and replaced its modules (and may have processed its "
            f"weights); pass the bridge itself"
        )
    return HookSites(path, blocks, None)


def _search_blocks(model: torch.nn.Module) -> tuple[str, torch.nn.ModuleList]:
    """The structural search of `find_blocks` on a torch module, remembered while the model keeps that list.

    The search walks every submodule (a few ms for a real model, once per batch
    otherwise); its answer is reused while the same ModuleList, of the same length, is
    still at the same path of the model.
    """
    cached = _FOUND.get(model)
    if cached is not None:
        path, blocks, n_blocks = cached
        try:
            if model.get_submodule(path) is blocks and len(blocks) == n_blocks:
                return path, blocks
        except AttributeError:
            pass
    path, blocks = _search(model)
    try:
        _FOUND[model] = (path, blocks, len(blocks))
    except TypeError:  # not weak-referenceable
        pass
    return path, blocks


def _search(model: torch.nn.Module) -> tuple[str, torch.nn.ModuleList]:
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
