"""Parameter validation for every public entry point, and the one owner of the measure's settings.

Public functions validate, private functions compute: each public function calls
these helpers, which raise `CSEInputError` (a `ValueError`) or `TypeError` with a
one-line message naming the parameter, what was expected and what was received
(and, for a bound, the bound).

`draw_seed` is the package's one seed policy; `cse.settings.MeasureSettings` owns the
measure's settings and builds on these checks.
"""

from __future__ import annotations

import warnings

import numpy as np
import pywt

from .errors import CSEInputError

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

    Parameters
    ----------
    name : str
        The parameter, named in messages.
    value : int
        The value (bool is not accepted).
    minimum, maximum : int, optional
        Inclusive bounds (None: unbounded).

    Returns
    -------
    int

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

    Parameters
    ----------
    name : str
        The parameter, named in messages.
    value : float
        The value (a real number; bool is not accepted).
    low, high : float, optional
        The bounds (None: unbounded).
    inclusive : bool
        Closed interval instead of open.

    Returns
    -------
    float

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
    """Return `value` if it is one of `choices`, else raise a one-line error.

    Parameters
    ----------
    name : str
        The parameter, named in messages.
    value : object
        The value.
    choices : sequence
        The allowed values.

    Returns
    -------
    object
        `value`.

    Raises
    ------
    CSEInputError
        Listing the choices.
    """
    if value not in choices:
        expected = ", ".join(repr(c) for c in choices)
        raise CSEInputError(f"Invalid value for {name!r}: expected one of {expected}, got {value!r}")
    return value


def as_wavelet(name) -> pywt.Wavelet:
    """Resolve a wavelet name to an orthogonal `pywt.Wavelet`.

    Parameters
    ----------
    name : str or pywt.Wavelet
        A discrete PyWavelets wavelet (haar, dbN, symN, coifN ...).

    Returns
    -------
    pywt.Wavelet

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

    Parameters
    ----------
    axis : {'depth', 'token', 'hidden'}
        The transformed axis.
    level : int or None
        The requested J (None: the axis' default).
    n_steps : int
        Length of the transformed axis.
    wavelet : pywt.Wavelet
        The wavelet (its filter length K).

    Returns
    -------
    int

    Raises
    ------
    TypeError
        For a non-integer level.
    CSEInputError
        For a level below 1 or too high for `n_steps`.

    Warns
    -----
    UserWarning
        On the token axis, when the level's filters are longer than the reflected
        series (boundary effects dominate).
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
            f"{axis!r} axis but it has {n_steps}; use level={max(1, int(np.floor(np.log2(max(n_steps, 1)))))} "
            f"or lower"
        )
    if axis == "token" and (wavelet.dec_len - 1) * (2 ** (level - 1)) + 1 > 2 * n_steps:
        warnings.warn(
            f"level {level} with {wavelet.name!r} has filters longer than the reflected series of "
            f"{n_steps} tokens; boundary effects dominate",
            stacklevel=3,
        )
    return int(level)


def resolve_normalize(axis: str, normalize) -> str:
    """The normalization of `axis`: `normalize`, or the axis' default when None.

    Parameters
    ----------
    axis : {'depth', 'token', 'hidden'}
        The transformed axis.
    normalize : {'unit', 'none'} or None
        The requested normalization.

    Returns
    -------
    str

    Raises
    ------
    CSEInputError
        For a value other than ``'unit'``, ``'none'`` or None.
    """
    if normalize is None:
        return DEFAULT_NORMALIZE[axis]
    return check_choice("normalize", normalize, NORMALIZATIONS)


def draw_seed(seed) -> int:
    """The one seed policy of the package: the int seed that a call uses and records.

    Parameters
    ----------
    seed : int, numpy.random.Generator or None
        An int in [0, 2**63 - 1] is used as it is; None draws a fresh seed from the
        operating system's entropy; a Generator yields one (and advances). Either
        way the int returned is what seeds every random draw of the call and what
        its result records, so every result can be reproduced from its attributes.

    Returns
    -------
    int
        In [0, `MAX_SEED`].

    Raises
    ------
    TypeError
        For any other type (bool included).
    CSEInputError
        For an int below 0 or above 2**63 - 1.
    """
    if seed is None:
        return int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> np.uint64(1))
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, MAX_SEED, endpoint=True))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"Invalid type for 'seed': expected an int, None or a numpy.random.Generator, "
                        f"got {type(seed).__name__}")
    return check_int("seed", seed, 0, MAX_SEED)


def check_seed(seed) -> int | None:
    """Validate a seed without drawing one (see `draw_seed` for the policy).

    Parameters
    ----------
    seed : int, numpy.random.Generator or None

    Returns
    -------
    int or None
        The int, or None for None and a Generator.

    Raises
    ------
    TypeError
        For any other type.
    CSEInputError
        For a negative seed or one above 2**63 - 1.
    """
    if seed is None or isinstance(seed, np.random.Generator):
        return None
    return draw_seed(seed)


def resolve_seed(seed) -> np.random.Generator:
    """A `numpy.random.Generator` seeded by ``draw_seed(seed)`` (see there for the policy).

    Parameters
    ----------
    seed : int, numpy.random.Generator or None

    Returns
    -------
    numpy.random.Generator
    """
    return np.random.default_rng(draw_seed(seed))
