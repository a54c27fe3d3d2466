"""Open the built documentation in headless Chromium and check that it renders (issue 25).

For the home page, the API reference and the first gallery page: a screenshot that is not
blank (some share of non-background pixels), no console error or failed resource load in
Chromium's log, and an image on the gallery page. Then the search page, run with a query,
must load the search index and list results. Each Chromium run gets a fresh profile and no
network. Exit status 0 when every check passes, 1 otherwise, one line per failure.

Usage: ``python scripts/docs_check.py docs/_build/html``
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         "--disable-dev-shm-usage", "--window-size=1280,900", "--virtual-time-budget=8000",
         "--enable-logging=stderr", "--v=0", "--allow-file-access-from-files"]
PAGES = ["index.html", "api.html", "auto_examples/plot_01_example_profile.html"]
# Console errors, uncaught exceptions and failed loads in Chromium's log (not its own startup noise).
ERROR = re.compile(r"CONSOLE.*(Error|Uncaught|Failed)|Failed to load resource|net::ERR_FILE_NOT_FOUND", re.I)


def chromium(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run headless Chromium once with a fresh profile.

    Parameters
    ----------
    *args : str
        Extra arguments (``--screenshot=...``, ``--dump-dom``) and the URL.
    timeout : float
        Seconds before the run is killed.

    Returns
    -------
    subprocess.CompletedProcess
        With ``stdout`` (a dumped DOM) and ``stderr`` (the log) as text.
    """
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        sys.exit("docs_check: chromium not found (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout)


def blank_share(png: Path) -> float:
    """Share of the screenshot's pixels that have the most common colour (1.0: blank).

    Parameters
    ----------
    png : Path
        The screenshot.

    Returns
    -------
    float
    """
    from PIL import Image

    image = Image.open(png).convert("RGB")
    colours = image.getcolors(maxcolors=image.width * image.height)
    return max(count for count, _ in colours) / (image.width * image.height)


def check_page(html: Path, shots: Path) -> list[str]:
    """Render one page: screenshot not blank, no console errors, images where expected.

    Parameters
    ----------
    html : Path
        The page.
    shots : Path
        Folder for the screenshot.

    Returns
    -------
    list of str
        The failures (empty when the page passes).
    """
    if not html.is_file():
        return [f"{html}: missing"]
    png = shots / (html.stem + ".png")
    run = chromium(f"--screenshot={png}", html.as_uri())
    failures = [f"{html.name}: {line.strip()[:200]}" for line in run.stderr.splitlines() if ERROR.search(line)]
    if not png.is_file():
        return failures + [f"{html.name}: no screenshot (chromium exit {run.returncode})"]
    share = blank_share(png)
    if share > 0.97:
        failures.append(f"{html.name}: screenshot is blank ({share:.1%} one colour)")
    if "auto_examples" in html.parts and "<img" not in html.read_text():
        failures.append(f"{html.name}: the gallery page shows no figure")
    print(f"docs_check: {html.name}: rendered, {1 - share:.0%} of the screenshot drawn, "
          f"{len(failures)} console error(s)")
    return failures


def check_search(root: Path) -> list[str]:
    """The search page loads the index and finds the API's main function.

    Parameters
    ----------
    root : Path
        The built site.

    Returns
    -------
    list of str
        The failures.
    """
    run = chromium("--dump-dom", root.joinpath("search.html").as_uri() + "?q=conditional")
    found = re.findall(r'<li[^>]*>\s*<a[^>]*href="[^"]*generated/[^"]*"', run.stdout)
    if not found:
        return ["search.html?q=conditional: no results (the search index did not load)"]
    print(f"docs_check: search: the index loaded, {len(found)} API result(s) for 'conditional'")
    return []


def main(argv: list[str]) -> int:
    """Check the site whose root folder is ``argv[0]``.

    Parameters
    ----------
    argv : list of str
        ``[html_root]``.

    Returns
    -------
    int
        0 when every check passes.
    """
    root = Path(argv[0] if argv else "docs/_build/html").resolve()
    with tempfile.TemporaryDirectory() as shots:
        failures = [f for page in PAGES for f in check_page(root / page, Path(shots))]
    failures += check_search(root)
    for failure in failures:
        print(f"docs_check: FAIL {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
