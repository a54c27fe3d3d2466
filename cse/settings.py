"""The measure's settings (the definition, user guide): validated, defaulted and recorded by one owner.

`MeasureSettings.resolve` validates the parameters of every entry point
(`cse.conditional_scale_entropy`, `cse.compute` before and after the model loads,
`cse.remeasure`, the studies' cache key), fills the defaults of the axis and applies the
seed policy (`cse.params.draw_seed`); `MeasureSettings.fit` fixes the level once the
length of the transformed axis is known; `MeasureSettings.attrs` gives a result's
measure attributes. `null_permutations` draws the order null's one seeded set.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pywt

from cse_kernels.filters import equivalent_width

from .errors import CSEInputError
from .params import (AXES, BOUNDARIES, DEFAULT_WAVELET, as_wavelet, check_choice, check_int, check_memory, draw_seed,
                     resolve_level, resolve_normalize)


#: What the order null of each axis permutes (the result attribute ``null``).
NULL_KINDS = {"depth": "layer order", "token": "token order", "hidden": "hidden dimension"}

#: Rows of a permutation set drawn at once (their float64 keys are the only scratch).
PERMUTATION_BLOCK = 4096


@dataclasses.dataclass(frozen=True)
class MeasureSettings:
    """The measure's settings (the definition, user guide): the one owner of their validation and defaults.

    Build it with `MeasureSettings.resolve`, which validates every value, fills the
    defaults of the axis and applies the seed policy (`draw_seed`); once the length
    of the transformed axis is known (the model's blocks, the shortest text, d_model),
    `fit` fixes the level and checks it against that length. Every entry point —
    `cse.conditional_scale_entropy`, `cse.compute` (before and after the model
    loads), the batch reduction, `cse.remeasure` and the studies' cache key — goes
    through it, and a result's measure attributes come from `attrs`.

    Attributes
    ----------
    axis : {'depth', 'token', 'hidden'}
    wavelet : str
        PyWavelets name of an orthogonal wavelet.
    level : int or None
        J, the number of detail bands; None until `fit` where the user left it to
        the axis' default.
    boundary : {'reflect', 'periodic'}
        The MODWT boundary rule (the hidden axis' DWT is always periodized).
    normalize : {'unit', 'none'}
    null_permutations : int
        P (0: no null).
    seed : int
        Seed of the null's permutations (recorded even without a null).
    """

    axis: str = "depth"
    wavelet: str = "haar"
    level: int | None = None
    boundary: str = "reflect"
    normalize: str = "unit"
    null_permutations: int = 0
    seed: int = 0

    @classmethod
    def resolve(cls, axis="depth", wavelet=None, level=None, boundary="reflect", normalize=None,
                null_permutations=0, seed=0, *, n_steps=None) -> "MeasureSettings":
        """Validate the parameters of the definition (user guide) and fill their defaults, once for every caller.

        Parameters
        ----------
        axis : {'depth', 'token', 'hidden'}
            The transformed axis.
        wavelet : str, pywt.Wavelet or None
            An orthogonal wavelet; None: ``'haar'`` (depth, token) or ``'db4'`` (hidden).
        level : int or None
            J >= 1; None: 3 (depth, token) or the largest level (hidden), fixed by `fit`.
        boundary : {'reflect', 'periodic'}
            The MODWT boundary rule.
        normalize : {'unit', 'none'} or None
            None: ``'unit'`` (depth, token) or ``'none'`` (hidden).
        null_permutations : int
            0 (no null) or P >= 2.
        seed : int, numpy.random.Generator or None
            Turned into the recorded int by `draw_seed`.
        n_steps : int, optional
            Length of the transformed axis, when known: `fit` is then applied.

        Returns
        -------
        MeasureSettings

        Raises
        ------
        CSEInputError
            For an invalid value (an unknown axis, boundary or normalization, a
            non-orthogonal wavelet, a level below 1 or too high for `n_steps`, a
            null of 1 or below 0, a seed out of range).
        TypeError
            For a wrongly typed level, null_permutations or seed.
        """
        check_choice("axis", axis, AXES)
        check_choice("boundary", boundary, BOUNDARIES)
        wavelet = as_wavelet(DEFAULT_WAVELET[axis] if wavelet is None else wavelet)
        normalize = resolve_normalize(axis, normalize)
        if level is not None:
            if isinstance(level, bool) or not isinstance(level, (int, np.integer)):
                raise TypeError(f"Invalid type for 'level': expected an int or None, got {type(level).__name__}")
            level = check_int("level", level, 1)
        if isinstance(null_permutations, bool) or not isinstance(null_permutations, (int, np.integer)):
            raise TypeError(f"Invalid type for 'null_permutations': expected an int, got "
                            f"{type(null_permutations).__name__}")
        if null_permutations < 0 or null_permutations == 1:
            raise CSEInputError(f"Invalid value for 'null_permutations': expected 0 (no null) or an integer >= 2, "
                                f"got {null_permutations}")
        settings = cls(axis, wavelet.name, level, boundary, normalize, int(null_permutations), draw_seed(seed))
        return settings if n_steps is None else settings.fit(n_steps)

    def fit(self, n_steps: int) -> "MeasureSettings":
        """These settings with the level fixed for a transformed axis of `n_steps` samples.

        Parameters
        ----------
        n_steps : int
            Layers (depth), the shortest sequence in tokens (token) or d_model (hidden).

        Returns
        -------
        MeasureSettings
            With ``level`` an int: the axis' default where it was None.

        Raises
        ------
        CSEInputError
            If the level needs more samples than the axis has (``2**J > n_steps`` on
            the MODWT axes, above ``pywt.dwt_max_level`` on the hidden axis).
        """
        return dataclasses.replace(self, level=resolve_level(self.axis, self.level, n_steps, self.pywt_wavelet))

    def series_length(self, n_layers: int, n_tokens: int, d_model: int) -> int:
        """Length of the transformed (and, for the null, permuted) axis: n_layers, n_tokens or d_model.

        Parameters
        ----------
        n_layers, n_tokens, d_model : int
            The shape of the updates (n_tokens of one text or window on the token axis).

        Returns
        -------
        int
        """
        return {"depth": n_layers, "token": n_tokens, "hidden": d_model}[self.axis]

    @property
    def pywt_wavelet(self) -> pywt.Wavelet:
        """The wavelet as a `pywt.Wavelet`."""
        return pywt.Wavelet(self.wavelet)

    @property
    def n_bands(self) -> int:
        """J + 1: the detail bands and the approximation (needs a fitted level)."""
        return int(self.level) + 1

    @property
    def boundary_width(self) -> int | None:
        """L_J = (2^J - 1)(K - 1) + 1 on the MODWT axes (see `cse.boundary`); None on the hidden axis."""
        if self.axis == "hidden":
            return None
        return equivalent_width(self.pywt_wavelet.dec_len, int(self.level))

    def null_memory_bytes(self, n_steps: int) -> int:
        """Memory the null needs beyond the result, in bytes: the permutation set and its random keys.

        Parameters
        ----------
        n_steps : int
            Length of the permuted axis (`series_length`; the longest text on the token axis).

        Returns
        -------
        int
            ``8 * P * n_steps`` for the int64 set (`null_permutations`), plus, for
            the at most `PERMUTATION_BLOCK` rows drawn at once, their float64 keys and
            the int64 argsort of the keys before it is copied into the set; 0 without a
            null (checked against the traced peak in tests/test_measure.py). The kernels add nothing that grows with P: they keep each
            cell's running mean and spread, not every permutation's CSE.
        """
        n_steps = check_int("n_steps", n_steps, 0)
        if not self.null_permutations:
            return 0
        return 8 * n_steps * (self.null_permutations + 2 * min(self.null_permutations, PERMUTATION_BLOCK))

    def check_memory(self, n_steps: int) -> None:
        """Refuse a null whose working memory would exceed `MEMORY_LIMIT_BYTES`, before any work.

        Parameters
        ----------
        n_steps : int
            Length of the permuted axis.

        Raises
        ------
        CSEInputError
            Naming the estimate, the limit and the fix.
        """
        check_memory("null_permutations", self.null_permutations, self.null_memory_bytes(n_steps),
                     f"the null's permutation set ({self.null_permutations} x {n_steps} int64 and its random keys)")

    def attrs(self) -> dict:
        """The settings as result attributes (str and int values; needs a fitted level).

        Returns
        -------
        dict of str to str or int
            ``axis, wavelet, level, boundary, normalize, null_permutations, seed``
            (the boundary is ``'periodization'`` on the hidden axis, which has no
            MODWT boundary rule); ``boundary_width`` = L_J on the depth and token
            axes; with a null, ``null`` = what it permutes (`NULL_KINDS`).
        """
        attrs = {
            "axis": self.axis, "wavelet": self.wavelet, "level": int(self.level), "boundary": self.boundary,
            "normalize": self.normalize, "null_permutations": int(self.null_permutations), "seed": int(self.seed),
        }
        if self.axis == "hidden":
            attrs["boundary"] = "periodization"
        else:
            attrs["boundary_width"] = self.boundary_width
        if self.null_permutations:
            attrs["null"] = NULL_KINDS[self.axis]
        return attrs


def null_permutations(seed, n_permutations: int, n: int) -> np.ndarray | None:
    """The one seeded set of permutations of ``range(n)`` shared by every series of the null.

    Parameters
    ----------
    seed : int
        In [0, 2**63 - 1].
    n_permutations : int
        P, the number of permutations.
    n : int
        Length of the permuted axis: n_layers (depth), the text's length in tokens
        (token) or d_model (hidden). `cse.nulls.permutation_set` caches the set.

    Returns
    -------
    ndarray of int64, shape (n_permutations, n), or None when ``n_permutations`` is 0
        Row p is the argsort of row p of ``default_rng(seed).random((P, n))``; the
        keys are drawn `PERMUTATION_BLOCK` rows at a time, so no second array of the
        set's size is allocated, and Ctrl-C is heard between blocks.
    """
    if not n_permutations:
        return None
    rng = np.random.default_rng(draw_seed(seed))
    out = np.empty((n_permutations, n), dtype=np.int64)
    for start in range(0, n_permutations, PERMUTATION_BLOCK):
        stop = min(start + PERMUTATION_BLOCK, n_permutations)
        out[start:stop] = np.argsort(rng.random((stop - start, n)), axis=1)
    return out
