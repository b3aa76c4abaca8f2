"""Multi-label classification: a set of labels per text (pair), possibly empty (LexGLUE UNFAIR-ToS, ECtHR).

One sigmoid per label on the family's sequence-classification head (HF problem_type
"multi_label_classification"); a label is predicted when its logit > 0 (sigmoid > 0.5, as LexGLUE).
Scored as LexGLUE does: micro/macro-F1 with a 'no label' column, plus the binary 'has any label' F1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from zoo.benchmarks.kinds.base import BaseKind, model_inputs, pad_inputs
from zoo.benchmarks.kinds.sequence import encode_texts
from zoo.benchmarks.tasks import MULTI_LABEL_FORMATS, MultiLabelExample, sorted_labels
from zoo.domain import TaskSpec
from zoo.errors import UserError

if TYPE_CHECKING:
    import torch


class MultiLabelClassification(BaseKind):
    name = "multi_label_classification"
    head = "sequence_classification"
    metrics = ("micro_f1", "macro_f1", "any_label_f1")
    metric_options = frozenset({"none_class"})
    example_type = MultiLabelExample
    formats = MULTI_LABEL_FORMATS
    metric_module = "multi_label"

    def label_space(self, examples: Sequence[Any]) -> list[str]:
        self.check(examples, "label_space")
        labels = sorted_labels(label for e in examples for label in e.labels)
        if not labels:
            raise UserError("no example of this multi-label task has a label; check the task's labels_column")
        return labels

    def head_config(self, labels: Sequence[str]) -> dict[str, Any]:
        return {**super().head_config(labels), "problem_type": "multi_label_classification"}

    def encode(
        self, tokenizer: Any, examples: Sequence[Any], labels: Sequence[str], max_length: int
    ) -> list[dict[str, Any]]:
        self.check(examples, "encode")
        label2id = {label: i for i, label in enumerate(labels)}
        enc = encode_texts(tokenizer, [e.text for e in examples], [e.text_pair for e in examples], max_length)
        rows = []
        for i, e in enumerate(examples):
            hot = [0.0] * len(labels)
            for label in e.labels:
                hot[label2id[label]] = 1.0
            rows.append({"input_ids": enc["input_ids"][i], "labels": hot})
        return rows

    def collate(self, rows: Sequence[Mapping[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
        import torch

        batch = pad_inputs([r["input_ids"] for r in rows], pad_id)
        batch["labels"] = torch.tensor([r["labels"] for r in rows], dtype=torch.float32)
        return batch

    def loss(self, model: Any, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """BCE-with-logits summed over every example × label element; count = elements (HF's mean)."""
        import torch
        import torch.nn.functional as F

        logits = model(**model_inputs(batch)).logits.float()
        labels = batch["labels"].float()
        total = F.binary_cross_entropy_with_logits(logits, labels, reduction="sum")
        return total, torch.tensor(labels.numel(), device=labels.device)

    def predict(self, model: Any, batch: Mapping[str, torch.Tensor]) -> list[tuple[int, ...]]:
        """The ids of the labels whose logit is positive, per row (an empty tuple: no label)."""
        import torch

        with torch.no_grad():
            hot = model(**model_inputs(batch)).logits > 0
        return [tuple(torch.nonzero(row).flatten().tolist()) for row in hot]

    def score(
        self, task: TaskSpec, examples: Sequence[Any], predictions: Sequence[Any], labels: Sequence[str]
    ) -> dict[str, float]:
        self.check(examples, "score")
        predicted = [[labels[i] for i in ids] for ids in predictions]
        return self.compute(task, predicted, [list(e.labels) for e in examples], labels=list(labels))


KIND = MultiLabelClassification()
