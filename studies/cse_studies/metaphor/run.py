"""The metaphor study, end to end: `run` (and ``cse study metaphor``).

1. Read the corpora (`cse_studies.common.read_corpus`) and draw the matched pairs from
   every sequence corpus (`pairs.build_pairs`).
2. For every model: compute or reuse each CSE result (`plan.compute_results`), add the
   coordinates the tests need (`coords`), run the tests and the mixed models
   (`analysis`).
3. Write the folder (`document.write_folder`): ``report.md`` with one section per
   model and a summary across models, figures, and the tables as CSV.
"""

from __future__ import annotations

import dataclasses
import time

import pandas as pd

from cse.errors import CSEInputError
from cse.params import check_int
from cse_studies.common import SEQUENCE, TARGET_WORD, each_model, open_study, sequence_words

from . import analysis as A
from . import sensitivity as S
from .coords import add_pair_coords, pairs_depth, prepare_sequence, prepare_target_word
from .document import write_folder
from .pairs import build_pairs
from .plan import compute_results

#: Layer-order permutations of the depth-axis null by default (cse_z).
DEPTH_NULL_PERMUTATIONS = 100


@dataclasses.dataclass
class ModelRun:
    """Everything the report needs about one model."""

    identity: dict
    slug: str
    results: dict  # name -> prepared Dataset
    paths: dict
    dropped_token_axis: dict
    tests: list
    notes: list
    groups: dict  # sequence corpus -> subsets table
    mixed: dict  # main test key -> mixed model Dataset
    main_source: dict  # main test key -> the Dataset it was computed on
    sensitivity: S.Sensitivity | None = None  # the main tests under other wavelets, levels, boundaries

    @property
    def depth_attrs(self) -> dict:
        return self.main_source[self.tests[0].key].attrs


def prepare(results: dict, corpora: list, pairs, seed: int) -> dict:
    """The results with the coordinates of `coords`, and ``pairs-depth`` when there are pairs."""
    out = dict(results)
    for corpus in corpora:
        add = prepare_target_word if corpus.kind == TARGET_WORD else prepare_sequence
        out[f"{corpus.name}-depth"] = add(results[f"{corpus.name}-depth"], seed)
        for axis in ("token", "hidden"):
            if f"{corpus.name}-{axis}" in results:
                out[f"{corpus.name}-{axis}"] = prepare_target_word(results[f"{corpus.name}-{axis}"], seed)
    if pairs is not None and len(pairs):
        out["pairs-depth"] = pairs_depth(out, [c for c in corpora if c.kind == SEQUENCE], pairs, seed)
        for name in ("pairs-token", "pairs-hidden"):
            if name in results:
                out[name] = add_pair_coords(results[name], pairs)
    return out


def analyse(results: dict, corpora: list, pairs, settings: A.Settings, log) -> tuple:
    """Every test and mixed model of one model: (tests, notes, groups, mixed, main_source)."""
    tests, notes, groups, mixed, source = [], [], {}, {}, {}
    for corpus in corpora:
        if corpus.kind == TARGET_WORD:
            found, missing = A.target_word_tests(results, corpus, settings, log)
        else:
            found, missing, groups[corpus.name] = A.sequence_tests(results, corpus, settings, log)
        tests += found
        notes += missing
        for t in found:
            if t.role == A.MAIN:
                source[t.key] = results[f"{corpus.name}-depth"]
    has_pairs = "pairs-depth" in results and int((results["pairs-depth"]["pair"].values >= 0).sum()) >= 4
    if has_pairs:
        found, missing = A.pair_tests(results, settings, log)
        tests += found
        notes += missing
        source.update({t.key: results["pairs-depth"] for t in found if t.role == A.MAIN})
    for t in tests:
        if t.role == A.MAIN and t.var == "cse":
            model = A.mixed_model(source[t.key], t, log)
            if model is not None:
                mixed[t.key] = model
    return tests, notes, groups, mixed, source


