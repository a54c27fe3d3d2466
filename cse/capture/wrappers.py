"""Models as users hold them: a Hugging Face model, a TransformerLens bridge, an nnsight wrapper.

`held_model` looks through a wrapper to the torch modules that run, without importing
the wrapper's library: wrappers are recognised by the module and name of the classes
along their MRO. Neither library is a dependency of cse, and importing nnsight patches
objects process-wide, so cse never imports them.

- TransformerLens 4.x ``TransformerBridge``: the bridge itself runs (its forward
  returns the logits), and the layer updates come from its ``blocks.{l}.hook_in`` and
  ``blocks.{l}.hook_out`` hook points: the residual stream entering and leaving block l
  as the bridge computes it, processed weights included.
- nnsight ``NNsight``, ``TransformersModel``, ``LanguageModel`` and their subclasses
  (nnterp's ``StandardizedTransformer``): the wrapped Hugging Face module runs directly,
  with hooks on its blocks; nnsight's tracing is not used. A wrapper that has not loaded
  its weights yet (``dispatched`` False) is dispatched first, as its first trace would.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import sys
import warnings
import weakref

import torch

from ..errors import CSEInputError

#: Classes (by top-level package and name) that mark a wrapper somewhere along the MRO.
_BRIDGES = {("transformer_lens", "TransformerBridge")}
_REMOTE_BRIDGES = {("transformer_lens", "BridgeCore")}  # a bridge without a local torch module
_NNSIGHT = {("nnsight", "Envoy"), ("nnsight", "NNsight")}

#: Relative size of a writing weight's mean over d_model below which it counts as centred.
_CENTRED_TOLERANCE = 1e-3

# Processed bridges already warned about (once per object), and each bridge's measured processing.
_WARNED: "weakref.WeakSet" = weakref.WeakSet()
_PROCESSING: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


@dataclasses.dataclass(frozen=True)
class HeldModel:
    """A model as the user holds it, and the torch modules that compute it.

    Attributes
    ----------
    model : object
        What the user passed.
    module : torch.nn.Module
        What runs the forward pass: the bridge for TransformerLens, the Hugging Face
        model otherwise.
    hf_model : torch.nn.Module
        The Hugging Face model inside (its ``config``, embeddings and weights).
    library : str
        ``""`` (a bare Hugging Face model), ``"transformer_lens"`` or ``"nnsight"``.
    wrapper : str
        The wrapper's package and class, e.g. ``"transformer_lens.TransformerBridge"``,
        ``"nnsight.LanguageModel"``; ``""`` for a bare model.
    wrapper_version : str
        Version of the wrapper's package (``""`` for a bare model or if unknown).
    weight_processing : str
        ``"none"``, or the comma-separated processing of a bridge's weights:
        ``compatibility_mode``, ``process_weights`` (TransformerLens ran its weight
        processing; it does not record which of fold_ln, center_writing_weights,
        center_unembed and fold_value_biases) and ``writing_weights_centred``
        (measured: every block's attention and MLP output weights have zero mean over
        d_model, so every layer update has zero mean over d_model).
    tokenizer : object or None
        The wrapper's own tokenizer (None for a bare model).
    """

    model: object
    module: torch.nn.Module
    hf_model: torch.nn.Module
    library: str
    wrapper: str
    wrapper_version: str
    weight_processing: str
    tokenizer: object | None

    @property
    def config(self):
        """The Hugging Face config of the model inside (None if it has none)."""
        return getattr(self.hf_model, "config", None)

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Run one forward pass and return the logits, shape (batch, seq, vocab).

        Parameters
        ----------
        input_ids : torch.Tensor, shape (batch, seq), int64
            Token ids on the model's input device.
        attention_mask : torch.Tensor or None, shape (batch, seq)
            1 at real tokens, 0 at padding; None for unpadded input.

        Returns
        -------
        torch.Tensor, shape (batch, seq, vocab)
        """
        kwargs = {} if attention_mask is None else {"attention_mask": attention_mask}
        if self.library == "transformer_lens":
            return self.module(input_ids, return_type="logits", use_cache=False, **kwargs)
        return self.module(input_ids=input_ids, use_cache=False, **kwargs).logits


def held_model(model) -> HeldModel:
    """Look through a wrapper to the modules that compute a model.

    Parameters
    ----------
    model : torch.nn.Module, wrapper or HeldModel
        A Hugging Face causal LM, a TransformerLens ``TransformerBridge`` (4.x), or an
        nnsight ``TransformersModel`` / ``LanguageModel`` / ``NNsight`` (0.8) or a
        subclass of these (nnterp's ``StandardizedTransformer``). A `HeldModel` is
        returned as it is.

    Returns
    -------
    HeldModel

    Raises
    ------
    TypeError
        If `model` is none of these.
    CSEInputError
        If a wrapper holds no local torch module (a TransformerLens ``RemoteBridge``).

    Warns
    -----
    UserWarning
        Once per bridge whose weights TransformerLens has processed (compatibility
        mode): its residual stream can differ from the Hugging Face model's.

    Notes
    -----
    Wrappers are recognised by the module and name of the classes along their MRO;
    neither TransformerLens nor nnsight is imported.
    """
    if isinstance(model, HeldModel):
        return model
    library = _wrapper_library(model)
    if library == "transformer_lens":
        return _bridge(model)
    if library == "nnsight":
        return _nnsight(model)
    if library == "remote":
        raise CSEInputError(
            f"Invalid value for 'model': {type(model).__name__} holds no local torch module (a remote "
            f"TransformerLens bridge); boot it with TransformerBridge.boot_transformers so that it runs here"
        )
    if not isinstance(model, torch.nn.Module):
        raise TypeError(
            f"Invalid type for 'model': expected a torch.nn.Module (a Hugging Face causal LM), a TransformerLens "
            f"TransformerBridge or an nnsight model, got {type(model).__name__}"
        )
    return HeldModel(model=model, module=model, hf_model=model, library="", wrapper="", wrapper_version="",
                     weight_processing="none", tokenizer=None)


