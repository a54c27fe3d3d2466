"""An image scraper for sphinx-gallery: the figures an example holds in its variables.

`cse.plot` draws on matplotlib's Agg canvas without pyplot (no global state), so the
default scraper, which asks pyplot for its open figures, sees none. This one saves every
`matplotlib.figure.Figure` that a code block left in the example's namespace, once.
"""

from __future__ import annotations

from matplotlib.figure import Figure

_SEEN: dict[str, set[int]] = {}  # per example file: the figures already saved


def figure_scraper(block, block_vars, gallery_conf):
    """Save the new figures of one code block and return their reST (sphinx-gallery scraper API).

    Parameters
    ----------
    block : tuple
        The code block (sphinx-gallery's).
    block_vars : dict
        Its variables; ``example_globals`` holds the example's namespace.
    gallery_conf : dict
        The gallery configuration.

    Returns
    -------
    str
        The reST of the images ("" when the block drew nothing new).
    """
    from sphinx_gallery.scrapers import figure_rst

    seen = _SEEN.setdefault(str(block_vars.get("src_file", "")), set())
    namespace = block_vars["example_globals"]
    figures = []
    for value in list(namespace.values()):
        candidates = value if isinstance(value, (list, tuple)) else [value]
        for fig in candidates:
            if isinstance(fig, Figure) and id(fig) not in seen:
                seen.add(id(fig))
                figures.append(fig)
    paths = []
    for fig, path in zip(figures, block_vars["image_path_iterator"]):
        fig.savefig(path, dpi=110, bbox_inches="tight")
        paths.append(path)
    return figure_rst(paths, gallery_conf["src_dir"])
