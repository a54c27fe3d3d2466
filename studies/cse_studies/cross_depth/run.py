"""The cross-depth study: CSE depth profiles across models, their similarity, and the
layer-by-layer coupling of scale distributions (``cse study cross-depth``).

For every model given, CSE on the depth axis (SPEC defaults, with the layer-order null
where this cse has it) of every word of every corpus (a word = its first token;
special tokens excluded):

1. **Depth profile**: mean CSE, mean ``cse_z`` and the mean scale distribution per
   layer, and on relative depth ``(layer + 1) / L`` in equal bins
   (`cse.stats.relative_depth`), so that models with different numbers of blocks
   line up.
2. **Profile similarity**: Pearson and Spearman correlation between the binned
   profiles of every pair of models, per corpus, on ``cse_z`` and on raw CSE outside
   the boundary-affected layers (never on raw CSE across them).
3. **Coupling of scale distributions**: for every pair of layers (l, m), the mean over
   words of the Jensen-Shannon divergence between the word's scale distributions at l
   and at m (in bits), and the correlation over words of CSE at l and at m.
"""

from __future__ import annotations

import time

import xarray as xr

import cse
from cse import stats
from cse.errors import CSEInputError
from cse_studies.common import StudyFolder, by_length, cached_compute, each_model, open_study, result_path

from .measures import BINS, coupling, layer_profile
from .report import write_report

#: Layer-order permutations of the depth-axis null by default; the same as the
#: metaphor study's, so that `--cache` reuses its results.
DEPTH_NULL_PERMUTATIONS = 100
PROFILE_VARIABLES = ("cse_mean", "cse_mean_outside", "z_mean", "fraction_mean")


def binned_profiles(entries: list) -> xr.Dataset:
    """Profiles of every model and corpus on `BINS` bins of relative depth, dims (model, corpus, relative_depth)."""
    binned = []
    for entry in entries:
        per_corpus = []
        for name, profile in entry["profiles"].items():
            keep = [v for v in PROFILE_VARIABLES if v in profile]
            per_corpus.append(stats.relative_depth(profile[keep], bins=BINS).expand_dims(corpus=[name]))
        binned.append(xr.concat(per_corpus, dim="corpus", coords="different", compat="equals", join="outer")
                      .expand_dims(model=[entry["slug"]]))
    return xr.concat(binned, dim="model", coords="different", compat="equals", join="outer")


def run(data=None, out=None, models=(None,), *, corpora=None, cache=None, loaded=None, seed: int = 0,
        depth_null_permutations: int = DEPTH_NULL_PERMUTATIONS, limit: int | None = None, recompute: bool = False,
        device: str = "cpu", progress: bool = False, command: str | None = None, log=None) -> dict:
    """Run the cross-depth study for every model and write its folder.

    Parameters
    ----------
    data : str or Path, optional
        Folder holding ``moh-x.csv`` and ``vua-seq-test.csv`` (used when `corpora` is None).
    out : str or Path
        Output folder (owned by the study): ``report.md``, figures, ``profiles.nc``
        (binned profiles), ``coupling-MODEL.nc`` and ``profile-MODEL.csv``.
    models : sequence of (str or None)
        Names for `cse.load_model`; None is the default model.
    corpora : list of CorpusSpec, optional
        From `cse_studies.common.corpus_specs`.
    cache : str or Path, optional
        Folder of cached CSE results (default `out`); the metaphor study's output
        folder reuses its depth-axis results.
    loaded : sequence of (model, tokenizer), optional
        Already loaded models, in place of `models` (tests).
    seed : int
        Seed of the layer-order null.
    depth_null_permutations : int
        Layer-order permutations of the depth-axis null (0: none; the profiles are then
        compared on raw CSE outside boundary layers only).
    limit, recompute, device, progress, command, log
        As in the metaphor study (`cse study metaphor`).

    Returns
    -------
    dict
        ``report`` (path), ``profiles`` (binned Dataset), ``coupling`` (model slug ->
        corpus -> Dataset).
    """
    log = log or (lambda line: None)
    started = time.time()
    corpora, folder, depth_null_permutations = open_study(
        "cross-depth", data=data, corpora=corpora, out=out, limit=limit, seed=seed,
        depth_null_permutations=depth_null_permutations, log=log)
    store = (StudyFolder(cache, study="cross-depth", inputs=[c.path for c in corpora], option="--cache")
             if cache is not None else folder)

    entries = []
    for model, tokenizer, identity, slug in each_model(models, loaded, device=device, log=log):
        if any(e["slug"] == slug for e in entries):
            raise CSEInputError(f"Invalid value for '--model': {identity['model']!r} is given twice")
        profiles, couplings, attrs = {}, {}, {}
        for corpus in corpora:
            ds = cached_compute(by_length(corpus.frame, tokenizer), result_path(store.path, corpus.name, "depth", slug),
                                model, tokenizer, identity=identity, folder=store, axis="depth",
                                null_permutations=depth_null_permutations, seed=seed, recompute=recompute,
                                progress=progress, command=command, log=log)
            log(f"{slug} {corpus.name}: profile and coupling")
            profiles[corpus.name], couplings[corpus.name], attrs = layer_profile(ds), coupling(ds), dict(ds.attrs)
        entries.append({"identity": identity, "slug": slug, "profiles": profiles, "couplings": couplings,
                        "attrs": attrs})
        del model

    profiles_ds = binned_profiles(entries)
    profiles_ds.attrs = {"title": "CSE depth profiles on relative depth", "bins": BINS,
                         "tokens": "first token of every word", "command": command or "", "cse_version": cse.__version__,
                         "boundary_marked": int(all("boundary_affected" in p.coords for e in entries
                                                    for p in e["profiles"].values()))}
    folder.write_result(profiles_ds, "profiles.nc")
    for entry in entries:
        both = xr.concat([c.expand_dims(corpus=[k]) for k, c in entry["couplings"].items()], dim="corpus")
        both.attrs = {"model": entry["identity"]["model"], "model_sha256": entry["identity"].get("model_sha256", "")}
        folder.write_result(both, f"coupling-{entry['slug']}.nc")
    report = write_report(folder, entries, profiles_ds, corpora, limit=limit, command=command,
                          elapsed=time.time() - started)
    log(f"wrote {report}")
    return {"report": report, "profiles": profiles_ds, "coupling": {e["slug"]: e["couplings"] for e in entries}}
