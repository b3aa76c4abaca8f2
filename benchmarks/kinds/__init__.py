"""Task kinds: one registry entry per kind of benchmark task (entry-point group `zoo.task_kinds`).

A `TaskKind` owns everything that differs between kinds — the example type its loaders produce, the
model head, encoding, collation, the training loss, prediction and the metric — so the fine-tuning
recipe (`zoo.finetune`) has no if/else on a kind. A `TaskSpec.type` names its kind; `check_task`
validates a spec's metrics and metric options against the kind when a domain loads (not after training).

Built-ins (registered in pyproject.toml like any third-party kind): token_classification,
sequence_classification, multi_label_classification, multiple_choice. They derive from `base.BaseKind`,
which adds what the protocol leaves open: `example_type` (what its loaders produce; anything else is a
UserError), `formats` (format name → loader, from `zoo.benchmarks.tasks`) and `metric_module` (the local
`evaluate` module in `zoo.benchmarks.metrics` that scores it, fed `task.metric_options`).
Kind modules import torch inside their methods only: checking a domain's tasks must stay cheap.
A kind may also define `context_extra(task, folder, labels) -> dict` (outside the protocol: optional), which
the fine-tuning recipe merges into the methods' `ctx.extra` (node_classification: the graph).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from zoo.domain import TaskSpec
from zoo.errors import UserError
from zoo.registry import Registry

if TYPE_CHECKING:
    import torch


@runtime_checkable
class TaskKind(Protocol):
    name: str
    head: str
    """The model-family head this kind trains (`zoo.families`): 'token_classification', … ."""
    metrics: tuple[str, ...]
    """Metric names a TaskSpec of this kind may list (first = the usual primary); 'f1/*' admits every
    'f1/<TYPE>' (per-entity-type scores)."""
    metric_options: frozenset[str]
    """Keys a TaskSpec may set in `metric_options` (e.g. pos_label, average)."""

    def load(self, task: TaskSpec, data_dir: Path, split: str) -> list[Any]:
        """The examples of one split, read from the task's files (UserError naming file:line if malformed)."""
        ...

    def label_space(self, examples: Sequence[Any]) -> list[str]:
        """All labels, in a stable order (index = class id)."""
        ...

    def head_config(self, labels: Sequence[str]) -> dict[str, Any]:
        """Extra HF config kwargs for the head: num_labels, id2label, label2id, problem_type, …"""
        ...

    def encode(
        self, tokenizer: Any, examples: Sequence[Any], labels: Sequence[str], max_length: int
    ) -> list[dict[str, Any]]:
        """Examples → rows (plain Python lists), ready for `collate`."""
        ...

    def collate(self, rows: Sequence[Mapping[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
        """Rows → a padded batch: the model's inputs plus 'labels'."""
        ...

    def loss(self, model: Any, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(sum of per-item losses, number of items) so the engine can normalise over the global batch."""
        ...

    def predict(self, model: Any, batch: Mapping[str, torch.Tensor]) -> list[Any]:
        """One prediction per row of `batch`: a class id, or the list of class scores whose arg-max is the
        class (sequence classification, so `score` can rank: ROC-AUC); for token tasks the list of ids of
        the scored (word-first) sub-tokens; for multi-label tasks the tuple of predicted label ids."""
        ...

    def score(
        self, task: TaskSpec, examples: Sequence[Any], predictions: Sequence[Any], labels: Sequence[str]
    ) -> dict[str, float]:
        """The task's metrics (exactly `task.metrics`) from predictions in the order of `examples`."""
        ...


def _check_kind(obj: Any) -> TaskKind:
    if isinstance(obj, type):
        obj = obj()
    if not isinstance(obj, TaskKind):
        raise TypeError(f"{obj!r} does not implement zoo.benchmarks.kinds.TaskKind")
    return obj


TASK_KINDS: Registry[TaskKind] = Registry("zoo.task_kinds", "task kind", _check_kind, "KIND")


def get_kind(name: str) -> TaskKind:
    return TASK_KINDS.get(name)


def check_task(task: TaskSpec) -> None:
    """A UserError when `task` names an unknown kind, a metric or a metric option its kind lacks."""
    from zoo.errors import did_you_mean

    try:
        kind = get_kind(task.type)
    except UserError as err:
        raise UserError(f"task '{task.name}': {err}") from None
    for metric in task.metrics:
        if metric not in kind.metrics and metric.split("/", 1)[0] + "/*" not in kind.metrics:
            raise UserError(
                f"task '{task.name}' lists metric '{metric}' that task kind '{kind.name}' does not compute"
                f"{did_you_mean(metric, kind.metrics)}"
            )
    for key in task.metric_options:
        if key not in kind.metric_options:
            raise UserError(
                f"task '{task.name}': unknown metric option '{key}' for task kind '{kind.name}'"
                f"{did_you_mean(key, kind.metric_options) if kind.metric_options else ' (it takes none)'}"
            )
