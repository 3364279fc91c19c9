"""Provenance of a run: the commit, the versions of the packages, the checksums of the inputs.

Used by :mod:`respine_nb.runner` (a run's ``manifest.json``) and :mod:`respine_nb.report` (the
report of the default run, which has no manifest file). Nothing here writes a file.
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from . import __version__, config, io

__all__ = ["PACKAGES", "git_commit", "versions", "input_checksums", "data_manifest"]

PACKAGES = (
    "pandas",
    "numpy",
    "scipy",
    "statsmodels",
    "lifelines",
    "pingouin",
    "tableone",
    "pandera",
    "matplotlib",
    "seaborn",
    "papermill",
    "nbclient",
    "ipykernel",
)


def git_commit() -> str:
    """The commit the package runs from.

    Returns
    -------
    str
        The full hash of ``HEAD``, with ``-dirty`` appended when tracked files differ from it;
        ``unknown`` outside a git work tree or without git.
    """
    try:
        out = subprocess.run(["git", "-C", str(config.ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            ["git", "-C", str(config.ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions(packages=PACKAGES) -> dict:
    """Versions of Python, of this package and of the packages the analyses depend on.

    Parameters
    ----------
    packages : sequence of str
        Distribution names to report.

    Returns
    -------
    dict
        ``python``, ``respine_nb`` and one entry per package (``absent`` when not installed).
    """
    out = {"python": sys.version.split()[0], "respine_nb": __version__}
    for p in packages:
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = "absent"
    return out


def input_checksums(folder: Path, pattern: str = "*.csv") -> dict:
    """sha256 of every input file of a dataset folder.

    Parameters
    ----------
    folder : Path
        The dataset folder.
    pattern : str
        Which files (glob pattern).

    Returns
    -------
    dict
        File name -> hex sha256, sorted by name.
    """
    return {p.name: io.sha256_file(p) for p in sorted(Path(folder).glob(pattern))}


def data_manifest(folder: Path, sha256: dict | None = None) -> dict:
    """The generator facts of a dataset folder (empty for data without MANIFEST.json).

    Parameters
    ----------
    folder : Path
        The dataset folder.
    sha256 : dict, optional
        Input file name -> sha256 of the loaded data; when given, ``files_match`` says whether
        they are exactly the manifest's files.

    Returns
    -------
    dict
        ``synthetic``, ``generator_version``, ``seed``, ``parameters`` (and ``files_match``).
    """
    # session (the notebooks' side) holds the matching rule; imported here, not at the top,
    # because it pulls in plots and matplotlib, which the command line does not otherwise need
    from .session import manifest_matches

    m = io.read_manifest(folder)
    if not m:
        return {}
    out = {k: m.get(k) for k in ("synthetic", "generator_version", "seed", "parameters")}
    if sha256 is not None:
        out["files_match"] = manifest_matches(m, sha256)
    return out
