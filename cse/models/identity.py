"""What was loaded: a model's identity for result attributes, and what a run needs to know of it."""

from __future__ import annotations

import dataclasses
import hashlib
import os

from ..hashing import file_sha256
from .loading import model_source
from .named import WIDTH_ATTRS


def _config_int(config, names) -> int | None:
    for attr in names:
        value = getattr(config, attr, None) if config is not None else None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def model_identity(model, name=None) -> dict:
    """Identify a model for result attributes.

    Parameters
    ----------
    model : torch.nn.Module, TransformerBridge or nnsight model
        A model, ideally loaded by `load_model` (which records where it came from),
        bare or wrapped (see `cse.capture.held_model`).
    name : str or None
        The name the user gave; None uses the recorded one (or the config's
        ``_name_or_path``, then the wrapper's own name).

    Returns
    -------
    identity : dict of str to str or int
        ``model`` (id or path), ``model_class`` (the Hugging Face class, also inside
        a wrapper), ``revision`` (the Hub commit hash, or ``""`` if unknown),
        ``model_file`` and ``model_sha256`` (for a GGUF file: its file name, without
        the folder, so that a shared result does not reveal the computing machine's
        directory layout, and the SHA-256 of its bytes, which identifies it; computed
        once per file and cached; ``""`` otherwise),
        ``n_layers`` (the number of blocks found by `cse.capture.find_blocks`),
        ``d_model``, ``wrapper`` and ``wrapper_version`` (e.g.
        ``"transformer_lens.TransformerBridge"``, ``"4.3.0"``; ``""`` for a bare
        model) and ``weight_processing`` (``"none"``, or what a TransformerLens
        bridge did to the weights, see `cse.capture.HeldModel`). Values are strings
        or ints so that they can be stored as netCDF attributes.

    Raises
    ------
    TypeError
        If `model` is neither a model nor a known wrapper.
    CSEInputError
        If the model's blocks cannot be found.

    Examples
    --------
    >>> import cse
    >>> model, tokenizer = cse.load_model()  # doctest: +SKIP
    >>> cse.model_identity(model)["n_layers"]  # doctest: +SKIP
    30
    """
    from ..capture import find_blocks, held_model

    held = held_model(model)
    hf_model = held.hf_model
    source = model_source(hf_model)
    config = getattr(hf_model, "config", None)
    model_name = (name if name is not None else source.get("model") or getattr(config, "_name_or_path", "")
                  or _wrapper_model_name(held.model) or "")  # fmt: skip
    file = source.get("file") or ""
    _, blocks = find_blocks(held)
    revision = source.get("revision") or getattr(config, "_commit_hash", None) or ""
    return {
        "model": str(os.fspath(model_name)),
        "model_class": type(hf_model).__name__,
        "revision": str(revision),
        "model_file": os.path.basename(os.fspath(file)) if file else "",  # the name: no path of this machine
        "model_sha256": file_sha256(file) if file else "",
        "n_layers": len(blocks),
        "d_model": int(_config_int(config, WIDTH_ATTRS) or 0),
        "wrapper": held.wrapper,
        "wrapper_version": held.wrapper_version,
        "weight_processing": held.weight_processing,
    }


def _wrapper_model_name(wrapper) -> str:
    """The name a wrapper records for its model (a bridge's ``cfg.model_name``, nnsight's ``repo_id``)."""
    for value in (getattr(getattr(wrapper, "cfg", None), "model_name", None), getattr(wrapper, "repo_id", None)):
        if isinstance(value, (str, os.PathLike)) and os.fspath(value):
            return os.fspath(value)
    return ""


@dataclasses.dataclass
class ModelInfo:
    """What a run needs to know of a model, wherever it is loaded.

    Attributes
    ----------
    tokenizer : transformers.PreTrainedTokenizerFast
    identity : dict
        From `model_identity`.
    n_layers, d_model : int
        Blocks (as found by `cse.capture.find_blocks`, the one source of the layer
        count) and width.
    max_length : int or None
        The context in tokens.
    dtype : str
        Parameter dtype, e.g. ``"float32"``.
    pad_id : int
    weights_sha256 : str
        SHA-256 of every state-dict entry's name, shape, dtype and first values (of
        the model that runs, processed weights included): tells apart two models
        saved under one path (used to refuse a mismatched resume).
    """

    tokenizer: object
    identity: dict
    n_layers: int
    d_model: int
    max_length: int | None
    dtype: str
    pad_id: int
    weights_sha256: str


def model_info(model, tokenizer=None) -> ModelInfo:
    """Describe a loaded model (see `ModelInfo`).

    Parameters
    ----------
    model : torch.nn.Module, TransformerBridge or nnsight model
        The model as the user holds it (see `cse.capture.held_model`).
    tokenizer : transformers.PreTrainedTokenizerBase or None
        The tokenizer; None takes a wrapper's own (required for a bare Hugging Face
        model, which has none).

    Returns
    -------
    ModelInfo
        The weights hash is taken on what runs: for a wrapper, every state-dict
        entry of the model inside it, which holds a bridge's processed weights.

    Raises
    ------
    TypeError
        If `model` is not a model or a known wrapper, or no tokenizer is given for a
        model without its own.
    CSEInputError
        If the model's blocks cannot be found.
    """
    import torch

    from ..capture import held_model

    held = held_model(model)
    if tokenizer is None:
        tokenizer = held.tokenizer
        if tokenizer is None:
            raise TypeError("Invalid value for 'tokenizer': required when 'model' is a loaded model without its "
                            "own tokenizer (TransformerLens and nnsight wrappers bring theirs); pass the model's "
                            "tokenizer")  # fmt: skip
    identity = model_identity(held)
    max_length = _config_int(held.config, ("max_position_embeddings", "n_positions"))
    digest = hashlib.sha256()
    with torch.no_grad():
        for pname, tensor in held.hf_model.state_dict(keep_vars=True).items():
            digest.update(f"{pname}{tuple(tensor.shape)}{tensor.dtype}".encode())
            if tensor.device.type != "meta" and tensor.numel():
                digest.update(tensor.detach().reshape(-1)[:64].float().cpu().numpy().tobytes())
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return ModelInfo(
        tokenizer=tokenizer,
        identity=identity,
        n_layers=int(identity["n_layers"]),
        d_model=int(identity["d_model"]),
        max_length=max_length,
        dtype=str(next(held.hf_model.parameters()).dtype).replace("torch.", ""),
        pad_id=int(pad_id),
        weights_sha256=digest.hexdigest(),
    )
