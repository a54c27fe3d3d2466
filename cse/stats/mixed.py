"""Linear mixed models per layer through `statsmodels` MixedLM (e.g. a random intercept per verb)."""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from ..docs import fill_doc
from ..errors import CSEInputError
from .selection import as_dataarray, describe_where, finite_values, token_frame, token_mask


@fill_doc
def mixedlm(
    ds,
    formula: str,
    groups: str,
    where=None,
    *,
    re_formula: str | None = None,
    include_special: bool = False,
    reml: bool = True,
    method=None,
) -> xr.Dataset:
    """Fit a linear mixed model per layer with `statsmodels` MixedLM.

    At each layer the frame holds one row per selected token: every 1-D token
    coordinate and variable (``label``, ``position``, ``surprisal``,
    ``log_frequency`` ...) and every (token, layer) variable at that layer (``cse``,
    ``update_norm`` ...). Rows with an undefined value (NaN, or inf, counted in
    ``n_nonfinite`` with one warning) in a variable of the formula are dropped.

    Parameters
    ----------
    ds : xarray.Dataset
        A ``cse compute`` result (use `add_log_frequency` first for ``log_frequency``).
    formula : str
        Patsy formula, e.g. ``"cse ~ label + surprisal + log_frequency + position"``.
        The response must be a (token, layer) variable. The formula is interpreted by
        patsy, which evaluates Python expressions inside it: pass only formulas you
        wrote (it is an argument of the API, never of the command line).
    groups : str
        Token coordinate of the random-intercept groups (e.g. ``"verb"``).
    where : %(where)s
    re_formula : str, optional
        Random-effects formula (default: random intercept only).
    include_special : %(include_special)s
    reml : bool
        REML (default) or maximum likelihood.
    method : str or list of str, optional
        Optimizer(s) passed to ``MixedLM.fit`` (statsmodels' default when None).

    Returns
    -------
    xarray.Dataset
        ``coef, se, z, p`` (float64) of shape (n_layers, n_terms) over (layer, term),
        in the units of the response per unit of each term; ``converged`` (bool), ``warnings``
        (text of statsmodels' ConvergenceWarnings, or the error of a failed fit),
        ``group_var`` (random-intercept variance), ``n_obs``, ``n_groups`` over layer.
        A layer whose fit fails has NaN estimates and ``converged`` False; a fit whose
        optimizer reported failure, or whose Hessian at the estimate is not positive
        definite (its standard errors and Wald tests are not to be trusted), is kept but
        flagged ``converged`` False. Warnings that the estimate is on the boundary (group
        variance ~ 0) leave ``converged`` True and are reported in ``warnings``.

    Raises
    ------
    CSEInputError
        If the response, a formula variable or `groups` is missing.

    Notes
    -----
    p-values are statsmodels' Wald z tests of the fixed effects, uncorrected across layers.
    For a permutation test of the label with covariates as nuisance regressors, see
    `cse.stats.compare` with ``covariates=`` (Freedman-Lane).

    References
    ----------
    Lindstrom, M. J. & Bates, D. M. (1988). Newton-Raphson and EM algorithms for linear
    mixed-effects models for repeated-measures data. J. Am. Stat. Assoc. 83, 1014-1022
    (the model statsmodels' MixedLM fits).

    Examples
    --------
    >>> import cse
    >>> ds = cse.open_result("cse-example.nc")  # doctest: +SKIP
    >>> fit = cse.stats.mixedlm(ds, "cse ~ label", groups="pair",  # doctest: +SKIP
    ...                         where="word == target_idx and is_word_start")
    """
    import statsmodels.formula.api as smf
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    # 1. Validate and select the tokens.
    base, layer_vars, da, idx, n_nonfinite = _mixedlm_frames(ds, formula, groups, where, include_special)

    # 2. One model per layer (the model itself is the cost, not this loop).
    fits = []
    for li in range(ds.sizes["layer"]):
        df = base.copy()
        for k, v in layer_vars.items():
            df[k] = v[:, li]
        fits.append(_fit_mixedlm(smf, ConvergenceWarning, formula, df, groups, re_formula, reml, method))

    # 3. Assemble.
    out = _mixedlm_dataset(fits, formula, da)
    errors = sorted({f["error"] for f in fits if f["error"]})
    out.attrs = {
        "title": f"per-layer mixed model: {formula}",
        "formula": formula,
        "groups": groups,
        "re_formula": re_formula or "1",
        "where": describe_where(where),
        "include_special": int(bool(include_special)),
        "reml": int(bool(reml)),
        "method": str(method) if method is not None else "statsmodels default",
        "n_tokens": int(len(idx)),
        "n_nonfinite": int(n_nonfinite),
        "errors": "; ".join(errors),
    }
    return out


