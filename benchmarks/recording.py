"""Turn a fine-tune-and-score outcome into one leaderboard run (scores per task and metric)."""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Sequence
from typing import Any

from zoo.config import FinetuneConfig, to_dict
from zoo.domain import Domain


def _hardware() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


def record_outcome(domain: Domain, outcome: Any, backbone: Any, cfg: FinetuneConfig, seeds: Sequence[int], method_options: Sequence[str]) -> str:
    from zoo.leaderboard import BenchResult, TaskScore, record

    scores = [
        TaskScore.from_values(
            t.task.name,
            metric,
            t.values(metric),
            is_primary=metric == t.task.primary_metric,
            task_version=t.task.version,
            n_samples=t.n_eval,
        )
        for t in outcome.tasks
        for metric in t.reported_metrics
    ]
    first = outcome.tasks[0]
    config = {"finetune": to_dict(cfg), "method": outcome.method, "method_options": list(method_options), "init": backbone.init}
    result = BenchResult(
        domain=domain.name,
        model_id=outcome.model,
        scores=scores,
        method=outcome.method,
        trainable_params=first.trainable_params,
        total_params=first.total_params,
        sparsity=first.sparsity,
        model_path=str(backbone.path) if backbone.path else None,
        training_mode="finetune" if backbone.init == "pretrained" and backbone.path else "random_init",
        domain_version=domain.version,
        precision="fp32",
        hardware=_hardware(),
        seeds=tuple(seeds),
        config_hash=hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16],
    )
    return record(result)
