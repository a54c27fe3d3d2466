"""Synthetic results and independent, deliberately naive statistics for the tests of cse.stats.

The naive functions loop over permutations, layers and thresholds and fit every
model with `numpy.linalg.lstsq` on an explicit design matrix; they share no code with
`cse.stats`, so tests can check the vectorized engine against something derived
separately, on the same permutation matrices. Do not import from package code.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import stats as sps


def make_result(
    n_texts=40, n_tokens=12, n_layers=12, effect=0.0, band=(3, 6), rho=0.5, seed=0, nan_fraction=0.0,
    boundary_layers=None,
) -> xr.Dataset:  # fmt: skip
    """A `cse compute`-shaped Dataset. Texts alternate literal / metaphor; position 0 is special.

    CSE is AR(1) over layers (correlation `rho`), SD 0.1 around 0.5; metaphor tokens get
    `effect` SDs more in the layers of `band` (inclusive). With `boundary_layers` (an int
    k) the layer coordinate ``boundary_affected`` flags layers 0 .. k - 1.
    """
    rng = np.random.default_rng(seed)
    n = n_texts * n_tokens
    text = np.repeat(np.arange(n_texts), n_tokens)
    position = np.tile(np.arange(n_tokens), n_texts)
    label = np.where(text % 2 == 0, "literal", "metaphor")
    noise = np.empty((n, n_layers))
    noise[:, 0] = rng.normal(size=n)
    for layer in range(1, n_layers):
        noise[:, layer] = rho * noise[:, layer - 1] + np.sqrt(1 - rho**2) * rng.normal(size=n)
    cse = 0.5 + 0.1 * noise
    layers = np.arange(band[0], min(band[1] + 1, n_layers))
    cse[np.ix_(label == "metaphor", layers)] += 0.1 * effect
    cse[position == 0] = np.nan  # nothing is defined at the sink in this toy
    if nan_fraction:
        cse[rng.random(cse.shape) < nan_fraction] = np.nan
    frac = rng.dirichlet(np.ones(4), size=(n, n_layers))
    coords = {
        "layer": np.arange(n_layers),
        "depth": ("layer", (np.arange(n_layers) + 1) / n_layers),
        "scale": ["d1", "d2", "d3", "a3"],
        "text": ("token", text),
        "position": ("token", position),
        "token_id": ("token", rng.integers(0, 1000, n)),
        "token_str": ("token", np.array([f"tok{i % 50}" for i in range(n)], dtype=object)),
        "word": ("token", np.where(position == 0, -1, position - 1)),
        "is_word_start": ("token", position % 2 == 1),
        "is_special": ("token", position == 0),
        "label": ("token", label),
        "verb": ("token", np.array([f"verb{t % 7}" for t in text], dtype=object)),
        "verb_idx": ("token", np.full(n, 3)),
        "genre": ("token", np.where(text % 3 == 0, "news", "fiction")),
    }
    if boundary_layers is not None:
        coords["boundary_affected"] = ("layer", np.arange(n_layers) < boundary_layers)
    return xr.Dataset(
        {
            "cse": (("token", "layer"), cse, {"long_name": "conditional scale entropy", "units": "1"}),
            "scale_fraction": (("token", "layer", "scale"), frac),
            "update_norm": (("token", "layer"), rng.gamma(2.0, 1.0, (n, n_layers))),
            "surprisal": ("token", rng.exponential(3.0, n), {"units": "nat"}),
        },
        coords=coords,
        attrs={"model": "synthetic", "n_layers": n_layers, "axis": "depth"},
    )


def write_synthetic_result(path):
    """Write `make_result` with a planted band, boundary layers 0-2 and a ``cse_z`` variable; return the path."""
    from cse.io import write_result

    ds = make_result(effect=1.2, seed=4, boundary_layers=3)
    ds["cse_z"] = (ds.cse - 0.5) / 0.1
    return write_result(ds, path)


def confounded_blocks(rng, n_blocks=8, per_block=16, n_layers=10, rho=0.6, effect=0.0, band=(), shift=1.5):
    """Blocks that differ in mean AND in label share, AR(1) noise over layers, unit within-block SD.

    Returns ``y`` (n, L), ``group`` (n,) bool, ``blocks`` (n,) int. Block k has mean
    ``shift * k / n_blocks`` at every layer and label share from 0.2 to 0.8 rising with
    k, so the pooled difference of means is confounded; tokens of the second group get
    `effect` (in within-block SD units) at the layers of `band`.
    """
    blocks = np.repeat(np.arange(n_blocks), per_block)
    share = np.linspace(0.2, 0.8, n_blocks)[blocks]
    group = rng.random(blocks.size) < share
    for k in range(n_blocks):  # every block holds both labels
        members = np.flatnonzero(blocks == k)
        if group[members].all() or not group[members].any():
            group[members[0]] = not group[members[0]]
    noise = np.empty((blocks.size, n_layers))
    noise[:, 0] = rng.normal(size=blocks.size)
    for layer in range(1, n_layers):
        noise[:, layer] = rho * noise[:, layer - 1] + np.sqrt(1 - rho**2) * rng.normal(size=blocks.size)
    y = noise + shift * (blocks / n_blocks)[:, None]
    y[np.ix_(group, list(band))] += effect
    return y, group, blocks


def ordered(y, group, blocks=None, covariates=None):
    """Reorder tokens as compare_arrays expects ([first group; second group])."""
    order = np.argsort(group, kind="stable")
    out = [y[order][~group[order]], y[order][group[order]]]
    out.append(None if blocks is None else blocks[order])
    out.append(None if covariates is None else covariates[order])
    return out


def welch_t(a, b):
    """Welch t of b - a along axis 0 with scipy (NaN omitted)."""
    return sps.ttest_ind(b, a, equal_var=False, axis=0, nan_policy="omit").statistic


def indices_from_labels(rows: np.ndarray, n_a: int) -> np.ndarray:
    """Index permutations whose relabelling of [n_a a's; n_b b's] gives each bool row (True = b)."""
    out = np.empty(rows.shape, dtype=np.int64)
    for k, row in enumerate(rows):
        out[k, ~row] = np.arange(n_a)
        out[k, row] = n_a + np.arange(row.sum())
    return out


def ols_t(y, x, blocks=None, covariates=None):
    """t of x in the OLS of y on [x, block dummies or intercept, covariates], rows with NaN y dropped."""
    keep = np.isfinite(y)
    cols = [x[keep]]
    if blocks is None:
        cols.append(np.ones(keep.sum()))
    else:
        present = np.unique(blocks[keep])
        cols += [(blocks[keep] == b).astype(float) for b in present]
    if covariates is not None:
        cols += list(covariates[keep].T)
    design = np.column_stack(cols)
    coef, *_ = np.linalg.lstsq(design, y[keep], rcond=None)
    resid = y[keep] - design @ coef
    df = keep.sum() - np.linalg.matrix_rank(design)
    cov = np.linalg.pinv(design.T @ design) * (resid @ resid) / df
    return coef[0] / np.sqrt(cov[0, 0])


def ols_robust_t(y, x, blocks=None, covariates=None, kind="hc2"):
    """The coefficient of x over its HC2 or block-clustered (CR1, G / (G - 1)) standard error, from an
    explicit design matrix and its hat matrix; rows with NaN y dropped."""
    keep = np.isfinite(y)
    cols = [x[keep]]
    if blocks is None:
        cols.append(np.ones(keep.sum()))
    else:
        cols += [(blocks[keep] == b).astype(float) for b in np.unique(blocks[keep])]
    if covariates is not None:
        cols += list(covariates[keep].T)
    design = np.column_stack(cols)
    bread = np.linalg.pinv(design.T @ design)
    coef = bread @ design.T @ y[keep]
    resid = y[keep] - design @ coef
    if kind == "hc2":
        hat = np.einsum("ij,jk,ik->i", design, bread, design)
        meat = (design * (resid**2 / (1 - hat))[:, None]).T @ design
    else:
        scores = {}
        for row, b in zip(design * resid[:, None], blocks[keep]):
            scores[b] = scores.get(b, 0) + row
        mixed = [b for b in np.unique(blocks[keep]) if 0 < x[keep][blocks[keep] == b].mean() < 1]
        g = len(mixed)
        meat = g / (g - 1) * sum(np.outer(v, v) for v in scores.values())
    return coef[0] / np.sqrt((bread @ meat @ bread)[0, 0])


def naive_clusters(t, thr, tail):
    out = []
    for sign in (1, -1) if tail == 0 else (tail,):
        run = []
        for layer, value in enumerate(list(t) + [np.nan]):
            if np.isfinite(value) and sign * value > thr:
                run.append(layer)
            elif run:
                out.append((run[0], run[-1], sum(sign * t[k] for k in run)))
                run = []
    return sorted(out)


def naive_tfce_one_sided(x, e, h):
    """TFCE by a sweep over the distinct heights: clusters found by a loop at every height."""
    x = [v if np.isfinite(v) and v > 0 else 0.0 for v in x]
    heights = sorted({v for v in x if v > 0})
    score = [0.0] * len(x)
    low = 0.0
    for high in heights:  # extent is constant for thresholds in (low, high]
        piece = (high ** (h + 1) - low ** (h + 1)) / (h + 1)
        layer = 0
        while layer < len(x):
            if x[layer] >= high:
                run = [layer]
                while layer + 1 < len(x) and x[layer + 1] >= high:
                    layer += 1
                    run.append(layer)
                for k in run:
                    score[k] += len(run) ** e * piece
            layer += 1
        low = high
    return np.array(score)


def naive_tfce(t, tail, e=0.5, h=2.0):
    if tail == 0:
        return naive_tfce_one_sided(t, e, h) - naive_tfce_one_sided(-np.asarray(t), e, h)
    return tail * naive_tfce_one_sided(tail * np.asarray(t), e, h)


def count_ge(null, obs):
    return sum(1 for v in null if v >= obs - 100 * np.finfo(float).eps * abs(obs))


def naive_stepdown(s_obs, s_null):
    """Westfall & Young (1993) Algorithm 2.8, written with loops."""
    P, L = s_null.shape
    order = sorted(range(L), key=lambda j: -s_obs[j])
    p_tilde = []
    for k, j in enumerate(order):
        rest = order[k:]
        successive = [max(s_null[b, r] for r in rest) for b in range(P)]
        p_tilde.append((count_ge(successive, s_obs[j]) + 1) / (P + 1))
    out = np.empty(L)
    running = 0.0
    for k, j in enumerate(order):
        running = max(running, p_tilde[k])
        out[j] = running
    return out


def naive_corrections(t_obs, t_null, tail, thr, e=0.5, h=2.0):
    """p-values of every correction from a t_obs (L,) and t_null (P, L), one loop per permutation."""
    stat = (lambda t: np.abs(t)) if tail == 0 else (lambda t: tail * np.asarray(t))
    P, L = t_null.shape
    s_obs, s_null = stat(t_obs), np.array([stat(t) for t in t_null])
    max_t = [max(row) for row in s_null]
    max_mass = [max([m for *_, m in naive_clusters(t, thr, tail)], default=0.0) for t in t_null]
    max_tfce = [max(abs(v) for v in naive_tfce(t, tail, e, h)) for t in t_null]
    clusters = naive_clusters(t_obs, thr, tail)
    tfce_obs = naive_tfce(t_obs, tail, e, h)
    return {
        "p_uncorrected": np.array([(count_ge(s_null[:, j], s_obs[j]) + 1) / (P + 1) for j in range(L)]),
        "p_maxT": np.array([(count_ge(max_t, s) + 1) / (P + 1) for s in s_obs]),
        "p_maxT_stepdown": naive_stepdown(s_obs, s_null),
        "clusters": clusters,
        "cluster_p": [(count_ge(max_mass, m) + 1) / (P + 1) for *_, m in clusters],
        "tfce": tfce_obs,
        "p_tfce": np.array([(count_ge(max_tfce, abs(v)) + 1) / (P + 1) for v in tfce_obs]),
    }


# ---------------------------------------------------------------------------------
# vectorized simulations: many data sets of one design stacked along the layer axis
# ---------------------------------------------------------------------------------


def noise(rng, n, n_columns, rho=0.5, tails="normal"):
    """Unit-variance noise (n, n_columns), AR(1) with `rho` along the columns; t(3) tails with ``tails='t3'``."""
    draw = (lambda size: rng.standard_t(3, size) / np.sqrt(3.0)) if tails == "t3" else rng.standard_normal
    out = draw((n, n_columns))
    for k in range(1, n_columns):
        out[:, k] = rho * out[:, k - 1] + np.sqrt(1 - rho**2) * out[:, k]
    return out


def block_design_draw(rng, n_blocks=25, sizes=(4, 30), share=0.85):
    """Blocks of random sizes in `sizes` (inclusive) and labels with P(label 1) = `share` (or, for a pair
    (low, high), a share drawn per block), both labels in each block."""
    size = rng.integers(sizes[0], sizes[1] + 1, n_blocks)
    blocks = np.repeat(np.arange(n_blocks), size)
    shares = rng.uniform(*share, n_blocks) if np.ndim(share) else np.full(n_blocks, share)
    group = rng.random(blocks.size) < shares[blocks]
    for k in range(n_blocks):
        members = np.flatnonzero(blocks == k)
        if group[members].all() or not group[members].any():
            group[members[0]] = not group[members[0]]
    return group, blocks


def stacked_data(rng, group, blocks, n_sets, n_layers, sd=(1.0, 1.0), effect=0.0, band=(), shift=1.0,
                 rho=0.5, tails="normal", block_sd=(1.0, 1.0)):  # fmt: skip
    """`n_sets` data sets of one design side by side: y (n, n_sets * n_layers).

    Block means differ (normal, SD `shift`, the same at every layer of a set); the noise
    has SD ``sd[0]`` for label 0 and ``sd[1]`` for label 1, AR(1) over layers; label-1
    tokens get `effect` at the layers of `band` (in units of the label-0 SD); each block's
    noise is scaled by a factor drawn uniformly from `block_sd` (blocks that differ in variance).
    """
    n = blocks.size
    y = np.empty((n, n_sets * n_layers))
    scale = (np.where(group, sd[1], sd[0]) * rng.uniform(*block_sd, blocks.max() + 1)[blocks])[:, None]
    for s in range(n_sets):
        cols = slice(s * n_layers, (s + 1) * n_layers)
        y[:, cols] = scale * noise(rng, n, n_layers, rho, tails) + shift * rng.normal(size=blocks.max() + 1)[blocks][:, None]
        y[np.ix_(group, [s * n_layers + b for b in band])] += effect
    return y


def stacked_rejections(y, group, blocks, n_sets, statistic, rng, n_permutations=199, alpha=0.05,
                       corrections=("maxT",)) -> dict:  # fmt: skip
    """Per-set tests of stacked data sets from one permutation matrix: rejection masks (n_sets, L) per correction,
    and the per-layer ``p`` (uncorrected) and statistic ``t``, each (n_sets, L).

    Uses `cse.stats.engine` (design, null, common scale) and `cse.stats.corrections.correct` per set.
    """
    from cse.stats.corrections import correct
    from cse.stats.engine import common_scale, default_threshold, make_design, null_distribution

    y_a, y_b, bl, _ = ordered(y, group, blocks)
    design = make_design(y_a, y_b, blocks=None if blocks is None else bl, statistic=statistic)
    t_obs = design.t(design.identity)[0]
    s_obs, s_null, scale = common_scale(design, t_obs, null_distribution(design, n_permutations, rng))
    L = y.shape[1] // n_sets
    threshold = default_threshold(design.observed()["threshold_df"], 0, 0.05, scale)
    out = {c: np.zeros((n_sets, L), bool) for c in ("none", *corrections)}
    out["p"], out["t"] = np.ones((n_sets, L)), s_obs.reshape(n_sets, L)
    for s in range(n_sets):
        cols = slice(s * L, (s + 1) * L)
        res = correct(s_obs[cols], s_null[:, cols], list(corrections), tail=0, threshold=threshold, tfce_e=0.5,
                      tfce_h=2.0, alpha=alpha)  # fmt: skip
        out["p"][s] = res["p_uncorrected"]
        out["none"][s] = res["p_uncorrected"] <= alpha
        for c in corrections:
            out[c][s] = res[f"p_{c}"] <= alpha
    return out
