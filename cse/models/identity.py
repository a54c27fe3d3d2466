"""What was loaded: a model's identity for result attributes, and what a run needs to know of it."""

from __future__ import annotations

import dataclasses
import hashlib
import os

from ..hashing import file_sha256
from .loading import model_source
from .named import WIDTH_ATTRS

__all__ = ["ModelInfo", "model_identity", "model_info"]


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
    model : torch.nn.Module
        A model, ideally loaded by `load_model` (which records where it came from).
    name : str or None
        The name the user gave; None uses the recorded one (or the config's
        ``_name_or_path``).

    Returns
    -------
    identity : dict of str to str or int
        ``model`` (id or path), ``model_class``, ``revision`` (the Hub commit hash,
        or ``""`` if unknown), ``model_file`` and ``model_sha256`` (for a GGUF file:
        its path and the SHA-256 of its bytes, computed once per file and cached;
        ``""`` otherwise), ``n_layers`` (the number of blocks found by
        `cse.capture.find_blocks`) and ``d_model``. Values are strings or ints so
        that they can be stored as netCDF attributes.
    """
    from ..capture import find_blocks

    source = model_source(model)
    config = getattr(model, "config", None)
    model_name = name if name is not None else source.get("model") or getattr(config, "_name_or_path", "") or ""
    file = source.get("file") or ""
    _, blocks = find_blocks(model)
    revision = source.get("revision") or getattr(config, "_commit_hash", None) or ""
    return {
        "model": str(os.fspath(model_name)),
        "model_class": type(model).__name__,
        "revision": str(revision),
        "model_file": file,
        "model_sha256": file_sha256(file) if file else "",
        "n_layers": len(blocks),
        "d_model": int(_config_int(config, WIDTH_ATTRS) or 0),
    }


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
        SHA-256 of every parameter's name, shape, dtype and first values: tells
        apart two models saved under one path (used to refuse a mismatched resume).
    """

    tokenizer: object
    identity: dict
    n_layers: int
    d_model: int
    max_length: int | None
    dtype: str
    pad_id: int
    weights_sha256: str


def model_info(model, tokenizer) -> ModelInfo:
    """Describe a loaded model (see `ModelInfo`)."""
    import torch

    identity = model_identity(model)
    config = model.config
    max_length = _config_int(config, ("max_position_embeddings", "n_positions"))
    digest = hashlib.sha256()
    with torch.no_grad():
        for pname, param in model.named_parameters():
            digest.update(f"{pname}{tuple(param.shape)}{param.dtype}".encode())
            if param.device.type != "meta":
                digest.update(param.detach().reshape(-1)[:64].float().cpu().numpy().tobytes())
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return ModelInfo(
        tokenizer=tokenizer,
        identity=identity,
        n_layers=int(identity["n_layers"]),
        d_model=int(identity["d_model"]),
        max_length=max_length,
        dtype=str(next(model.parameters()).dtype).replace("torch.", ""),
        pad_id=int(pad_id),
        weights_sha256=digest.hexdigest(),
    )
