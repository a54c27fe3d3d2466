"""Statistics on CSE results: per-layer group comparisons, mixed models, relative depth.

Every function takes the `xarray.Dataset` written by ``cse compute`` (or one of its
`DataArray`s, or a plain ``(n_tokens, n_layers)`` array) and returns a Dataset over
``layer`` (or ``relative_depth``) whose attributes record every setting, the seed and
the token counts, so that a saved result says how it was made.

Modules, one per concept (dependencies point down the list):

- `selection`: the token frame, ``where`` (through `cse.where`), special tokens, the
  two groups, pairs, exchangeability blocks, covariates;
- `permutation`: the permutation engine (label permutations within exchangeability
  blocks, sign flips, stratified bootstrap counts, p = (b + 1) / (P + 1));
- `effects`: Cohen's d, Hedges' g and bootstrap intervals;
- `statistics`: Welch's t and the paired t;
- `linear_model`: the within-block t (block fixed effects) and the Freedman-Lane t
  (covariates);
- `corrections`: cluster mass, TFCE, max-T (single step and step-down),
  Benjamini-Hochberg, all from one permutation distribution;
- `result`, `comparison`: the public `compare`;
- `mixed` (`mixedlm`), `frequency` (`log_frequency`, `add_log_frequency`),
  `depth` (`relative_depth`).
"""

from .comparison import compare
from .corrections import CORRECTIONS
from .depth import relative_depth
from .frequency import add_log_frequency, log_frequency
from .mixed import mixedlm
from .selection import select_tokens

__all__ = [
    "CORRECTIONS",
    "add_log_frequency",
    "compare",
    "log_frequency",
    "mixedlm",
    "relative_depth",
    "select_tokens",
]
