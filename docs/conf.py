"""Sphinx configuration of the cse documentation (built by ``scripts/docs.sh``; no network)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("agg")

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
for path in (ROOT, ROOT / "kernels", ROOT / "studies", DOCS):
    sys.path.insert(0, str(path))

# Offline: models come from the installed wheels, never from the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# The gallery's shared results (the example computed once) live in the build folder.
os.environ.setdefault("CSE_GALLERY_DATA", str(DOCS / "_build" / "gallery-data"))
Path(os.environ["CSE_GALLERY_DATA"]).mkdir(parents=True, exist_ok=True)

import cse  # noqa: E402
from gallery_scraper import figure_scraper  # noqa: E402

project = "cse"
author = "the cse authors"
copyright = "2026, the cse authors"
release = version = cse.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_click",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
templates_path = ["_templates"]
exclude_patterns = ["_build", "examples/README.rst", "Thumbs.db", ".DS_Store"]
root_doc = "index"
default_role = "py:obj"
nitpicky = False
suppress_warnings = ["myst.header", "config.cache"]
myst_heading_anchors = 3

# -- autodoc / autosummary / numpydoc ---------------------------------------------
autosummary_generate = True
autodoc_typehints = "none"
autodoc_default_options = {"members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_attributes_as_param_list = False
# MNE-Python's check set (tests/test_docstrings.py runs the same checks on every public name).
numpydoc_validation_checks = {"all", "GL01", "EX01", "EX02", "ES01", "SA01", "SA04", "YD01", "RT02"}
numpydoc_validation_exclude = {r"\.__\w+__$", r"^cse\.stats\.[A-Z_]+$"}  # constants: tuples

# -- sphinx-gallery ----------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "image_scrapers": (figure_scraper,),
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "show_memory": False,
    "plot_gallery": "True",
}

# -- HTML ----------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"cse {version}"
html_theme_options = {
    "navbar_end": ["theme-switcher", "navbar-icon-links"],
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
    "secondary_sidebar_items": ["page-toc"],
}
html_show_sourcelink = False
