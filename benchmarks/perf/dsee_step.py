"""End-to-end fine-tuning step of BERT-base with DSEE, through the zoo's method, vs peft LoRA (CUDA).

    PYTHONPATH=. python benchmarks/perf/dsee_step.py [--batch 64 --seq 128 --steps 30]

One optimizer step = forward + backward + AdamW on the trainable parameters, bf16 autocast, as the
engine runs `zoo finetune … --method dsee` (the method is applied by the same `METHOD.apply` the CLI
calls; the model is BERT-base built from its config, random weights: the speed does not depend on
them). Rows, all in one run on the same card and the same batches:

- full fine-tuning (every weight trained), for scale;
- peft LoRA r=16 on query/value (peft's layer, fp32 adapters under autocast, as peft ships);
- zoo DSEE r=16 + 64 sparse entries per matrix, with the path the dispatcher picks;
- the same DSEE forced onto each path (``ZOO_SPARSE_LORA_PATH``), including ``reference``: the
  unfused plain-torch maths.
Median step time over --steps after --warmup steps (the dispatcher times its candidates during warm-up).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

import torch


def build_model():
    from transformers import BertConfig, BertForSequenceClassification

    cfg = BertConfig(num_labels=2)  # BERT-base: 12 layers, hidden 768, 12 heads, FFN 3072
    torch.manual_seed(0)
    return BertForSequenceClassification(cfg).cuda()


def with_peft_lora(model):
    from peft import LoraConfig, get_peft_model

    return get_peft_model(
        model,
        LoraConfig(
            r=16,
            lora_alpha=32,
            lora_dropout=0.0,
            target_modules=["query", "value"],
            modules_to_save=["classifier"],
        ),
    )


def with_dsee(model):
    from zoo.adapters.dsee import DSEEConfig, apply

    return apply(model, DSEEConfig(r=16, alpha=32, num_sparse=64, sparse_init="magnitude"))


def time_steps(model, batches, warmup: int, steps: int) -> float:
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, fused=True)
    model.train()

    def step(batch) -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for i in range(warmup):
        step(batches[i % len(batches)])
    torch.cuda.synchronize()
    times = []
    for i in range(steps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step(batches[i % len(batches)])
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=10)
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("dsee_step benchmark: needs a CUDA GPU", file=sys.stderr)
        return 2
    from zoo.adapters.kernels import dispatch

    g = torch.Generator(device="cuda").manual_seed(0)
    batches = [
        {
            "input_ids": torch.randint(1000, 30000, (args.batch, args.seq), device="cuda", generator=g),
            "attention_mask": torch.ones(args.batch, args.seq, device="cuda", dtype=torch.long),
            "labels": torch.randint(0, 2, (args.batch,), device="cuda", generator=g),
        }
        for _ in range(4)
    ]
    rows: list[tuple[str, float, str]] = []
    rows.append(("full fine-tuning", time_steps(build_model(), batches, args.warmup, args.steps), "-"))
    rows.append(
        (
            "peft LoRA r=16 (query, value)",
            time_steps(with_peft_lora(build_model()), batches, args.warmup, args.steps),
            "-",
        )
    )
    for forced in ("", "autograd", "cublas", "split", "triton", "reference"):
        os.environ["ZOO_SPARSE_LORA_PATH"] = forced
        ms = time_steps(with_dsee(build_model()), batches, args.warmup, args.steps)
        label = "zoo DSEE r=16 N=64 (dispatcher)" if not forced else f"zoo DSEE forced {forced}"
        rows.append((label, ms, dispatch.last_path or "?"))
    os.environ.pop("ZOO_SPARSE_LORA_PATH")

    peft_ms = rows[1][1]
    print(f"\nBERT-base step, batch {args.batch} x seq {args.seq}, bf16 autocast, median of {args.steps}")
    print(f"{'variant':<36}{'ms/step':>9}{'vs peft':>9}  path")
    for label, ms, path in rows:
        print(f"{label:<36}{ms:>9.2f}{ms / peft_ms:>8.2f}x  {path}")
    dsee_ms = rows[2][1]
    print(
        f"target: DSEE step <= peft LoRA step: {'met' if dsee_ms <= peft_ms else 'NOT met'} ({dsee_ms / peft_ms:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
