"""The output folder of a study: it replaces only files it wrote itself.

A study folder holds a marker file, `MARKER`, listing every file the studies wrote
there with its SHA-256. A study writes into a new folder, an empty one, or one that
carries the marker; it may replace a file only when the marker lists it with the
same hash (the file is the study's own and nobody changed it). Anything else (a
folder without the marker that holds files, a file the study did not write or that
was edited since, a link) is refused with one line, before any work is done where
possible. Every file appears atomically (written beside its target, then renamed).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import cse
import cse.io
from cse.errors import CSEInputError
from cse.hashing import file_sha256

MARKER = ".cse-study"


class StudyFolder:
    """A folder that a study owns (see the module docstring).

    Parameters
    ----------
    path : str or Path
        The folder; created when missing (its parent must exist).
    study : str
        Name of the study, recorded in the marker.
    inputs : sequence of str or Path
        Files the study reads; the folder may not hold any of them.
    option : str
        The option named in messages (``'--out'``, ``'--cache'``).

    Raises
    ------
    CSEInputError
        The path is not a folder, its parent does not exist, it holds an input, or
        it is a folder with files and without the marker.
    """

    def __init__(self, path, *, study: str, inputs=(), option: str = "--out"):
        self.path = Path(path)
        self.option = option
        path = self.path
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            raise CSEInputError(f"Invalid value for {option!r}: {str(path)!r} exists and is not a folder; "
                                f"choose a new or empty folder")
        self._check_inputs(inputs)
        if not path.exists():
            if not path.parent.is_dir():
                raise CSEInputError(f"Invalid value for {option!r}: the parent folder {str(path.parent)!r} does not "
                                    f"exist; create it first")
            path.mkdir()
        marker = path / MARKER
        if marker.exists():
            self._manifest()  # readable?
        elif any(path.iterdir()):
            raise CSEInputError(f"Invalid value for {option!r}: {str(path)!r} holds files and was not written by "
                                f"cse study (no {MARKER} file); choose a new or empty folder")
        manifest = self._manifest() if marker.exists() else {"cse_study": cse.__version__, "studies": [], "files": {}}
        if study not in manifest["studies"]:
            manifest["studies"].append(study)
            self._save_manifest(manifest)

    # ------------------------------------------------------------------ manifest

    def _manifest(self) -> dict:
        marker = self.path / MARKER
        try:
            manifest = json.loads(marker.read_text(encoding="utf-8"))
            if not (isinstance(manifest, dict) and isinstance(manifest.get("files"), dict)):
                raise ValueError("no file list")
        except (OSError, ValueError) as exc:
            raise CSEInputError(f"Invalid value for {self.option!r}: {str(marker)!r} is not a cse study marker "
                                f"({exc}); choose a new or empty folder") from None
        manifest.setdefault("studies", [])
        return manifest

    def _save_manifest(self, manifest: dict) -> None:
        self._replace(MARKER, lambda tmp: Path(tmp).write_text(json.dumps(manifest, indent=1, sort_keys=True),
                                                               encoding="utf-8"))

    def _check_inputs(self, inputs) -> None:
        root = self.path.resolve()
        for item in inputs:
            item = Path(item).resolve()
            if item == root or root in item.parents:
                raise CSEInputError(f"Invalid value for {self.option!r}: {str(self.path)!r} holds the input "
                                    f"{str(item)!r}; write the study to another folder (never into the data folder)")

    # ------------------------------------------------------------------ writing

    def owns(self, relative) -> bool:
        """True if `relative` is a file this folder's marker lists with its current hash."""
        target = self.path / relative
        recorded = self._manifest()["files"].get(Path(relative).as_posix())
        return bool(recorded) and target.is_file() and not target.is_symlink() and file_sha256(target) == recorded

    def target(self, relative) -> Path:
        """The path of `relative` inside the folder, checked for writing (parents created).

        Raises
        ------
        CSEInputError
            `relative` leaves the folder, a parent is not a folder, or the target
            exists and is not a file this study wrote and left unchanged.
        """
        relative = Path(relative)
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise ValueError(f"study files are relative paths inside the folder, got {str(relative)!r}")
        target = self.path / relative
        for parent in reversed(target.parents):
            if parent == self.path or self.path not in parent.parents:
                continue
            if parent.is_symlink() or (parent.exists() and not parent.is_dir()):
                raise CSEInputError(f"Invalid value for {self.option!r}: {str(parent)!r} is not a folder that cse "
                                    f"study can write into; move it away or choose another folder")
            parent.mkdir(exist_ok=True)
        if (target.exists() or target.is_symlink()) and not self.owns(relative):
            raise CSEInputError(f"Invalid value for {self.option!r}: {str(target)!r} exists and was not written by "
                                f"cse study (or was changed since); it is never replaced: move it away or choose "
                                f"another folder")
        return target

    def _replace(self, relative, write) -> Path:
        target = self.path / relative
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
        os.close(fd)
        os.unlink(tmp)  # the writer creates it: the user's umask decides its mode, not mkstemp's 0600
        try:
            write(tmp)
            os.replace(tmp, target)
        except BaseException:
            cse.io.remove_path(tmp)
            raise
        return target

    def _record(self, relative) -> None:
        manifest = self._manifest()
        manifest["files"][Path(relative).as_posix()] = file_sha256(self.path / relative)
        self._save_manifest(manifest)

    def write_text(self, relative, text: str) -> Path:
        """Write a text file (UTF-8)."""
        self.target(relative)
        path = self._replace(relative, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        self._record(relative)
        return path

    def write_csv(self, relative, frame, **kwargs) -> Path:
        """Write a pandas DataFrame as CSV (`kwargs` for `DataFrame.to_csv`)."""
        self.target(relative)
        path = self._replace(relative, lambda tmp: frame.to_csv(tmp, **kwargs))
        self._record(relative)
        return path

    def save_figure(self, relative, figure, dpi: int = 120) -> Path:
        """Save a matplotlib Figure as PNG."""
        self.target(relative)
        path = self._replace(relative, lambda tmp: figure.savefig(tmp, dpi=dpi, format="png"))
        self._record(relative)
        return path

    def write_result(self, ds, relative) -> Path:
        """Write a Dataset with `cse.io.write_result` (netCDF4 for ``.nc``)."""
        target = self.target(relative)
        cse.io.write_result(ds, target, overwrite=target.exists())
        self._record(relative)
        return target


def open_study(study: str, *, data=None, corpora=None, out=None, limit=None, seed: int = 0,
               depth_null_permutations: int = 0, log=None) -> tuple:
    """The common first step of a study: check the options, read the corpora, claim the output folder.

    Parameters
    ----------
    study : str
        Name of the study (recorded in the folder's marker).
    data, corpora
        ``--data`` folder and/or a list of `CorpusSpec` (`corpora` wins when given).
    out : str or Path
        The output folder.
    limit : int, optional
        First `limit` data rows of each corpus.
    seed, depth_null_permutations : int
        Checked here; the order null is dropped (0) when this cse has none.
    log : callable, optional

    Returns
    -------
    corpora : list of Corpus
    folder : StudyFolder
    depth_null_permutations : int

    Raises
    ------
    CSEInputError
        A bad option, corpus or output folder, before any model is loaded.
    """
    from cse.params import check_int

    from .corpora import corpus_specs
    from .frames import read_corpus

    check_int("seed", seed, minimum=0)
    check_int("depth_null_permutations", depth_null_permutations, minimum=0)
    if limit is not None:
        check_int("limit", limit, minimum=1)
    if out is None:
        raise CSEInputError("Missing output folder: give --out DIR")
    specs = corpora if corpora is not None else corpus_specs(data)
    corpora = [read_corpus(spec, limit=limit) for spec in specs]
    folder = StudyFolder(out, study=study, inputs=[c.path for c in corpora])
    return corpora, folder, depth_null_permutations
