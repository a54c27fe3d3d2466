"""The metaphor study (SPEC section 6): does CSE differ between metaphorical and literal tokens?

MOH-X target verbs, every content word of the VUA test split (by genre and POS), and
matched metaphor/literal pairs drawn from VUA; per-layer permutation tests with
cluster, max-T and FDR corrections, and the specificity controls (surprisal and word
frequency as covariates, a control token, shuffled labels, the other axes, the hidden
axis with its dimension-permutation null). Rerun with ``cse study metaphor`` or
`cse_studies.metaphor.run.run`.
"""

from .data import build_pairs, load_mohx, load_vua, vua_words

__all__ = ["build_pairs", "load_mohx", "load_vua", "vua_words"]
