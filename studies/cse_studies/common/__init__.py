"""Code shared by the studies (`cse_studies.metaphor`, `cse_studies.cross_depth`): the one public module.

- Corpora: `corpus_specs` (the ``--data``/``--corpus``/``--encoding``/``--column``
  options), `read_corpus` (format detection, encodings, checks), `sequence_words`.
- CSE results cached per model, corpus and settings: `cached_compute`, `result_path`,
  `by_length`, `token_counts`, `model_slug`, `each_model`.
- The output folder, which a study owns: `StudyFolder`; `open_study` (options, corpora,
  folder: the first step of every study).
- Report helpers: `md_table`, `p_text`, `model_line`, `software_line`,
  `boundary_layers`, `layer_span`.

Studies import from here only (never from each other), and from `cse` only its
public names.
"""

from .cache import (
    BATCH_SIZE,
    by_length,
    cached_compute,
    compute_key,
    each_model,
    model_slug,
    result_path,
    save_result,
    stored_key,
    token_counts,
)
from .corpora import (
    COLUMN_NAMES,
    DEFAULT_FILES,
    LABEL_WORDS,
    ROLES,
    SEQUENCE,
    TARGET_WORD,
    Corpus,
    CorpusSpec,
    corpus_specs,
)
from .folder import MARKER, StudyFolder, open_study
from .frames import read_corpus, sequence_words
from .report import boundary_layers, layer_span, md_table, model_line, p_text, software_line

__all__ = [
    "BATCH_SIZE", "COLUMN_NAMES", "DEFAULT_FILES", "LABEL_WORDS", "MARKER", "ROLES", "SEQUENCE", "TARGET_WORD",
    "Corpus", "CorpusSpec", "StudyFolder", "boundary_layers", "by_length", "cached_compute", "compute_key",
    "corpus_specs", "each_model", "layer_span", "md_table", "model_line", "model_slug", "open_study",
    "p_text", "read_corpus", "result_path", "save_result", "sequence_words", "software_line", "stored_key",
    "token_counts",
]
