"""Fine-tuning throughput on the CPU: the engine vs the plain-torch loop it replaced, side by side.

Same task (NCBI-disease: the embedded sample, or `--data ../shared/data/biomedical`), same randomly
initialised embedded-default BERT (4 × 256), same rows, batch size, step count and learning rate.
Rows, one run each:
  old loop         the pre-engine `train_epochs` (kept below verbatim in spirit: per-batch collate,
                   HF loss, AdamW, LambdaLR, clip) — the baseline
  engine           `zoo.engine.Engine.fit` with the same budget, no evaluation, no checkpoints
  engine + dev     the fine-tuning recipe's own fit: dev scored and a checkpoint written every epoch

    python benchmarks/perf/finetune.py [--data DIR] [--examples 1500] [--epochs 1] [--threads N]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import torch

from zoo.config import FinetuneConfig, build_config
from zoo.engine import Engine, Plan, stream_indices
from zoo.finetune import SeedRun, build_task_model, load_backbone, load_task
from zoo.registry import get_domain


def old_loop(model, rows, kind, pad_id, lr, batch_size, steps, seed):
    """The loop `zoo finetune` used before the engine (benchmarks/runner.py `train_epochs`): per-batch
    collate, the model's own loss, AdamW, LambdaLR, clipping. It draws the engine's batches (same
    sampler, same seed), so both loops do exactly the same arithmetic and only the machinery differs."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    warm = int(0.1 * steps)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (steps - s) / max(1, steps - warm))
    )
    model.train()
    for step in range(steps):
        batch = kind.collate(
            [rows[j] for j in stream_indices(len(rows), step * batch_size, batch_size, seed)], pad_id
        )
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    return float(loss)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="biomedical data folder (default: the embedded sample)")
    ap.add_argument("--examples", type=int, default=1500)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    domain = get_domain("biomedical")
    overrides = [
        "tasks=ncbi_disease",
        f"train.epochs={args.epochs}",
        f"task.max_train_examples={args.examples}",
        "task.max_eval_examples=300",
    ]
    if args.data:
        overrides.append(f"data={args.data}")
    cfg = build_config(FinetuneConfig, domain.finetune_defaults, overrides=overrides)
    backbone = load_backbone(domain, cfg)
    data = load_task(domain, domain.task("ncbi_disease"), cfg, backbone.tokenizer)
    rows, pad = data.rows["train"], backbone.tokenizer.pad_token_id
    bs = cfg.train.batch_size
    steps = max(1, round(math.ceil(len(rows) / bs) * args.epochs))
    n_examples = steps * bs
    results = []

    engine = Engine(cfg.train, quiet=True)
    with tempfile.TemporaryDirectory() as tmp:
        model = build_task_model(domain, data, backbone, seed=0)
        t0 = time.perf_counter()
        loss = old_loop(model, rows, data.kind, pad, cfg.train.lr, bs, steps, seed=0)
        results.append(("old loop", time.perf_counter() - t0, loss))

        plan = Plan(
            label="bench",
            steps=steps,
            batch=lambda s: [rows[i] for i in stream_indices(len(rows), s * bs, bs, 0)],
            collate=lambda items, _seed: data.kind.collate(items, pad),
            loss=data.kind.loss,
            units=lambda b: len(b["labels"]),
            unit_name="example",
        )
        model = build_task_model(domain, data, backbone, seed=0)
        t0 = time.perf_counter()
        fit = engine.fit(model, plan, Path(tmp) / "a", Path(tmp) / "m.jsonl")
        results.append(("engine", time.perf_counter() - t0, fit.last_loss))

        from zoo.finetune import resolve_method

        method, mcfg = resolve_method(cfg)
        (Path(tmp) / "run").mkdir()
        seed_run = SeedRun(engine, cfg, data, method, mcfg, Path(tmp) / "run", 0, pad, resume=False)
        seed_run.steps = steps
        model = build_task_model(domain, data, backbone, seed=0)
        t0 = time.perf_counter()
        seed_run.train(model)
        results.append(("engine + dev/epoch + checkpoints", time.perf_counter() - t0, float("nan")))

    base = n_examples / results[0][1]
    print(
        f"NCBI-disease ({'real data' if args.data else 'embedded sample'}), {len(rows)} train rows, batch {bs}, "
        f"{steps} steps = {n_examples} examples, {torch.get_num_threads()} CPU threads"
    )
    print(f"{'loop':36s} {'seconds':>8s} {'examples/s':>11s} {'vs old':>7s} {'last loss':>10s}")
    for name, seconds, last in results:
        rate = n_examples / seconds
        print(f"{name:36s} {seconds:8.2f} {rate:11.1f} {rate / base:7.2f} {last:10.4f}")


if __name__ == "__main__":
    main()
