"""Parameter validation for every public entry point: the one home of the checks.

Public functions validate, private functions compute: each public function calls
these helpers, which raise `CSEInputError` (a `ValueError`) or `TypeError` with a
one-line message naming the parameter, what was expected and what was received
(and, for a bound, the bound).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pywt

from .errors import CSEInputError
from .schema import band_labels

__all__ = [
    "AXES",
    "BOUNDARIES",
    "NORMALIZATIONS",
    "DEFAULT_WAVELET",
    "DEFAULT_LEVEL",
    "DEFAULT_NORMALIZE",
    "MAX_SEED",
    "MEMORY_LIMIT_BYTES",
    "MeasureSettings",
    "as_wavelet",
    "band_labels",
    "check_choice",
    "check_int",
    "check_memory",
    "check_number",
    "check_seed",
    "null_permutations",
    "resolve_level",
    "resolve_measure",
    "resolve_normalize",
    "resolve_seed",
]

AXES = ("depth", "token", "hidden")
BOUNDARIES = ("reflect", "periodic")
NORMALIZATIONS = ("unit", "none")
DEFAULT_WAVELET = {"depth": "haar", "token": "haar", "hidden": "db4"}
DEFAULT_LEVEL = {"depth": 3, "token": 3}
DEFAULT_NORMALIZE = {"depth": "unit", "token": "unit", "hidden": "none"}

#: Largest seed: seeds are stored as int64 attributes of netCDF and Zarr results.
MAX_SEED = 2**63 - 1

#: Largest working memory one request may ask for (permutation sets, null
#: statistics): beyond it a count is refused before any work starts.
MEMORY_LIMIT_BYTES = 4 * 2**30


def check_int(name: str, value, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return `value` as an int if it is an integer in [minimum, maximum].

    Raises
    ------
    TypeError
        If `value` is not an integer (bool is not accepted).
    CSEInputError
        If it lies outside the bounds; the message gives them.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"Invalid type for {name!r}: expected an integer, got {type(value).__name__}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        if maximum is None:
            expected = f"an integer >= {minimum}"
        elif minimum is None:
            expected = f"an integer <= {maximum}"
        else:
            expected = f"an integer in [{minimum}, {maximum}]"
        raise CSEInputError(f"Invalid value for {name!r}: expected {expected}, got {value}")
    return value


def check_number(name: str, value, low: float | None = None, high: float | None = None, *,
                 inclusive: bool = False) -> float:
    """Return `value` as a finite float in the open interval (low, high) (closed if `inclusive`).

    Raises
    ------
    TypeError
        If `value` is not a real number.
    CSEInputError
        If it is not finite or lies outside the interval.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"Invalid type for {name!r}: expected a number, got {type(value).__name__}")
    value = float(value)
    below = low is not None and (value < low if inclusive else value <= low)
    above = high is not None and (value > high if inclusive else value >= high)
    if not np.isfinite(value) or below or above:
        left, right = ("[", "]") if inclusive else ("(", ")")
        lower = "-inf" if low is None else f"{low:g}"
        upper = "inf" if high is None else f"{high:g}"
        interval = f"{left}{lower}, {upper}{right}"
        raise CSEInputError(f"Invalid value for {name!r}: expected a number in {interval}, got {value!r}")
    return value


def check_seed(seed) -> int | None:
    """Validate a seed: None or an integer in [0, MAX_SEED] (what results can record).

    Raises
    ------
    TypeError
        For a non-integer seed.
    CSEInputError
        For a negative seed or one above 2**63 - 1.
    """
    if seed is None:
        return None
    return check_int("seed", seed, 0, MAX_SEED)


def check_memory(name: str, value, n_bytes: float, what: str) -> None:
    """Refuse a count whose working memory would exceed `MEMORY_LIMIT_BYTES`.

    Parameters
    ----------
    name : str
        The parameter, e.g. ``'null_permutations'``.
    value : int
        Its value.
    n_bytes : float
        The memory the request would need, estimated by the caller.
    what : str
        What the memory is for, e.g. ``'the permutation set (P x d_model int64)'``.

    Raises
    ------
    CSEInputError
        Naming the estimate and the limit.
    """
    if n_bytes > MEMORY_LIMIT_BYTES:
        raise CSEInputError(
            f"Invalid value for {name!r}: {value} would need about {n_bytes / 2**30:.3g} GiB for {what}, "
            f"over the limit of {MEMORY_LIMIT_BYTES / 2**30:.3g} GiB; use a smaller {name}"
        )


def check_choice(name: str, value, choices) -> str:
    """Return `value` if it is one of `choices`, else raise a one-line error."""
    if value not in choices:
        expected = ", ".join(repr(c) for c in choices)
        raise CSEInputError(f"Invalid value for {name!r}: expected one of {expected}, got {value!r}")
    return value


def as_wavelet(name) -> pywt.Wavelet:
    """Resolve a wavelet name to an orthogonal `pywt.Wavelet`.

    Raises
    ------
    CSEInputError
        If the name is unknown or the wavelet is not orthogonal (MODWT and the
        orthonormal DWT energy identity need an orthogonal filter bank).
    """
    if isinstance(name, pywt.Wavelet):
        wavelet = name
    else:
        if not isinstance(name, str) or name not in pywt.wavelist(kind="discrete"):
            raise CSEInputError(
                f"Invalid value for 'wavelet': expected a discrete PyWavelets wavelet name "
                f"such as 'haar', 'db4', 'sym8', got {name!r}"
            )
        wavelet = pywt.Wavelet(name)
    if not wavelet.orthogonal:
        raise CSEInputError(
            f"Invalid value for 'wavelet': {wavelet.name!r} is not orthogonal; use an orthogonal "
            f"family (haar, dbN, symN, coifN)"
        )
    return wavelet


