"""Kernel benchmarks: cse_kernels against the NumPy reference, PyWavelets and ptwt (CPU).

Every contender runs on the same float32 arrays in one process; each time is the median
of several repetitions after a warm-up call, so Numba compilation is excluded from the
medians and reported separately (measured in a fresh cache directory). The read-once
floor is one pass over the same input (``x.sum()``).

The permutation nulls (``null_permutations`` = P) are timed at two values of P on each
axis; the difference gives the cost of one permutation, reported in ms and as a share
of the kernel without a null on the same input.

The Gram path (`--only gram`): on the depth shapes, the Gram matrices from the updates
(`cse_kernels.gram_matrices`) and the band energies from them (`gram_energies`) under
narrow and wide filters, beside the direct MODWT of the updates.

``--baseline DIR`` times the depth rows (MODWT energies, the depth null at two P)
of another version of the kernels side by side with this one, alternating call by call:
``DIR`` holds that version's package folder named ``cse_kernels_old``, e.g.
``git archive REV kernels | tar -x -C DIR && mv DIR/kernels DIR/cse_kernels_old``.

Run: ``.venv/bin/python benchmarks/bench_kernels.py [--quick] [--only kernels|null|gram] [--baseline DIR]
[--out benchmarks/results/kernels.json]`` (timings are only meaningful on an otherwise idle machine: the load
average is recorded).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import sys
import tempfile
import time

# A fresh Numba cache, so the first call measures compilation, not a cache load.
os.environ.setdefault("NUMBA_CACHE_DIR", tempfile.mkdtemp(prefix="cse-bench-numba-"))

import numpy as np  # noqa: E402
import pywt  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine, median_time, save, table  # noqa: E402

import cse_kernels  # noqa: E402
from cse_kernels import _numba, reference  # noqa: E402


def entropy_from_bands(bands) -> np.ndarray:
    """Energies (..., J+1) from a list of coefficient arrays summed over their last axis, then CSE."""
    energies = np.stack([np.einsum("...i,...i->...", b, b, dtype=np.float64) if b.ndim else b for b in bands], -1)
    return cse_kernels.scale_entropy(energies)[0]


def bench_depth(shape, repeats, slow_repeats):
    """haar, J = 3 along axis 1 of (n_series, n_steps, d) float32."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32)
    w = pywt.Wavelet("haar")
    level = 3
    lo, hi = np.asarray(w.dec_lo), np.asarray(w.dec_hi)
    rows = []

    def ours(boundary, unit):
        return lambda: cse_kernels.scale_entropy(cse_kernels.modwt_energies(x, lo, hi, level, boundary, unit))

    def ref():
        return reference.scale_entropy(reference.modwt_energies(x, lo, hi, level, "reflect", True))

    def swt():
        coeffs = pywt.swt(x, w, level=level, axis=1, norm=True, trim_approx=True)  # periodic
        return entropy_from_bands(coeffs)

    import ptwt
    import torch

    xt = torch.from_numpy(x)

    def ptwt_swt():
        with torch.inference_mode():
            coeffs = ptwt.swt(xt, "haar", level=level, axis=1)
            energies = torch.stack([(c.double() ** 2).sum(-1) for c in coeffs], -1)
        return cse_kernels.scale_entropy(energies.numpy())[0]

    contenders = [
        ("cse_kernels (reflect, unit)", ours("reflect", True), repeats),
        ("cse_kernels (periodic, none)", ours("periodic", False), repeats),
        ("NumPy reference (reflect, unit)", ref, slow_repeats),
        ("pywt.swt (periodic)", swt, slow_repeats),
        ("ptwt.swt (CPU, periodic)", ptwt_swt, slow_repeats),
        ("read-once floor x.sum()", lambda: x.sum(), repeats),
    ]
    for name, fn, n in contenders:
        rows.append({"contender": name, **median_time(fn, n)})
    return rows


