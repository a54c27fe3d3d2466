"""The main job: texts in, a Dataset of Conditional Scale Entropy out.

`compute` (also `cse.compute`, in `api`) follows one straight path, a module per step:

`request`
    Every parameter and the output checked, the texts read (`make_request`, `Request`).
`executor`, `cluster`
    The model, loaded in this process (`LocalExecutor`) or on the workers of a Dask
    cluster (`ClusterExecutor`), and the batches run through it.
`tokenize`, `plan`
    Texts tokenized (the BOS rule, long texts bounded before any work) and laid out,
    the measure's settings fitted, the batches (`plan_run`, `Run`).
`store`, `staging`, `sinks`
    Where the batches go: memory, or a staging folder beside the output with a Zarr
    store, a manifest and the logs of finished batches (resume); the output appears
    atomically when every batch is done.
`batch`
    One batch: forward pass with layer-update capture, reduced at once (`run_batch`).

The package is named ``pipeline`` because ``cse.compute`` is the public function.
"""

from .api import DEFAULT_BATCH_SIZE, compute
from .batch import pad_batch, run_batch
from .plan import Plan, Run, plan_run, plan_tokens
from .staging import MANIFEST_FIELDS, Staging
from .tokenize import token_lengths

