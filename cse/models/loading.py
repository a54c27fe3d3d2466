"""Loading a causal LM and its tokenizer offline: named models, local folders, GGUF files, the HF cache."""

from __future__ import annotations

import os
import sys
import warnings
import weakref
from pathlib import Path

from ..errors import CSEInputError
from .named import DEFAULT_MODEL, NAMED_MODELS, named_model_file

_DTYPE_NAMES = ("float32", "bfloat16", "float16")

# Where each loaded model came from (name, gguf file, revision); read through `model_source`.
_SOURCES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def model_source(model) -> dict:
    """Where `load_model` found a model.

    Parameters
    ----------
    model : torch.nn.Module
        A Hugging Face model (the one inside a wrapper: see `cse.capture.held_model`).

    Returns
    -------
    dict
        ``model`` (name), ``file`` (GGUF path or None), ``revision``; ``{}`` for a
        model that `load_model` did not load.
    """
    return dict(_SOURCES.get(model, {}))


def _resolve_device(device):
    import torch

    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise TypeError(f"Invalid type for 'device': expected a str such as 'cpu' or 'cuda:0', got {type(device).__name__}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    kind, _, index = device.partition(":")
    if kind == "cuda" and (not index or index.isdigit()):
        if not torch.cuda.is_available():
            raise CSEInputError(f"Invalid value for 'device': {device!r} requested but CUDA is not available; "
                                f"use 'cpu' or 'auto'")
        if index and int(index) >= torch.cuda.device_count():
            raise CSEInputError(
                f"Invalid value for 'device': {device!r} but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
        return torch.device(device)
    raise CSEInputError(f"Invalid value for 'device': expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")


def _resolve_dtype(dtype):
    import torch

    if dtype is None:
        return None
    if isinstance(dtype, torch.dtype) and str(dtype).replace("torch.", "") in _DTYPE_NAMES:
        return dtype
    if isinstance(dtype, str) and dtype in _DTYPE_NAMES:
        return getattr(torch, dtype)
    raise CSEInputError(f"Invalid value for 'dtype': expected None, 'float32', 'bfloat16' or 'float16', got {dtype!r}")


def _locate(name) -> tuple[str, str | None, dict]:
    """Return (from_pretrained target, gguf file name or None, source info)."""
    if name is None:
        name = DEFAULT_MODEL
    if not isinstance(name, (str, os.PathLike)):
        raise TypeError(f"Invalid type for 'model': expected a model name, id or path (str), got {type(name).__name__}")
    text = os.fspath(name)
    if text in NAMED_MODELS:
        path = named_model_file(text)
        return str(path.parent), path.name, {"model": NAMED_MODELS[text].title, "file": str(path)}
    path = Path(text).expanduser()
    if path.is_file():
        if path.suffix != ".gguf":
            raise CSEInputError(f"cannot load model {text!r} offline: a file must be a .gguf; "
                                f"give a folder or a .gguf file")
        return str(path.parent), path.name, {"model": text, "file": str(path.resolve())}
    if path.is_dir():
        ggufs = sorted(path.glob("*.gguf"))
        if not (path / "config.json").is_file() and ggufs:
            if len(ggufs) > 1:
                raise CSEInputError(f"cannot load model {text!r} offline: the folder holds {len(ggufs)} .gguf "
                                    f"files; name one of them")
            return str(path), ggufs[0].name, {"model": text, "file": str(ggufs[0].resolve())}
        if not (path / "config.json").is_file():
            raise CSEInputError(f"cannot load model {text!r} offline: the folder has neither config.json nor a "
                                f".gguf file; give a local path or a model already in the Hugging Face cache")
        return str(path), None, {"model": text, "file": None}
    # A Hugging Face id is "name" or "owner/name"; anything else is meant as a path.
    if text.startswith((".", "/", "~")) or text.endswith(".gguf") or text.count("/") > 1 or "\\" in text:
        raise CSEInputError(f"cannot load model {text!r} offline: no such file or folder; give a local path, "
                            f"a named model ({', '.join(NAMED_MODELS)}) or a model already in the Hugging Face cache")
    return text, None, {"model": text, "file": None}


def _short_reason(error: BaseException) -> str:
    text = str(error)
    if "huggingface.co" in text and "cache" in text:
        return "not found on disk or in the Hugging Face cache (the network is not used)"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reason = lines[0] if lines else type(error).__name__
    return reason if len(reason) <= 200 else reason[:197] + "..."


def _import_error(error: BaseException) -> ImportError | None:
    """The ImportError behind `error` (transformers wraps a failed lazy import in a RuntimeError), or None."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, ImportError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _import_failure(error: BaseException) -> str:
    """One line for a failed Python import: which module, why, and where the one found lies."""
    found = _import_error(error) or error
    module = getattr(found, "name", None)
    where = getattr(found, "path", None)
    if where is None and module in sys.modules:
        where = getattr(sys.modules[module], "__file__", None)
    text = f"a Python import failed while loading it: {_short_reason(found)}"
    if module:
        text += f" (module {module!r}" + (f" found at {where}" if where else "") + ")"
    return (text + "; this is an installation problem, not the model: a file or folder of that name in the "
            "current folder or on PYTHONPATH can shadow the installed package, or a dependency is missing or "
            "too old (reinstall with `bash scripts/setup.sh` or `pip install cse`)")


def load_model(model=None, device="auto", dtype=None, device_map=None, *, name=None):
    """Load a causal LM and its tokenizer without touching the network.

    Parameters
    ----------
    model : str, os.PathLike or None
        A named offline model (``'smollm2-135m'``, the default when None, or
        ``'gemma-3-270m'``; see `NAMED_MODELS`), a local folder (with
        ``config.json``, or with one ``*.gguf`` file), a ``.gguf`` file, or a Hugging
        Face id already in the local cache; the same values as ``model`` of
        `cse.compute`.
    device : str
        ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"`` or
        ``"cuda:N"``. Ignored when `device_map` is given.
    dtype : str, torch.dtype or None
        ``"float32"``, ``"bfloat16"``, ``"float16"``, or None for the model's
        default (float32 for GGUF files, which are dequantized).
    device_map : str or dict or None
        Passed to ``from_pretrained`` (needs ``accelerate``), e.g. ``"auto"`` to
        spread a large model over devices.
    name : str, os.PathLike or None
        Deprecated name of `model` (``DeprecationWarning``); removed in the next release.

    Returns
    -------
    model : transformers.PreTrainedModel
        In eval mode, on `device`.
    tokenizer : transformers.PreTrainedTokenizerBase
        With ``padding_side = "right"`` and a pad token (the EOS token if the
        tokenizer has none).

    Raises
    ------
    TypeError
        If `model` or `device` has the wrong type.
    CSEInputError
        If a named model's wheel is missing (the message gives the pip command),
        `device` or `dtype` is invalid, or the model cannot be loaded offline (one
        line with the reason and what was tried: the folder or GGUF file). A Python
        import that fails while loading (a missing dependency, or a module of the
        same name in the current folder shadowing an installed package) is named as
        such, with the module and where it was found, not as a missing model.

    Notes
    -----
    Every load uses ``local_files_only=True``, so a model that is not on disk
    fails at once instead of waiting on the network. GGUF weights are dequantized
    to float32 by transformers (which needs the ``gguf`` package).

    Examples
    --------
    >>> model, tokenizer = load_model("gemma-3-270m", device="cpu")  # doctest: +SKIP
    >>> model.config.num_hidden_layers  # doctest: +SKIP
    18
    """
    if name is not None:
        warnings.warn("'name' of load_model is deprecated; use 'model' (as in cse.compute)", DeprecationWarning,
                      stacklevel=2)
        if model is not None and model != name:
            raise CSEInputError("Invalid combination: give 'model' only ('name' is its old name)")
        model = name
    name = model
    torch_device = None if device_map is not None else _resolve_device(device)
    torch_dtype = _resolve_dtype(dtype)
    target, gguf_file, source = _locate(name)
    label = source["model"] if name is None else os.fspath(name)
    tried = f"{target}" + (f" (GGUF file {gguf_file})" if gguf_file is not None else "")
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging
    except Exception as error:
        raise CSEInputError(f"cannot load model {label!r}: {_import_failure(error)}") from error

    kwargs = {"local_files_only": True}
    if gguf_file is not None:
        kwargs["gguf_file"] = gguf_file
    try:
        tokenizer = AutoTokenizer.from_pretrained(target, **kwargs)
        model_kwargs = dict(kwargs)
        if torch_dtype is not None:
            model_kwargs["dtype"] = torch_dtype
        if device_map is not None:
            model_kwargs["device_map"] = device_map
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # GGUF conversion notices are not the user's business
        try:
            model = AutoModelForCausalLM.from_pretrained(target, **model_kwargs)
        finally:
            hf_logging.set_verbosity(verbosity)
    except Exception as error:  # any failure to read a model is bad input: one line, cause chained
        if _import_error(error) is not None:  # the installation, not the model, is at fault
            raise CSEInputError(f"cannot load model {label!r} (tried {tried}): {_import_failure(error)}") from error
        raise CSEInputError(
            f"cannot load model {label!r} offline (tried {tried}, local files only): {_short_reason(error)}; give a "
            f"local path, a named model or a model already in the Hugging Face cache"
        ) from error
    if torch_device is not None:
        model.to(torch_device)
    model.eval()
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        fallback = tokenizer.eos_token or tokenizer.bos_token or tokenizer.unk_token
        if fallback is not None:
            tokenizer.pad_token = fallback
    source["revision"] = getattr(model.config, "_commit_hash", None)
    _SOURCES[model] = source
    return model, tokenizer
