"""The cross-depth study (SPEC section 6): CSE depth profiles over relative depth for
every model given, their similarity across models (on ``cse_z`` and on raw CSE outside
the boundary-affected layers), and the layer-by-layer coupling of scale distributions.
Rerun with ``cse study cross-depth`` or `cse_studies.cross_depth.run.run`.
"""
