"""FLOPs of one pretraining step (forward + backward), RTD vs MLM, for the legal science check's equal budget.

    PYTHONPATH=. python benchmarks/perf/rtd_flops.py --tokenizer legal-rtd/tokenizer --config configs/legal-science.yaml

Counts with `torch.utils.flop_counter.FlopCounterMode` (matmuls and attention, as torch dispatches them)
on the same random block batch for both objectives, and prints the MLM step count that matches the
RTD run's FLOPs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from zoo import run as runs
from zoo.config import PretrainConfig, build_config
from zoo.families import get_family
from zoo.objectives import build_objective
from zoo.pretrain import model_config
from zoo.registry import get_domain


def step_flops(name: str, options: dict, domain, cfg, tokenizer, blocks) -> int:
    objective = build_objective(name, options, tokenizer)
    model = objective.build_model(get_family(domain.model.family), model_config(domain, cfg), tokenizer, 0)
    model.train()
    batch = objective.collate(blocks, seed=0)
    with FlopCounterMode(display=False) as counter:
        total, count = objective.loss(model, batch)
        (total / count).backward()
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", required=True)
    parser.add_argument("--config", required=True)
    args = parser.parse_args()
    domain = get_domain("legal")
    cfg = build_config(PretrainConfig, domain.pretrain_defaults, config_file=args.config)
    tokenizer = runs.load_tokenizer(Path(args.tokenizer))
    length, rows = cfg.data.seq_len, 2
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(len(tokenizer.all_special_ids), len(tokenizer), (rows, length), generator=g)
    blocks = [
        {"input_ids": r.tolist(), "position_ids": list(range(length)), "doc_ids": [0] * length} for r in ids
    ]
    rtd = step_flops("rtd", dict(domain.objective.options), domain, cfg, tokenizer, blocks)
    mlm = step_flops("mlm", {"mask_prob": 0.15}, domain, cfg, tokenizer, blocks)
    steps = cfg.train.max_steps or 0
    print(
        f"per {rows}×{length} block batch: rtd {rtd / 1e9:.2f} GFLOP, mlm {mlm / 1e9:.2f} GFLOP, ratio {rtd / mlm:.3f}"
    )
    print(f"rtd {steps} steps = mlm {round(steps * rtd / mlm)} steps at equal FLOPs")


if __name__ == "__main__":
    main()
