"""Quiet runs: one switch that silences every progress bar, those of libraries included.

`cse compute -q` (and any command with a quiet flag) calls `silence_progress_bars`
before it imports torch or transformers. Progress bars come from three places: the
package's own tqdm bar (``progress=False``), transformers' bars (weight loading; they
honour ``HF_HUB_DISABLE_PROGRESS_BARS`` and `transformers.utils.logging.disable_progress_bar`)
and plain ``tqdm`` bars inside libraries, such as transformers' GGUF conversion bar
("Converting and de-quantizing GGUF tensors..."), which only ``TQDM_DISABLE`` reaches.
"""

from __future__ import annotations

import functools
import os
import sys


def silence_progress_bars() -> None:
    """Silence every progress bar of this process and of the processes it starts.

    Sets ``TQDM_DISABLE=1`` and ``HF_HUB_DISABLE_PROGRESS_BARS=1`` (read when tqdm and
    huggingface_hub are imported, here and in Dask workers started later), makes
    ``disable=True`` the default of tqdm bars if tqdm is already imported, and calls
    transformers' ``disable_progress_bar`` if transformers is already imported.
    Warnings and errors are not affected.
    """
    os.environ["TQDM_DISABLE"] = "1"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    std = sys.modules.get("tqdm.std")
    if std is not None and not getattr(std.tqdm.__init__, "_cse_quiet", False):
        quiet_init = functools.partialmethod(std.tqdm.__init__, disable=True)
        quiet_init._cse_quiet = True
        std.tqdm.__init__ = quiet_init
    hub = sys.modules.get("huggingface_hub.utils")
    if hub is not None:
        hub.disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
