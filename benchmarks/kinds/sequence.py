"""Sequence classification: one label per text or text pair (PubMedQA, GUE, binary unfair-clause detection).

Pairs are encoded as one sequence `[CLS] text [SEP] pair [SEP]`; token_type_ids are left out (all 0), so
the same rows fit BERT and Llama alike and match the zoo's own pretraining, which uses segment 0 only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from zoo.benchmarks.kinds.base import BaseKind, class_loss, class_scores, pad_inputs
from zoo.benchmarks.tasks import TEXT_FORMATS, TextExample, sorted_labels
from zoo.domain import TaskSpec

if TYPE_CHECKING:
    import torch


def encode_texts(tokenizer: Any, texts: Sequence[str], pairs: Sequence[str | None], max_length: int) -> Any:
    """Tokenise texts, with their pairs when any example has one (a missing pair reads as '')."""
    has_pair = any(p is not None for p in pairs)
    second = [p or "" for p in pairs] if has_pair else None
    return tokenizer(list(texts), second, truncation=True, max_length=max_length)


class SequenceClassification(BaseKind):
    name = "sequence_classification"
    head = "sequence_classification"
    metrics = ("accuracy", "macro_f1", "micro_f1", "mcc", "f1", "roc_auc")
    metric_options = frozenset({"average", "pos_label"})
    example_type = TextExample
    formats = TEXT_FORMATS
    metric_module = "classification"

    def label_space(self, examples: Sequence[Any]) -> list[str]:
        self.check(examples, "label_space")
        return sorted_labels(e.label for e in examples)

    def encode(
        self, tokenizer: Any, examples: Sequence[Any], labels: Sequence[str], max_length: int
    ) -> list[dict[str, Any]]:
        self.check(examples, "encode")
        label2id = {label: i for i, label in enumerate(labels)}
        enc = encode_texts(tokenizer, [e.text for e in examples], [e.text_pair for e in examples], max_length)
        return [
            {"input_ids": enc["input_ids"][i], "labels": label2id[e.label]} for i, e in enumerate(examples)
        ]

    def collate(self, rows: Sequence[Mapping[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
        import torch

        batch = pad_inputs([r["input_ids"] for r in rows], pad_id)
        batch["labels"] = torch.tensor([r["labels"] for r in rows], dtype=torch.long)
        return batch

    def loss(self, model: Any, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return class_loss(model, batch)

    def predict(self, model: Any, batch: Mapping[str, torch.Tensor]) -> list[list[float]]:
        """Each row's class probabilities (the class is their arg-max), so `score` can rank by them."""
        return class_scores(model, batch)

    def score(
        self, task: TaskSpec, examples: Sequence[Any], predictions: Sequence[Any], labels: Sequence[str]
    ) -> dict[str, float]:
        """`predictions` are class probabilities (from `predict`) or bare class ids; ROC-AUC needs the former."""
        self.check(examples, "score")
        scored = all(isinstance(p, (list, tuple)) for p in predictions)
        ids = [max(range(len(p)), key=p.__getitem__) if scored else p for p in predictions]
        extra = {"scores": [list(p) for p in predictions], "classes": list(labels)} if scored else {}
        return self.compute(task, [labels[i] for i in ids], [e.label for e in examples], **extra)

    def missing_hint(self, missing: Sequence[str]) -> str:
        if "roc_auc" in missing:
            return (
                "; 'roc_auc' needs class scores and both classes among the references (binary: the class "
                "pos_label, or '1'; more classes: every class present)"
            )
        if "f1" in missing:
            return (
                "; 'f1' of labels other than 0/1 needs the metric option pos_label (binary F1 of that class) "
                "or average (macro, micro, weighted)"
            )
        return ""


KIND = SequenceClassification()
