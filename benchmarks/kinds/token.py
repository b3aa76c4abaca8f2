"""Token classification (NER): IOB2 word tags, scored as strict entity-level F1 (seqeval, conlleval/BLURB).

Each word's label sits on its first sub-token; the other pieces are IGNOREd by the loss and not predicted.
Words cut off by `max_length` count as predicted 'O' so truncation cannot inflate the score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from zoo.benchmarks.kinds.base import BaseKind, model_inputs, pad, pad_inputs
from zoo.benchmarks.tasks import TOKEN_FORMATS, TokenExample, iob_labels
from zoo.domain import IGNORE, TaskSpec

if TYPE_CHECKING:
    import torch


class TokenClassification(BaseKind):
    name = "token_classification"
    head = "token_classification"
    metrics = ("f1", "precision", "recall", "accuracy", "f1/*", "precision/*", "recall/*", "support/*")
    metric_options: frozenset[str] = frozenset()
    example_type = TokenExample
    formats = TOKEN_FORMATS
    metric_module = "seqeval_f1"

    def label_space(self, examples: Sequence[Any]) -> list[str]:
        self.check(examples, "label_space")
        return iob_labels(examples)

    def encode(
        self, tokenizer: Any, examples: Sequence[Any], labels: Sequence[str], max_length: int
    ) -> list[dict[str, Any]]:
        self.check(examples, "encode")
        label2id = {label: i for i, label in enumerate(labels)}
        words = [list(e.tokens) for e in examples]
        enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
        # A word the tokenizer turns into nothing (e.g. a lone zero-width joiner) would shift every later
        # prediction of its sentence: it is read as the unknown token instead.
        blank = {i: _wordless(enc.word_ids(i)) for i in range(len(examples))}
        if any(blank.values()) and tokenizer.unk_token is not None:
            for i, missing in blank.items():
                words[i] = [tokenizer.unk_token if j in missing else w for j, w in enumerate(words[i])]
            enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
        rows = []
        for i, e in enumerate(examples):
            ids, prev = [], None
            for w in enc.word_ids(i):
                ids.append(label2id[e.tags[w]] if w is not None and w != prev else IGNORE)
                prev = w
            rows.append({"input_ids": enc["input_ids"][i], "labels": ids})
        return rows

    def collate(self, rows: Sequence[Mapping[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
        batch = pad_inputs([r["input_ids"] for r in rows], pad_id)
        batch["labels"] = pad([r["labels"] for r in rows], IGNORE, batch["input_ids"].shape[1])
        return batch

    def loss(self, model: Any, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        import torch.nn.functional as F

        logits = model(**model_inputs(batch)).logits.float()
        labels = batch["labels"]
        total = F.cross_entropy(
            logits.view(-1, logits.shape[-1]), labels.view(-1), ignore_index=IGNORE, reduction="sum"
        )
        return total, (labels != IGNORE).sum()

    def predict(self, model: Any, batch: Mapping[str, torch.Tensor]) -> list[list[int]]:
        """The predicted tag id of each scored (word-first) sub-token, per row."""
        import torch

        with torch.no_grad():
            pred = model(**model_inputs(batch)).logits.argmax(-1)
        keep = batch["labels"] != IGNORE
        return [pred[i][keep[i]].tolist() for i in range(pred.shape[0])]

    def score(
        self, task: TaskSpec, examples: Sequence[Any], predictions: Sequence[Any], labels: Sequence[str]
    ) -> dict[str, float]:
        self.check(examples, "score")
        predicted = [
            [labels[p] for p in ps] + ["O"] * (len(e.tags) - len(ps)) for e, ps in zip(examples, predictions)
        ]
        return self.compute(task, predicted, [list(e.tags) for e in examples])

    def missing_hint(self, missing: Sequence[str]) -> str:
        return "; per-type metrics name an entity type of the data, e.g. f1/Disease for B-Disease tags"


def _wordless(word_ids: Sequence[int | None]) -> set[int]:
    """Words before the last encoded one that got no sub-token (truncation only cuts the end)."""
    seen = {w for w in word_ids if w is not None}
    return set(range(max(seen) + 1)) - seen if seen else set()


KIND = TokenClassification()
