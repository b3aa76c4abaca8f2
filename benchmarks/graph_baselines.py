"""Node-classification baselines beside GraphAdapter, on the same graph, splits and frozen LM (run by hand):

    python -m zoo.benchmarks.graph_baselines --model runs/<pretrain run> --data DIR [--seeds 0 1 2]

- `lm_logreg`: the frozen LM's node embedding (last-token state, what GraphAdapter's GNN reads) + logistic
  regression (scikit-learn), no graph;
- `sage_bow`: two-layer GraphSAGE (PyG SAGEConv, mean aggregation) on bag-of-words node features
  (scikit-learn CountVectorizer, binary, vocabulary from every node's text: no labels involved);
- `sage_lm`: the same GraphSAGE on the frozen LM's node embeddings.
Each GNN trains full-batch (Adam lr 0.01, wd 5e-4, dropout 0.5, `--epochs`) and is scored on test at its
best validation accuracy. Prints one JSON line per (baseline, seed) and a mean ± std table.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": float(accuracy_score(y, pred)), "macro_f1": float(f1_score(y, pred, average="macro"))}


class SAGE(nn.Module):
    def __init__(self, d: int, h: int, c: int) -> None:
        super().__init__()
        from torch_geometric.nn import SAGEConv

        self.conv1, self.conv2 = SAGEConv(d, h, aggr="mean"), SAGEConv(h, c, aggr="mean")

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        x = F.dropout(x, 0.5, self.training)
        x = F.dropout(F.relu(self.conv1(x, edge_index)), 0.5, self.training)
        return self.conv2(x, edge_index)


def sage(x: torch.Tensor, data: Any, seed: int, epochs: int) -> dict[str, float]:
    torch.manual_seed(seed)
    model = SAGE(x.shape[1], 64, int(data.y.max()) + 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
    best, scores = -1.0, {}
    for _ in range(epochs):
        model.train()
        opt.zero_grad()
        F.cross_entropy(model(x, data.edge_index)[data.train_mask], data.y[data.train_mask]).backward()
        opt.step()
        model.eval()
        with torch.no_grad():
            pred = model(x, data.edge_index).argmax(-1).numpy()
        y = data.y.numpy()
        dev = _metrics(y[data.dev_mask], pred[data.dev_mask])["accuracy"]
        if dev > best:
            best, scores = dev, _metrics(y[data.test_mask], pred[data.test_mask])
    return scores


def logreg(x: np.ndarray, data: Any, seed: int) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    train, test, y = data.train_mask.numpy(), data.test_mask.numpy(), data.y.numpy()
    scaler = StandardScaler().fit(x[train])
    clf = LogisticRegression(max_iter=3000, random_state=seed).fit(scaler.transform(x[train]), y[train])
    return _metrics(y[test], clf.predict(scaler.transform(x[test])))


def lm_embeddings(model: Path, graph: Any) -> np.ndarray:
    """The frozen LM's node embeddings, through GraphAdapter's on-disk cache (built once, shared with it)."""
    from transformers import AutoModelForCausalLM

    from zoo.adapters.graph_adapter import GraphAdapterConfig, _cache_key, build_cache
    from zoo.leaderboard_db import zoo_home
    from zoo.run import load_tokenizer

    lm = AutoModelForCausalLM.from_pretrained(str(model)).eval()
    cfg = GraphAdapterConfig()
    folder = zoo_home() / "cache" / "graph_adapter" / _cache_key(lm, model, graph, cfg)
    return np.array(build_cache(lm, load_tokenizer(model), list(graph.texts), cfg, folder).sentence)


def main(argv: list[str] | None = None) -> None:
    from sklearn.feature_extraction.text import CountVectorizer

    from zoo.text_graph import load_graph, to_pyg

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="folder with nodes.jsonl + edges.tsv")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=200)
    args = parser.parse_args(argv)
    graph = load_graph(args.data, {})
    data = to_pyg(graph)
    lm = torch.from_numpy(lm_embeddings(args.model, graph)).float()
    bow = CountVectorizer(max_features=3000, binary=True, stop_words="english").fit_transform(graph.texts)
    bow_x = torch.from_numpy(bow.toarray()).float()
    runs = {
        "lm_logreg": lambda s: logreg(lm.numpy(), data, s),
        "sage_bow": lambda s: sage(bow_x, data, s, args.epochs),
        "sage_lm": lambda s: sage(lm, data, s, args.epochs),
    }
    for name, run in runs.items():
        scores = [run(seed) for seed in args.seeds]
        for seed, score in zip(args.seeds, scores, strict=True):
            print(json.dumps({"baseline": name, "seed": seed, **score}), flush=True)
        summary = {
            m: f"{statistics.fmean(s[m] for s in scores):.4f} ± {statistics.stdev(s[m] for s in scores):.4f}"
            for m in ("accuracy", "macro_f1")
        }
        print(f"{name}: accuracy {summary['accuracy']}, macro_f1 {summary['macro_f1']}", flush=True)


if __name__ == "__main__":
    main()
