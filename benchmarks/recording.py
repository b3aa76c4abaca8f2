"""Turn a fine-tuning outcome into one leaderboard run: test scores per task and metric (plus the
pre-post-training '@trained' scores and the dev scores of the scored model), with the real device,
precision, world size and which model was scored (`select`).

A result that cannot be written (a locked, read-only or unreachable leaderboard) is kept in the run directory
as `leaderboard-pending.json`; `zoo leaderboard record RUN` writes it later. Training time is never lost to the
database."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from zoo.config import FinetuneConfig, to_dict
from zoo.domain import Domain


def task_scores(tasks: list[Any]) -> list[Any]:
    """The leaderboard scores of `TaskOutcome`s: per task its metrics on test (mean ± std over the seeds),
    the scored model's dev metrics and the dev curve."""
    from zoo.leaderboard import TaskScore

    scores = []
    for t in tasks:
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


PENDING = "leaderboard-pending.json"


def record_outcome(
    domain: Domain, outcome: Any, backbone: Any, cfg: FinetuneConfig, engine: Any
) -> str | None:
    """Record the run; if the leaderboard cannot take it, keep it in the run dir and say how to record it."""
    from zoo.errors import UserError
    from zoo.leaderboard import record
    from zoo.run import atomic_write_text

    result = bench_result(domain, outcome, backbone, cfg, engine)
    try:
        return record(result)
    except UserError as err:
        atomic_write_text(Path(outcome.run_dir) / PENDING, result.to_json())
        print(
            f"warning: the result was not recorded on the leaderboard ({err}); it is kept in "
            f"{Path(outcome.run_dir) / PENDING} — record it with `zoo leaderboard record {outcome.run_dir}`",
            file=sys.stderr,
        )
        return None


def record_pending(run_dir: Path, db: str | Path | None = None) -> str:
    """`zoo leaderboard record RUN`: write the result a run kept because the leaderboard could not take it."""
    from zoo.errors import UserError
    from zoo.leaderboard import BenchResult, record
    from zoo.run import write_info

    pending = Path(run_dir) / PENDING
    if not pending.is_file():
        raise UserError(
            f"'{run_dir}' has no result waiting to be recorded (no {PENDING}); "
            "its result is already on the leaderboard, or it is not a finished fine-tune or bench run"
        )
    try:
        result = BenchResult.from_json(pending.read_text())
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(
            f"{pending} is not a kept leaderboard result ({e}); fine-tune again to redo it"
        ) from None
    run_id = record(result, db)
    write_info(Path(run_dir), leaderboard_run_id=run_id)
    pending.unlink()
    return run_id


def config_hash(config: dict[str, Any]) -> str:
    """What identifies a run's settings on the leaderboard (seeds excluded by the caller)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def bench_result(domain: Domain, outcome: Any, backbone: Any, cfg: FinetuneConfig, engine: Any) -> Any:
    """The leaderboard run of a fine-tuning outcome."""
    from zoo.hub import revision_of
    from zoo.leaderboard import BenchResult

    summary = outcome.tasks[0].summary
    return BenchResult(
        domain=domain.name,
        model_id=outcome.model,
        scores=task_scores(outcome.tasks),
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
        config_hash=config_hash({k: v for k, v in to_dict(cfg).items() if k not in ("seeds",)}),
        results_path=str(outcome.run_dir),
        model_revision=revision_of(backbone.path),
    )
