"""Multiple choice: a context and k candidates, one of them right (CaseHOLD: a citing prompt, 5 holdings).

Each (context, candidate) pair is encoded like a text pair; the family's multiple-choice head scores every
candidate and a softmax over the k scores is trained with cross entropy. Scored as CaseHOLD reports it:
accuracy (= micro-F1) and macro-F1 over the choice positions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from zoo.benchmarks.kinds.base import BaseKind, class_loss, class_predict, pad_inputs
from zoo.benchmarks.tasks import CHOICE_FORMATS, MultipleChoiceExample
from zoo.domain import TaskSpec
from zoo.errors import UserError

if TYPE_CHECKING:
    import torch


class MultipleChoice(BaseKind):
    name = "multiple_choice"
    head = "multiple_choice"
    metrics = ("accuracy", "macro_f1", "micro_f1")
    metric_options: frozenset[str] = frozenset()
    example_type = MultipleChoiceExample
    formats = CHOICE_FORMATS
    metric_module = "classification"

    def label_space(self, examples: Sequence[Any]) -> list[str]:
        """The choice positions '0' … 'k-1'; every example must have the same k (one (B, k, L) batch)."""
        self.check(examples, "label_space")
        counts = sorted({len(e.choices) for e in examples})
        if len(counts) != 1:
            raise UserError(
                f"multiple-choice examples have {' and '.join(map(str, counts))} choices; every example of a "
                "task needs the same number (check the task's choice columns)"
            )
        return [str(i) for i in range(counts[0])]

    def head_config(self, labels: Sequence[str]) -> dict[str, Any]:
        """Nothing: a multiple-choice head scores each candidate with one output, whatever k is."""
        return {}

    def encode(
        self, tokenizer: Any, examples: Sequence[Any], labels: Sequence[str], max_length: int
    ) -> list[dict[str, Any]]:
        self.check(examples, "encode")
        k = len(labels)
        contexts = [e.context for e in examples for _ in range(k)]
        choices = [c for e in examples for c in e.choices]
        enc = tokenizer(contexts, choices, truncation=True, max_length=max_length)
        ids = enc["input_ids"]
        return [
            {"input_ids": ids[i * k : (i + 1) * k], "labels": int(e.label)} for i, e in enumerate(examples)
        ]

    def collate(self, rows: Sequence[Mapping[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
        """(batch, k, width) inputs, every candidate padded to the longest in the batch."""
        import torch

        k = len(rows[0]["input_ids"])
        flat = pad_inputs([seq for r in rows for seq in r["input_ids"]], pad_id)
        batch = {name: t.view(len(rows), k, -1) for name, t in flat.items()}
        batch["labels"] = torch.tensor([r["labels"] for r in rows], dtype=torch.long)
        return batch

    def loss(self, model: Any, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return class_loss(model, batch)

    def predict(self, model: Any, batch: Mapping[str, torch.Tensor]) -> list[int]:
        return class_predict(model, batch)

    def score(
        self, task: TaskSpec, examples: Sequence[Any], predictions: Sequence[Any], labels: Sequence[str]
    ) -> dict[str, float]:
        self.check(examples, "score")
        return self.compute(task, [str(p) for p in predictions], [e.label for e in examples])


KIND = MultipleChoice()
