"""Real-token training throughput: packed blocks vs one-document-per-row padding (BERT MLM, CPU).

Both layouts train the same model (same init) on the same mixed-length corpus (lengths log-uniform
in 16..512 tokens), with the same block length and the same number of token slots per batch.
A timed step is collate (masking + 4D mask) + forward + backward + AdamW step. Steps of the
layouts are interleaved (A B C C B A …) so load from other processes hits all alike, and a
layout's time per step is the median of its steps (robust to a neighbour's burst on a shared CPU).
"Real tokens" are non-padding tokens. An extra row, padded to the longest row of each batch
(dynamic padding), is shown for reference; it uses fewer slots per batch, so it is not budget-matched.

    python benchmarks/perf/packing.py [--quick] [--threads N]
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import time
from collections.abc import Callable, Iterator

import torch

from zoo.objectives import MaskedLM
from zoo.packing import Block, pack_documents, pad_documents

PAD, CLS, SEP, MASK = 0, 1, 2, 3


def corpus(seed: int, vocab: int, lo: int = 16, hi: int = 512) -> Iterator[dict[str, list]]:
    """Endless documents, [CLS] … [SEP], length log-uniform in [lo, hi], ~1.3 tokens per word."""
    g = torch.Generator().manual_seed(seed)
    while True:
        n = int(math.exp(math.log(lo) + torch.rand(1, generator=g).item() * (math.log(hi) - math.log(lo))))
        ids = torch.randint(4, vocab, (n - 2,), generator=g).tolist()
        starts = (torch.rand(n - 2, generator=g) < 0.77).tolist()
        yield {"input_ids": [CLS, *ids, SEP], "word_starts": [True, *starts, True]}


def batches(blocks: Iterator[Block], size: int) -> Iterator[list[Block]]:
    while True:
        yield [next(blocks) for _ in range(size)]


def trim(batch: list[Block]) -> list[Block]:
    """Dynamic padding: cut every row to the longest real row of the batch."""
    n = max(sum(d >= 0 for d in b["doc_ids"]) for b in batch)
    return [{k: v[:n] for k, v in b.items()} for b in batch]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps (a smoke run, noisier)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per layout (default 16, quick 4)")
    ap.add_argument("--batch", type=int, default=4, help="blocks per batch")
    ap.add_argument("--block", type=int, default=512)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = ap.parse_args()
    steps = args.steps or (4 if args.quick else 16)
    if args.threads:
        torch.set_num_threads(args.threads)

    from transformers import BertConfig, BertForMaskedLM

    vocab = 8192
    cfg = BertConfig(
        vocab_size=vocab,
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=1024,
        max_position_embeddings=args.block,
        attn_implementation="sdpa",
    )
    torch.manual_seed(0)
    base = BertForMaskedLM(cfg).train()
    objective = MaskedLM(MASK, vocab, [PAD, CLS, SEP, MASK])

    def padded() -> Iterator[list[Block]]:
        return batches(pad_documents(corpus(1, vocab), args.block, PAD), args.batch)

    def packed() -> Iterator[list[Block]]:
        return batches(pack_documents(corpus(1, vocab), args.block, PAD), args.batch)

    def same(b: list[Block]) -> list[Block]:
        return b

    layouts: dict[str, tuple[Iterator[list[Block]], Callable[[list[Block]], list[Block]]]] = {
        "padded": (padded(), same),
        "packed": (packed(), same),
        "padded, dynamic (ref.)": (padded(), trim),
    }
    models = {name: copy.deepcopy(base) for name in layouts}
    optims = {name: torch.optim.AdamW(m.parameters(), lr=1e-4) for name, m in models.items()}
    stats: dict[str, dict[str, list[float]]] = {n: {"time": [], "real": [], "slots": []} for n in layouts}

    def step(name: str, step_no: int, timed: bool) -> None:
        source, shape = layouts[name]
        blocks = shape(next(source))
        t0 = time.perf_counter()
        batch = objective.collate(blocks, seed=step_no)
        loss = objective.loss(models[name], batch)
        loss.backward()
        optims[name].step()
        optims[name].zero_grad(set_to_none=True)
        if timed:
            s = stats[name]
            s["time"].append(time.perf_counter() - t0)
            s["real"].append(sum(d >= 0 for b in blocks for d in b["doc_ids"]))
            s["slots"].append(sum(len(b["doc_ids"]) for b in blocks))

    names = list(layouts)
    for name in names:  # warm-up, untimed
        step(name, 0, timed=False)
    for i in range(steps):
        for name in names if i % 2 == 0 else names[::-1]:
            step(name, i + 1, timed=True)

    print(
        f"BERT MLM 4x256, block {args.block}, {args.batch} rows/batch, {steps} timed steps per layout, "
        f"{torch.get_num_threads()} threads"
    )
    header = (
        f"{'layout':<24}{'slots/batch':>12}{'real tok/batch':>15}{'pad %':>7}"
        f"{'s/step':>8}{'real tok/s':>12}{'vs padded':>11}"
    )
    print(header)
    print("-" * len(header))
    rows = {}
    for name in names:
        s = stats[name]
        real, slots = statistics.mean(s["real"]), statistics.mean(s["slots"])
        sec = statistics.median(s["time"])
        rows[name] = (slots, real, sec, real / sec)
    ref = rows["padded"][3]
    for name, (slots, real, sec, rate) in rows.items():
        print(
            f"{name:<24}{slots:>12.0f}{real:>15.0f}{100 * (1 - real / slots):>7.1f}"
            f"{sec:>8.2f}{rate:>12.0f}{rate / ref:>10.2f}x"
        )


if __name__ == "__main__":
    main()