def run(data=None, out=None, models=(None,), *, corpora=None, loaded=None, seed: int = 0, n_pairs: int = 200,
        n_permutations: int = 5000, n_control_permutations: int | None = None, n_bootstrap: int = 2000,
        null_permutations: int = 50, depth_null_permutations: int = DEPTH_NULL_PERMUTATIONS,
        limit: int | None = None, recompute: bool = False, device: str = "cpu", progress: bool = False,
        command: str | None = None, log=None, sensitivity: bool | None = None, sensitivity_grid=S.GRID) -> dict:
    """Run the metaphor study for every model and write its folder.

    Parameters
    ----------
    data : str or Path, optional
        Folder holding ``moh-x.csv`` and ``vua-seq-test.csv``: the corpora ``mohx``
        and ``vua`` (used when `corpora` is None).
    out : str or Path
        Output folder, owned by the study (`cse_studies.common.StudyFolder`): the CSE
        results (``*.nc``), ``report.md``, figures (per model in ``MODEL/``),
        ``layers.csv``, ``clusters.csv`` and ``pairs.csv``.
    models : sequence of (str or None)
        Names for `cse.load_model` (``smollm2-135m``, ``gemma-3-270m``, a local path or
        a cached Hugging Face id; None: the default model).
    corpora : list of CorpusSpec, optional
        From `cse_studies.common.corpus_specs` (target-word and sequence files).
    loaded : sequence of (model, tokenizer), optional
        Already loaded models, in place of `models` (tests).
    seed : int
        Seed of the pair draw, the shuffled labels, the permutations, the bootstrap
        and the nulls.
    n_pairs : int
        Matched pairs to draw from the sequence corpora.
    n_permutations, n_control_permutations, n_bootstrap : int
        Permutations (sign flips) of the main tests, of the controls and subsets
        (default ``min(n_permutations, 2000)``), bootstrap replicates.
    null_permutations : int
        Dimension permutations of the hidden-axis null.
    depth_null_permutations : int
        Layer-order permutations of the depth-axis null, for the tests on ``cse_z``
        (0: none). Ignored, with a line in the report, by a cse without order nulls.
    limit : int, optional
        Use the first `limit` data rows of each file (development runs).
    recompute, device, progress, command, log
        Recompute CSE even where a cached result matches; device of the models
        loaded here; progress bars; the command line for the report; a callable
        receiving one line per step.
    sensitivity : bool or None
        Rerun the main tests under every setting of `sensitivity_grid`, re-measured from
        the cached Gram matrices (`sensitivity.run_sensitivity`): None (default) when
        the depth-axis results carry them (else the report says why not), True always
        (an error without them), False never.
    sensitivity_grid : sequence of (wavelet, level, boundary)
        The settings (default: haar, db2, db4, sym4 x J 2, 3, 4 x reflect, periodic).

    Returns
    -------
    dict
        ``report`` (path), ``verdict`` (model slug -> overall and per main test),
        ``tests`` (model slug -> test key -> `cse.stats.compare` Dataset), ``pairs``.

    Raises
    ------
    CSEInputError
        Bad corpora or output folder, a bad parameter, or a model that cannot be loaded.
    """
    # 1. Parameters, corpora and the output folder, before any model is loaded.
    for name, value, low in (("n_pairs", n_pairs, 1), ("n_permutations", n_permutations, 1),
                             ("n_bootstrap", n_bootstrap, 0), ("null_permutations", null_permutations, 2)):
        check_int(name, value, minimum=low)
    n_control_permutations = check_int("n_control_permutations", min(n_permutations, 2000) if
                                       n_control_permutations is None else n_control_permutations, minimum=1)
    log = log or (lambda line: None)
    started = time.time()
    corpora, folder, depth_null_permutations = open_study(
        "metaphor", data=data, corpora=corpora, out=out, limit=limit, seed=seed,
        depth_null_permutations=depth_null_permutations, log=log)
    sequences = [c for c in corpora if c.kind == SEQUENCE]
    pairs = (build_pairs(pd.concat([sequence_words(c) for c in sequences], ignore_index=True), n_pairs=n_pairs,
                         seed=seed) if sequences else None)
    settings = A.Settings(seed, n_permutations, n_control_permutations, n_bootstrap)

    # 2. Every model in turn.
    runs = []
    for model, tokenizer, identity, slug in each_model(models, loaded, device=device, log=log):
        if any(r.slug == slug for r in runs):
            raise CSEInputError(f"Invalid value for '--model': {identity['model']!r} is given twice")
        computed = compute_results(corpora, pairs, model, tokenizer, identity, slug, folder, seed=seed,
                                   null_permutations=null_permutations,
                                   depth_null_permutations=depth_null_permutations,
                                   save_gram=sensitivity is not False, recompute=recompute, progress=progress,
                                   command=command, log=log)
        del model
        results = prepare(computed.results, corpora, pairs, seed)
        tests, notes, groups, mixed, source = analyse(results, corpora, pairs, settings, log)
        sens = None if sensitivity is False else S.run_sensitivity(
            results, tests, corpora, pairs, grid=sensitivity_grid, n_permutations=n_control_permutations,
            null_permutations=depth_null_permutations, seed=seed, required=bool(sensitivity), log=log)
        runs.append(ModelRun(identity, slug, results, computed.paths, computed.dropped_token_axis, tests, notes,
                             groups, mixed, source, sens))

    # 3. The folder.
    log("writing the report")
    options = {"limit": limit, "n_pairs": n_pairs, "null_permutations": null_permutations,
               "depth_null_permutations": depth_null_permutations}
    path, summary = write_folder(folder, runs=runs, corpora=corpora, pairs=pairs, settings=settings, options=options,
                                 command=command, elapsed=time.time() - started)
    log(f"wrote {path}")
    return {"report": path, "verdict": summary, "pairs": pairs,
            "tests": {r.slug: {t.key: t.result for t in r.tests} for r in runs}}
