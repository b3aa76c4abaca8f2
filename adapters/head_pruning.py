"""Remove attention heads from BERT- and Llama-style models (transformers 5 dropped `prune_heads`).

A head is removed by deleting its rows from the query/key/value projections and its columns from the
attention output projection. Both architectures reshape with `view(..., -1, head_dim)`, so the smaller
projections just work; we also update the head counts stored on the module. Grouped-query attention
(Llama with num_key_value_heads < num_attention_heads) can only lose whole groups (one key/value head and
the query heads that read it), so there `heads` must list complete groups.

Adapted projections (DSEE's sparse-LoRA modules) are sliced too: lora_B rows / lora_A columns and the
sparse entries, whose indices are renumbered. A `prune_mask` buffer (DSEE's unstructured mask) is sliced
with its weight.

`pad_pruned` puts the removed heads back as zeros so the model matches its config again (for
`save_pretrained`): a zero value projection (weight and bias) makes the head's output zero, and the zero
output-projection columns drop it, so the padded model computes exactly what the pruned one does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from zoo.errors import UserError


@dataclass
class Attention:
    """One layer's attention: the module that holds the head counts and its four projections."""

    module: nn.Module
    q: nn.Module
    k: nn.Module
    v: nn.Module
    o: nn.Module
    head_dim: int
    num_heads: int  # current query heads
    num_kv_heads: int  # current key/value heads

    @property
    def group(self) -> int:
        return self.num_heads // self.num_kv_heads


def blocks(model: nn.Module) -> list[nn.Module]:
    if hasattr(model, "get_base_model"):  # a peft wrapper
        model = model.get_base_model()
    base = getattr(model, "base_model", model)
    if hasattr(base, "encoder") and hasattr(base.encoder, "layer"):
        return list(base.encoder.layer)
    if hasattr(base, "layers"):
        return list(base.layers)
    if hasattr(base, "encoder") and hasattr(base.encoder, "block"):  # T5: the encoder's blocks
        return list(base.encoder.block)
    raise UserError(f"no BERT-, Llama- or T5-style layer stack in {type(model).__name__}")


def attention(block: nn.Module) -> Attention:
    if hasattr(block, "attention") and hasattr(block.attention, "self"):  # BERT
        sa = block.attention.self
        # Longformer's self-attention keeps num_heads/head_dim (BERT: all_head_size/attention_head_size).
        head_dim = getattr(sa, "attention_head_size", None) or sa.head_dim
        n = sa.all_head_size // head_dim if hasattr(sa, "all_head_size") else sa.num_heads
        return Attention(sa, sa.query, sa.key, sa.value, block.attention.output.dense, head_dim, n, n)
    if hasattr(block, "self_attn"):  # Llama
        sa = block.self_attn
        n = _out_features(sa.q_proj) // sa.head_dim
        kv = _out_features(sa.k_proj) // sa.head_dim
        return Attention(sa, sa.q_proj, sa.k_proj, sa.v_proj, sa.o_proj, sa.head_dim, n, kv)
    if hasattr(block, "layer") and hasattr(block.layer[0], "SelfAttention"):  # T5
        sa = block.layer[0].SelfAttention
        n = _out_features(sa.q) // sa.key_value_proj_dim
        return Attention(sa, sa.q, sa.k, sa.v, sa.o, sa.key_value_proj_dim, n, n)
    raise UserError(f"no self-attention found in {type(block).__name__}")


def _out_features(m: nn.Module) -> int:
    return m.weight.shape[0]


def _select(t: torch.Tensor, dim: int, keep: torch.Tensor) -> torch.Tensor:
    return t.detach().index_select(dim, keep.to(t.device)).contiguous()


def _set_param(m: nn.Module, name: str, value: torch.Tensor) -> None:
    old = getattr(m, name)
    setattr(m, name, nn.Parameter(value, requires_grad=old.requires_grad))


def slice_linear(m: nn.Module, dim: int, keep: torch.Tensor) -> None:
    """Keep only rows (dim 0, outputs) or columns (dim 1, inputs) `keep` of a linear or sparse-LoRA module."""
    full = m.weight.shape[dim]
    _set_param(m, "weight", _select(m.weight, dim, keep))
    if dim == 0 and getattr(m, "bias", None) is not None:
        _set_param(m, "bias", _select(m.bias, 0, keep))
    if getattr(m, "prune_mask", None) is not None:
        m.prune_mask = _select(m.prune_mask, dim, keep)
    if dim == 0 and getattr(m, "lora_B", None) is not None:
        _set_param(m, "lora_B", _select(m.lora_B, 0, keep))
    if dim == 1 and getattr(m, "lora_A", None) is not None:
        _set_param(m, "lora_A", _select(m.lora_A, 1, keep))
    if getattr(m, "sparse_index", None) is not None:
        # Renumber the surviving sparse entries; entries on removed rows/columns go away with them.
        new_pos = torch.full((full,), -1, dtype=torch.long, device=m.sparse_index.device)
        new_pos[keep.to(new_pos.device)] = torch.arange(keep.numel(), device=new_pos.device)
        pos = new_pos[m.sparse_index[dim]]
        alive = pos >= 0
        index = m.sparse_index[:, alive].clone()
        index[dim] = pos[alive]
        m.sparse_index = index
        _set_param(m, "sparse_values", m.sparse_values.detach()[alive].contiguous())
    if hasattr(m, "out_features") and dim == 0:
        m.out_features = keep.numel()
    if hasattr(m, "in_features") and dim == 1:
        m.in_features = keep.numel()


