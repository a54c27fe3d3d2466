"""Statistics on CSE results: per-layer group comparisons, mixed models, relative depth.

Every function takes the `xarray.Dataset` written by ``cse compute`` (or one of its
`DataArray`s, or a plain ``(n_tokens, n_layers)`` array) and returns a Dataset over
``layer`` (or ``relative_depth``) whose attributes record every setting, the seed and
the token counts, so that a saved result says how it was made.

Modules, one per concept (dependencies point down the list):

- `selection`: the token frame, ``where`` (through `cse.where`), special tokens, the
  two groups, pairs, exchangeability blocks, covariates;
- `permutation`: the permutation engine (label permutations within exchangeability
  blocks, sign flips, exact enumeration of small spaces, stratified and block
  bootstrap counts, p = (b + 1) / (P + 1));
- `effects`: Cohen's d, Hedges' g and bootstrap intervals;
- `statistics`: Welch's t and the paired t;
- `linear_model`: the pooled-variance within-block t (block fixed effects) and the
  Freedman-Lane t (covariates);
- `robust`: the studentized statistics (block-clustered CR, HC2) that stay valid when
  the labels differ in variance;
- `wild`: the restricted wild cluster bootstrap of the block-clustered statistic
  (Webb weights, one per block) and the t(G - 1) interval;
- `corrections`: cluster mass, TFCE, max-T (single step and step-down),
  Benjamini-Hochberg, all from one permutation distribution;
- `engine`, `result`, `comparison`: the public `compare`;
- `describe` (`group_contrast`), `replication` (`conjunction`, `replicated_bands`),
  `layers` (`layer_span`, `boundary_layers`), `mixed` (`mixedlm`), `frequency`
  (`log_frequency`, `add_log_frequency`), `depth` (`relative_depth`).
"""

from .comparison import compare
from .corrections import CORRECTIONS
from .depth import relative_depth
from .describe import group_contrast
from .engine import BOOTSTRAPS, NULLS, STATISTICS
from .frequency import add_log_frequency, log_frequency
from .layers import boundary_layers, layer_span
from .mixed import mixedlm
from .replication import conjunction, replicated_bands
from .selection import select_tokens

__all__ = [
    "BOOTSTRAPS",
    "CORRECTIONS",
    "NULLS",
    "STATISTICS",
    "add_log_frequency",
    "boundary_layers",
    "compare",
    "conjunction",
    "group_contrast",
    "layer_span",
    "log_frequency",
    "mixedlm",
    "relative_depth",
    "replicated_bands",
    "select_tokens",
]
