"""The one place where Numba is configured (as ``mne/fixes.py`` does for MNE).

Every kernel of :mod:`cse_kernels._numba` is compiled with the same fixed
defaults:

- ``nopython=True`` (``numba.njit``): no object-mode fallback, so a kernel is either
  fast or fails to compile;
- ``nogil=True``: kernels release the GIL, so threads (e.g. a Dask worker) can
  overlap them;
- ``cache=True``: compiled machine code is cached on disk next to the module (or in
  ``NUMBA_CACHE_DIR``), so only the very first call of a process pays the compile time;
- ``error_model="numpy"``: a float division by zero gives ``inf``/``nan`` as in NumPy
  instead of raising ``ZeroDivisionError``; the NaN policy of the definition (user guide) relies on it;
- ``fastmath={"reassoc"}`` where ``exact=False`` (the default): lets LLVM vectorize
  sums (energies over hidden dimensions) by reassociating them. Nothing more: not
  ``nnan``/``ninf`` (NaN and inf must propagate to the output), not ``nsz`` (with
  ``reassoc`` it let LLVM fold away a finiteness test of an overflowing sum), not
  ``contract`` by default (fused multiply-adds change the rounding of filter sums
  relative to the NumPy reference, and measured no faster in the MODWT kernels).
  ``contract=True`` adds it for the one kernel where it pays: the periodized DWT's
  filter loop (hidden axis, 8-tap db4 by default), where fusing each tap's multiply
  and add halves the floating-point instructions (measured 1.5-2x faster; the band
  energies then differ from the reference by ~1e-15 of the total, the same order
  as the reference's own rounding).
  ``exact=True`` compiles without any fast-math flag, for code whose job is to test
  values (the NaN policy of `scale_entropy`).

``parallel=True`` is opt-in per kernel; parallel kernels distribute their outer
``prange`` loop (tokens, layers or rows) over Numba's threading layer.
"""

from __future__ import annotations

import numba
from numba import prange

_FASTMATH = frozenset({"reassoc"})


def jit(func=None, *, parallel: bool = False, exact: bool = False, contract: bool = False):
    """Compile `func` with the package's fixed Numba defaults.

    Parameters
    ----------
    func : callable, optional
        The Python function to compile. Without it, returns a decorator.
    parallel : bool
        Turn ``prange`` loops into parallel loops.
    exact : bool
        Compile without fast-math flags (strict IEEE semantics and evaluation order).
    contract : bool
        Also allow fused multiply-adds (``fastmath`` flag ``contract``).

    Returns
    -------
    dispatcher : numba.core.registry.CPUDispatcher
        The lazily compiled function (one specialization per argument dtype/layout).
    """

    def decorate(f):
        return numba.njit(
            f,
            nogil=True,
            cache=True,
            parallel=parallel,
            error_model="numpy",
            fastmath=False if exact else set(_FASTMATH | ({"contract"} if contract else set())),
        )

    if func is None:
        return decorate
    return decorate(func)