def _wrapper_library(model) -> str:
    """'transformer_lens', 'nnsight', 'remote' or '' from the classes along the MRO (no import)."""
    for cls in type(model).__mro__:
        key = (cls.__module__.split(".")[0], cls.__name__)
        if key in _BRIDGES:
            return "transformer_lens"
        if key in _REMOTE_BRIDGES:
            return "remote"
        if key in _NNSIGHT:
            return "nnsight"
    return ""


def _wrapper_name(model) -> tuple[str, str]:
    """('package.Class', version) of the wrapper's own class."""
    package = type(model).__module__.split(".")[0]
    return f"{package}.{type(model).__qualname__}", _package_version(package)


@functools.lru_cache(maxsize=None)
def _package_version(package: str) -> str:
    version = getattr(sys.modules.get(package), "__version__", None)
    if isinstance(version, str):
        return version
    from importlib import metadata

    for dist in metadata.packages_distributions().get(package, [package]):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return ""


def _bridge(bridge) -> HeldModel:
    try:
        hf_model = bridge.original_model
    except AttributeError as error:
        raise CSEInputError(f"Invalid value for 'model': this TransformerBridge holds no local torch module "
                            f"({error})") from None  # fmt: skip
    if not isinstance(hf_model, torch.nn.Module):
        raise CSEInputError(f"Invalid value for 'model': this {type(bridge).__name__} is no TransformerBridge that "
                            f"runs here: its original_model is a {type(hf_model).__name__}, not a torch module")
    name, version = _wrapper_name(bridge)
    processing = _bridge_processing(bridge)
    if "process_weights" in processing and _first_time(bridge):
        centred = ("; its writing weights are centred, which removes each layer update's mean over d_model "
                   "and changes its scale energies" if "writing_weights_centred" in processing else "")  # fmt: skip
        warnings.warn(
            f"the TransformerBridge's weights are processed ({processing}){centred}: its residual stream can "
            f"differ from the Hugging Face model's. CSE is computed on the bridge as it is and the processing "
            f"is recorded in the result's 'weight_processing' attribute; for the Hugging Face model's numbers, "
            f"use a bridge without enable_compatibility_mode() or the Hugging Face model itself",
            UserWarning, stacklevel=4,
        )  # fmt: skip
    return HeldModel(model=bridge, module=bridge, hf_model=hf_model, library="transformer_lens", wrapper=name,
                     wrapper_version=version, weight_processing=processing,
                     tokenizer=getattr(bridge, "tokenizer", None))  # fmt: skip


def _first_time(bridge) -> bool:
    """True the first time a bridge is seen (always for an object that takes no weak reference)."""
    try:
        if bridge in _WARNED:
            return False
        _WARNED.add(bridge)
    except TypeError:
        pass
    return True


def _bridge_processing(bridge) -> str:
    """`HeldModel.weight_processing` of a bridge, measured once per bridge and processing state."""
    state = (bool(getattr(bridge, "compatibility_mode", False)), bool(getattr(bridge, "_weights_processed", False)))
    try:
        cached = _PROCESSING.get(bridge)
    except TypeError:  # an object that takes no weak reference (a stand-in for a bridge): measured every time
        cached = None
    if cached is not None and cached[0] == state:
        return cached[1]
    flags = ["compatibility_mode"] if state[0] else []
    if state[1]:
        flags.append("process_weights")
        if _writing_weights_centred(bridge):
            flags.append("writing_weights_centred")
    processing = ",".join(flags) or "none"
    with contextlib.suppress(TypeError):
        _PROCESSING[bridge] = (state, processing)
    return processing


def _writing_weights_centred(bridge) -> bool:
    """True if every block's attention and MLP output weights have zero mean over d_model (block by block)."""
    with torch.no_grad():
        for block in bridge.blocks:
            for owner, attr in (("attn", "W_O"), ("mlp", "W_out")):  # (heads, d_head, d_model), (d_mlp, d_model)
                try:
                    weight = getattr(getattr(block, owner), attr)
                except AttributeError:  # a block without this writer (mixture of experts): not measured
                    return False
                if not isinstance(weight, torch.Tensor) or weight.device.type == "meta" or weight.numel() == 0:
                    return False
                weight = weight.detach().float()
                if not bool(weight.mean(-1).abs().max() <= _CENTRED_TOLERANCE * weight.abs().mean()):
                    return False
    return True


def _nnsight(wrapper) -> HeldModel:
    module = getattr(wrapper, "_module", None)
    if not isinstance(module, torch.nn.Module):
        raise CSEInputError(f"Invalid value for 'model': the nnsight wrapper {type(wrapper).__name__} holds no "
                            f"torch module")  # fmt: skip
    if getattr(wrapper, "dispatched", True) is False and callable(getattr(wrapper, "dispatch", None)):
        wrapper.dispatch()  # load the real weights, as the wrapper's first trace would
        module = wrapper._module
    name, version = _wrapper_name(wrapper)
    return HeldModel(model=wrapper, module=module, hf_model=module, library="nnsight", wrapper=name,
                     wrapper_version=version, weight_processing="none",
                     tokenizer=getattr(wrapper, "tokenizer", None))  # fmt: skip
