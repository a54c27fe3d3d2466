"""Corrections across layers, all computed from one permutation distribution of t.

Given the observed t over layers, shape (L,), and the t of P permutations, shape
(P, L), every correction below reads the same matrix; none draws permutations of
its own. The statistic whose large values count against H0 is |t| (two-sided), t
(``tail = 1``) or -t (``tail = -1``).

- ``cluster``: cluster mass over contiguous layers (Maris & Oostenveld 2007).
- ``tfce``: threshold-free cluster enhancement over layers (Smith & Nichols 2009).
- ``maxT``: single-step max-T (Westfall & Young 1993, Algorithm 2.5).
- ``maxT_stepdown``: step-down max-T (Westfall & Young 1993, Algorithm 2.8).
- ``fdr_bh``: Benjamini-Hochberg on the uncorrected permutation p-values, through
  `scipy.stats.false_discovery_control` (controls the FDR, not the FWER).

References
----------
Maris, E. & Oostenveld, R. (2007). Nonparametric statistical testing of EEG- and
MEG-data. J. Neurosci. Methods 164, 177-190.
Smith, S. M. & Nichols, T. E. (2009). Threshold-free cluster enhancement: addressing
problems of smoothing, threshold dependence and localisation in cluster inference.
NeuroImage 44, 83-98.
Westfall, P. H. & Young, S. S. (1993). Resampling-Based Multiple Testing. Wiley.
Benjamini, Y. & Hochberg, Y. (1995). Controlling the false discovery rate: a practical
and powerful approach to multiple testing. J. R. Stat. Soc. B 57, 289-300.
Holm, S. (1979). A simple sequentially rejective multiple test procedure. Scand. J.
Stat. 6, 65-70.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as sps

from .permutation import at_least, batch_size, permutation_p

CORRECTIONS = ("cluster", "tfce", "maxT", "maxT_stepdown", "fdr_bh")


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down Bonferroni adjusted p-values (FWER under any dependence; Holm 1979).

    Parameters
    ----------
    p : ndarray, shape (m,)
        p-values; NaN stays NaN and does not count in m.

    Returns
    -------
    ndarray, shape (m,)
        ``max_{j <= k} min(1, (m - j + 1) p_(j))`` at the k-th smallest p.
    """
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    m = order.size
    out[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return out


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (`scipy.stats.false_discovery_control`); NaN stays NaN.

    Parameters
    ----------
    p : ndarray, shape (m,)
        p-values; NaN ones take no part.

    Returns
    -------
    ndarray, shape (m,)
        Adjusted p-values (FDR; Benjamini & Hochberg 1995).
    """
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        out[finite] = sps.false_discovery_control(p[finite], method="bh")
    return out


def tail_stat(t: np.ndarray, tail: int) -> np.ndarray:
    """The statistic whose large values count against H0: |t|, t or -t."""
    return np.abs(t) if tail == 0 else tail * t


def max_cluster_mass(t: np.ndarray, threshold: float, tail: int) -> np.ndarray:
    """Largest cluster mass of each row of t, shape (B, L) -> (B,).

    A cluster is a run of contiguous layers whose t exceeds `threshold` with one sign
    (NaN ends a run); its mass is the sum of t over the run, in the tested direction
    (|mass| for negative clusters when two-sided). Rows without a cluster give 0. The
    running sum inside runs is ``cumsum - (cumsum at the last layer outside a run)``,
    whose maximum over layers is the largest mass, so no loop over rows is needed.
    """
    t = np.atleast_2d(t)
    best = np.zeros(t.shape[0])
    for sign in (1, -1) if tail == 0 else (tail,):
        x = sign * t
        supra = x > threshold  # NaN -> False
        cs = np.cumsum(np.where(supra, x, 0.0), axis=1)
        base = np.maximum.accumulate(np.where(supra, 0.0, cs), axis=1)
        best = np.maximum(best, (cs - base).max(axis=1))
    return best


def find_clusters(t: np.ndarray, threshold: float, tail: int) -> list[tuple[int, int, float, int]]:
    """Clusters of the observed t, shape (L,): (first index, last index, mass >= 0 in the tested direction, sign)."""
    out = []
    for sign in (1, -1) if tail == 0 else (tail,):
        supra = np.concatenate([[False], sign * t > threshold, [False]])
        edges = np.flatnonzero(np.diff(supra.astype(np.int8)))
        for start, stop in zip(edges[::2], edges[1::2]):
            out.append((int(start), int(stop - 1), float(np.sum(sign * t[start:stop])), sign))
    out.sort(key=lambda c: c[0])
    return out


def tfce(x: np.ndarray, e: float = 0.5, h: float = 2.0) -> np.ndarray:
    """Threshold-free cluster enhancement of each row of `x` over its last axis (layers), exactly.

    Parameters
    ----------
    x : ndarray, shape (B, L)
        Heights; values <= 0 or NaN contribute nothing (and separate clusters).
    e, h : float
        Extent and height exponents E and H.

    Returns
    -------
    ndarray, shape (B, L), float64, >= 0
        ``TFCE(l) = integral_0^x_l e_l(v)**E v**H dv`` where e_l(v) is the number of
        layers in the run of contiguous layers around l whose heights are all >= v.

    Notes
    -----
    In 1-D the integral is exact: e_l(v) is a step function whose steps are at the
    path minima ``m_lj = min(x[l..j])`` (j any layer), so with those minima sorted in
    descending order, v_1 = x_l >= v_2 >= ... >= v_L (negatives clipped to 0) and
    v_{L+1} = 0, ``TFCE(l) = sum_k k**E (v_k**(H+1) - v_{k+1}**(H+1)) / (H + 1)``.
    No step size dh is involved (it is the limit dh -> 0 of Smith & Nichols' sum).
    """
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    x = np.where(np.isfinite(x) & (x > 0), x, 0.0)
    B, L = x.shape
    minima = np.empty((B, L, L))
    for layer in range(L):  # path minima from `layer` to every other layer
        minima[:, layer, layer:] = np.minimum.accumulate(x[:, layer:], axis=1)
        minima[:, layer, : layer + 1] = np.minimum.accumulate(x[:, layer::-1], axis=1)[:, ::-1]
    v = -np.sort(-minima, axis=2)  # descending
    powered = v ** (h + 1.0)
    steps = powered - np.concatenate([powered[:, :, 1:], np.zeros((B, L, 1))], axis=2)
    return steps @ (np.arange(1, L + 1, dtype=np.float64) ** e) / (h + 1.0)


def tfce_signed(t: np.ndarray, tail: int, e: float, h: float) -> np.ndarray:
    """TFCE of t in the tested direction(s), with the sign of t: (B, L) -> (B, L).

    Two-sided: positive and negative parts are enhanced separately (TFCE of t and of -t).
    Rows are processed in batches so that the (B, L, L) path-minima array stays small.
    """
    t = np.atleast_2d(t)
    out = np.zeros_like(t, dtype=np.float64)
    step = batch_size(t.shape[1] ** 2)
    for start in range(0, len(t), step):
        rows = slice(start, start + step)
        for sign in (1, -1) if tail == 0 else (tail,):
            out[rows] += sign * tfce(sign * t[rows], e, h)
    return out


def _row_max(s: np.ndarray) -> np.ndarray:
    """Largest finite value of each row (-inf for rows without one)."""
    return np.where(np.isfinite(s), s, -np.inf).max(axis=1)


def maxT_single_step(s_obs: np.ndarray, s_null: np.ndarray, exact: bool = False) -> np.ndarray:
    """Single-step max-T p-values: each layer against the maximum over layers of every permutation.

    Parameters
    ----------
    s_obs : ndarray, shape (L,)
        Observed statistic per layer, large values against H0 (|t| when two-sided).
    s_null : ndarray, shape (P, L)
        The same statistic for every permutation.
    exact : bool
        The rows of `s_null` enumerate the whole permutation space (identity included).

    Returns
    -------
    ndarray, shape (L,)
        FWER-adjusted p-values (Westfall & Young 1993, Algorithm 2.5); NaN where `s_obs` is.
    """
    return permutation_p(np.broadcast_to(_row_max(s_null)[:, None], s_null.shape), s_obs, exact)


def maxT_stepdown(s_obs: np.ndarray, s_null: np.ndarray, exact: bool = False) -> np.ndarray:
    """Step-down max-T p-values (Westfall & Young 1993, Algorithm 2.8).

    Parameters
    ----------
    s_obs : ndarray, shape (L,)
        Observed statistic per layer, large values against H0.
    s_null : ndarray, shape (P, L)
        The same statistic for every permutation.
    exact : bool
        The rows of `s_null` enumerate the whole permutation space (identity included).

    Returns
    -------
    ndarray, shape (L,)
        FWER-adjusted p-values.

    Notes
    -----

    Layers are ordered by their observed statistic, largest first, r_1 .. r_m. For each
    permutation the successive maxima ``q_k = max(s_null[r_k], ..., s_null[r_m])`` are
    formed; ``p~_k = (#{q_k >= s_obs[r_k]} + 1) / (P + 1)`` and the adjusted p-values
    are made monotone, ``p_{r_k} = max(p~_1, ..., p~_k)``. Layers whose statistic is
    NaN get NaN and take no part. With `exact` (the rows of `s_null` enumerate the
    whole permutation space, the identity among them) the counts are not offset by 1.
    """
    out = np.full(s_obs.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(s_obs))
    if finite.size == 0:
        return out
    order = finite[np.argsort(-s_obs[finite], kind="stable")]
    null = np.where(np.isfinite(s_null[:, order]), s_null[:, order], -np.inf)
    successive = np.maximum.accumulate(null[:, ::-1], axis=1)[:, ::-1]
    count = at_least(successive, s_obs[order][None, :]).sum(axis=0)
    extra = 0.0 if exact else 1.0
    out[order] = np.maximum.accumulate((count + extra) / (len(s_null) + extra))
    return out


def _cluster_pvalues(t_obs, t_null, tail, threshold, exact):
    L, P = t_obs.size, len(t_null)
    clusters = find_clusters(t_obs, threshold, tail)
    null_max = max_cluster_mass(t_null, threshold, tail)
    masses = np.array([c[2] for c in clusters])
    extra = 0.0 if exact else 1.0
    cluster_p = (at_least(null_max[:, None], masses[None, :]).sum(axis=0) + extra) / (P + extra)
    p = np.where(np.isfinite(t_obs), 1.0, np.nan)
    cluster_id = np.full(L, -1, dtype=np.int64)
    for k, (start, stop, _, _) in enumerate(clusters):
        p[start : stop + 1] = cluster_p[k]
        cluster_id[start : stop + 1] = k
    return p, clusters, cluster_p, cluster_id


def correct(t_obs, t_null, corrections, *, tail, threshold, tfce_e, tfce_h, alpha, exact=False) -> dict:
    """Uncorrected and corrected p-values for every requested correction, from one t_null.

    Parameters
    ----------
    t_obs : ndarray, shape (L,)
    t_null : ndarray, shape (P, L)
        t of every permutation (the observed labelling is not among them).
    corrections : sequence of str
        Names from `CORRECTIONS`.
    tail : {0, 1, -1}
    threshold : float
        Cluster-forming threshold on t (|t| when two-sided).
    tfce_e, tfce_h : float
        TFCE exponents.
    alpha : float
        Level of Benjamini-Hochberg.
    exact : bool
        The rows of `t_null` enumerate the whole permutation space, the identity among
        them: p = b / P instead of (b + 1) / (P + 1).

    Returns
    -------
    dict
        ``p_uncorrected`` (L,), ``p_<name>`` (L,) per correction, and where computed
        ``tfce`` (L,) (signed score), ``clusters`` (list of (start, stop, mass, sign)),
        ``cluster_p`` (n_clusters,), ``cluster_id`` (L,), -1 outside clusters.
    """
    s_obs, s_null = tail_stat(t_obs, tail), tail_stat(t_null, tail)
    out = {"p_uncorrected": permutation_p(s_null, s_obs, exact), "clusters": [], "cluster_p": np.zeros(0),
           "cluster_id": np.full(t_obs.size, -1, dtype=np.int64)}  # fmt: skip
    for name in corrections:
        if name == "maxT":
            out["p_maxT"] = maxT_single_step(s_obs, s_null, exact)
        elif name == "maxT_stepdown":
            out["p_maxT_stepdown"] = maxT_stepdown(s_obs, s_null, exact)
        elif name == "fdr_bh":
            out["p_fdr_bh"] = benjamini_hochberg(out["p_uncorrected"])
        elif name == "tfce":
            score = tfce_signed(t_obs[None, :], tail, tfce_e, tfce_h)[0]
            null_max = np.abs(tfce_signed(t_null, tail, tfce_e, tfce_h)).max(axis=1, initial=0.0)
            magnitude = np.where(np.isfinite(t_obs), np.abs(score), np.nan)
            out["tfce"] = np.where(np.isfinite(t_obs), score, np.nan)
            out["p_tfce"] = permutation_p(np.broadcast_to(null_max[:, None], t_null.shape), magnitude, exact)
        elif name == "cluster":
            out["p_cluster"], out["clusters"], out["cluster_p"], out["cluster_id"] = _cluster_pvalues(
                t_obs, t_null, tail, threshold, exact
            )
        else:  # pragma: no cover - validated by the public function
            raise ValueError(name)
    return out
