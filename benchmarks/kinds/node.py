"""Node classification on a text-attributed graph: an example is a node (its text and label); the split comes
from the node table, and nodes without a label stay in the graph unlabelled (transductive).

A model that reads the graph (GraphAdapter) says so with `reads_nodes = True` and gets each row's node index
as `node_index`; any other model (a sequence-classification head fine-tuned by full/LoRA) classifies the node
text alone. The graph itself reaches the methods through `context_extra`: `ctx.extra["graph"]` (the
`zoo.text_graph.TextGraph`) and `ctx.extra["data"]` (its PyG `Data`, with masks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.benchmarks.kinds.base import model_inputs
from zoo.benchmarks.kinds.sequence import SequenceClassification
from zoo.benchmarks.tasks import TextExample
from zoo.domain import TaskSpec
from zoo.errors import UserError
from zoo.text_graph import load_graph

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class NodeExample(TextExample):
    """A labelled node: its text, its label and its index in the graph's node order."""

    node: int = -1


def _load_tag(task: TaskSpec, folder: Path, split: str) -> list[NodeExample]:
    graph = load_graph(folder, task.options)
    nodes = graph.split_nodes(split)
    if not any(graph.splits):
        raise UserError(f"{graph.path}: no labelled node; node classification needs labels in the node table")
    return [NodeExample(graph.texts[i], None, str(graph.labels[i]), graph.sources[i], i) for i in nodes]


def _inputs(model: Any, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    inputs = model_inputs(batch)
    if not getattr(model, "reads_nodes", False):
        inputs.pop("node_index", None)
    return inputs


class NodeClassification(SequenceClassification):
    name = "node_classification"
    head = "sequence_classification"
    metrics = ("accuracy", "macro_f1", "micro_f1", "mcc")
    metric_options = frozenset({"average"})
    example_type = NodeExample
    formats = {"tag": None}  # every layout is read by `zoo.text_graph` (task options pick files and columns)

    def load(self, task: TaskSpec, data_dir: Path, split: str) -> list[Any]:
        if ":" in task.format:
            return super().load(task, data_dir, split)
        if task.format not in self.formats:
            raise UserError(
                f"task '{task.name}' has unknown format '{task.format}' (task kind '{self.name}' reads "
                "tag: a node table and an edge list), or give a 'pkg.module:func' loader"
            )
        folder = Path(data_dir)
        if not folder.is_dir():
            raise UserError(f"data directory {folder} does not exist; --data DIR must hold the graph files")
        if (folder / task.name).is_dir():
            folder = folder / task.name
        examples = _load_tag(task, folder, split)
        if split != "train" or examples:
            self.check(examples, f"task '{task.name}' (format '{task.format}')")
            return examples
        raise UserError(f"task '{task.name}': no labelled node in the train split of {folder}")

    def context_extra(self, task: TaskSpec, data_dir: Path, labels: Sequence[str]) -> dict[str, Any]:
        """The whole graph for the methods that read it."""
        from zoo.text_graph import to_pyg

        folder = Path(data_dir) / task.name if (Path(data_dir) / task.name).is_dir() else Path(data_dir)
        graph = load_graph(folder, task.options)
        return {"graph": graph, "data": to_pyg(graph, labels)}

    def encode(
        self, tokenizer: Any, examples: Sequence[Any], labels: Sequence[str], max_length: int
    ) -> list[dict[str, Any]]:
        rows = super().encode(tokenizer, examples, labels, max_length)
        return [{**row, "node_index": e.node} for row, e in zip(rows, examples, strict=True)]

    def collate(self, rows: Sequence[Mapping[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
        import torch

        batch = super().collate(rows, pad_id)
        batch["node_index"] = torch.tensor([r["node_index"] for r in rows], dtype=torch.long)
        return batch

    def loss(self, model: Any, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        import torch
        import torch.nn.functional as F

        logits = model(**_inputs(model, batch)).logits.float()
        labels = batch["labels"]
        return F.cross_entropy(logits, labels, reduction="sum"), torch.tensor(
            labels.numel(), device=labels.device
        )

    def predict(self, model: Any, batch: Mapping[str, torch.Tensor]) -> list[list[float]]:
        import torch

        with torch.no_grad():
            return model(**_inputs(model, batch)).logits.float().softmax(-1).tolist()


KIND = NodeClassification()
