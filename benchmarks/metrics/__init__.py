"""The zoo's metrics: local `evaluate` modules shipped as package data next to this file.

`evaluate.load("accuracy")` fetches a script from the Hub, so it fails offline; `evaluate.load` on a
local script path does not touch the network. It copies the script into evaluate's dynamic-module cache
(`HF_MODULES_CACHE`, default ~/.cache/huggingface/modules) and imports it from there; the per-module
scratch data goes under `$ZOO_HOME/cache/evaluate`, and `keep_in_memory=True` keeps predictions off disk.

    from zoo.benchmarks.metrics import compute
    compute("seqeval_f1", [["B-Disease", "O"]], [["B-Disease", "O"]])  # {"f1": 1.0, ...}
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import UserError, did_you_mean

if TYPE_CHECKING:  # evaluate pulls in datasets/pyarrow: keep it out of `zoo --help`
    import evaluate

MODULES: tuple[str, ...] = ("seqeval_f1", "classification", "multi_label")
"""The metric scripts in this folder (file stems). Which one a task uses is its task kind's business
(`zoo.benchmarks.kinds`), and so is which metric names a TaskSpec may list."""


def module_path(name: str) -> Path:
    """Path of the metric script `name`.py inside the installed package (works from a wheel too)."""
    path = Path(str(resources.files(__name__).joinpath(f"{name}.py")))
    if name not in MODULES or not path.is_file():
        raise UserError(f"unknown metric module '{name}'{did_you_mean(name, MODULES)}")
    return path


@functools.cache
def load_metric(name: str) -> evaluate.EvaluationModule:
    """`evaluate.load` of the local module `name` (one of MODULES), offline-safe."""
    import evaluate

    from zoo.leaderboard import zoo_home

    cache_dir = zoo_home() / "cache" / "evaluate"
    # evaluate copies the script into a new folder of its module cache and imports it from there; the
    # import system's cached folder listings predate that folder when another metric was loaded first.
    importlib.invalidate_caches()
    try:
        return evaluate.load(str(module_path(name)), cache_dir=str(cache_dir), keep_in_memory=True)
    except PermissionError as e:
        raise UserError(
            f"cannot write a cache for metric '{name}' ({e.filename}); point HF_MODULES_CACHE and ZOO_HOME "
            "at writable folders"
        ) from None


def compute(
    module: str, predictions: Sequence[Any], references: Sequence[Any], **kwargs: Any
) -> dict[str, float]:
    """All metrics of the metric module `module` as plain floats.

    seqeval_f1: tag-string sequences per sentence (entity-level scores, strict IOB2). classification: one
    label per example, names or ids (ids are compared as strings). multi_label: a list of label names per
    example. `kwargs` go to the module (e.g. average="binary", pos_label="malicious", labels=[...]).
    """
    if len(predictions) != len(references) or not references:
        raise ValueError(f"got {len(predictions)} predictions for {len(references)} references (need ≥ 1)")
    if module == "classification":
        predictions, references = [str(p) for p in predictions], [str(r) for r in references]
    result = load_metric(module).compute(predictions=list(predictions), references=list(references), **kwargs)
    return {k: float(v) for k, v in (result or {}).items()}