def _rows(heads: Sequence[int], head_dim: int) -> torch.Tensor:
    return (
        torch.cat([torch.arange(h * head_dim, (h + 1) * head_dim) for h in heads])
        if heads
        else torch.empty(0, dtype=torch.long)
    )


def prune_heads(model: nn.Module, heads: Mapping[int, Sequence[int]]) -> nn.Module:
    """Remove `heads[layer]` (current query-head indices) from each listed layer, in place; returns the model.

    The original indices of removed heads accumulate in `module.pruned_heads` (for `pad_pruned` and saving).
    """
    layers = blocks(model)
    for layer, drop in heads.items():
        drop = sorted({int(h) for h in drop})
        if not drop:
            continue
        a = attention(layers[layer])
        if hasattr(a.module, "relative_attention_num_buckets"):
            # T5 reshapes by its fixed n_heads, and layer 0's relative position bias (one value per head)
            # is shared by every layer: heads cannot be removed per layer.
            raise UserError("attention heads cannot be pruned in a T5 model; set method.prune_heads=0")
        if hasattr(a.module, "query_global"):
            raise UserError(
                "head pruning does not support Longformer attention (its global query/key/value projections "
                "would keep the pruned heads); set method.prune_heads=0"
            )
        if drop[0] < 0 or drop[-1] >= a.num_heads:
            raise UserError(f"layer {layer} has heads 0..{a.num_heads - 1}; cannot prune {drop}")
        if len(drop) >= a.num_heads:
            raise UserError(
                f"pruning {len(drop)} heads would leave layer {layer} with none; prune fewer heads"
            )
        kv_drop = sorted({h // a.group for h in drop})
        if a.group > 1 and len(drop) != len(kv_drop) * a.group:
            raise UserError(
                f"layer {layer} uses grouped-query attention ({a.group} query heads per key/value head): "
                f"prune whole groups (heads_per_layer a multiple of {a.group}), not heads {drop}"
            )
        keep_q = torch.tensor([h for h in range(a.num_heads) if h not in drop])
        keep_kv = torch.tensor([h for h in range(a.num_kv_heads) if h not in kv_drop])
        q_rows, kv_rows = _rows(keep_q.tolist(), a.head_dim), _rows(keep_kv.tolist(), a.head_dim)
        slice_linear(a.q, 0, q_rows)
        slice_linear(a.k, 0, kv_rows)
        slice_linear(a.v, 0, kv_rows)
        slice_linear(a.o, 1, q_rows)

        original = [
            h
            for h in range(a.num_heads + len(getattr(a.module, "pruned_heads", ())))
            if h not in getattr(a.module, "pruned_heads", ())
        ]
        a.module.pruned_heads = sorted(
            set(getattr(a.module, "pruned_heads", ())) | {original[h] for h in drop}
        )
        if hasattr(a.module, "all_head_size"):  # BERT keeps these for its own bookkeeping
            a.module.num_attention_heads = keep_q.numel()
            a.module.all_head_size = keep_q.numel() * a.head_dim
    return model


def pruned_heads(model: nn.Module) -> dict[int, list[int]]:
    """Layer -> original indices of the removed query heads."""
    return {
        i: list(a.module.pruned_heads)
        for i, b in enumerate(blocks(model))
        if getattr((a := attention(b)).module, "pruned_heads", None)
    }


def _pad(t: torch.Tensor, dim: int, keep: torch.Tensor, full: int) -> torch.Tensor:
    shape = list(t.shape)
    shape[dim] = full
    out = t.new_zeros(shape)
    return out.index_copy(dim, keep.to(t.device), t.detach())


def pad_pruned(model: nn.Module, num_heads: int, num_kv_heads: int | None = None) -> nn.Module:
    """Put removed heads back as zeros (plain nn.Linear projections only: merge adapters first)."""
    num_kv_heads = num_kv_heads or num_heads
    group = num_heads // num_kv_heads
    for block in blocks(model):
        a = attention(block)
        removed = list(getattr(a.module, "pruned_heads", ()))
        if not removed:
            continue
        keep_q = [h for h in range(num_heads) if h not in removed]
        keep_kv = [g for g in range(num_kv_heads) if g * group not in removed]
        q_rows, kv_rows = _rows(keep_q, a.head_dim), _rows(keep_kv, a.head_dim)
        for m, rows, full in (
            (a.q, q_rows, num_heads),
            (a.k, kv_rows, num_kv_heads),
            (a.v, kv_rows, num_kv_heads),
        ):
            _set_param(m, "weight", _pad(m.weight, 0, rows, full * a.head_dim))
            if m.bias is not None:
                _set_param(m, "bias", _pad(m.bias, 0, rows, full * a.head_dim))
            m.out_features = full * a.head_dim
        _set_param(a.o, "weight", _pad(a.o.weight, 1, q_rows, num_heads * a.head_dim))
        a.o.in_features = num_heads * a.head_dim
        a.module.pruned_heads = []
        if hasattr(a.module, "all_head_size"):
            a.module.num_attention_heads = num_heads
            a.module.all_head_size = num_heads * a.head_dim
    return model
