"""Shared fixtures: the real default model (loaded once, slow tests only) and the metaphor data."""

import os
import signal
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# A shell starts a background job (`pytest &`, nohup, some CI runners) with SIGINT ignored,
# and the command-line processes these tests start would inherit that, so the tests of
# Ctrl-C would time out. A handled signal is reset to its default in a child, so handling
# it here gives every child Python's own KeyboardInterrupt, as in a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

METAPHOR_DIR = Path(os.environ.get("CSE_METAPHOR_DATA", Path(__file__).resolve().parents[2] / "shared/data/metaphor"))


@pytest.fixture(scope="session")
def default_model():
    """(model, tokenizer) of the default SmolLM2-135M; ~20 s to load, so only for slow tests."""
    from cse import load_model

    return load_model(None, device="cpu")


@pytest.fixture(scope="session")
def metaphor_dir():
    """Folder of the MOH-X and VUA CSVs; tests that need it skip cleanly without it."""
    if not (METAPHOR_DIR / "moh-x.csv").is_file():
        pytest.skip(f"metaphor data not found at {METAPHOR_DIR} (set CSE_METAPHOR_DATA)")
    return METAPHOR_DIR
