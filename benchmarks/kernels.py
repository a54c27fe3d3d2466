"""Kernel benchmarks: cse_kernels against the NumPy reference, PyWavelets and ptwt (CPU).

Every contender runs on the same float32 arrays in one process; each time is the median
of several repetitions after a warm-up call, so Numba compilation is excluded from the
medians and reported separately (measured in a fresh cache directory). The read-once
floor is one pass over the same input (``x.sum()``).

Run: ``.venv/bin/python benchmarks/kernels.py [--quick] [--out benchmarks/results/kernels.json]``
"""

from __future__ import annotations

import argparse
import os
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
from cse_kernels import reference  # noqa: E402


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
    args = parser.parse_args(argv)

    scale = 8 if args.quick else 1
    depth_shapes = [(4096 // scale, 32, 576), (1024 // scale, 24, 2880)]
    hidden_shapes = [(61440 // scale, 576), (24576 // scale, 2880)]
    results = {"machine": machine(), "compile_s": compile_times(), "depth": {}, "hidden": {}, "quick": args.quick}
    print(f"machine: {results['machine']['cpu']}, {results['machine']['cores']} cores; "
          f"first-call compile times (s): " + ", ".join(f"{k} {v:.2f}" for k, v in results["compile_s"].items()))
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
