"""Node-classification baselines beside GraphAdapter, on the same graph, splits and frozen LM (run by hand):

    python -m zoo.benchmarks.graph_baselines --model RUN --data DIR [--seeds 0 1 2] [--db URL] [--no-record]

Each baseline is one leaderboard run, as `zoo bench --seeds` writes it (test accuracy and macro-F1 as mean ±
std over the seeds with the per-seed values, the scored model's dev scores; model = the LM run), under its
method name:
- `lm_logreg`: the frozen LM's node embedding (last-token state, what GraphAdapter's GNN reads) + logistic
  regression (scikit-learn), no graph; the fitted model is scored (select `last`);
- `sage_bow`: two-layer GraphSAGE (PyG SAGEConv, mean aggregation) on bag-of-words node features
  (scikit-learn CountVectorizer, binary, vocabulary from every node's text: no labels involved);
- `sage_lm`: the same GraphSAGE on the frozen LM's node embeddings.
Each GNN trains full-batch (Adam lr 0.01, wd 5e-4, dropout 0.5, `--epochs`) and is scored on test at its
best dev accuracy (select `dev`). Prints one JSON line per (baseline, seed) and a mean ± std line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

Scores = tuple[dict[str, float], dict[str, float], int]
"""(test metrics, dev metrics of the scored model, trainable parameters)."""


class SAGE(nn.Module):
    def __init__(self, d: int, h: int, c: int) -> None:
        super().__init__()
        from torch_geometric.nn import SAGEConv

        self.conv1, self.conv2 = SAGEConv(d, h, aggr="mean"), SAGEConv(h, c, aggr="mean")

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        x = F.dropout(x, 0.5, self.training)
        x = F.dropout(F.relu(self.conv1(x, edge_index)), 0.5, self.training)
        return self.conv2(x, edge_index)


class Scorer:
    """The task kind's metrics (exactly the task's, e.g. accuracy and macro-F1) of class ids on a split."""

    def __init__(self, task: Any, data: Any, labels: list[str]) -> None:
        from zoo.benchmarks.kinds import get_kind

        self.task, self.kind, self.labels, self.y = task, get_kind(task.type), labels, data.y.numpy()
        self.masks = {s: data[f"{s}_mask"].numpy() for s in ("train", "dev", "test")}

    def __call__(self, pred: np.ndarray, split: str) -> dict[str, float]:
        m = self.masks[split]
        names = lambda ids: [self.labels[i] for i in ids]  # noqa: E731
        return self.kind.compute(self.task, names(pred[m]), names(self.y[m]))


def sage(x: torch.Tensor, data: Any, score: Scorer, seed: int, epochs: int) -> Scores:
    torch.manual_seed(seed)
    model = SAGE(x.shape[1], 64, len(score.labels))
    opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
    best: Scores = ({}, {"accuracy": -1.0}, sum(p.numel() for p in model.parameters()))
    for _ in range(epochs):
        model.train()
        opt.zero_grad()
        F.cross_entropy(model(x, data.edge_index)[data.train_mask], data.y[data.train_mask]).backward()
        opt.step()
        model.eval()
        with torch.no_grad():
            pred = model(x, data.edge_index).argmax(-1).numpy()
        dev = score(pred, "dev")
        if dev[score.task.primary_metric] > best[1][score.task.primary_metric]:
            best = (score(pred, "test"), dev, best[2])
    return best


def logreg(x: np.ndarray, score: Scorer, seed: int) -> Scores:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    train = score.masks["train"]
    scaler = StandardScaler().fit(x[train])
    clf = LogisticRegression(max_iter=3000, random_state=seed).fit(scaler.transform(x[train]), score.y[train])
    pred = clf.predict(scaler.transform(x))
    return score(pred, "test"), score(pred, "dev"), int(clf.coef_.size + clf.intercept_.size)


def lm_embeddings(lm: nn.Module, model: Path, graph: Any) -> np.ndarray:
    """The frozen LM's node embeddings, through GraphAdapter's on-disk cache (built once, shared with it)."""
    from zoo.adapters.graph_adapter import GraphAdapterConfig, _cache_key, build_cache
    from zoo.leaderboard_db import zoo_home
    from zoo.run import load_tokenizer

    cfg = GraphAdapterConfig()
    folder = zoo_home() / "cache" / "graph_adapter" / _cache_key(lm, model, graph, cfg)
    return np.array(build_cache(lm, load_tokenizer(model), list(graph.texts), cfg, folder).sentence)


@dataclass(frozen=True)
class Baseline:
    name: str
    run: Callable[[int], Scores]
    select: str  # which model was scored: the fitted one ("last") or the dev-best epoch ("dev")
    frozen_params: int  # the frozen LM's parameters it reads (0 without the LM)


def baseline_result(
    b: Baseline,
    runs: list[Scores],
    domain: Any,
    task: Any,
    score: Scorer,
    args: argparse.Namespace,
    model: Path,
) -> Any:
    """One baseline's leaderboard run, its scores built by `zoo bench`'s own recording code."""
    from zoo.benchmarks.recording import config_hash, task_scores
    from zoo.engine import hardware
    from zoo.finetune import SeedScore, TaskOutcome
    from zoo.leaderboard import BenchResult

    seeds = [
        SeedScore(seed, test, 0.0, dev=dev) for seed, (test, dev, _) in zip(args.seeds, runs, strict=True)
    ]
    n = {s: int(m.sum()) for s, m in score.masks.items()}
    trainable = runs[-1][2]
    return BenchResult(
        domain=domain.name,
        model_id=str(args.model),
        scores=task_scores([TaskOutcome(task, seeds, n["train"], n["dev"], n["test"])]),
        method=b.name,
        trainable_params=trainable,
        total_params=trainable + b.frozen_params,
        model_path=str(model),
        training_mode="frozen",
        domain_version=domain.version,
        precision="fp32",
        hardware=hardware(torch.device("cpu")),
        world_size=1,
        select=b.select,
        seeds=tuple(args.seeds),
        config_hash=config_hash({"baseline": b.name, "task": task.name, "epochs": args.epochs}),
    )


def main(argv: list[str] | None = None) -> list[str]:
    """Run the baselines; returns the leaderboard run ids (none with --no-record)."""
    from sklearn.feature_extraction.text import CountVectorizer
    from transformers import AutoModelForCausalLM

    from zoo.finetune import task_data_dir
    from zoo.leaderboard import record
    from zoo.registry import get_domain
    from zoo.run import resolve_model
    from zoo.text_graph import load_graph, to_pyg

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the LM: a pretraining run or its model folder")
    parser.add_argument("--data", required=True, help="the task's graph folder (nodes + edges) or its parent")
    parser.add_argument("--domain", default="graph_text")
    parser.add_argument(
        "--task", default=None, help="a node-classification task of the domain (default: first)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--db", default=None, help="leaderboard file or URL (default: as `zoo bench`)")
    parser.add_argument("--no-record", dest="record", action="store_false")
    args = parser.parse_args(argv)
    domain = get_domain(args.domain)
    task = domain.task(args.task or domain.tasks[0].name)
    model = resolve_model(args.model, domain)
    graph = load_graph(task_data_dir(domain, task, args.data), task.options)
    labels = sorted({x for x in graph.labels if x is not None})
    data = to_pyg(graph, labels)
    score = Scorer(task, data, labels)
    lm = AutoModelForCausalLM.from_pretrained(str(model)).eval()
    lm_x = torch.from_numpy(lm_embeddings(lm, model, graph)).float()
    n_lm = sum(p.numel() for p in lm.parameters())
    bow = CountVectorizer(max_features=3000, binary=True, stop_words="english").fit_transform(graph.texts)
    bow_x = torch.from_numpy(bow.toarray()).float()
    baselines = [
        Baseline("lm_logreg", lambda s: logreg(lm_x.numpy(), score, s), "last", n_lm),
        Baseline("sage_bow", lambda s: sage(bow_x, data, score, s, args.epochs), "dev", 0),
        Baseline("sage_lm", lambda s: sage(lm_x, data, score, s, args.epochs), "dev", n_lm),
    ]
    recorded = []
    for b in baselines:
        start = time.perf_counter()
        runs = [b.run(seed) for seed in args.seeds]
        for seed, (test, _, _) in zip(args.seeds, runs, strict=True):
            print(json.dumps({"baseline": b.name, "seed": seed, **test}), flush=True)
        result = baseline_result(b, runs, domain, task, score, args, model)
        line = ", ".join(f"{s.metric} {s.mean:.4f} ± {s.std:.4f}" for s in result.scores if s.split == "test")
        print(f"{b.name}: {line} ({time.perf_counter() - start:.0f} s)", flush=True)
        if args.record:
            recorded.append(record(result, args.db))
            print(f"{b.name}: recorded on the leaderboard as {recorded[-1]}", flush=True)
    return recorded


if __name__ == "__main__":
    from zoo.errors import UserError

    try:
        main()
    except UserError as err:  # as the CLI: one line, status 2
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