def resolve_level(axis: str, level, n_steps: int, wavelet: pywt.Wavelet) -> int:
    """Resolve the decomposition level J for a transform over `n_steps` samples.

    `depth` and `token` (MODWT) default to J = 3 and require 2**J <= n_steps.
    `hidden` (periodized DWT) defaults to ``pywt.dwt_max_level(n_steps, K)`` and
    requires 1 <= J <= that maximum.
    """
    if level is not None and (isinstance(level, bool) or not isinstance(level, (int, np.integer))):
        raise TypeError(f"Invalid type for 'level': expected an int or None, got {type(level).__name__}")
    if axis == "hidden":
        max_level = pywt.dwt_max_level(n_steps, wavelet.dec_len)
        if level is None:
            level = max_level
        if max_level < 1 or not 1 <= level <= max_level:
            raise CSEInputError(
                f"Invalid value for 'level': the hidden axis of length {n_steps} with "
                f"{wavelet.name!r} (filter length {wavelet.dec_len}) allows levels 1..{max_level}, got {level}"
            )
        return int(level)
    if level is None:
        level = DEFAULT_LEVEL[axis]
    if level < 1:
        raise CSEInputError(f"Invalid value for 'level': expected an integer >= 1, got {level}")
    if 2**level > n_steps:
        raise CSEInputError(
            f"Invalid value for 'level': level {level} needs 2**{level} = {2**level} steps along the "
            f"{axis!r} axis but it has {n_steps}; use level {max(1, int(np.floor(np.log2(max(n_steps, 1)))))} "
            f"(--level) or lower"
        )
    if axis == "token" and (wavelet.dec_len - 1) * (2 ** (level - 1)) + 1 > 2 * n_steps:
        warnings.warn(
            f"level {level} with {wavelet.name!r} has filters longer than the reflected series of "
            f"{n_steps} tokens; boundary effects dominate",
            stacklevel=3,
        )
    return int(level)


def resolve_normalize(axis: str, normalize) -> str:
    if normalize is None:
        return DEFAULT_NORMALIZE[axis]
    return check_choice("normalize", normalize, NORMALIZATIONS)


def resolve_seed(seed) -> np.random.Generator:
    """Turn `seed` (int, None or Generator) into a `numpy.random.Generator`."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(check_seed(seed))


@dataclasses.dataclass(frozen=True)
class MeasureSettings:
    """Resolved measure parameters of SPEC section 2, shared by every batch of a run.

    Attributes
    ----------
    axis : {'depth', 'token', 'hidden'}
    wavelet : str
        PyWavelets name of an orthogonal wavelet.
    level : int
        J, the number of detail bands.
    boundary : {'reflect', 'periodic'}
    normalize : {'unit', 'none'}
    null_permutations : int
        P (0: no null).
    seed : int
        Seed of the null's permutations.
    """

    axis: str
    wavelet: str
    level: int
    boundary: str
    normalize: str
    null_permutations: int
    seed: int

    def attrs(self) -> dict:
        """The settings as result attributes (str and int values)."""
        return dataclasses.asdict(self)

    @property
    def pywt_wavelet(self) -> pywt.Wavelet:
        return pywt.Wavelet(self.wavelet)


def resolve_measure(axis, wavelet, level, boundary, normalize, null_permutations, *, n_steps):
    """Validate and resolve the measure parameters of SPEC section 2, once for every caller.

    Parameters
    ----------
    axis, wavelet, level, boundary, normalize, null_permutations
        As in `cse.conditional_scale_entropy`.
    n_steps : dict of str to int
        Length of each axis (``depth``: n_layers, ``token``: shortest sequence,
        ``hidden``: d_model); only the chosen axis' entry is used.

    Returns
    -------
    tuple
        ``(axis, wavelet, level, boundary, normalize, null_permutations)`` with the
        wavelet a `pywt.Wavelet` and every default filled in.

    Raises
    ------
    CSEInputError
        For an invalid value (including a level too high for the axis).
    TypeError
        For a wrongly typed ``level`` or ``null_permutations``.
    """
    check_choice("axis", axis, AXES)
    check_choice("boundary", boundary, BOUNDARIES)
    wavelet = as_wavelet(DEFAULT_WAVELET[axis] if wavelet is None else wavelet)
    level = resolve_level(axis, level, n_steps[axis], wavelet)
    normalize = resolve_normalize(axis, normalize)
    if isinstance(null_permutations, bool) or not isinstance(null_permutations, (int, np.integer)):
        raise TypeError(
            f"Invalid type for 'null_permutations': expected an int, got {type(null_permutations).__name__}"
        )
    if null_permutations < 0 or null_permutations == 1:
        raise CSEInputError(
            f"Invalid value for 'null_permutations': expected 0 (no null) or an integer >= 2, got {null_permutations}"
        )
    return axis, wavelet, level, boundary, normalize, int(null_permutations)


def null_permutations(seed, n_permutations: int, n: int) -> np.ndarray | None:
    """The one seeded set of permutations of ``range(n)`` shared by every series of the null.

    ``n`` is the length of the permuted axis: n_layers (depth), the text's length in
    tokens (token) or d_model (hidden). `cse.nulls.permutation_set` caches it.

    Returns
    -------
    ndarray of int64, shape (n_permutations, n), or None when ``n_permutations`` is 0.
    """
    if not n_permutations:
        return None
    return np.argsort(resolve_seed(seed).random((n_permutations, n)), axis=1)