def bench_hidden(shape, repeats, slow_repeats):
    """db4 at the maximum level over the last axis of (n, d) float32."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape, dtype=np.float32)
    w = pywt.Wavelet("db4")
    level = pywt.dwt_max_level(shape[1], w.dec_len)
    lo, hi = np.asarray(w.dec_lo), np.asarray(w.dec_hi)

    def ours():
        return cse_kernels.scale_entropy(cse_kernels.dwt_energies(x, lo, hi, level))

    def ref():
        return reference.scale_entropy(reference.dwt_energies(x, lo, hi, level))

    def wavedec():
        return entropy_from_bands(pywt.wavedec(x, w, mode="periodization", level=level, axis=-1))

    import ptwt
    import torch

    xt = torch.from_numpy(x)

    def ptwt_wavedec():
        with torch.inference_mode():
            coeffs = ptwt.wavedec(xt, "db4", mode="periodic", level=level, axis=-1)
            energies = torch.stack([(c.double() ** 2).sum(-1) for c in coeffs], -1)
        return cse_kernels.scale_entropy(energies.numpy())[0]

    contenders = [
        ("cse_kernels", ours, repeats),
        ("NumPy reference", ref, slow_repeats),
        ("pywt.wavedec (periodization)", wavedec, repeats),
        ("ptwt.wavedec (CPU, periodic)", ptwt_wavedec, slow_repeats),
        ("read-once floor x.sum()", lambda: x.sum(), repeats),
    ]
    return [{"contender": name, **median_time(fn, n)} for name, fn, n in contenders]


def bench_null(axis, shape, p_low, p_high, repeats):
    """Cost of the null on one axis: time at P = p_low and p_high, and per permutation.

    depth: (n_tokens, n_layers, d) series over layers (haar J = 3); token: one text,
    (n_layers, n_tokens, d) series over tokens (haar J = 3); hidden: (n_cells, d), db4
    at the maximum level. Both fused MODWT null kernels are timed where they apply.
    """
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape, dtype=np.float32)
    if axis == "hidden":
        w = pywt.Wavelet("db4")
        level = pywt.dwt_max_level(shape[1], w.dec_len)
        n = shape[1]

        def plain():
            return cse_kernels.scale_entropy(cse_kernels.dwt_energies(x, w.dec_lo, w.dec_hi, level))

        def null(perms, method=None):
            return cse_kernels.dwt_null_moments(x, w.dec_lo, w.dec_hi, level, perms)

        methods = [None]
    else:
        w = pywt.Wavelet("haar")
        level = 3
        n = shape[1]

        def plain():
            return cse_kernels.scale_entropy(cse_kernels.modwt_energies(x, w.dec_lo, w.dec_hi, level))

        def null(perms, method=None):
            return _numba.modwt_null_moments(x, w.dec_lo, w.dec_hi, level, perms, method=method)

        methods = ["gram", "direct"]
    perms = np.argsort(rng.random((p_high, n)), axis=1)
    base = median_time(plain, repeats)["median_s"]
    rows = [{"contender": "cse_kernels, no null", "P": 0, "median_s": base}]
    for method in methods:
        label = "cse_kernels null" + (f" ({method} kernel)" if method else "")
        low = median_time(lambda: null(perms[:p_low], method), repeats)["median_s"]
        high = median_time(lambda: null(perms, method), max(1, repeats // 2))["median_s"]
        per = (high - low) / (p_high - p_low)
        rows.append({"contender": label, "P": p_low, "median_s": low})
        rows.append({"contender": label, "P": p_high, "median_s": high})
        rows.append({"contender": label + ", per permutation", "P": 1, "median_s": per,
                     "share": f"{per / base:.1%} of no null", "at P=100": f"{(low + (100 - p_low) * per) / base:.1f}x"})
    for r in rows:
        r["ms"] = round(1e3 * r["median_s"], 2)
    return rows


def bench_gram(shape, repeats):
    """The Gram path on the depth axis: G from the updates, energies from G, beside the MODWT."""
    x = np.random.default_rng(3).standard_normal(shape, dtype=np.float32)
    gram = cse_kernels.gram_matrices(x)
    rows = [{"contender": "modwt_energies (haar J=3, reflect, unit)", **median_time(
        lambda: cse_kernels.modwt_energies(x, *_filters("haar"), 3), repeats)},
        {"contender": "gram_matrices (raw G, float64)", **median_time(lambda: cse_kernels.gram_matrices(x), repeats)}]
    for wavelet, level in (("haar", 3), ("db4", 4)):
        rows.append({"contender": f"gram_energies ({wavelet} J={level}, reflect, unit)", **median_time(
            lambda: cse_kernels.gram_energies(gram, *_filters(wavelet), level), repeats)})
        rows.append({"contender": f"modwt_energies ({wavelet} J={level}, reflect, unit)", **median_time(
            lambda: cse_kernels.modwt_energies(x, *_filters(wavelet), level), repeats)})
    rows.append({"contender": "read-once floor x.sum()", **median_time(lambda: x.sum(), repeats)})
    for r in rows:
        r["ms"] = round(1e3 * r["median_s"], 2)
    return rows


def _filters(name):
    w = pywt.Wavelet(name)
    return np.asarray(w.dec_lo), np.asarray(w.dec_hi)


def alternating_medians(contenders: dict, repeats: int) -> dict:
    """Median time of each callable, timed call by call in turn (round r runs every contender once)."""
    for fn in contenders.values():
        fn()  # warm-up (compilation excluded)
    times = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: {"median_s": statistics.median(t), "times_s": t} for name, t in times.items()}


def bench_baseline(baseline_dir, shapes, repeats) -> dict:
    """The depth rows of the kernels in `baseline_dir` and of these, side by side (see the module docstring)."""
    sys.path.insert(0, baseline_dir)
    old = importlib.import_module("cse_kernels_old")
    old_numba = importlib.import_module("cse_kernels_old._numba")
    out = {}
    lo, hi = _filters("haar")
    for shape in shapes:
        x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
        perms = np.argsort(np.random.default_rng(2).random((34, shape[1])), axis=1)
        contenders = {}
        for label, mod, nb in (("before", old, old_numba), ("after", cse_kernels, _numba)):
            contenders[f"{label}: modwt_energies (reflect, unit)"] = (
                lambda mod=mod: mod.scale_entropy(mod.modwt_energies(x, lo, hi, 3, "reflect", True)))
            for p in (2, 34):
                contenders[f"{label}: depth null, gram kernel, P={p}"] = (
                    lambda nb=nb, p=p: nb.modwt_null_moments(x, lo, hi, 3, perms[:p], method="gram"))
        rows = alternating_medians(contenders, repeats)
        for label in ("before", "after"):
            low = rows[f"{label}: depth null, gram kernel, P=2"]["median_s"]
            high = rows[f"{label}: depth null, gram kernel, P=34"]["median_s"]
            rows[f"{label}: depth null, per permutation"] = {"median_s": (high - low) / 32}
        for name, r in rows.items():
            r["ms"] = round(1e3 * r["median_s"], 2)
        out[str(shape)] = rows
    return out


def compile_times() -> dict:
    """First-call times on tiny inputs (compilation into a fresh cache) of each kernel."""
    out = {}
    x3 = np.ones((2, 8, 4), dtype=np.float32)
    x2 = np.ones((2, 16), dtype=np.float32)
    haar, db4 = pywt.Wavelet("haar"), pywt.Wavelet("db4")
    calls = {
        "modwt_energies": lambda: cse_kernels.modwt_energies(x3, haar.dec_lo, haar.dec_hi, 3, "reflect", True),
        "dwt_energies": lambda: cse_kernels.dwt_energies(x2, db4.dec_lo, db4.dec_hi, 1),
        "dwt_null_entropy": lambda: cse_kernels.dwt_null_entropy(
            x2, db4.dec_lo, db4.dec_hi, 1, np.tile(np.arange(16), (2, 1))
        ),
        "dwt_null_moments": lambda: cse_kernels.dwt_null_moments(
            x2, db4.dec_lo, db4.dec_hi, 1, np.tile(np.arange(16), (2, 1))
        ),
        "modwt_null_moments (gram)": lambda: _numba.modwt_null_moments(
            x3, haar.dec_lo, haar.dec_hi, 3, np.tile(np.arange(8), (2, 1)), method="gram"
        ),
        "modwt_null_moments (direct)": lambda: _numba.modwt_null_moments(
            x3, haar.dec_lo, haar.dec_hi, 3, np.tile(np.arange(8), (2, 1)), method="direct"
        ),
        "gram_matrices": lambda: cse_kernels.gram_matrices(x3),
        "gram_energies": lambda: cse_kernels.gram_energies(np.ones((2, 8, 8)), haar.dec_lo, haar.dec_hi, 3),
        "scale_entropy": lambda: cse_kernels.scale_entropy(np.ones((3, 4))),
    }
    for name, fn in calls.items():
        start = time.perf_counter()
        fn()
        out[name] = time.perf_counter() - start
    return out


def with_ratios(rows, ours_name):
    ours = next(r["median_s"] for r in rows if r["contender"] == ours_name)
    floor = next(r["median_s"] for r in rows if r["contender"].startswith("read-once"))
    for r in rows:
        r["ms"] = round(1e3 * r["median_s"], 1)
        r["vs ours"] = f"{r['median_s'] / ours:.1f}x" if r["contender"] != ours_name else "1.0x"
        r["vs floor"] = f"{r['median_s'] / floor:.1f}x"
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller arrays (a smoke test, not the README figures)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--slow-repeats", type=int, default=3)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "kernels.json"))
    parser.add_argument("--only", choices=["kernels", "null", "gram"],
                        help="run one part (the JSON keeps the others' entries)")
    parser.add_argument("--baseline", metavar="DIR",
                        help="also time the depth rows of the kernels in DIR/cse_kernels_old side by side")
    args = parser.parse_args(argv)

    scale = 8 if args.quick else 1
    depth_shapes = [(4096 // scale, 32, 576), (1024 // scale, 24, 2880)]
    hidden_shapes = [(61440 // scale, 576), (24576 // scale, 2880)]
    null_cases = [("depth", (4096 // scale, 32, 576), 2, 34), ("token", (30, 512 // scale, 576), 2, 34),
                  ("hidden", (7680 // scale, 576), 2, 10)]
    previous = {}
    if args.only and os.path.exists(args.out):
        with open(args.out) as f:
            previous = json.load(f)
    results = {**previous, "machine": machine(), "compile_s": compile_times(), "quick": args.quick,
               "load_average": os.getloadavg()}
    print(f"machine: {results['machine']['cpu']}, {results['machine']['cores']} cores, load average "
          f"{', '.join(f'{v:.2f}' for v in results['load_average'])}; first-call compile times (s): "
          + ", ".join(f"{k} {v:.2f}" for k, v in results["compile_s"].items()))
    if args.baseline:
        results["baseline"] = {"dir": args.baseline, **bench_baseline(args.baseline, depth_shapes, args.repeats)}
        for shape, rows in results["baseline"].items():
            if shape != "dir":
                print(f"\nbefore/after, depth axis, haar J=3, float32 {shape}, alternating call by call")
                print(table([{"contender": k, **v} for k, v in rows.items()], ["contender", "ms"]))
    if args.only in (None, "gram"):
        results["gram"] = {}
        for shape in depth_shapes:
            rows = bench_gram(shape, args.repeats)
            results["gram"][str(shape)] = rows
            print(f"\nGram path, depth axis, float32 {shape} (tokens, layers, d_model)")
            print(table(rows, ["contender", "ms"]))
    if args.only == "gram":
        save(results, args.out)
        print(f"\nsaved {args.out}")
        return
    if args.only != "kernels":
        results["null"] = {}
        for axis, shape, p_low, p_high in null_cases:
            rows = bench_null(axis, shape, p_low, p_high, args.repeats)
            results["null"][f"{axis} {shape}"] = rows
            print(f"\n{axis} null, float32 {shape}")
            print(table(rows, ["contender", "P", "ms", "share", "at P=100"]))
    if args.only == "null":
        save(results, args.out)
        print(f"\nsaved {args.out}")
        return
    results["depth"], results["hidden"] = {}, {}
    columns = ["contender", "ms", "vs ours", "vs floor"]
    for shape in depth_shapes:
        rows = with_ratios(bench_depth(shape, args.repeats, args.slow_repeats), "cse_kernels (reflect, unit)")
        results["depth"][str(shape)] = rows
        print(f"\ndepth axis, haar J=3, float32 {shape} (tokens, layers, d_model)")
        print(table(rows, columns))
    for shape in hidden_shapes:
        rows = with_ratios(bench_hidden(shape, args.repeats, args.slow_repeats), "cse_kernels")
        results["hidden"][str(shape)] = rows
        print(f"\nhidden axis, db4 max level, float32 {shape} (cells, d_model)")
        print(table(rows, columns))
    save(results, args.out)
    print(f"\nsaved {args.out}")


if __name__ == "__main__":
    main()
