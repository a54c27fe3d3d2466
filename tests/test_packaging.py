"""The package as users get it (issue 24): no top-level name of the checkout shadows a
dependency, the wheel holds every module and runs without the source tree, one version.

The wheel test is slow (it builds the wheel and runs the example on the default model from a
fresh environment); the rest runs in seconds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {"cse": ROOT / "cse", "cse_kernels": ROOT / "kernels" / "cse_kernels",
           "cse_studies": ROOT / "studies" / "cse_studies"}


def _run(args, cwd, timeout=600, env=None):
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    environment.pop("PYTHONPATH", None)
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=environment)


def test_python_started_in_the_checkout_imports_the_real_kernels_package():
    """transformers imports Hugging Face's `kernels`; nothing at the repository root may stand in for it."""
    pytest.importorskip("kernels")  # installed with transformers >= 5.25
    script = ("import transformers.models.gpt2.modeling_gpt2, transformers.models.llama.modeling_llama, kernels, cse\n"
              "import cse_kernels, cse_studies\n"
              "from importlib.metadata import distribution\n"
              "print(kernels.__file__); print(distribution('kernels').locate_file('kernels/__init__.py'))\n"
              "print(hasattr(kernels, 'get_kernel'))")
    proc = _run([sys.executable, "-c", script], cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    where, installed, has_api = proc.stdout.split()
    assert Path(where) == Path(installed) and not Path(where).is_relative_to(ROOT / "kernels"), where
    assert has_api == "True"


def test_no_top_level_name_of_the_checkout_is_importable_as_a_dependency():
    """The repository root holds no importable package or module but `cse` (kernels/ and studies/ are source roots)."""
    importable = sorted(p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    importable += sorted(p.stem for p in ROOT.glob("*.py"))
    assert importable == ["cse"], importable


@pytest.mark.parametrize("folder", ["benchmarks", "scripts", "tests"])
def test_no_script_or_helper_module_is_named_like_an_installed_distribution(folder):
    """Running a script puts its folder first on sys.path: a module there named like a dependency shadows it."""
    from importlib.metadata import distributions

    installed = set()
    for dist in distributions():
        top = dist.read_text("top_level.txt") or ""
        installed.update(line.strip() for line in top.splitlines() if line.strip())
        installed.add(dist.metadata["Name"].lower().replace("-", "_"))
    installed.discard("cse")
    clashes = sorted(p.name for p in (ROOT / folder).glob("*.py") if p.stem in installed)
    assert not clashes, f"{folder}/ modules named like installed packages: {clashes}"


def test_version_comes_from_the_package_metadata():
    from importlib.metadata import version

    import cse

    assert cse.__version__ == version("cse")
    proc = _run([sys.executable, "-m", "cse", "--version"], cwd=ROOT)
    assert proc.returncode == 0 and cse.__version__ in proc.stdout, proc.stdout + proc.stderr


def test_a_failed_import_is_named_as_such_not_as_a_missing_model(tmp_path):
    """A shadowing module makes transformers' model import fail: the error names the import and where it was found."""
    from saved_models import save_tiny_model

    model = save_tiny_model(tmp_path / "tiny", n_layers=4)
    shadow = tmp_path / "cwd"
    (shadow / "kernels").mkdir(parents=True)
    (shadow / "kernels" / "__init__.py").write_text("")
    script = ("import cse, sys\n"
              "try:\n"
              f"    cse.load_model({str(model)!r}, device='cpu')\n"
              "except cse.CSEInputError as error:\n"
              "    print(error); sys.exit(3)\n")
    proc = _run([sys.executable, "-c", script], cwd=shadow)
    assert proc.returncode == 3, proc.stdout + proc.stderr[-2000:]
    line = proc.stdout.strip()
    assert "\n" not in line and "import failed" in line and "offline" not in line, line
    assert str(shadow / "kernels") in line and "shadow" in line, line


def _source_modules() -> set[str]:
    names = set()
    for package, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            names.add("/".join((package, *path.relative_to(folder).parts)))
    return names


def _copy_source(dest: Path) -> Path:
    """The files a build reads, without results, caches or build leftovers in the checkout."""
    ignore = shutil.ignore_patterns("__pycache__", "results", "*.egg-info", "build")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    for name in ("cse", "kernels", "studies"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel built from this checkout (setuptools from the test environment, no network)."""
    pytest.importorskip("setuptools")
    source = _copy_source(tmp_path_factory.mktemp("source"))
    dist = tmp_path_factory.mktemp("dist")
    proc = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                 "-w", str(dist), str(source)], cwd=dist)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    (built,) = dist.glob("cse-*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_holds_every_module_of_the_three_packages(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    in_wheel = {n for n in names if n.endswith(".py") and n.split("/")[0] in SOURCES}
    assert in_wheel == _source_modules(), (sorted(_source_modules() - in_wheel), sorted(in_wheel - _source_modules()))
    assert any(n.startswith("cse/data/") and n.endswith(".csv") for n in names)  # the example's data
    metadata = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    with zipfile.ZipFile(wheel) as archive:
        assert "cse_studies.cli:study_command" in archive.read(metadata).decode()


@pytest.mark.slow
def test_the_wheel_runs_without_the_source_tree(wheel, tmp_path):
    """Installed in a fresh environment whose only other packages are the test environment's
    dependencies (not its editable cse), from a folder outside the checkout: the example,
    remeasure, plot and study --help run."""
    env_dir = tmp_path / "venv"
    proc = _run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    python = env_dir / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                     cwd=tmp_path).stdout.strip())
    # The dependencies come from the test environment; a path in a .pth file does not run that
    # folder's own .pth files, so its editable cse (a meta-path finder) stays out.
    (site / "zz_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    proc = _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                 str(wheel)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    cse = env_dir / "bin" / "cse"
    work = tmp_path / "work"
    work.mkdir()

    proc = _run([str(python), "-c", "import cse, cse.capture, cse.plot, cse.remeasuring, cse_kernels, cse_studies; "
                 "print(cse.__file__); print(cse.__version__)"], cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    where, version = proc.stdout.split()
    assert Path(where).is_relative_to(site) and not Path(where).is_relative_to(ROOT), where
    assert version != "0+unknown"

    proc = _run([str(cse), "compute", "--example", "--save", "gram", "-q", "-o", "cse-example.nc"], cwd=work, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert (work / "cse-example.nc").is_file() and (work / "cse-example.png").is_file()

    proc = _run([str(cse), "remeasure", "cse-example.nc", "-o", "db2.nc", "--wavelet", "db2", "--level", "2"],
                cwd=work)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert (work / "db2.nc").is_file()

    proc = _run([str(cse), "plot", "db2.nc", "--by", "label", "--where", "word == target_idx", "--no-test",
                 "-o", "profile.png"], cwd=work)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert (work / "profile.png").stat().st_size > 1000

    proc = _run([str(cse), "study", "--help"], cwd=work)
    assert proc.returncode == 0 and "metaphor" in proc.stdout, proc.stdout + proc.stderr[-2000:]


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_")))
def test_benchmarks_start_from_their_own_folder(script):
    """A script's folder comes first on sys.path: from there each benchmark starts and prints its help."""
    proc = _run([sys.executable, script, "--help"], cwd=ROOT / "benchmarks", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "usage" in proc.stdout.lower()


def test_transformers_models_import_with_the_benchmarks_folder_first_on_the_path():
    """What a benchmark script sees (its folder first on sys.path): transformers' model modules,
    which import Hugging Face's kernels, import."""
    proc = _run([sys.executable, "-c", "import transformers.models.llama.modeling_llama"], cwd=ROOT / "benchmarks",
                timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
