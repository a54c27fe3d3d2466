"""Does a conclusion survive another wavelet, level or boundary rule? The study's multiverse (issue 19).

The paper that introduced CSE fixes neither the wavelet, nor the level, nor the boundary
rule; this study uses one setting (haar, J = 3, reflect by default). Here every main
test runs again under each setting of a grid -- wavelet {haar, db2, db4, sym4} x J {2,
3, 4} x boundary {reflect, periodic}, 24 settings -- in the spirit of a multiverse
analysis (Steegen, Tuerlinckx, Gelman & Vanpaemel 2016, *Perspectives on Psychological
Science* 11(5), 702-712). No model runs: the depth-axis results are re-measured from
the Gram matrices their cache files store (`cse.remeasure`; compute them with
``save=["gram"]``), with the layer-order null for ``cse_z``; each test is the study's
own one-place call, `analysis.compare_layers`, so its statistic is the main tests'.

The unit of the table is a **band**: the layers where significant clusters of one sign
overlap across settings (clusters of different settings that share a layer are one
band). A band *holds* in a setting when that setting has a significant cluster of its
sign inside it. Wide filters make whole models boundary layers (L_J = (2^J - 1)(K - 1)
+ 1: db4 at J = 3 is 50 > 30 blocks), so each setting where a band holds is also
checked for whether the boundary covers it (every layer of its cluster boundary-
affected under that setting): raw CSE there is shaped by the boundary rule, and the
tests on ``cse_z`` are the ones to read. A band that holds in one setting only is
called exactly that.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pandas as pd

import cse
from cse import stats
from cse.errors import CSEInputError
from cse_studies.common import SEQUENCE, layer_span, md_table

from .analysis import MAIN, compare_layers
from .coords import add_pair_coords, pairs_depth

__all__ = ["GRID", "Sensitivity", "band_table", "figure", "label", "report_lines", "run_sensitivity", "verdict"]

#: The grid of issue 19: wavelet x level J x boundary rule.
GRID = tuple(itertools.product(("haar", "db2", "db4", "sym4"), (2, 3, 4), ("reflect", "periodic")))
STORED = ("gram", "gram_triangle")


def label(setting) -> str:
    """A setting in words.

    Parameters
    ----------
    setting : tuple of (str, int, str)
        (wavelet, level J, boundary rule).

    Returns
    -------
    str
        e.g. ``'db4 J=3 reflect'``.
    """
    return f"{setting[0]} J={setting[1]} {setting[2]}"


@dataclasses.dataclass
class Sensitivity:
    """The main tests of one model under every setting of the grid.

    Attributes
    ----------
    bands : pandas.DataFrame
        One row per test and band: ``test, var, sign, layers, first, last, n_settings,
        holds, boundary_covers, study_setting, settings, verdict``.
    layers : pandas.DataFrame
        One row per test, setting and layer: ``test, var, setting, layer, sign`` (+1 or
        -1 inside a significant cluster, else 0) and ``boundary`` (boundary-affected
        under that setting).
    settings : list of str
        The settings run, in grid order.
    not_applicable : list of str
        Settings the model cannot take (``2**J`` more than its blocks), with the reason.
    study_setting : str
        The study's own setting.
    options : dict
        ``n_permutations``, ``null_permutations``, ``seed``.
    reason : str
        Why nothing was re-measured ('' when it was).
    """

    bands: pd.DataFrame
    layers: pd.DataFrame
    settings: list
    not_applicable: list
    study_setting: str
    options: dict
    reason: str = ""


def run_sensitivity(results: dict, tests: list, corpora: list, pairs, *, grid=GRID, n_permutations: int = 2000,
                    null_permutations: int = 100, seed: int = 0, required: bool = False, log=None) -> Sensitivity:
    """Re-measure the depth-axis results under every setting of `grid` and rerun the main tests.

    Parameters
    ----------
    results : dict of str to xarray.Dataset
        The model's prepared results (`cse_studies.metaphor.run.prepare`): ``NAME-depth``
        of every corpus, with their Gram matrices (``gram`` or ``gram_triangle``).
    tests : list of Test
        The model's tests (`run.analyse`); those with role ``main`` are rerun.
    corpora : list of Corpus
    pairs : pandas.DataFrame or None
        The matched pairs (`build_pairs`), to rebuild ``pairs-depth`` in each setting.
    grid : sequence of (wavelet, level, boundary)
        The settings (default `GRID`, 24 of them).
    n_permutations : int
        Permutations of each test (no bootstrap: the table needs no interval).
    null_permutations : int
        Layer-order permutations for ``cse_z`` (0: the ``cse_z`` tests are not rerun).
    seed : int
        Seed of the nulls and the permutations.
    required : bool
        Raise when the results carry no Gram matrices (instead of returning an empty
        `Sensitivity` whose ``reason`` says so).
    log : callable, optional

    Returns
    -------
    Sensitivity

    Raises
    ------
    CSEInputError
        With `required`, when a depth-axis result carries no Gram matrices.
    """
    log = log or (lambda line: None)
    main = [t for t in tests if t.role == MAIN and (t.var == "cse" or null_permutations)]
    with_pairs = any(t.corpus == "pairs" for t in main)
    sources = {t.corpus for t in main if t.corpus != "pairs"}
    sources |= {c.name for c in corpora if c.kind == SEQUENCE} if with_pairs else set()
    names = sorted(f"{name}-depth" for name in sources)
    attrs = results[names[0]].attrs if names else {}
    study = label((attrs.get("wavelet"), attrs.get("level"), attrs.get("boundary")))
    options = {"n_permutations": n_permutations, "null_permutations": null_permutations, "seed": seed}
    missing = [n for n in names if not any(v in results[n].data_vars for v in STORED)]
    if missing or not main:
        reason = (f"the cached depth-axis results ({', '.join(missing)}) carry no Gram matrices; compute them with "
                  f"save=['gram']" if missing else "there is no main test")
        if required:
            raise CSEInputError(f"cannot run the sensitivity analysis: {reason}")
        return Sensitivity(pd.DataFrame(), pd.DataFrame(), [], [], study, options, reason)
    kept = {name: _tokens_used(results[name], name, main, pairs) for name in names}
    rows, run, skipped = [], [], []
    n_layers = results[names[0]].sizes["layer"]
    for setting in grid:
        if 2 ** setting[1] > n_layers:
            skipped.append(f"{label(setting)} (2^{setting[1]} = {2 ** setting[1]} > {n_layers} blocks)")
            continue
        log(f"sensitivity: {label(setting)}")
        measured = {name: cse.remeasure(ds, wavelet=setting[0], level=setting[1], boundary=setting[2],
                                        null_permutations=null_permutations, seed=seed)
                    for name, ds in kept.items()}
        if with_pairs:
            measured["pairs-depth"] = pairs_depth(measured, [c for c in corpora if c.kind == SEQUENCE], pairs, seed)
        run.append(label(setting))
        rows += _rerun(main, measured, label(setting), n_permutations, seed)
    layers = pd.DataFrame(rows, columns=["test", "var", "setting", "layer", "sign", "boundary"])
    return Sensitivity(band_table(layers, run, study), layers, run, skipped, study, options)


def _tokens_used(ds, name: str, main: list, pairs):
    """The tokens of `ds` that some main test reads (depth-axis CSE of a token depends on no other token)."""
    corpus = name[: -len("-depth")]
    keep = np.zeros(ds.sizes["token"], dtype=bool)
    for t in main:
        if t.corpus == corpus:
            keep |= np.asarray(stats.select_tokens(ds, t.result.attrs["where"]), dtype=bool)
    if pairs is not None and len(pairs) and any(t.corpus == "pairs" for t in main) and "row" in ds.coords:
        marked = add_pair_coords(ds.assign_coords(corpus=("token", np.full(ds.sizes["token"], corpus, dtype=object))),
                                 pairs)
        keep |= np.asarray(marked["pair"].values) >= 0
    return ds.isel(token=np.flatnonzero(keep))


def _rerun(main: list, measured: dict, setting: str, n_permutations: int, seed: int) -> list:
    """Rows of the layers table for every main test in one setting."""
    rows = []
    for t in main:
        ds = measured["pairs-depth" if t.corpus == "pairs" else f"{t.corpus}-depth"]
        a = t.result.attrs
        res = compare_layers(ds, a["by"], a["where"], {"n_permutations": n_permutations, "n_bootstrap": 0,
                                                       "seed": seed},
                             corrections=("cluster",), blocks=a.get("exchangeability_blocks") or None,
                             paired_by=a.get("paired_by") or None, var=t.var)
        layers = np.asarray(res["layer"].values)
        sign = np.zeros(len(layers), dtype=np.int64)
        alpha = float(res.attrs.get("alpha", 0.05))
        for k in range(res.sizes.get("cluster", 0)):
            if float(res["cluster_p"].values[k]) <= alpha:
                inside = (layers >= res["cluster_start"].values[k]) & (layers <= res["cluster_stop"].values[k])
                sign[inside] = 1 if res["cluster_sign"].values[k] > 0 else -1
        boundary = np.asarray(ds["boundary_affected"].values, dtype=bool)
        rows += [(t.key, t.var, setting, int(layer), int(s), bool(b)) for layer, s, b in zip(layers, sign, boundary)]
    return rows


def _runs(layers: np.ndarray) -> list:
    """Maximal runs of consecutive layers, as (first, last)."""
    runs = []
    for layer in sorted(layers):
        if runs and layer == runs[-1][1] + 1:
            runs[-1][1] = layer
        else:
            runs.append([layer, layer])
    return [tuple(r) for r in runs]


def _merged(spans: list) -> list:
    """Layer spans (first, last) merged where they share a layer (transitively), in order."""
    bands = []
    for first, last in sorted(spans):
        if bands and first <= bands[-1][1]:
            bands[-1][1] = max(bands[-1][1], last)
        else:
            bands.append([first, last])
    return [tuple(b) for b in bands]


def band_table(layers: pd.DataFrame, settings: list, study: str) -> pd.DataFrame:
    """Bands of significant clusters across settings, per test and sign (see the module docstring).

    Parameters
    ----------
    layers : pandas.DataFrame
        `Sensitivity.layers`.
    settings : list of str
        The settings run.
    study : str
        The study's own setting.

    Returns
    -------
    pandas.DataFrame
        `Sensitivity.bands`: ``holds`` settings with a cluster of the band's sign in it,
        ``boundary_covers`` those of them where every layer of that cluster is
        boundary-affected, ``study_setting`` whether the study's setting is one of them.
    """
    columns = ["test", "var", "sign", "layers", "first", "last", "n_settings", "holds", "boundary_covers",
               "study_setting", "settings", "verdict"]
    rows = []
    for (test, var, sign), part in layers.loc[layers["sign"] != 0].groupby(["test", "var", "sign"], sort=False):
        clusters = [(s, first, last) for s, group in part.groupby("setting", sort=False)
                    for first, last in _runs(group["layer"].to_numpy())]
        for first, last in _merged([(a, b) for _, a, b in clusters]):
            inside = [(s, a, b) for s, a, b in clusters if a <= last and b >= first]
            holds = sorted({s for s, _, _ in inside}, key=settings.index)
            covered = [s for s in holds if _covered(layers, test, var, s, [(a, b) for t, a, b in inside if t == s])]
            rows.append({"test": test, "var": var, "sign": "+" if sign > 0 else "-",
                         "layers": layer_span(range(first, last + 1)), "first": first, "last": last,
                         "n_settings": len(settings), "holds": len(holds), "boundary_covers": len(covered),
                         "study_setting": study in holds, "settings": "; ".join(holds),
                         "verdict": verdict(holds, covered, len(settings))})
    return pd.DataFrame(rows, columns=columns)


def _covered(layers: pd.DataFrame, test, var, setting, spans) -> bool:
    rows = layers.loc[(layers["test"] == test) & (layers["var"] == var) & (layers["setting"] == setting)]
    inside = np.zeros(len(rows), dtype=bool)
    for a, b in spans:
        inside |= (rows["layer"].to_numpy() >= a) & (rows["layer"].to_numpy() <= b)
    return bool(rows["boundary"].to_numpy()[inside].all())


def verdict(holds: list, covered: list, n_settings: int) -> str:
    """The band in words: in how many settings it holds, and whether only where the boundary covers it.

    Parameters
    ----------
    holds : list of str
        The settings where the band holds.
    covered : list of str
        Those of them where the boundary covers it.
    n_settings : int
        The settings run.

    Returns
    -------
    str
        ``'holds in all 24 settings'``, ``'holds in k of 24 settings'`` or ``'holds in one
        setting only (db2 J=2 reflect)'``, followed by where the boundary covers it.
    """
    if len(holds) == n_settings:
        text = f"holds in all {n_settings} settings"
    elif len(holds) == 1:
        text = f"holds in one setting only ({holds[0]})"
    else:
        text = f"holds in {len(holds)} of {n_settings} settings"
    if holds and len(covered) == len(holds):
        text += ("; the boundary covers it there" if len(holds) == 1 else "; in each of them the boundary covers it")
        text += " (boundary-dependent)"
    elif covered:
        text += f"; in {len(covered)} of them the boundary covers it"
    return text


def report_lines(folder, slug: str, sens: Sensitivity | None) -> list[str]:
    """The report's sensitivity subsection for one model; saves its figure and CSV in `folder`.

    Parameters
    ----------
    folder : cse_studies.common.StudyFolder
        The study's output folder (``SLUG/sensitivity.png``, ``SLUG/sensitivity.csv``).
    slug : str
        The model's slug.
    sens : Sensitivity or None
        `run_sensitivity`'s result; None when the analysis was turned off.

    Returns
    -------
    list of str
        Markdown lines ([] when `sens` is None; a line saying why not when it has a
        ``reason``).
    """
    if sens is None:
        return []
    lines = ["### Sensitivity to the wavelet, level and boundary rule", ""]
    if sens.reason:
        return lines + [f"Not run: {sens.reason}.", ""]
    opts = sens.options
    lines += [f"Every main test again under {len(sens.settings)} settings (wavelet x J x boundary; the study's own: "
              f"{sens.study_setting}), re-measured from the cached Gram matrices without the model; "
              f"{opts['n_permutations']} permutations per test, cluster-corrected"
              + (f"; cse_z against a layer-order null of {opts['null_permutations']} permutations"
                 if opts["null_permutations"] else "") + ". A band is the layers where significant clusters of one "
              "sign overlap across settings; it holds in a setting with such a cluster; \"boundary covers\" counts "
              "the settings where every layer of that cluster is boundary-affected (raw CSE there is shaped by the "
              "boundary rule; read cse_z).", ""]
    if sens.not_applicable:
        lines += ["Settings the model cannot take: " + "; ".join(sens.not_applicable) + ".", ""]
    if sens.bands.empty:
        lines += ["No main test has a significant cluster in any setting.", ""]
    else:
        table = sens.bands.assign(**{"holds (of n)": [f"{h} / {n}" for h, n in zip(sens.bands["holds"],
                                                                                    sens.bands["n_settings"])],
                                     "study's setting": np.where(sens.bands["study_setting"], "yes", "no")})
        lines += [md_table(table[["test", "var", "sign", "layers", "holds (of n)", "boundary_covers",
                                  "study's setting", "verdict"]]), ""]
        folder.save_figure(f"{slug}/sensitivity.png", figure(sens))
        lines += [f"![Sensitivity]({slug}/sensitivity.png)", ""]
    folder.write_csv(f"{slug}/sensitivity.csv", sens.bands, index=False)
    return lines


#: Colours of the figure: no cluster, boundary-affected without a cluster, a + cluster, a - cluster.
_WHITE, _GREY, _RED, _BLUE = (1.0, 1.0, 1.0), (0.86, 0.86, 0.86), (0.75, 0.22, 0.17), (0.23, 0.44, 0.71)


def figure(sens: Sensitivity):
    """Per main test (rows) and variable (columns): settings x layers, the sign of each significant cluster.

    Red: a significant cluster with metaphorical > literal; blue: the reverse; grey:
    boundary-affected layers of that setting (a dot marks a cluster cell there); the
    study's own setting in bold.

    Parameters
    ----------
    sens : Sensitivity
        With at least one setting run.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    tests = list(dict.fromkeys(t.split(":")[0] for t in sens.layers["test"]))
    variables = list(dict.fromkeys(sens.layers["var"]))
    height = 0.2 * len(sens.settings) + 1.2
    fig = Figure(figsize=(4.8 * len(variables), height * len(tests)), layout="constrained")
    for (test, var), part in sens.layers.groupby(["test", "var"], sort=False):
        ax = fig.add_subplot(len(tests), len(variables), tests.index(test.split(":")[0]) * len(variables)
                             + variables.index(var) + 1)
        sign = part.pivot(index="setting", columns="layer", values="sign").reindex(sens.settings).to_numpy()
        edge = part.pivot(index="setting", columns="layer", values="boundary").reindex(sens.settings).to_numpy()
        image = np.empty(sign.shape + (3,))
        image[:] = _WHITE
        image[edge.astype(bool)] = _GREY
        image[sign > 0] = _RED
        image[sign < 0] = _BLUE
        ax.imshow(image, aspect="auto", interpolation="nearest")
        y, x = np.nonzero((sign != 0) & edge.astype(bool))
        ax.scatter(x, y, s=4, c="k", marker=".", lw=0)
        ax.set_yticks(range(len(sens.settings)), sens.settings, fontsize=6)
        for tick in ax.get_yticklabels():
            tick.set_fontweight("bold" if tick.get_text() == sens.study_setting else "normal")
        ax.set_xlabel("layer", fontsize=8)
        ax.set_title(f"{test.split(':')[0]}, {var}: red met > lit, blue met < lit, grey boundary", fontsize=8)
    return fig
