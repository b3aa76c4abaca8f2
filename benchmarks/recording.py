"""Turn a fine-tuning outcome into one leaderboard run: test scores per task and metric (plus the
pre-post-training '@trained' scores and the dev scores of the scored model), with the real device,
precision, world size and which model was scored (`select`)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from zoo.config import FinetuneConfig, to_dict
from zoo.domain import Domain


def _scores(outcome: Any) -> list[Any]:
    from zoo.leaderboard import TaskScore

    scores = []
    for t in outcome.tasks:
        for metric in t.reported_metrics:
            scores.append(
                TaskScore.from_values(
                    t.task.name,
                    metric,
                    t.values(metric),
                    is_primary=metric == t.task.primary_metric,
                    task_version=t.task.version,
                    n_samples=t.n_eval,
                )
            )
        if t.n_dev and all(s.dev for s in t.scores):
            scores += [
                TaskScore.from_values(
                    t.task.name,
                    metric,
                    t.values(metric, split="dev"),
                    split="dev",
                    is_primary=metric == t.task.primary_metric,
                    task_version=t.task.version,
                    n_samples=t.n_dev,
                )
                for metric in t.task.metrics
            ]
        scores += _dev_curve(t)
    return scores


def _dev_curve(t: Any) -> list[Any]:
    """The primary metric on dev after each evaluation, as '<metric>@eval<k>' rows of split 'dev'
    (mean ± std over the seeds that reached evaluation k)."""
    from zoo.leaderboard import TaskScore

    curves = [s.dev_curve for s in t.scores if s.dev_curve]
    primary = t.task.primary_metric
    return [
        TaskScore.from_values(
            t.task.name,
            f"{primary}@eval{k + 1}",
            [c[k] for c in curves if len(c) > k],
            split="dev",
            task_version=t.task.version,
            n_samples=t.n_dev,
        )
        for k in range(max((len(c) for c in curves), default=0))
    ]


def record_outcome(domain: Domain, outcome: Any, backbone: Any, cfg: FinetuneConfig, engine: Any) -> str:
    from zoo.leaderboard import BenchResult, record

    summary = outcome.tasks[0].summary
    config = {k: v for k, v in to_dict(cfg).items() if k not in ("seeds",)}
    result = BenchResult(
        domain=domain.name,
        model_id=outcome.model,
        scores=_scores(outcome),
        method=outcome.method,
        trainable_params=summary.get("trainable_params"),
        total_params=summary.get("total_params"),
        sparsity=summary.get("sparsity"),
        model_path=str(backbone.path) if backbone.path else None,
        training_mode="finetune" if backbone.init == "pretrained" and backbone.path else "random_init",
        domain_version=domain.version,
        precision=engine.precision,
        hardware=engine.hardware(),
        world_size=engine.world,
        select=outcome.select,
        seeds=tuple(cfg.seeds),
        config_hash=hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16],
        results_path=str(outcome.run_dir),
    )
    return record(result)
