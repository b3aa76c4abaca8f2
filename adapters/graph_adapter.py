"""GraphAdapter (Huang et al., WWW 2024, arXiv 2402.12984), as its authors' code (hxttkl/GraphAdapter) does it.
Registered as `graph_adapter`; it needs a node-classification task (the graph comes in `ctx.extra`).

1. The causal LM is frozen and run once: per node, its per-token last-layer hidden states, its "sentence"
   embedding (the last token's state of the text) and its prompt embedding (the last token's state of
   text + `prompt`), cached on disk in chunks (numpy memmaps under $ZOO_HOME/cache/graph_adapter/, keyed
   by model, graph and options), never held as one tensor.
2. A GNN over the sentence embeddings: Linear(d→2h) SiLU Linear(2h→h) RMSNorm, then two mean-aggregation
   GraphSAGE layers (PyG `SAGEConv`, SiLU between) on the undirected graph with self-loops.
   (The authors' block is the same up to SAGEConv's separate root weight; `gnn=mlp` is their no-graph block.)
3. Per-token fusion z = W2 SiLU(W1 [g_lin(gnn[node]); prompt_lin(h_token)]), W1: 2h→10h, W2: 10h→h.
4. Pretraining (`pretrain_epochs` > 0): next-token prediction on each node's text with
   p = (softmax(lm_head(h)) + softmax(lm_head(extend(z)))) / 2, label smoothing 0.1, each token weighted by
   1/(its count in the node) normalised per node; the first 90% of each node's tokens train, the last 10%
   are held out (their NLL under p and under the LM alone is reported: `pretrain_nll_mixed`, `pretrain_nll_lm`).
5. Fine-tuning (the engine's loop, model selection with select=dev): a linear head on the fused
   representation of (node GNN state, prompt embedding); adapter and head both train.
Mini-batches go through PyG's node loader (`fanouts`, e.g. [10, 10]; empty = the whole graph each step).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from zoo.adapters.base import MethodBase, MethodContext, parameter_counts
from zoo.config import bounded
from zoo.errors import UserError
from zoo.prepared import atomic_folder


@dataclass
class GraphAdapterConfig:
    hidden: int = bounded(128, ge=8)
    """GNN and fusion width h (the authors: 128 by default, 64 in their README)."""
    gnn: Literal["sage", "mlp"] = "sage"
    """sage: two mean-aggregation GraphSAGE layers; mlp: the same without the graph (ablation)."""
    fanouts: list[int] = bounded(default_factory=list, ge=-1)
    """Neighbours sampled per hop for mini-batches (-1 = all); empty = the whole graph every step."""
    pretrain_epochs: int = bounded(3, ge=0)
    """Epochs of GraphAdapter's next-token pretraining over the nodes; 0 = from scratch."""
    pretrain_nodes: Literal["all", "train"] = "all"
    """Whose texts pretraining reads: every node's (transductive, labels unused; the authors') or train's."""
    pretrain_seed: int = bounded(0, ge=0, lt=2**32)
    """Seed of the pretraining run. As in the authors' code, one pretrained adapter (saved beside the LM
    cache) is the start of every fine-tuning seed."""
    pretrain_lr: float = bounded(5e-4, gt=0.0)
    """AdamW learning rate of the pretraining (the authors' README: 5e-4)."""
    pretrain_batch_nodes: int = bounded(16, ge=1)
    """Nodes per pretraining step (each with its sampled neighbourhood and all its tokens)."""
    label_smoothing: float = bounded(0.1, ge=0.0, lt=1.0)
    """Label smoothing of the pretraining's next-token loss."""
    max_tokens: int = bounded(128, ge=4)
    """Tokens of each node text the LM reads (and pretraining predicts)."""
    prompt: str = " This paper is about"
    """Appended to the node text for the prompt embedding the classifier reads (the authors' template_r)."""
    cache_chunk: int = bounded(256, ge=1)
    """Nodes per chunk when the LM outputs are written to the on-disk cache."""


# ------------------------------------------------------------------------------------------ the LM's cache


@dataclass
class NodeCache:
    """Memory-mapped LM outputs per node: token ids (N, T), lengths (N,), token states (N, T, d) float16,
    sentence and prompt embeddings (N, d) float32."""

    ids: np.ndarray
    lengths: np.ndarray
    tokens: np.ndarray
    sentence: np.ndarray
    prompt: np.ndarray

    def rows(self, name: str, nodes: torch.Tensor) -> torch.Tensor:
        """Rows of one array for `nodes`, read from disk (only those rows)."""
        return torch.from_numpy(np.ascontiguousarray(getattr(self, name)[nodes.cpu().numpy()]))


