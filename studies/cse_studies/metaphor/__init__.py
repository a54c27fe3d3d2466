"""The metaphor study (SPEC section 6): does CSE differ between metaphorical and literal tokens?

Any labelled corpus in the two formats of the field (target-word files like MOH-X,
sequence files like VUA; defaults MOH-X and the VUA test split), matched
metaphor/literal pairs drawn from every sequence corpus, and several models; per-layer
permutation tests with cluster, max-T and FDR corrections on CSE and, with the
layer-order null, on ``cse_z``; the specificity controls (surprisal and word frequency
as covariates, a control token, shuffled labels, the other axes, the hidden axis with
its dimension-permutation null). Rerun with ``cse study metaphor`` or
`cse_studies.metaphor.run.run`.
"""

from .pairs import build_pairs

__all__ = ["build_pairs"]
