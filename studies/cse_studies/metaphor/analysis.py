"""Step 2 of the metaphor study: the tests, on results prepared by `coords`.

A word is represented by its **first token** (``is_word_start``), where the model first
reads it; special tokens (the BOS attention sink) are never used. The **control token**
of a word is the first token of the word before it.

Every test is `cse.stats.compare` per layer, metaphorical minus literal, called in one
place (`compare_layers`), with every correction of `CORRECTIONS`:

- target-word corpora (MOH-X): target words, labels permuted within exchangeability
  blocks (the verb);
- sequence corpora (VUA): every content word, labels permuted within texts;
- matched pairs drawn from every sequence corpus: sign flips of the paired differences.

Each main test runs on raw CSE and, where the results carry it (the layer-order null
on the depth axis, ``--depth-null-permutations``), on ``cse_z``. Exchangeability blocks
give the within-block effect over its block-clustered standard error (studentized, valid
when the labels differ in variance) and intervals that resample whole blocks, and
covariates (surprisal, log frequency, position) enter as nuisance regressors (Freedman &
Lane 1983) in one more control. Beside every main test with blocks the previous default
(`PREVIOUS`: the pooled-variance t, the within-cell bootstrap) is computed on the same
tokens, so that the report can say where a conclusion or an interval changed.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import xarray as xr

from cse import stats
from cse.errors import CSEInputError

#: Corrections across layers, all reported: cluster mass is the headline.
CORRECTIONS = ("cluster", "maxT", "fdr_bh")
#: Nuisance regressors of the covariate control (Freedman-Lane), token coordinates:
#: the token's surprisal (a copy of the ``surprisal`` variable), its word's Zipf
#: frequency and its position in the sequence.
COVARIATES = ("token_surprisal", "log_frequency", "position")
TARGET = "target_token == 1"
CONTROL = "control_token == 1"
CONTENT = "content_token == 1"
PAIR = "pair >= 0"
PAIR_CONTROL = "ctrl_pair >= 0"
#: Subsets (genre, POS) are tested when they hold at least this many words of each label.
MIN_WORDS_PER_LABEL = 30
MAIN, CONTROL_TEST, SUBSET = "main", "control", "subset"
#: The statistics of earlier releases, computed beside each main test with blocks.
PREVIOUS = {"statistic": "pooled", "bootstrap": "cells"}


@dataclasses.dataclass
class Settings:
    """Statistical settings of a run (recorded in the report)."""

    seed: int = 0
    n_permutations: int = 5000
    n_control_permutations: int = 2000
    n_bootstrap: int = 2000

    def main(self) -> dict:
        return {"n_permutations": self.n_permutations, "n_bootstrap": self.n_bootstrap, "seed": self.seed}

    def control(self) -> dict:
        return {"n_permutations": self.n_control_permutations, "n_bootstrap": min(self.n_bootstrap, 1000),
                "seed": self.seed}


@dataclasses.dataclass
class Test:
    """One comparison and its `cse.stats.compare` result.

    ``key`` is unique within a model (``mohx``, ``mohx:cse_z``, ``mohx:control`` ...);
    ``role`` is `MAIN`, `CONTROL_TEST` or `SUBSET`; ``parent`` the key of the main test
    a control belongs to; ``previous`` the same comparison with the statistics of
    earlier releases (`PREVIOUS`), for main tests with exchangeability blocks.
    """

    key: str
    corpus: str
    label: str
    result: xr.Dataset
    role: str = MAIN
    parent: str | None = None
    previous: xr.Dataset | None = None

    @property
    def var(self) -> str:
        return self.result.attrs.get("var", "cse")


# --------------------------------------------------------------------------- the one call of compare


def compare_layers(ds, by, where, settings: dict, *, corrections=CORRECTIONS, blocks=None, paired_by=None,
                   var="cse", covariates=None, statistic="auto", bootstrap="auto") -> xr.Dataset:
    """`cse.stats.compare` of groups 0 and 1 with several corrections: the study's only call of compare.

    Parameters
    ----------
    ds : xarray.Dataset
        A result with the token coordinates named below.
    by, where : str
        Group coordinate (values 0 and 1) and token selection.
    settings : dict
        ``n_permutations``, ``n_bootstrap``, ``seed``.
    corrections : sequence of str
        The first is the primary (``p_corrected``, ``significant``, clusters).
    blocks, paired_by : str, optional
        Exchangeability blocks (labels permuted within them) or pair ids (sign flips).
    var : str
        ``cse`` or ``cse_z``.
    covariates : sequence of str, optional
        Nuisance regressors (Freedman-Lane).
    statistic, bootstrap : str
        As in `cse.stats.compare` (``auto``: the block-clustered statistic, its wild
        bootstrap null and the t(G - 1) interval with blocks).

    Returns
    -------
    xarray.Dataset
        The result of `cse.stats.compare` with ``p_<correction>`` for every
        correction, all from one permutation set, and ``boundary_affected`` over
        layers where `ds` marks it.
    """
    kwargs = {"levels": (0, 1), "var": var, "paired_by": paired_by, "exchangeability_blocks": blocks,
              "covariates": list(covariates) if covariates else None, **settings}
    if statistic != "auto" or bootstrap != "auto":
        kwargs.update(statistic=statistic, bootstrap=bootstrap)
    corrections = list(corrections)
    res = stats.compare(ds, by, where, correction=corrections[0], corrections=corrections, **kwargs)
    if "boundary_affected" not in res.variables and "boundary_affected" in ds.coords \
            and ds["boundary_affected"].dims == ("layer",):
        res = res.assign_coords(boundary_affected=ds["boundary_affected"])
    return res


def _tests_of(ds, by, where, settings, *, main_key, corpus, label, blocks=None, paired_by=None) -> list[Test]:
    """The main test on ``cse`` and, where `ds` has it, on ``cse_z``; with blocks, the previous default beside."""
    tests = []
    for key, var, words in ((main_key, "cse", "CSE, depth axis"),
                            (f"{main_key}:cse_z", "cse_z", "cse_z against the layer-order null")):
        if var not in ds.data_vars:
            continue
        res = compare_layers(ds, by, where, settings, blocks=blocks, paired_by=paired_by, var=var)
        previous = (compare_layers(ds, by, where, settings, blocks=blocks, var=var, **PREVIOUS)
                    if blocks is not None else None)  # fmt: skip
        tests.append(Test(key, corpus, f"{label} ({words})", res, previous=previous))
    return tests


def _control(tests: list, notes: list, parent: str, key: str, corpus: str, label: str, ds, by, where, settings,
             role=CONTROL_TEST, **kwargs) -> None:
    """Append one control or subset test; a test that cannot run becomes a note."""
    try:
        res = compare_layers(ds, by, where, settings, corrections=("cluster",), **kwargs)
    except CSEInputError as exc:
        notes.append(f"{corpus}: {label}: not computed ({exc})")
        return
    tests.append(Test(f"{parent}:{key}", corpus, label, res, role, parent))


def _block_controls(tests, notes, name, ds, ctrl, *, by, where, control_by, words) -> None:
    """The controls of a test with exchangeability blocks: control token, shuffled labels, covariates."""
    blocks = "exchangeability_block"
    _control(tests, notes, name, "control", name, f"control token: the word before the {words[0]}", ds, control_by,
             CONTROL, ctrl, blocks=blocks)
    _control(tests, notes, name, "shuffled", name, f"shuffled labels (once, within {words[1]})", ds, "label_shuffled",
             where, ctrl, blocks=blocks)
    with_covariates = ds.assign_coords(token_surprisal=("token", ds["surprisal"].values))
    _control(tests, notes, name, "covariates", name, "surprisal, log frequency and position as covariates "
             "(Freedman-Lane)", with_covariates, by, where, ctrl, blocks=blocks, covariates=COVARIATES)


# --------------------------------------------------------------------------- per corpus


def target_word_tests(results: dict, corpus, settings: Settings, log=None) -> tuple[list[Test], list[str]]:
    """A target-word corpus: target words, and the controls (control token, shuffled labels,
    covariates, token axis, hidden axis with its dimension null)."""
    name, ds = corpus.name, results[f"{corpus.name}-depth"]
    if log:
        log(f"{name}: target words")
    tests = _tests_of(ds, "label", TARGET, settings.main(), main_key=name, corpus=name, label="target word",
                      blocks="exchangeability_block")
    notes: list[str] = []
    ctrl, blocks = settings.control(), "exchangeability_block"
    _block_controls(tests, notes, name, ds, ctrl, by="label", where=TARGET, control_by="label",
                    words=("target", "blocks"))
    token = results.get(f"{name}-token")
    if token is not None:
        _control(tests, notes, name, "token", name, f"token axis (J = {token.attrs['level']})", token, "label",
                 TARGET, ctrl, blocks=blocks)
    hidden = results.get(f"{name}-hidden")
    if hidden is not None:
        _control(tests, notes, name, "hidden", name, "hidden axis, CSE", hidden, "label", TARGET, ctrl, blocks=blocks)
        _control(tests, notes, name, "hidden_z", name, "hidden axis, z against the dimension-permutation null",
                 hidden, "label", TARGET, ctrl, blocks=blocks, var="cse_z")
    return tests, notes


def sequence_tests(results: dict, corpus, settings: Settings, log=None) -> tuple[list[Test], list[str], pd.DataFrame]:
    """A sequence corpus: every content word, the controls, and the genre and POS subsets.

    Returns
    -------
    tests : list of Test
    notes : list of str
        Tests that could not run, and why.
    groups : pandas.DataFrame
        One row per genre and POS subset: ``kind, group, n_met, n_lit, test`` (the
        test key, or ``""`` when too few words of a label).
    """
    name, ds = corpus.name, results[f"{corpus.name}-depth"]
    if log:
        log(f"{name}: every content word")
    blocks, ctrl = "exchangeability_block", settings.control()
    tests = _tests_of(ds, "label_seq", CONTENT, settings.main(), main_key=name, corpus=name, label="every content word",
                      blocks=blocks)
    notes: list[str] = []
    _block_controls(tests, notes, name, ds, ctrl, by="label_seq", where=CONTENT, control_by="control_label",
                    words=("content word", "texts"))
    rows = []
    content = stats.select_tokens(ds, CONTENT)
    labels = np.asarray(ds["label_seq"].values)
    for kind, coord in (("genre", "genre"), ("POS", "pos_seq")):
        if coord not in ds.coords:
            continue
        values = np.asarray(ds[coord].values).astype(str)
        for value in sorted(set(values[content].tolist())):
            sel = content & (values == value)
            n_met, n_lit = int((labels[sel] == 1).sum()), int((labels[sel] == 0).sum())
            row = {"kind": kind, "group": value, "n_met": n_met, "n_lit": n_lit, "test": ""}
            if min(n_met, n_lit) >= MIN_WORDS_PER_LABEL:
                key = f"{kind.lower()}={value}"
                where = f"{CONTENT} and {coord} == {value!r}"
                _control(tests, notes, name, key, name, f"{kind} {value}", ds, "label_seq", where,
                         {**ctrl, "n_bootstrap": 0}, role=SUBSET, blocks=blocks)
                row["test"] = f"{name}:{key}" if tests[-1].key == f"{name}:{key}" else ""
            rows.append(row)
    return tests, notes, pd.DataFrame(rows, columns=["kind", "group", "n_met", "n_lit", "test"])


def pair_tests(results: dict, settings: Settings, log=None) -> tuple[list[Test], list[str]]:
    """The matched pairs: sign-flip tests, control token, shuffled sides, token and hidden axes."""
    ds, ctrl = results["pairs-depth"], settings.control()
    if log:
        log("matched pairs")
    tests = _tests_of(ds, "pair_side", PAIR, settings.main(), main_key="pairs", corpus="pairs",
                      label="matched pairs", paired_by="pair")
    notes: list[str] = []
    _control(tests, notes, "pairs", "control", "pairs", "control token: the word before each paired word", ds,
             "ctrl_side", PAIR_CONTROL, ctrl, paired_by="ctrl_pair")
    _control(tests, notes, "pairs", "shuffled", "pairs", "shuffled labels (sides swapped in a random half of the "
             "pairs)", ds, "pair_side_shuffled", PAIR, ctrl, paired_by="pair")
    if "pairs-token" in results:
        tok = results["pairs-token"]
        _control(tests, notes, "pairs", "token", "pairs", f"token axis (J = {tok.attrs['level']})", tok, "pair_side",
                 PAIR, ctrl, paired_by="pair")
    if "pairs-hidden" in results:
        hid = results["pairs-hidden"]
        _control(tests, notes, "pairs", "hidden", "pairs", "hidden axis, CSE", hid, "pair_side", PAIR, ctrl,
                 paired_by="pair")
        _control(tests, notes, "pairs", "hidden_z", "pairs", "hidden axis, z against the dimension-permutation null",
                 hid, "pair_side", PAIR, ctrl, paired_by="pair", var="cse_z")
    return tests, notes


def mixed_model(ds, main: Test, log=None) -> xr.Dataset | None:
    """The per-layer mixed model of a main test: its label plus surprisal, word frequency and position.

    ``cse ~ LABEL + surprisal + log_frequency + position`` with a random intercept per
    exchangeability block (per pair for the pairs), over the main test's tokens.
    Returns None when the model cannot be fitted (too few tokens or blocks).
    """
    term, groups, where = {"label_seq": ("label_seq", "exchangeability_block", CONTENT),
                           "label": ("label", "exchangeability_block", TARGET),
                           "pair_side": ("pair_side", "pair", PAIR)}[main.result.attrs["by"]]
    if log:
        log(f"{main.key}: mixed model")
    try:
        return stats.mixedlm(ds, f"cse ~ {term} + surprisal + log_frequency + position", groups=groups, where=where)
    except CSEInputError as exc:
        if log:
            log(f"{main.key}: mixed model not fitted ({exc})")
        return None
