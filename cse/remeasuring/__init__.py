r"""Measure once, re-measure under any wavelet: CSE of a stored result without the model.

On the depth axis every band energy of a token is a quadratic form of the token's
L x L Gram matrix of layer updates,

.. math:: E_j[t] = \sum_{m,n} a_{j,t}[m]\, a_{j,t}[n]\, \langle u_m, u_n \rangle,

with coefficients set by the wavelet, the level, the boundary rule and the position
only (any linear filter bank and linear extension); its diagonal holds the squared
norms, so ``normalize='unit'`` follows too, and the order null only re-indexes it. A
result computed with ``cse compute --save gram`` (variable ``gram``, or the packed
``gram_triangle``) is therefore re-measured on the depth axis under every wavelet,
level, boundary, normalization and order null, without the model
(`cse.measure.reduce_gram`: the same kernels as ``cse compute``). The token and hidden
axes need the updates themselves: ``--save updates`` (a Zarr store beside the result,
named in its attribute ``updates_store``, or a variable ``updates`` in memory).

- `api`: `remeasure` (``cse.remeasure``): validate, resolve the settings once, lay out
  the result.
- `sources`: the readers of stored Gram matrices and updates, chunk by chunk
  (`open_source`, `sequence_starts`).

(The package is not named ``cse.remeasure``: a submodule of that name would replace the
function ``cse.remeasure`` on the ``cse`` package once imported.)
"""

from .api import MEASURE_VARIABLES, remeasure
from .sources import CHUNK_BYTES, GramSource, UpdatesSource, open_source, sequence_starts

