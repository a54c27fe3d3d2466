"""The main job: texts in, a Dataset of Conditional Scale Entropy out (SPEC sections 3-4, 7).

One module per concept, dependencies pointing one way (``api`` -> runners -> the rest):

`plan`
    Tokenize texts, align tokens to words, lay out the ``token`` dim (`plan_tokens`,
    `Plan`) and describe the batches to run (`Work`).
`reduction`
    One batch: forward pass with layer-update capture, reduced at once by
    `cse.measure.reduce_updates` (`run_batch`); measure settings (`resolve_settings`).
`sinks`
    The result layout (`result_template`) and where batches go: memory, a Zarr store
    (`ZarrSink`), written in the background (`BackgroundWriter`).
`staging`
    The on-disk state of a run: staging folder, manifest, done logs, resume (`Staging`).
`local`, `cluster`
    The runners: in this process (`run_local`) or on a Dask cluster (`run_cluster`).
`api`
    `compute`, the public entry point (also `cse.compute`).

The package is named ``pipeline`` because ``cse.compute`` is the public function.
"""

from .api import DEFAULT_BATCH_SIZE, attributes, compute
from .local import run_local
from .plan import Plan, Work, check_token_axis, plan_tokens
from .reduction import pad_batch, resolve_settings, run_batch
from .sinks import ZARR_CHUNK_BYTES, BackgroundWriter, MemorySink, ZarrSink, result_template, token_chunk
from .staging import MANIFEST_FIELDS, DoneLog, Staging, build_manifest, check_manifest

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "MANIFEST_FIELDS",
    "ZARR_CHUNK_BYTES",
    "BackgroundWriter",
    "DoneLog",
    "MemorySink",
    "Plan",
    "Staging",
    "Work",
    "ZarrSink",
    "attributes",
    "build_manifest",
    "check_manifest",
    "check_token_axis",
    "compute",
    "pad_batch",
    "plan_tokens",
    "resolve_settings",
    "result_template",
    "run_batch",
    "run_local",
    "token_chunk",
]
