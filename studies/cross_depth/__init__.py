"""The cross-depth study (SPEC section 6): CSE depth profiles over relative depth for
every model given, their similarity across models, and the layer-by-layer coupling of
scale distributions. Rerun with ``cse study cross-depth`` or
`cse_studies.cross_depth.run.run`.
"""