def _mixedlm_frames(ds, formula, groups, where, include_special):
    """Validate `mixedlm`'s inputs; the token frame of the selection and its (token, layer) arrays."""
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"Invalid type for 'ds': expected an xarray Dataset, got {type(ds).__name__}")
    if not isinstance(formula, str) or "~" not in formula:
        raise CSEInputError(f"Invalid value for 'formula': expected a patsy formula 'y ~ x + ...', got {formula!r}")
    response = formula.split("~", 1)[0].strip()
    if response not in ds.data_vars or ds[response].dims != ("token", "layer"):
        layer_vars = [str(k) for k, v in ds.data_vars.items() if set(v.dims) == {"token", "layer"}]
        raise CSEInputError(
            f"Invalid value for 'formula': the response {response!r} must be a (token, layer) variable; "
            f"available: {', '.join(layer_vars)}"
        )
    da, _, source = as_dataarray(ds, response)
    frame = token_frame(da, source)
    if groups not in frame.columns:
        raise CSEInputError(
            f"Invalid value for 'groups': no token coordinate {groups!r}; available: {', '.join(frame.columns)}"
        )
    if "log_frequency" in formula and "log_frequency" not in frame.columns:
        raise CSEInputError(
            "Invalid value for 'formula': it uses 'log_frequency' but the result has no such coordinate; "
            "add it with cse.stats.add_log_frequency(ds)"
        )
    idx = np.flatnonzero(token_mask(frame, where, include_special))
    base = frame.iloc[idx].reset_index(drop=True)
    sub = ds.isel(token=idx)
    layer_vars = {k: np.asarray(v.transpose("token", "layer").values, dtype=np.float64)
                  for k, v in sub.data_vars.items() if set(v.dims) == {"token", "layer"}}  # fmt: skip
    n_nonfinite = 0
    for k in [response] + [c for c in base.columns if base[c].dtype.kind == "f"]:
        if k in layer_vars:
            layer_vars[k], count = finite_values(layer_vars[k], k)
        else:
            values, count = finite_values(base[k].to_numpy(dtype=np.float64), k)
            base[k] = values
        n_nonfinite += count
    return base, layer_vars, da, idx, n_nonfinite


def _mixedlm_dataset(fits: list, formula: str, da: xr.DataArray) -> xr.Dataset:
    """The per-layer estimates of `mixedlm` over (layer, term)."""
    terms = []
    for f in fits:
        for term in f["params"].index if f["params"] is not None else []:
            if term not in terms:
                terms.append(term)
    if not terms:
        raise CSEInputError(f"mixedlm: no layer could be fitted with {formula!r}; first error: {fits[0]['error']}")
    L = len(fits)

    def grid(key):
        arr = np.full((L, len(terms)), np.nan)
        for li, f in enumerate(fits):
            if f[key] is not None:
                arr[li] = f[key].reindex(terms).to_numpy(dtype=float)
        return arr

    out = xr.Dataset(
        {
            "coef": (("layer", "term"), grid("params"), {"long_name": "fixed-effect estimate", "units": "1"}),
            "se": (("layer", "term"), grid("bse"), {"long_name": "standard error", "units": "1"}),
            "z": (("layer", "term"), grid("z"), {"long_name": "Wald z", "units": "1"}),
            "p": (("layer", "term"), grid("p"), {"long_name": "Wald p-value", "units": "1"}),
            "converged": ("layer", np.array([f["converged"] for f in fits], dtype=bool)),
            "warnings": ("layer", np.array([f["warnings"] or f["error"] for f in fits], dtype=object)),
            "group_var": ("layer", np.array([f["group_var"] for f in fits]), {"long_name": "group variance"}),
            "n_obs": ("layer", np.array([f["n_obs"] for f in fits], dtype=np.int64)),
            "n_groups": ("layer", np.array([f["n_groups"] for f in fits], dtype=np.int64)),
        },
        coords={"layer": da["layer"].values, "term": np.array(terms, dtype=object)},
    )
    if "depth" in da.coords:
        out = out.assign_coords(depth=("layer", np.asarray(da["depth"].values)))
    return out


def _failed(w) -> bool:
    """A statsmodels ConvergenceWarning that reports a fit not to be trusted.

    A failed optimization, and a Hessian that is not positive definite at the estimate
    (no valid standard errors), count as not converged. A warning that the estimate
    lies on the boundary of the parameter space (a random-effect variance near 0)
    describes a converged fit; it is kept in the per-layer ``warnings`` text.
    """
    text = str(w.message).lower()
    return "boundary" not in text or "hessian" in text


def _hessian_ok(fit) -> bool:
    """The covariance of the estimates, the inverse of the negative Hessian, is finite and positive definite.

    statsmodels warns only when a diagonal element of the Hessian has the wrong sign;
    a Hessian that is not negative definite elsewhere leaves standard errors that are
    not to be trusted, and the fit is then reported as not converged.
    """
    try:
        cov = np.asarray(fit.cov_params(), dtype=np.float64)
        return bool(np.isfinite(cov).all() and np.linalg.eigvalsh((cov + cov.T) / 2).min() > 0)
    except (ValueError, np.linalg.LinAlgError):
        return False


def _fit_mixedlm(smf, ConvergenceWarning, formula, df, groups, re_formula, reml, method):
    result = {"params": None, "bse": None, "z": None, "p": None, "converged": False,
              "group_var": np.nan, "n_obs": 0, "n_groups": 0, "error": "", "warnings": ""}  # fmt: skip
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = smf.mixedlm(formula, df, groups=df[groups], re_formula=re_formula, missing="drop")
            fit = model.fit(reml=reml, method=method) if method is not None else model.fit(reml=reml)
    except Exception as exc:  # singular designs, all-NaN layers ...
        result["error"] = " ".join(f"{type(exc).__name__}: {exc}".split())
        return result
    convergence = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    fe = fit.fe_params.index
    result.update(
        params=fit.fe_params,
        bse=fit.bse.reindex(fe),
        z=fit.tvalues.reindex(fe),
        p=fit.pvalues.reindex(fe),
        converged=bool(getattr(fit, "converged", True)) and not any(_failed(w) for w in convergence)
        and _hessian_ok(fit),
        warnings="; ".join(sorted({" ".join(str(w.message).split()) for w in convergence})),
        group_var=float(np.asarray(fit.cov_re)[0, 0]) if np.size(fit.cov_re) else np.nan,
        n_obs=int(fit.nobs),
        n_groups=int(len(model.group_labels)),
    )
    return result