def _cache_key(lm: nn.Module, model_path: Any, graph: Any, cfg: GraphAdapterConfig) -> str:
    h = hashlib.sha256()
    if model_path is not None:
        for f in sorted(Path(model_path).glob("*.safetensors")):
            h.update(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}".encode())
    else:  # an unsaved (randomly initialised) LM: its weights are the key
        for p in lm.parameters():
            h.update(p.detach().float().cpu().numpy().tobytes()[:4096])
    h.update(f"{graph.fingerprint()}|{cfg.max_tokens}|{cfg.prompt}".encode())
    return h.hexdigest()[:20]


def _encode(tokenizer: Any, texts: list[str], max_tokens: int, suffix: list[int]) -> list[list[int]]:
    enc = tokenizer(texts, add_special_tokens=True, truncation=True, max_length=max_tokens)["input_ids"]
    keep = max_tokens - len(suffix)
    return [ids[:keep] + suffix for ids in enc]


@torch.no_grad()
def _last_states(lm: nn.Module, seqs: list[list[int]], pad_id: int, device: Any) -> torch.Tensor:
    """Final-layer states (after the final norm: what lm_head reads) of right-padded sequences."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, s in enumerate(seqs):
        ids[i, : len(s)], mask[i, : len(s)] = torch.tensor(s), 1
    return lm.base_model(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state.float()


def build_cache(
    lm: nn.Module, tokenizer: Any, texts: list[str], cfg: GraphAdapterConfig, folder: Path
) -> NodeCache:
    """Run the frozen LM over every node text once, chunk by chunk, into memmaps in `folder` (written to a
    temporary folder and renamed: a cache is whole or absent); an existing cache is opened, not rebuilt."""
    if not (folder / "done").is_file():
        shutil.rmtree(folder, ignore_errors=True)  # a folder without its marker is no cache
        with atomic_folder(folder) as tmp:
            _write_cache(lm, tokenizer, texts, cfg, tmp)
    load = lambda name: np.load(folder / f"{name}.npy", mmap_mode="r")  # noqa: E731
    return NodeCache(*(load(k) for k in ("ids", "lengths", "tokens", "sentence", "prompt")))


def _write_cache(lm: nn.Module, tokenizer: Any, texts: list[str], cfg: GraphAdapterConfig, tmp: Path) -> None:
    """The memmaps of `build_cache`, written into `tmp`, then its `done` marker."""
    n, t, d = len(texts), cfg.max_tokens, lm.config.hidden_size
    mm = lambda name, shape, dtype: np.lib.format.open_memmap(tmp / f"{name}.npy", "w+", dtype, shape)  # noqa: E731
    arrays = {
        "ids": mm("ids", (n, t), np.int32),
        "lengths": mm("lengths", (n,), np.int32),
        "tokens": mm("tokens", (n, t, d), np.float16),
        "sentence": mm("sentence", (n, d), np.float32),
        "prompt": mm("prompt", (n, d), np.float32),
    }
    suffix = tokenizer(cfg.prompt, add_special_tokens=False)["input_ids"]
    device = next(lm.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for start in range(0, n, cfg.cache_chunk):
        chunk = texts[start : start + cfg.cache_chunk]
        for s in range(0, len(chunk), 32):
            part, at = chunk[s : s + 32], start + s
            seqs = _encode(tokenizer, part, t, [])
            states = _last_states(lm, seqs, pad, device).cpu()
            prompted = _encode(tokenizer, part, t, suffix)
            pstates = _last_states(lm, prompted, pad, device).cpu()
            for i, (seq, pseq) in enumerate(zip(seqs, prompted, strict=True)):
                arrays["ids"][at + i, : len(seq)] = seq
                arrays["lengths"][at + i] = len(seq)
                arrays["tokens"][at + i, : len(seq)] = states[i, : len(seq)].numpy()
                arrays["sentence"][at + i] = states[i, len(seq) - 1].numpy()
                arrays["prompt"][at + i] = pstates[i, len(pseq) - 1].numpy()
        for a in arrays.values():
            a.flush()
    del arrays
    (tmp / "done").write_text("ok")


# ------------------------------------------------------------------------------------------------ modules


class NodeGNN(nn.Module):
    """Sentence embedding → h (MLP + RMSNorm) → two mean-aggregation SAGE layers (or two linear layers)."""

    def __init__(self, d: int, h: int, kind: str) -> None:
        super().__init__()
        from torch_geometric.nn import SAGEConv

        self.encode = nn.Sequential(nn.Linear(d, 2 * h), nn.SiLU(), nn.Linear(2 * h, h), nn.RMSNorm(h))
        self.graph = kind == "sage"
        if self.graph:
            self.layers = nn.ModuleList([SAGEConv(h, h, aggr="mean"), SAGEConv(h, h, aggr="mean")])
        else:
            self.layers = nn.ModuleList([nn.Linear(h, h), nn.Linear(h, h)])

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        z = self.encode(x)
        for i, layer in enumerate(self.layers):
            z = layer(z, edge_index) if self.graph else layer(z)
            if i < len(self.layers) - 1:
                z = F.silu(z)
        return z


class Adapter(nn.Module):
    """The trainable part: GNN, fusion MLP, `extend` (h → d, pretraining only)."""

    def __init__(self, d: int, h: int, kind: str) -> None:
        super().__init__()
        self.gnn = NodeGNN(d, h, kind)
        self.g_lin, self.prompt_lin = nn.Linear(h, h), nn.Linear(d, h)
        self.fuse_mlp = nn.Sequential(nn.Linear(2 * h, 10 * h), nn.SiLU(), nn.Linear(10 * h, h))
        self.extend = nn.Linear(h, d)

    def fuse(self, g: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """z from a node state g (..., h) and LM states (..., d): broadcast over tokens."""
        g = self.g_lin(g).expand(*states.shape[:-1], -1)
        return self.fuse_mlp(torch.cat([g, self.prompt_lin(states)], -1))


def mixed_log_probs(lm_head: nn.Module, states: torch.Tensor, z_extended: torch.Tensor) -> torch.Tensor:
    """log of p = (softmax(lm_head(states)) + softmax(lm_head(z_extended))) / 2, computed stably."""
    a = F.log_softmax(lm_head(states).float(), -1)
    b = F.log_softmax(lm_head(z_extended).float(), -1)
    return torch.logaddexp(a, b) - math.log(2.0)


def token_weights(targets: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """1/(count of the token in its node), normalised to sum 1 per node (the authors' weighting)."""
    same = (targets[:, :, None] == targets[:, None, :]) & valid[:, None, :]
    w = valid.float() / same.sum(-1).clamp(min=1).float()
    return w / w.sum(-1, keepdim=True).clamp(min=1e-12)


class GraphAdapterClassifier(nn.Module):
    """Node classifier: linear head on fuse(GNN state, prompt embedding). `forward(node_index)`."""

    reads_nodes = True

    def __init__(self, adapter: Adapter, num_labels: int, cache: NodeCache, data: Any, fanouts: list[int]):
        super().__init__()
        self.adapter = adapter
        self.head = nn.Linear(adapter.g_lin.in_features, num_labels)
        self.cache, self.data, self.fanouts = cache, data, list(fanouts)
        self.facts: dict[str, Any] = {}

    def node_states(self, nodes: torch.Tensor) -> torch.Tensor:
        """GNN states of `nodes`: over the whole graph, or over their sampled neighbourhood (node loader)."""
        device = self.head.weight.device
        if not self.fanouts:
            x = self.cache.rows("sentence", torch.arange(self.data.num_nodes)).to(device)
            return self.adapter.gnn(x, self.data.edge_index.to(device))[nodes.to(device)]
        from zoo.graph_sampling import node_loader

        loader = node_loader(
            self.data, nodes.cpu(), self.fanouts, len(nodes), seed=int(torch.randint(0, 2**31 - 1, ()))
        )
        batch = next(iter(loader))
        x = self.cache.rows("sentence", batch.n_id).to(device)
        return self.adapter.gnn(x, batch.edge_index.to(device))[: batch.batch_size]

    def forward(self, node_index: torch.Tensor, **_: Any) -> Any:
        from transformers.modeling_outputs import SequenceClassifierOutput

        g = self.node_states(node_index)
        prompt = self.cache.rows("prompt", node_index).to(g.device)
        return SequenceClassifierOutput(logits=self.head(self.adapter.fuse(g, prompt)))


# ------------------------------------------------------------------------------------------- pretraining


def pretrain_loss(
    adapter: Adapter, lm_head: nn.Module, g: torch.Tensor, cache: NodeCache, nodes: torch.Tensor, cfg: Any
) -> tuple[torch.Tensor, dict[str, float]]:
    """Label-smoothed, count-weighted NLL of the mixed p on the first 90% of each node's next tokens; with
    the held-out last 10%'s summed NLL under p and under the LM alone, and their token count."""
    device = g.device
    states = cache.rows("tokens", nodes).to(device).float()
    ids = cache.rows("ids", nodes).long().to(device)
    lengths = cache.rows("lengths", nodes).long().to(device)
    width = int(lengths.max())
    states, ids = states[:, : width - 1], ids[:, 1:width]
    pos = torch.arange(width - 1, device=device)[None, :]
    n_pred = (lengths - 1).clamp(min=0)[:, None]
    cut = torch.ceil(0.9 * n_pred.float()).long()
    train, held = pos < cut, (pos >= cut) & (pos < n_pred)
    logp = mixed_log_probs(lm_head, states, adapter.extend(adapter.fuse(g[:, None, :], states)))
    nll = -logp.gather(-1, ids[..., None]).squeeze(-1)
    smooth = -logp.mean(-1)
    per_token = (1 - cfg.label_smoothing) * nll + cfg.label_smoothing * smooth
    loss = (per_token * token_weights(ids, train)).sum(-1).mean()
    with torch.no_grad():
        lm_nll = -F.log_softmax(lm_head(states).float(), -1).gather(-1, ids[..., None]).squeeze(-1)
        stats = {
            "mixed": float((nll * held).sum()),
            "lm": float((lm_nll * held).sum()),
            "tokens": float(held.sum()),
        }
    return loss, stats


def pretrain(adapter: Adapter, lm_head: nn.Module, cache: NodeCache, data: Any, cfg: Any, seed: int) -> dict:
    """GraphAdapter's pretraining (AdamW, wd 1e-3), then one pass without training over the same nodes for
    the held-out NLLs (the last 10% of each node's tokens) under the mixed p and under the LM alone."""
    from zoo.graph_sampling import node_loader

    nodes = (
        torch.arange(data.num_nodes) if cfg.pretrain_nodes == "all" else data.train_mask.nonzero().view(-1)
    )
    device = lm_head.weight.device
    opt = torch.optim.AdamW(adapter.parameters(), lr=cfg.pretrain_lr, weight_decay=1e-3)
    fanouts = cfg.fanouts or [-1, -1]

    def batches(epoch: int, shuffle: bool) -> Any:
        loader = node_loader(
            data, nodes, fanouts, cfg.pretrain_batch_nodes, shuffle=shuffle, seed=seed + epoch
        )
        for batch in loader:
            x = cache.rows("sentence", batch.n_id).to(device)
            g = adapter.gnn(x, batch.edge_index.to(device))[: batch.batch_size]
            yield pretrain_loss(adapter, lm_head, g, cache, batch.n_id[: batch.batch_size], cfg)

    adapter.train()
    for epoch in range(cfg.pretrain_epochs):
        for loss, _ in batches(epoch, shuffle=True):
            opt.zero_grad()
            loss.backward()
            opt.step()
    adapter.eval()
    totals = {"mixed": 0.0, "lm": 0.0, "tokens": 0.0}
    with torch.no_grad():
        for _, stats in batches(cfg.pretrain_epochs, shuffle=False):
            totals = {k: totals[k] + stats[k] for k in totals}
    adapter.train()
    n = max(totals["tokens"], 1.0)
    return {"pretrain_nll_mixed": totals["mixed"] / n, "pretrain_nll_lm": totals["lm"] / n}


def pretrained(
    adapter: Adapter, lm_head: nn.Module, cache: NodeCache, data: Any, cfg: Any, folder: Path
) -> dict:
    """`adapter` pretrained (or its saved pretraining read back: keyed by the options that shape it), and the
    held-out NLLs of that pretraining."""
    from safetensors.torch import load_model, save_model

    shaping = ("hidden", "gnn", "fanouts", "pretrain_epochs", "pretrain_nodes", "pretrain_seed", "pretrain_lr",
               "pretrain_batch_nodes", "label_smoothing")  # fmt: skip
    key = hashlib.sha256(json.dumps([getattr(cfg, k) for k in shaping]).encode()).hexdigest()[:12]
    weights, stats = folder / f"pretrained-{key}.safetensors", folder / f"pretrained-{key}.json"
    if weights.is_file() and stats.is_file():
        load_model(adapter, str(weights), device=str(lm_head.weight.device))
        return json.loads(stats.read_text())
    facts = pretrain(adapter, lm_head, cache, data, cfg, cfg.pretrain_seed)
    tmp = weights.with_suffix(".tmp")
    save_model(adapter, str(tmp))
    stats.write_text(json.dumps(facts))
    tmp.rename(weights)
    return facts


# ------------------------------------------------------------------------------------------------- method


def _causal_lm(model: nn.Module, model_path: Any) -> nn.Module:
    """The frozen causal LM whose backbone `model` (a task model) carries: the saved LM when there is one."""
    from transformers import AutoModelForCausalLM

    if model_path is not None:
        lm = AutoModelForCausalLM.from_pretrained(str(model_path))
    else:
        lm = AutoModelForCausalLM.from_config(model.config)
        lm.base_model.load_state_dict(model.base_model.state_dict())
    return lm.to(next(model.parameters()).device).eval().requires_grad_(False)


class GraphAdapterMethod(MethodBase):
    name = "graph_adapter"
    summary = "GNN adapter on a frozen causal LM's node embeddings, next-token pretraining, linear head"
    config_cls = GraphAdapterConfig
    preserves_outputs_at_init = False
    variant_options = ("pretrain_epochs", "pretrain_nodes", "gnn")  # with/without pretraining, its nodes, MLP

    def apply(self, model: nn.Module, cfg: GraphAdapterConfig, ctx: MethodContext | None) -> nn.Module:
        if ctx is None or "graph" not in ctx.extra:
            raise UserError(
                "tuning method 'graph_adapter' needs a graph: use it on a node_classification task "
                "(e.g. zoo finetune graph_text --task citeseer_tag --method graph_adapter)"
            )
        from zoo.leaderboard_db import zoo_home

        graph, data = ctx.extra["graph"], ctx.extra["data"]
        lm = _causal_lm(model, ctx.extra.get("model_path"))
        folder = (
            zoo_home() / "cache" / "graph_adapter" / _cache_key(lm, ctx.extra.get("model_path"), graph, cfg)
        )
        cache = build_cache(lm, ctx.tokenizer, list(graph.texts), cfg, folder)
        device = next(lm.parameters()).device
        facts: dict[str, Any] = {"pretrain_epochs": cfg.pretrain_epochs}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.pretrain_seed if cfg.pretrain_epochs else ctx.seed)
            adapter = Adapter(lm.config.hidden_size, cfg.hidden, cfg.gnn).to(device)
            if cfg.pretrain_epochs:
                facts.update(pretrained(adapter, lm.get_output_embeddings(), cache, data, cfg, folder))
            torch.manual_seed(ctx.seed)
            classifier = GraphAdapterClassifier(adapter, len(ctx.labels), cache, data, cfg.fanouts)
        classifier.facts = {**facts, "frozen_lm_params": sum(p.numel() for p in lm.parameters())}
        return classifier.to(next(lm.parameters()).device)

    def describe(self, model: nn.Module) -> dict[str, Any]:
        counts = parameter_counts(model)
        facts = dict(getattr(model, "facts", {}))
        total = counts["total_params"] + int(facts.pop("frozen_lm_params", 0))
        trainable = counts["trainable_params"]
        return {**counts, "total_params": total, "trainable_percent": 100.0 * trainable / total, **facts}

    def save(self, model: nn.Module, directory: Path) -> None:
        from safetensors.torch import save_model

        directory.mkdir(parents=True, exist_ok=True)
        save_model(model, str(directory / "graph_adapter.safetensors"))
        (directory / "graph_adapter.json").write_text(json.dumps(getattr(model, "facts", {}), default=str))

    def load(self, model: nn.Module, directory: Path) -> nn.Module:
        """Weights onto a classifier that `apply` built for the same graph and LM."""
        from safetensors.torch import load_model

        if not isinstance(model, GraphAdapterClassifier):
            raise UserError(
                f"{directory}: a GraphAdapter loads onto the model its method built for the graph"
            )
        load_model(model, str(directory / "graph_adapter.safetensors"), device=str(model.head.weight.device))
        return model


METHOD = GraphAdapterMethod()
