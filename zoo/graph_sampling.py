"""Mini-batches of nodes with their sampled neighbourhoods, through PyG's node loader.

`node_loader` is PyG's `NeighborLoader` when pyg-lib or torch-sparse (its compiled samplers) is installed,
and otherwise PyG's `NodeLoader` driven by `TorchNeighborSampler`: the same GraphSAGE sampling (per hop,
up to `fanout` incoming neighbours of each node added at the hop before; -1 = all), written in torch for
machines where the compiled wheels do not exist (the CPU torch 2.13 here). Either way a batch is a PyG
`Data` whose first `batch_size` nodes are the seeds, `n_id` their global ids and `edge_index` local.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch_geometric.data import Data
from torch_geometric.sampler import BaseSampler, NodeSamplerInput, SamplerOutput


class TorchNeighborSampler(BaseSampler):
    """GraphSAGE neighbour sampling over the incoming edges (messages flow source → target, as in PyG)."""

    def __init__(self, data: Data, fanouts: Sequence[int], seed: int = 0) -> None:
        n = int(data.num_nodes)
        src, dst = data.edge_index
        order = torch.argsort(dst * n + src, stable=True)
        self.src, self.edge_id = src[order], order
        self.ptr = torch.zeros(n + 1, dtype=torch.long)
        self.ptr[1:] = torch.cumsum(torch.bincount(dst, minlength=n), 0)
        self.fanouts = list(fanouts)
        self.generator = torch.Generator().manual_seed(seed)

    def _incoming(self, node: int, fanout: int) -> torch.Tensor:
        start, end = int(self.ptr[node]), int(self.ptr[node + 1])
        if fanout < 0 or end - start <= fanout:
            return torch.arange(start, end)
        return start + torch.randperm(end - start, generator=self.generator)[:fanout]

    def sample_from_nodes(self, index: NodeSamplerInput, **kwargs: Any) -> SamplerOutput:
        nodes: list[int] = index.node.tolist()
        local = {v: i for i, v in enumerate(nodes)}
        rows: list[int] = []
        cols: list[int] = []
        edges: list[int] = []
        frontier = list(nodes)
        sampled_nodes, sampled_edges = [len(nodes)], []
        for fanout in self.fanouts:
            added: list[int] = []
            before = len(edges)
            for v in frontier:
                for e in self._incoming(v, fanout).tolist():
                    u = int(self.src[e])
                    if u not in local:
                        local[u] = len(nodes)
                        nodes.append(u)
                        added.append(u)
                    rows.append(local[u])
                    cols.append(local[v])
                    edges.append(int(self.edge_id[e]))
            sampled_nodes.append(len(added))
            sampled_edges.append(len(edges) - before)
            frontier = added
        as_long = lambda xs: torch.tensor(xs, dtype=torch.long)  # noqa: E731
        return SamplerOutput(
            node=as_long(nodes),
            row=as_long(rows),
            col=as_long(cols),
            edge=as_long(edges),
            num_sampled_nodes=sampled_nodes,
            num_sampled_edges=sampled_edges,
            metadata=(index.input_id, index.time),
        )

    def sample_from_edges(self, index: Any, neg_sampling: Any = None) -> Any:
        raise NotImplementedError("TorchNeighborSampler samples around nodes only")


def node_loader(
    data: Data,
    input_nodes: torch.Tensor,
    fanouts: Sequence[int],
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
) -> Any:
    """Batches of `input_nodes` with their `fanouts`-hop sampled neighbourhoods (see the module doc)."""
    import torch_geometric.typing as pyg_typing
    from torch_geometric.loader import NeighborLoader, NodeLoader

    generator = torch.Generator().manual_seed(seed)
    common = {
        "input_nodes": input_nodes,
        "batch_size": batch_size,
        "shuffle": shuffle,
        "generator": generator,
    }
    if pyg_typing.WITH_PYG_LIB or pyg_typing.WITH_TORCH_SPARSE:
        return NeighborLoader(data, num_neighbors=list(fanouts), **common)
    return NodeLoader(data, node_sampler=TorchNeighborSampler(data, fanouts, seed), **common)
