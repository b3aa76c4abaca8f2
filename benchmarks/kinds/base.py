"""What the built-in task kinds share: loading through their formats, padding, label maps, the
single-label loss/predict pair, and turning a metric module's result into exactly a task's metrics.

torch and the metric modules are imported inside the functions: a domain's tasks are checked against
their kinds when it loads (`zoo domains`), which must not pay for torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.benchmarks.tasks import Loader, check_examples, read_split
from zoo.domain import TaskSpec
from zoo.errors import UserError

if TYPE_CHECKING:
    import torch


class BaseKind:
    """Defaults for a kind whose loaders live in `formats` and produce `example_type`s."""

    name: str
    head: str
    metrics: tuple[str, ...]
    metric_options: frozenset[str] = frozenset()
    example_type: type
    formats: Mapping[str, Loader]
    metric_module: str
    """The local `evaluate` module (zoo.benchmarks.metrics) that scores this kind."""

    def load(self, task: TaskSpec, data_dir: Path, split: str) -> list[Any]:
        return read_split(task, data_dir, split, self.formats, self.example_type, self.name)

    def head_config(self, labels: Sequence[str]) -> dict[str, Any]:
        return {
            "num_labels": len(labels),
            "id2label": dict(enumerate(labels)),
            "label2id": {label: i for i, label in enumerate(labels)},
        }

    def check(self, examples: Sequence[Any], source: str) -> None:
        check_examples(examples, self.example_type, self.name, source)

    def compute(
        self, task: TaskSpec, predictions: Sequence[Any], references: Sequence[Any], **kwargs: Any
    ) -> dict[str, float]:
        """The metric module's scores, narrowed to exactly `task.metrics` (a UserError for one it lacks)."""
        from zoo.benchmarks.metrics import compute

        result = compute(self.metric_module, predictions, references, **{**task.metric_options, **kwargs})
        missing = [m for m in task.metrics if m not in result]
        if missing:
            raise UserError(
                f"task '{task.name}': metric(s) {', '.join(missing)} cannot be computed on this data "
                f"(computed: {', '.join(sorted(result))}){self.missing_hint(missing)}"
            )
        return {m: float(result[m]) for m in task.metrics}

    def missing_hint(self, missing: Sequence[str]) -> str:
        return ""


def model_inputs(batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The batch without 'labels': the kinds compute their loss themselves (in float32, summed)."""
    return {k: v for k, v in batch.items() if k != "labels"}


def pad(seqs: Sequence[Sequence[int]], value: int, width: int | None = None) -> torch.Tensor:
    """Right-padded (len(seqs), width) long tensor; width defaults to the longest sequence."""
    import torch

    width = max(len(s) for s in seqs) if width is None else width
    out = torch.full((len(seqs), width), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out


def pad_inputs(
    seqs: Sequence[Sequence[int]], pad_id: int, width: int | None = None
) -> dict[str, torch.Tensor]:
    """input_ids padded with `pad_id` and the matching attention_mask."""
    ids = pad(seqs, pad_id, width)
    mask = pad([[1] * len(s) for s in seqs], 0, ids.shape[1])
    return {"input_ids": ids, "attention_mask": mask}


def class_loss(model: Any, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross entropy summed over the examples of a one-class-per-example batch, and their count."""
    import torch
    import torch.nn.functional as F

    logits = model(**model_inputs(batch)).logits.float()  # float32 CE even under bf16 autocast
    labels = batch["labels"]
    total = F.cross_entropy(logits.view(labels.numel(), -1), labels.view(-1), reduction="sum")
    return total, torch.tensor(labels.numel(), device=labels.device)


def class_scores(model: Any, batch: Mapping[str, torch.Tensor]) -> list[list[float]]:
    """Each example's class probabilities (softmax over the logits, in float32): the arg-max is the
    predicted class, and the scores feed ranking metrics such as ROC-AUC."""
    import torch

    with torch.no_grad():
        return model(**model_inputs(batch)).logits.float().softmax(-1).tolist()


def class_predict(model: Any, batch: Mapping[str, torch.Tensor]) -> list[int]:
    """The arg-max class id of each example."""
    import torch

    with torch.no_grad():
        return model(**model_inputs(batch)).logits.argmax(-1).tolist()
