"""The zoo's metrics: local `evaluate` modules shipped as package data next to this file.

`evaluate.load("accuracy")` fetches a script from the Hub, so it fails offline; `evaluate.load` on a
local script path does not touch the network. It copies the script into evaluate's dynamic-module cache
(`HF_MODULES_CACHE`, default ~/.cache/huggingface/modules) and imports it from there; the per-module
scratch data goes under `$ZOO_HOME/cache/evaluate`, and `keep_in_memory=True` keeps predictions off disk.

    from zoo.benchmarks.metrics import compute
    compute("token_classification", [["B-Disease", "O"]], [["B-Disease", "O"]])  # {"f1": 1.0, ...}
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.domain import TaskSpec
from zoo.errors import UserError, did_you_mean

if TYPE_CHECKING:  # evaluate pulls in datasets/pyarrow: keep it out of `zoo --help`
    import evaluate

# task type -> module file stem in this folder
MODULE_FOR_TASK_TYPE: dict[str, str] = {
    "token_classification": "seqeval_f1",
    "sequence_classification": "classification",
    "multiple_choice": "classification",
    "node_classification": "classification",
}

# Metric names a TaskSpec may list, per module. seqeval also gives per-type "f1/TYPE" etc.
METRICS: dict[str, tuple[str, ...]] = {
    "seqeval_f1": ("f1", "precision", "recall", "accuracy"),
    "classification": ("accuracy", "macro_f1", "micro_f1", "mcc", "f1"),
}
_PER_TYPE_PREFIXES = ("f1/", "precision/", "recall/", "support/")


def module_path(name: str) -> Path:
    """Path of the metric script `name`.py inside the installed package (works from a wheel too)."""
    path = Path(str(resources.files(__name__).joinpath(f"{name}.py")))
    if name not in METRICS or not path.is_file():
        raise UserError(f"unknown metric module '{name}'{did_you_mean(name, METRICS)}")
    return path


@functools.cache
def load_metric(name: str) -> evaluate.EvaluationModule:
    """`evaluate.load` of the local module `name` ('seqeval_f1' or 'classification'), offline-safe."""
    import evaluate

    from zoo.leaderboard import zoo_home

    cache_dir = zoo_home() / "cache" / "evaluate"
    try:
        return evaluate.load(str(module_path(name)), cache_dir=str(cache_dir), keep_in_memory=True)
    except PermissionError as e:
        raise UserError(
            f"cannot write a cache for metric '{name}' ({e.filename}); point HF_MODULES_CACHE and ZOO_HOME "
            "at writable folders"
        ) from None


def compute(
    task_type: str, predictions: Sequence[Any], references: Sequence[Any], **kwargs: Any
) -> dict[str, float]:
    """All metrics of `task_type` as plain floats.

    Token classification: predictions/references are tag-string sequences per sentence (entity-level
    scores, strict IOB2). Other types: one label per example, names or ids (ids are compared as strings).
    `kwargs` go to the module (e.g. average="binary", pos_label="malicious").
    """
    if task_type not in MODULE_FOR_TASK_TYPE:
        raise UserError(
            f"no metrics for task type '{task_type}'{did_you_mean(task_type, MODULE_FOR_TASK_TYPE)}"
        )
    if len(predictions) != len(references) or not references:
        raise ValueError(f"got {len(predictions)} predictions for {len(references)} references (need ≥ 1)")
    module = MODULE_FOR_TASK_TYPE[task_type]
    if module == "classification":
        predictions, references = [str(p) for p in predictions], [str(r) for r in references]
    result = load_metric(module).compute(predictions=list(predictions), references=list(references), **kwargs)
    return {k: float(v) for k, v in (result or {}).items()}


def check_metrics(task: TaskSpec) -> None:
    """Raise a UserError when `task.metrics` names a metric its task type does not compute."""
    module = MODULE_FOR_TASK_TYPE.get(task.type)
    if module is None:
        raise UserError(f"task '{task.name}': no metrics for task type '{task.type}'")
    known = METRICS[module]
    for m in task.metrics:
        per_type = module == "seqeval_f1" and m.startswith(_PER_TYPE_PREFIXES)
        if m not in known and not per_type:
            raise UserError(f"task '{task.name}' lists unknown metric '{m}'{did_you_mean(m, known)}")
