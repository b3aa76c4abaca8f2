"""Packed pretraining throughput and MFU on a GPU: the zoo's engine vs a padded plain-HF loop.

    PYTHONPATH=. python benchmarks/perf/gpu_pretrain.py [--lengths FILE] [--steps 30]

Models (random weights: speed does not depend on them): BERT-base MLM at seq 512 and Llama-160M CLM
(hidden 768, 12 layers, 12 heads, FFN 3072, vocab 32000) at seq 2048, bf16 autocast. Documents have the
token lengths in --lengths (one per line; made from a real corpus, e.g. the biomedical pretrain_text
with its word counts x 1.3) or, without it, a log-normal mix; token ids are random.

Rows per model, one run, same documents:
- ``HF padded``: documents in random order, as many per batch as fit the packed runs' token budget
  (seq x batch) once padded to the batch's longest document (dynamic padding), SDPA with the 2-D
  padding mask, AdamW (foreach), loss read every step: the usual HF loop;
- ``zoo packed <attention>[+compile]``: `Engine.fit` on packed blocks through the zoo's objective, with
  train.attention = sdpa (dense [B,1,L,L] mask) or flex (FlexAttention block masks), and train.compile.

Throughput counts real (non-pad) tokens only. MFU = useful FLOPs / time / peak, with useful FLOPs
    6·N per real token (N = weights of every matmul, LM head included)
  + 12·n_layers·d_model·Σ_docs ℓ²   per document of ℓ tokens (bidirectional attention;
                                     causal: Σ ℓ(ℓ+1)/2 instead of ℓ²)
i.e. attention only within each document, the work a correct model must do; peak = --peak TFLOP/s
(H200/H100 SXM dense bf16: 989). Peak GPU memory is printed beside each row.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

SPECIAL = 5  # ids 0..4 are special (pad 0, mask 4)


def doc_lengths(path: str | None, n: int, cap: int, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    if path:
        pool = [int(x) for x in Path(path).read_text().split() if int(x) > 1]
        return [min(cap, rng.choice(pool)) for _ in range(n)]
    return [max(8, min(cap, int(rng.lognormvariate(math.log(120), 1.0)))) for _ in range(n)]


def documents(lengths: list[int], vocab: int, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    return [{"input_ids": torch.randint(SPECIAL, vocab, (n,), generator=g).tolist()} for n in lengths]


DRY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2}
DEVICE = "cuda"
STATIC_PAD = False  # --pad static: every batch padded to seq (one shape) instead of its longest document


def build(kind: str, dry: bool = False) -> tuple[nn.Module, dict]:
    from transformers import BertConfig, BertForMaskedLM, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    small = DRY if dry else {}
    if kind == "bert":
        # BERT-base; no attention dropout (FlexAttention has none), the same model in every row
        cfg = BertConfig(
            pad_token_id=0, max_position_embeddings=512, attention_probs_dropout_prob=0.0, **small
        )
        spec = {
            "layers": cfg.num_hidden_layers,
            "d": cfg.hidden_size,
            "causal": False,
            "vocab": cfg.vocab_size,
        }
        return BertForMaskedLM(cfg), spec
    sizes = {
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
    }
    sizes.update(small)
    cfg = LlamaConfig(
        vocab_size=32000,
        num_key_value_heads=sizes["num_attention_heads"],
        max_position_embeddings=2048,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        **sizes,
    )
    spec = {"layers": cfg.num_hidden_layers, "d": cfg.hidden_size, "causal": True, "vocab": cfg.vocab_size}
    return LlamaForCausalLM(cfg), spec


def matmul_params(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))


def useful_flops(lengths: list[int], n_matmul: int, spec: dict) -> float:
    attn = sum(ell * (ell + 1) / 2 if spec["causal"] else ell * ell for ell in lengths)
    return 6.0 * n_matmul * sum(lengths) + 12.0 * spec["layers"] * spec["d"] * attn


def objective(kind: str, vocab: int):
    from zoo.objectives import CausalLM, MaskedLM

    return MaskedLM(4, vocab, [0, 1, 2, 3, 4]) if kind == "bert" else CausalLM()


def _sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def hf_padded(kind: str, docs: list[dict], batch: int, seq: int, steps: int, warmup: int, dry: bool) -> float:
    """Real tokens/s of a plain padded loop (collation not timed)."""
    model, spec = build(kind, dry)
    model.to(DEVICE).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    obj = objective(kind, spec["vocab"])
    from zoo.packing import pad_documents

    order = list(range(len(docs)))
    random.Random(1).shuffle(order)
    budget = seq * batch  # padded tokens per step: the packed runs' block budget
    times, tokens, pos = [], [], 0
    for step in range(warmup + steps):
        chunk, longest = [], 0
        while pos < len(order):
            n = min(len(docs[order[pos]]["input_ids"]), seq)
            if chunk and (len(chunk) + 1) * (seq if STATIC_PAD else max(longest, n)) > budget:
                break
            chunk.append(docs[order[pos]])
            longest, pos = max(longest, n), pos + 1
        blocks = list(pad_documents(chunk, seq if STATIC_PAD else longest, 0))
        b = obj.collate(blocks, step)
        real = (b["doc_ids"] >= 0).to(DEVICE)
        labels = b["labels"].to(DEVICE)
        _sync()
        t0 = time.perf_counter()
        with torch.autocast(DEVICE, dtype=torch.bfloat16):
            out = model(input_ids=b["input_ids"].to(DEVICE), attention_mask=real.long(), labels=labels)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        out.loss.item()  # the usual per-step loss read
        _sync()
        if step >= warmup:
            times.append(time.perf_counter() - t0)
            tokens.append(int(real.sum()))
    return sum(tokens) / sum(times)


def zoo_packed(
    kind: str,
    docs: list[dict],
    batch: int,
    seq: int,
    steps: int,
    warmup: int,
    attention: str,
    compile_: bool,
    dry: bool,
) -> float:
    """Real tokens/s of Engine.fit on packed blocks (median of the logged windows after warm-up)."""
    from zoo.config import TrainConfig
    from zoo.engine import Engine, Plan
    from zoo.packing import pack_documents

    model, spec = build(kind, dry)
    blocks = list(pack_documents(docs, seq, 0, drop_last=True))
    need = (warmup + steps) * batch
    if len(blocks) < need:
        raise SystemExit(f"{kind}: {len(blocks)} blocks, need {need}: pass more documents")
    obj = objective(kind, spec["vocab"])
    t0 = time.perf_counter()
    for step in range(3):
        obj.collate(blocks[step * batch : (step + 1) * batch], step)
    print(
        f"  ({kind}: collating one batch on the host takes {(time.perf_counter() - t0) / 3 * 1e3:.0f} ms)",
        flush=True,
    )
    log_every = 5
    cfg = TrainConfig(
        max_steps=warmup + steps,
        batch_size=batch,
        lr=1e-4,
        eval_every=0,
        save_every=0,
        log_every=log_every,
        mixed_precision="no" if dry else "bf16",
        attention=attention,
        compile=compile_,
    )
    plan = Plan(
        label=f"{kind} {attention}",
        steps=warmup + steps,
        batch=lambda step: blocks[step * batch : (step + 1) * batch],
        collate=obj.collate,
        loss=obj.loss,
        units=lambda b: int((b["doc_ids"] >= 0).sum()),
        unit_name="token",
        packed=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        Engine(cfg, quiet=True).fit(model, plan, Path(tmp), Path(tmp) / "metrics.jsonl")
        records = [json.loads(line) for line in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
    rates = [r["tokens_per_s"] for r in records if r.get("step", 0) > warmup and "tokens_per_s" in r]
    return statistics.median(rates)


def main(argv: list[str] | None = None) -> int:
    global DEVICE
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", help="document token lengths, one per line (default: log-normal)")
    ap.add_argument("--steps", type=int, default=20, help="measured steps per row")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--peak", type=float, default=989.0, help="peak dense bf16 TFLOP/s of the GPU")
    ap.add_argument("--models", default="bert,llama")
    ap.add_argument("--dry-run", action="store_true", help="tiny models on the CPU: checks the script runs")
    ap.add_argument("--pad", choices=["dynamic", "static"], default="dynamic", help="HF baseline padding")
    args = ap.parse_args(argv)
    global STATIC_PAD
    STATIC_PAD = args.pad == "static"
    if args.dry_run:
        DEVICE = "cpu"
    elif not torch.cuda.is_available():
        print("gpu_pretrain benchmark: needs a CUDA GPU (or --dry-run)", file=sys.stderr)
        return 2
    else:
        print(
            f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}  peak {args.peak:.0f} TFLOP/s"
        )
    setups = {}
    for kind in args.models.split(","):
        seq, batch = (512, 64) if kind == "bert" else (2048, 16)
        if args.dry_run:
            seq, batch = 64, 4
        lengths = doc_lengths(args.lengths, 40000 if kind == "bert" else 30000, cap=4 * seq)
        docs = documents(lengths, 30522 if kind == "bert" else 32000)
        model, spec = build(kind, args.dry_run)
        cut = [min(n, seq) for n in lengths]
        setups[kind] = (seq, batch, docs, useful_flops(cut, matmul_params(model), spec) / sum(cut))
        del model
    # every row without compile first, so a slow compile cannot cost the other rows
    attentions = [("sdpa", False)] if args.dry_run else [("sdpa", False), ("flex", False), ("flex", True)]
    rows = [(kind, "HF padded (sdpa, per-step loss read)", None, False) for kind in setups]
    rows += [(kind, f"zoo packed {a}", a, False) for a, c in attentions if not c for kind in setups]
    rows += [(kind, f"zoo packed {a} + compile", a, True) for a, c in attentions if c for kind in setups]
    table, base = [], {}
    for kind, label, attention, comp in rows:
        seq, batch, docs, flops_per_token = setups[kind]
        if DEVICE == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        try:
            if attention is None:
                rate = hf_padded(kind, docs, batch, seq, args.steps, args.warmup, args.dry_run)
            else:
                rate = zoo_packed(
                    kind, docs, batch, seq, args.steps, args.warmup, attention, comp, args.dry_run
                )
        except Exception as exc:  # one failing row must not lose the others
            print(f"{kind:<6} {label:<32} FAILED: {type(exc).__name__}: {str(exc)[:400]}", flush=True)
            continue
        peak_gb = torch.cuda.max_memory_allocated() / 2**30 if DEVICE == "cuda" else float("nan")
        mfu = rate * flops_per_token / (args.peak * 1e12)
        base.setdefault(kind, rate)
        table.append((kind, seq, batch, label, rate, mfu, peak_gb, rate / base[kind]))
        print(
            f"{kind:<6} {label:<32} {rate / 1e3:8.1f}k tok/s  MFU {mfu:5.1%}  peak {peak_gb:5.1f} GiB  "
            f"x{rate / base[kind]:4.2f} vs padded  ({time.perf_counter() - t0:.0f}s)",
            flush=True,
        )
    print(
        f"\n{'model':<7}{'seq':>5}{'batch':>6}  {'config':<32}{'real tok/s':>12}{'MFU':>8}{'peak GiB':>10}{'vs padded':>11}"
    )
    for kind, seq, batch, label, rate, mfu, peak_gb, ratio in table:
        print(
            f"{kind:<7}{seq:>5}{batch:>6}  {label:<32}{rate:>12,.0f}{mfu:>8.1%}{peak_gb:>10.1f}{ratio:>10.2f}x"
        )
    print("MFU: useful FLOPs (6·N per real token + within-document attention) / time / peak")
    return 0


if __name__ == "__main__":
    sys.exit(main())
