"""What a domain plugin declares. Pure data: importing a domain module must not import torch."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

IGNORE = -100
"""Label id every loss skips (the HF convention): padding, unscored sub-tokens, unmasked tokens. One
constant for objectives and task kinds; here because this module is torch-free like the kinds' loaders."""


@dataclass(frozen=True)
class ModelSpec:
    """Architecture family (a `zoo.families` name) and its default (embedded-default-sized) HF config kwargs."""

    family: str
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

    `type` is a task kind (`zoo.task_kinds`: token_classification, sequence_classification, …).
    `format` is a built-in loader ('iob', 'csv', 'pubmedqa') or 'pkg.mod:func'; `options` go to it
    (e.g. text/label column names). `splits` maps split name to a file name inside the task's data dir.
    `metric_options` go to the metric (e.g. pos_label, average), checked against the kind at load time.
    """

    name: str
    type: str
    format: str
    metrics: tuple[str, ...]
    splits: Mapping[str, str] = field(
        default_factory=lambda: {"train": "train", "dev": "dev", "test": "test"}
    )
    options: Mapping[str, Any] = field(default_factory=dict)
    metric_options: Mapping[str, Any] = field(default_factory=dict)
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
        raise UserError(
            f"unknown task '{name}' for domain '{self.name}'{did_you_mean(name, [t.name for t in self.tasks])}"
        )

    @property
    def sample_corpus(self) -> Path:
        found = sorted(p for p in self.sample_dir.glob("corpus.*"))
        if not found:
            raise FileNotFoundError(f"domain '{self.name}' ships no sample corpus in {self.sample_dir}")
        return found[0]
