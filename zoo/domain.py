"""What a domain plugin declares. Pure data: importing a domain module must not import torch."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

ModelFamily = Literal["bert", "llama", "electra", "longformer", "t5"]
TaskType = Literal["token_classification", "sequence_classification", "multiple_choice", "node_classification"]


@dataclass(frozen=True)
class ModelSpec:
    """Architecture family and its default (embedded-default-sized) HF config kwargs."""

    family: ModelFamily
    config: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ObjectiveSpec:
    """Pretraining objective by name ('mlm', 'clm', 'rtd', …) and its options (e.g. mask_prob)."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CorpusSpec:
    """How raw pretraining files are read: a built-in format ('text', 'fasta') or 'pkg.mod:func'."""

    format: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskSpec:
    """A benchmark task: its real file format, its splits and its metrics (primary metric first).

    `format` is a built-in loader ('iob', 'csv', 'pubmedqa') or 'pkg.mod:func'; `options` go to it
    (e.g. text/label column names). `splits` maps split name to a file name inside the task's data dir.
    """

    name: str
    type: TaskType
    format: str
    metrics: tuple[str, ...]
    splits: Mapping[str, str] = field(default_factory=lambda: {"train": "train", "dev": "dev", "test": "test"})
    options: Mapping[str, Any] = field(default_factory=dict)
    summary: str = ""
    version: str = "1"

    @property
    def primary_metric(self) -> str:
        return self.metrics[0]


@dataclass(frozen=True)
class Domain:
    """A domain plugin. `tokenizers[0]` is the default recipe (a file in tokenizers/ or a path).

    `sample_dir` holds the embedded default: `corpus.*` and one folder per task with its splits.
    `pretrain_defaults` are config overrides (dotted keys) that size the embedded-default run.
    """

    name: str
    summary: str
    model: ModelSpec
    tokenizers: tuple[str, ...]
    objective: ObjectiveSpec
    corpus: CorpusSpec
    tasks: tuple[TaskSpec, ...]
    sample_dir: Path
    pretrain_defaults: Mapping[str, Any] = field(default_factory=dict)
    finetune_defaults: Mapping[str, Any] = field(default_factory=dict)
    version: str = "1"

    @property
    def tokenizer(self) -> str:
        return self.tokenizers[0]

    def task(self, name: str) -> TaskSpec:
        from zoo.errors import UserError, did_you_mean

        for t in self.tasks:
            if t.name == name:
                return t
        raise UserError(f"unknown task '{name}' for domain '{self.name}'{did_you_mean(name, [t.name for t in self.tasks])}")

    @property
    def sample_corpus(self) -> Path:
        found = sorted(p for p in self.sample_dir.glob("corpus.*"))
        if not found:
            raise FileNotFoundError(f"domain '{self.name}' ships no sample corpus in {self.sample_dir}")
        return found[0]
