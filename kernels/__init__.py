"""Numeric kernels of cse (import name `cse_kernels`): NumPy reference, Numba kernels, torch twin."""
