"""Type-check the installed `pausable.*` namespace with mypy (configured in pyproject.toml).

Why a symlink tree: setuptools' `package-dir` maps `pausable.server` to server/,
`pausable.workers` to workers/, `pausable.clients` to clients/python/,
`pausable.cli` to cli/ and `pausable.v1` to proto/pausable/v1/. mypy finds modules
by folder layout only: it neither reads `package-dir` nor runs the editable
install's import hook, and `mypy_path` or `--explicit-package-bases` name a module
after the folders it sits in (server/engine.py would be `server.engine`, not
`pausable.server.engine`). So this script lays out the namespace as Python
imports it, in .typecheck/pausable/ (git-ignored, rebuilt on every run): one link
per file of pausable/ and one link per mapped sub-package folder. It runs
`mypy -p pausable` from .typecheck/ (so the real pausable/ folder, which has no
server/ etc., is not on mypy's search path) and prints the findings with the
real paths (server/engine.py, not .typecheck/pausable/server/engine.py).

Usage: python scripts/typecheck.py [extra mypy arguments]; exits with mypy's code.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / ".typecheck"


def package_dirs() -> dict[str, str]:
    """The `[tool.setuptools.package-dir]` table: dotted package name -> folder."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        return dict(tomllib.load(f)["tool"]["setuptools"]["package-dir"])


def build_tree() -> Path:
    """Lay out .typecheck/pausable/ as the installed package; return the top package's folder."""
    mapping = package_dirs()
    shutil.rmtree(TREE / "pausable", ignore_errors=True)
    top = TREE / "pausable"
    top.mkdir(parents=True)
    (TREE / ".gitignore").write_text("*\n")
    for entry in sorted((ROOT / mapping["pausable"]).iterdir()):
        if entry.suffix in {".py", ".pyi"} or entry.name == "py.typed":
            (top / entry.name).symlink_to(os.path.relpath(entry, top))
    for name, folder in sorted(mapping.items()):
        if name == "pausable":
            continue
        parts = name.split(".")
        if parts[0] != "pausable" or len(parts) != 2:
            raise SystemExit(f"scripts/typecheck.py: cannot lay out package-dir entry {name!r}")
        link = top / parts[1]
        link.symlink_to(os.path.relpath(ROOT / folder, top), target_is_directory=True)
    return top


PATH_AT_LINE_START = re.compile(r"^(pausable/[^:\s]+)(?=:)")


def real_path(match: re.Match[str]) -> str:
    """pausable/server/engine.py (as mypy saw it) -> server/engine.py (the file in the repository)."""
    return os.path.relpath(os.path.realpath(TREE / match.group(1)), ROOT)


def main() -> int:
    build_tree()
    command = [
        sys.executable,
        "-m",
        "mypy",
        "--config-file",
        str(ROOT / "pyproject.toml"),
        "--cache-dir",
        str(TREE / ".mypy_cache"),
        "-p",
        "pausable",
        *sys.argv[1:],
    ]
    result = subprocess.run(command, check=False, cwd=TREE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in result.stdout.splitlines():
        print(PATH_AT_LINE_START.sub(real_path, line))
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
