"""Domain Zoo: train, adapt, evaluate and publish domain-specific foundation models.

Importing `zoo` is cheap on purpose (no torch, no transformers): the CLI must start fast.

Import names and folders (one distribution, one import package; see README "Layout"):
    zoo                  zoo/
    zoo.domains          domains/
    zoo.adapters         adapters/
    zoo.benchmarks       benchmarks/
    zoo.tokenizer_recipes tokenizers/   (YAML only)
An installed wheel lays these out under zoo/. Run from a source checkout (`python -m zoo`, `accelerate
launch -m zoo` in the repo root), the local zoo/ shadows the installed one, so `_SourceFolders` maps
the sub-packages to their folders beside it.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from pathlib import Path

__version__ = "0.1.0"

_ROOT = Path(__file__).resolve().parent.parent
_FOLDERS = {"zoo.domains": "domains", "zoo.adapters": "adapters", "zoo.benchmarks": "benchmarks"}


class _SourceFolders(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):  # type: ignore[no-untyped-def]
        folder = _FOLDERS.get(name)
        if folder is None:
            return None
        init = _ROOT / folder / "__init__.py"
        return importlib.util.spec_from_file_location(
            name, init, submodule_search_locations=[str(init.parent)]
        )


if (_ROOT / "pyproject.toml").is_file() and not (Path(__file__).parent / "adapters").is_dir():
    sys.meta_path.append(_SourceFolders())
