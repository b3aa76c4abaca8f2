"""DSEE: sparsity-embedded low-rank fine-tuning, then magnitude pruning of the final weights.

Chen et al., "DSEE: Dually Sparsity-embedded Efficient Tuning of Pre-trained Language Models" (ACL 2023,
arXiv 2111.00160); official code VITA-Group/DSEE (a transformers-4.1x fork). What is reproduced:

Stage 1 (`apply`). Each target projection W (default query and value) gets a low-rank update B·A plus a
sparse residual S2 with exactly `num_sparse` non-zeros, both scaled by alpha/r:
    y = x Wᵀ + b + (alpha/r)·(B A + S2) x
S2's support is chosen from the *pretrained* W (GreBsmo low-rank + sparse decomposition, or top-|W|, or
random; see `grebsmo.py`). Init: A ~ N(0, initializer_range) (the official layers get BERT's normal
init), B = 0, S2 = 0, so the adapted model computes exactly what the base model does. Trainable: A, B, S2
and the task head (`classifier` / `score`); the pooler stays frozen, as in the official script.

Stage 2 (`prune`, or `after_training`, which retrains through the engine's `ctx.train`). Global unstructured
magnitude pruning, run as two groups with one ratio each (the official scripts use 0.2 for both): every
other linear layer of the backbone by |W|, and the adapted ones by the magnitude of their update
|B A + S2|·alpha/r (the official "ABS" mode). The mask goes on the frozen W; LoRA and S2 are then retrained.
The structured variant removes the `heads_per_layer` heads per layer whose adapted rows carry the least
update (sum of |ΔW_q| + |ΔW_v| over the head's rows; official script: 3 of 12).

The layer is the fused `SparseLoRALinear` (Triton on CUDA, reference on CPU). That kernel adds x·Sᵀ
unscaled; `DSEELinear` passes (alpha/r)·S2 to it instead (`kernel_sparse_values`), so the trainable
parameter is the official S2 (same gradients, same Adam dynamics) and `delta_weight()` is
(alpha/r)·(B A + S2), the exact ABS pruning score. The method summary's `kernel` says which path ran.

Files. `save_adapter(model, dir)` writes a documented two-file format, loaded back onto the same pretrained
weights by `load_adapter(base, dir)`:
    dsee_config.json         {"format": "zoo-dsee", "version": 1, "config": DSEEConfig fields,
                              "targets": [module names], "heads": [task-head module names],
                              "pruned_heads": {layer: [original head ids]}, "masks": {module: [out, in]}}
    dsee_adapter.safetensors "<target>.lora_A" (r, in), "<target>.lora_B" (out, r), "<target>.sparse_values"
                              (nnz,) = S2, "<target>.sparse_index" (2, nnz) rows/cols, "<head>.<param>",
                              "<module>.prune_mask" = the keep-mask as numpy packbits (uint8, row-major)
`export_merged(model, dir)` writes a plain transformers checkpoint (`save_pretrained`) that loads with
`from_pretrained` of the same class and computes exactly what the trained DSEE model computes:
W ← (mask ⊙ W) + ΔW, removed heads padded back as zeros. Non-adapted layers keep their pruning zeros; adapted
layers become dense, because ΔW = (alpha/r)·(B A + S2) is dense (the official model keeps it as a separate
branch beside the sparse W; re-masking the sum would make the published model differ from the scored one).
The adapter files keep the sparse W and the branch apart for a deployment that wants both.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from zoo.adapters.base import MethodBase, MethodContext, parameter_counts
from zoo.adapters.grebsmo import sparse_support
from zoo.adapters.head_pruning import attention, blocks, pad_pruned, prune_heads, pruned_heads
from zoo.adapters.kernels import SparseLoRALinear, backend_for
from zoo.config import SEED_MAX, bounded
from zoo.errors import UserError

CONFIG_NAME = "dsee_config.json"
WEIGHTS_NAME = "dsee_adapter.safetensors"
FORMAT = "zoo-dsee"

# BERT-style and Llama-style names for the same projections; a target missing in one family is translated.
_ALIASES = {
    "query": "q_proj",
    "key": "k_proj",
    "value": "v_proj",
    "attention.output.dense": "o_proj",
    "intermediate.dense": "up_proj",
    "output.dense": "down_proj",
}
_ALIASES.update({v: k for k, v in list(_ALIASES.items())})
# T5's names for them (its FFN is wi → wo; the gated variant's wi_0/wi_1 are named as they are).
_T5_NAMES = {
    "query": "q",
    "key": "k",
    "value": "v",
    "attention.output.dense": "o",
    "q_proj": "q",
    "k_proj": "k",
    "v_proj": "v",
    "o_proj": "o",
    "intermediate.dense": "wi",
    "output.dense": "wo",
}


@dataclass
class DSEEConfig:
    """Sparse + low-rank update on the target projections, then optional pruning (arXiv 2111.00160)."""

    r: int = bounded(16, ge=0)
    """LoRA rank (official scripts: 16)."""
    alpha: float = bounded(32, gt=0.0)
    """LoRA alpha; both the low-rank and the sparse part are scaled by alpha / r."""
    num_sparse: int = bounded(64, ge=0)
    """Non-zeros of S2 per adapted matrix (official: 16 in the RTE/SST-2 scripts, 64 in the README)."""
    target_modules: list[str] = field(default_factory=lambda: ["query", "value"])
    """Projection names (leaf or dotted path in a layer); BERT names translate to Llama (query → q_proj)."""
    sparse_init: Literal["grebsmo", "magnitude", "random"] = "grebsmo"
    """S2's support from the pretrained W: GreBsmo residual, top-|W| (official 'omp') or random ('rp')."""
    head_modules: list[str] = field(default_factory=lambda: ["classifier", "score"])
    """Task-head modules trained alongside the adapter (those present in the model)."""
    seed: int = bounded(0, ge=0, le=SEED_MAX)
    """Seed of the support selection (module i uses seed + i)."""
    grebsmo_iters: int = bounded(100, ge=1)
    """GreBsmo outer iterations (official 100; the rank grows by `grebsmo_rank_step` each)."""
    grebsmo_rank_step: int = bounded(5, ge=1)
    """Rank added per outer iteration (official 5)."""
    grebsmo_inner: int = bounded(2, ge=1)
    """Alternating QR steps per outer iteration (official 2)."""
    grebsmo_threshold: float = bounded(0.01, ge=0.0)
    """Hard threshold on the sparse part (official 0.01, tuned to BERT's weight scale)."""
    prune_ratio: float = bounded(0.2, ge=0.0, lt=1.0)
    """Stage 2: fraction of non-adapted backbone weights removed by |W| (official 0.2); 0 = none."""
    prune_adapted_ratio: float | None = bounded(None, ge=0.0, lt=1.0)
    """Stage 2: fraction of adapted weights removed by |ΔW| (official 0.2); None = prune_ratio."""
    prune_heads: int = bounded(0, ge=0)
    """Stage 2, structured: attention heads removed per layer by update magnitude (official 3 of 12)."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Checked at construction and again by `apply` (key=value overrides set fields afterwards)."""
        self.target_modules = list(self.target_modules)
        self.head_modules = list(self.head_modules)
        if self.r < 0 or self.num_sparse < 0 or (self.r == 0 and self.num_sparse == 0):
            raise UserError(
                f"DSEE needs r >= 0 and num_sparse >= 0, not both 0 (got r={self.r}, "
                f"num_sparse={self.num_sparse})"
            )
        for name in ("prune_ratio", "prune_adapted_ratio"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value < 1.0:
                raise UserError(f"DSEE {name} must be in [0, 1), got {value}")


class DSEELinear(SparseLoRALinear):
    """`SparseLoRALinear` whose sparse part is scaled by alpha/r like the low-rank one (official DSEE).

    `sparse_values` holds the official S2; the kernel is given (alpha/r)·S2, so ΔW = (alpha/r)(B A + S2).
    `prune_mask` (non-persistent buffer, None until `prune`) marks the kept entries of the frozen W.
    """

    prune_mask: Tensor | None

    @classmethod
    def wrap(
        cls, linear: nn.Linear, r: int, alpha: float, index: Tensor | None, init_std: float
    ) -> DSEELinear:
        layer = cls.from_linear(linear, r, alpha, index, lora_init_std=init_std)
        layer.register_buffer("prune_mask", None, persistent=False)
        return layer

    def _scaled_sparse(self) -> Tensor | None:
        if self.sparse_values is None:
            return None
        # r = 0 (sparse-only) has no alpha/r; S2 is then used as is.
        return self.sparse_values * self.scaling if self.r > 0 else self.sparse_values

    def delta_weight(self, dtype: torch.dtype = torch.float32) -> Tensor:
        delta = torch.zeros(
            self.out_features, self.in_features, device=self.weight.device, dtype=torch.float32
        )
        if self.lora_A is not None:
            delta += self.scaling * (self.lora_B.float() @ self.lora_A.float())
        if self.sparse_index is not None:
            delta.index_put_(tuple(self.sparse_index), self._scaled_sparse().float(), accumulate=True)
        return delta.to(dtype)

    def kernel_sparse_values(self) -> Tensor | None:
        return self._scaled_sparse()


# ----------------------------------------------------------------------------------------------------------
# Stage 1


def _unwrap(model: nn.Module) -> nn.Module:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def resolve_targets(model: nn.Module, names: Iterable[str]) -> list[str]:
    """Full module names of the nn.Linear projections inside the layer stack that match `names`."""
    model = _unwrap(model)
    full = {id(m): n for n, m in model.named_modules()}
    linears = [
        (full[id(sub)], sub_name)
        for block in blocks(model)
        for sub_name, sub in block.named_modules()
        if isinstance(sub, nn.Linear)
    ]

    def match(wanted: set[str]) -> list[str]:
        # A dotted target must equal the path inside the layer (so "output.dense" is not
        # "attention.output.dense");
        # a plain one matches the leaf name ("query" is "attention.self.query").
        return [
            name
            for name, local in linears
            if any(local == w or ("." not in w and local.rsplit(".", 1)[-1] == w) for w in wanted)
        ]

    wanted = set(names)
    found = (
        match(wanted)
        or match({_ALIASES.get(w, w) for w in wanted})
        or match({_T5_NAMES.get(w, w) for w in wanted})
    )
    if not found:
        local = sorted({s for _, s in linears})
        raise UserError(
            f"method.target_modules {sorted(wanted)} match no linear layer; this model has: {', '.join(local)}"
        )
    return found


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def dsee_layers(model: nn.Module) -> dict[str, DSEELinear]:
    return {n: m for n, m in _unwrap(model).named_modules() if isinstance(m, DSEELinear)}


def _head_names(model: nn.Module, config: DSEEConfig) -> list[str]:
    children = dict(_unwrap(model).named_children())
    return [h for h in config.head_modules if h in children]


def apply(model: nn.Module, config: DSEEConfig, supports: dict[str, Tensor] | None = None) -> nn.Module:
    """Stage 1 in place: wrap the targets in `DSEELinear`, freeze everything but A, B, S2 and the head.

    `supports` (module name -> (2, nnz) indices) skips the support selection (used by `load_adapter`).
    """
    model = _unwrap(model)
    config.validate()
    if dsee_layers(model):
        raise UserError("DSEE is already applied to this model")
    targets = resolve_targets(model, config.target_modules)
    init_std = float(getattr(getattr(model, "config", None), "initializer_range", 0.02))
    for p in model.parameters():
        p.requires_grad_(False)
    for i, name in enumerate(targets):
        linear = model.get_submodule(name)
        if supports is not None:
            index = supports.get(name)
        elif config.num_sparse > 0:
            index = sparse_support(
                linear.weight,
                config.num_sparse,
                config.sparse_init,
                config.seed + i,
                config.grebsmo_iters,
                config.grebsmo_inner,
                config.grebsmo_rank_step,
                config.grebsmo_threshold,
            )
        else:
            index = None
        _replace(model, name, DSEELinear.wrap(linear, config.r, config.alpha, index, init_std))
    for head in _head_names(model, config):
        model.get_submodule(head).requires_grad_(True)
    model.dsee_config = config  # type: ignore[assignment]
    return model


def num_dsee_parameters(model: nn.Module) -> int:
    """Parameters DSEE adds: A, B and the S2 values of every adapted layer (the head not included)."""
    return sum(
        p.numel()
        for m in dsee_layers(model).values()
        for p in (m.lora_A, m.lora_B, m.sparse_values)
        if p is not None
    )


# ----------------------------------------------------------------------------------------------------------
# Stage 2


def _backbone_linears(model: nn.Module) -> dict[str, nn.Linear]:
    """Non-adapted nn.Linear layers of the backbone (BERT: key, attention output, FFN, pooler)."""
    model = _unwrap(model)
    base = getattr(model, "base_model", model)
    prefix = next((n for n, m in model.named_modules() if m is base), "")
    return {f"{prefix}.{n}" if prefix else n: m for n, m in base.named_modules() if isinstance(m, nn.Linear)}


def _global_magnitude_prune(modules: list[nn.Module], scores: list[Tensor], ratio: float) -> None:
    """Zero exactly round(ratio · total) weights with the lowest scores, across all `modules` at once."""
    total = sum(s.numel() for s in scores)
    k = round(ratio * total)
    if k == 0:
        return
    flat = torch.cat([s.detach().float().reshape(-1).cpu() for s in scores])
    threshold = torch.kthvalue(flat, k).values
    drop = flat < threshold
    ties = (flat == threshold).nonzero().squeeze(1)
    drop[ties[: k - int(drop.sum())]] = True  # exactly k, whatever the ties
    start = 0
    for module, score in zip(modules, scores):
        keep = ~drop[start : start + score.numel()].view_as(score).to(module.weight.device)
        start += score.numel()
        old = getattr(module, "prune_mask", None)
        if "prune_mask" not in module._buffers:
            module.register_buffer("prune_mask", None, persistent=False)
        module.prune_mask = keep if old is None else keep & old
        with torch.no_grad():
            module.weight.mul_(module.prune_mask.to(module.weight.dtype))


def _head_scores(model: nn.Module, layer: int) -> tuple[Tensor, int]:
    """Update magnitude per key/value group of one layer (one head without GQA), and the group size."""
    a = attention(blocks(model)[layer])
    groups = torch.zeros(a.num_kv_heads)
    adapted = False
    for proj, heads in ((a.q, a.num_heads), (a.k, a.num_kv_heads), (a.v, a.num_kv_heads)):
        if isinstance(proj, DSEELinear):
            adapted = True
            per_head = proj.delta_weight().abs().sum(1).view(heads, a.head_dim).sum(1).cpu()
            groups += per_head.view(a.num_kv_heads, -1).sum(1)
    if not adapted:
        raise UserError(
            f"head pruning ranks heads by their DSEE update, but layer {layer} adapts none of q/k/v"
        )
    return groups, a.group


def prune(
    model: nn.Module, ratio: float = 0.2, heads_per_layer: int = 0, adapted_ratio: float | None = None
) -> nn.Module:
    """Stage 2 in place: remove `heads_per_layer` heads per layer, then magnitude-prune both groups.

    Non-adapted backbone linears lose `ratio` of their weights globally by |W|; adapted layers lose
    `adapted_ratio` (default `ratio`) of theirs globally by |ΔW| = |B A + S2|·alpha/r. Pass ratio=0 for the
    official structured-only run. Retrain afterwards (A, B, S2, head; W stays frozen and masked).
    """
    model = _unwrap(model)
    adapted = dsee_layers(model)
    if not adapted:
        raise UserError("prune needs a DSEE model: call dsee.apply (and train) first")
    if any(m.merged for m in adapted.values()):
        raise UserError(
            "prune needs unmerged DSEE layers (the mask goes on the frozen W); call unmerge() first"
        )
    if heads_per_layer > 0:
        plan = {}
        for layer in range(len(blocks(model))):
            scores, group = _head_scores(model, layer)
            if heads_per_layer % group:
                raise UserError(
                    f"layer {layer} shares each key/value head among {group} query heads: heads_per_layer "
                    "must "
                    f"be a multiple of {group}, not {heads_per_layer}"
                )
            worst = torch.argsort(scores, stable=True)[: heads_per_layer // group].tolist()
            plan[layer] = [g * group + j for g in worst for j in range(group)]
        prune_heads(model, plan)
    adapted_ratio = ratio if adapted_ratio is None else adapted_ratio
    base = list(_backbone_linears(model).values())
    if ratio > 0 and base:
        _global_magnitude_prune(base, [m.weight.abs() for m in base], ratio)
    layers = list(adapted.values())
    if adapted_ratio > 0:
        _global_magnitude_prune(layers, [m.delta_weight().abs() for m in layers], adapted_ratio)
    return model


def sparsity(model: nn.Module) -> dict[str, float]:
    """Achieved share of masked weights in each pruning group (0.0 before `prune`)."""

    def share(mods: Iterable[nn.Module]) -> float:
        mods = list(mods)
        total = sum(m.weight.numel() for m in mods)
        pruned = sum(int((~m.prune_mask).sum()) for m in mods if getattr(m, "prune_mask", None) is not None)
        return pruned / total if total else 0.0

    return {
        "backbone": share(_backbone_linears(model).values()),
        "adapted": share(dsee_layers(model).values()),
        "heads_removed": float(sum(len(h) for h in pruned_heads(model).values())),
    }


def after_training(model: nn.Module, config: DSEEConfig, ctx: MethodContext) -> nn.Module:
    """Stage 2 as the engine calls it: prune by the config, then `ctx.train(model, phase="retrain")` retrains
    A, B, S2 and the head (W stays frozen and masked).

    With nothing to prune (both ratios 0, no heads) there is no stage 2 and nothing is retrained.
    """
    adapted_ratio = config.prune_ratio if config.prune_adapted_ratio is None else config.prune_adapted_ratio
    if config.prune_ratio == 0 and adapted_ratio == 0 and config.prune_heads == 0:
        return model
    prune(model, config.prune_ratio, config.prune_heads, config.prune_adapted_ratio)
    result = ctx.train(model, phase="retrain")
    return result if isinstance(result, nn.Module) else model


# ----------------------------------------------------------------------------------------------------------
# Save / load / export


def _pack(mask: Tensor) -> Tensor:
    return torch.from_numpy(np.packbits(mask.cpu().numpy().reshape(-1)))


def _unpack(packed: Tensor, shape: list[int]) -> Tensor:
    bits = np.unpackbits(packed.numpy())[: int(np.prod(shape))]
    return torch.from_numpy(bits.astype(bool)).view(shape)


def save_adapter(model: nn.Module, directory: str | Path) -> None:
    """Write the adapter (A, B, S2, supports, head, masks, removed heads): see the module docstring."""
    from safetensors.torch import save_file

    model = _unwrap(model)
    layers = dsee_layers(model)
    if not layers:
        raise UserError("this model has no DSEE layers to save; call dsee.apply first")
    if any(m.merged for m in layers.values()):
        raise UserError("save_adapter needs unmerged DSEE layers; call unmerge() on them first")
    config: DSEEConfig = model.dsee_config
    tensors: dict[str, Tensor] = {}
    for name, m in layers.items():
        for attr in ("lora_A", "lora_B", "sparse_values", "sparse_index"):
            if getattr(m, attr) is not None:
                tensors[f"{name}.{attr}"] = getattr(m, attr).detach().cpu().contiguous()
    heads = _head_names(model, config)
    for head in heads:
        for pname, p in model.get_submodule(head).state_dict().items():
            tensors[f"{head}.{pname}"] = p.detach().cpu().contiguous()
    masks = {}
    for name, m in model.named_modules():
        if getattr(m, "prune_mask", None) is not None:
            tensors[f"{name}.prune_mask"] = _pack(m.prune_mask)
            masks[name] = list(m.prune_mask.shape)
    meta = {
        "format": FORMAT,
        "version": 1,
        "config": dataclasses.asdict(config),
        "targets": list(layers),
        "heads": heads,
        "pruned_heads": {str(k): v for k, v in pruned_heads(model).items()},
        "masks": masks,
    }
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / WEIGHTS_NAME))
    (out / CONFIG_NAME).write_text(json.dumps(meta, indent=2) + "\n")


def load_adapter(base_model: nn.Module, directory: str | Path) -> nn.Module:
    """Rebuild a saved DSEE model on `base_model` (the same pretrained weights it was trained from)."""
    from safetensors.torch import load_file

    src = Path(directory)
    if not (src / CONFIG_NAME).is_file() or not (src / WEIGHTS_NAME).is_file():
        raise UserError(
            f"'{src}' holds no DSEE adapter ({CONFIG_NAME} + {WEIGHTS_NAME}); save one with dsee.save_adapter"
        )
    meta = json.loads((src / CONFIG_NAME).read_text())
    if meta.get("format") != FORMAT:
        raise UserError(f"'{src / CONFIG_NAME}' is not a {FORMAT} adapter file")
    tensors = load_file(str(src / WEIGHTS_NAME))
    model = _unwrap(base_model)
    # Heads first: the saved factors and supports already have the pruned shapes and numbering.
    prune_heads(model, {int(k): v for k, v in meta["pruned_heads"].items()})
    supports = {t: tensors[f"{t}.sparse_index"] for t in meta["targets"] if f"{t}.sparse_index" in tensors}
    config = DSEEConfig(**meta["config"])
    apply(model, config, supports=supports)
    if sorted(dsee_layers(model)) != sorted(meta["targets"]):
        raise UserError(
            f"the adapter in '{src}' targets modules this model does not have the same way; "
            "load it onto the architecture it was trained on"
        )
    with torch.no_grad():
        for name, m in dsee_layers(model).items():
            for attr in ("lora_A", "lora_B", "sparse_values"):
                if getattr(m, attr) is not None:
                    getattr(m, attr).copy_(tensors[f"{name}.{attr}"])
        for head in meta["heads"]:
            mod = model.get_submodule(head)
            mod.load_state_dict(
                {k[len(head) + 1 :]: v for k, v in tensors.items() if k.startswith(head + ".")}
            )
        for name, shape in meta["masks"].items():
            m = model.get_submodule(name)
            keep = _unpack(tensors[f"{name}.prune_mask"], shape).to(m.weight.device)
            if "prune_mask" not in m._buffers:
                m.register_buffer("prune_mask", None, persistent=False)
            m.prune_mask = keep
            m.weight.mul_(keep.to(m.weight.dtype))
    return model


def merged_copy(model: nn.Module) -> nn.Module:
    """A plain transformers model computing what `model` does: DSEE layers merged (W ← (mask ⊙ W) + ΔW; `prune`
    already zeroed W in place), removed heads padded back as zeros."""
    merged = copy.deepcopy(_unwrap(model))
    with torch.no_grad():
        for name, m in dsee_layers(merged).items():
            w = m.weight.float() if m.merged else m.weight.float() + m.delta_weight()
            linear = nn.Linear(
                m.in_features,
                m.out_features,
                bias=m.bias is not None,
                device=m.weight.device,
                dtype=m.weight.dtype,
            )
            linear.weight.copy_(w.to(m.weight.dtype))
            if m.bias is not None:
                linear.bias.copy_(m.bias)
            _replace(merged, name, linear)
    cfg = merged.config
    pad_pruned(merged, cfg.num_attention_heads, getattr(cfg, "num_key_value_heads", None))
    merged.__dict__.pop("dsee_config", None)
    for m in merged.modules():  # the zeros are in the weights now; stale (pre-padding) masks would mislead
        m._buffers.pop("prune_mask", None)
    for p in merged.parameters():
        p.requires_grad_(True)
    return merged


def export_merged(model: nn.Module, directory: str | Path) -> None:
    """`save_pretrained` of the merged, pruned model: loads with `from_pretrained`, gives the trained logits."""
    merged_copy(model).save_pretrained(str(directory))


def inference_flops(model: nn.Module, seq_len: int) -> dict[str, float]:
    """Multiply-adds of one sequence through the linear layers and attention, dense vs after pruning.

    Linear layers count seq_len · (non-zero weights) of the merged model against seq_len · (all weights);
    attention counts 2 · seq_len² · head_dim per head (QKᵀ and AV) for the kept heads against all heads.
    Embedding lookups, norms and activations are not counted. `removed` is the share pruning saves.
    """
    merged = merged_copy(model)
    lin = [m.weight for m in merged.modules() if isinstance(m, nn.Linear)]
    linear_dense = seq_len * sum(w.numel() for w in lin)
    linear_nonzero = seq_len * sum(int(torch.count_nonzero(w)) for w in lin)
    removed = pruned_heads(model)
    attn_dense = attn_kept = 0
    for i, block in enumerate(blocks(merged)):
        a = attention(block)  # padded back: the full head count
        attn_dense += 2 * seq_len**2 * a.num_heads * a.head_dim
        attn_kept += 2 * seq_len**2 * (a.num_heads - len(removed.get(i, []))) * a.head_dim
    dense, kept = linear_dense + attn_dense, linear_nonzero + attn_kept
    return {
        "dense_macs": float(dense),
        "pruned_macs": float(kept),
        "removed": 1.0 - kept / dense,
        "linear_dense_macs": float(linear_dense),
        "linear_nonzero_macs": float(linear_nonzero),
        "attention_dense_macs": float(attn_dense),
        "attention_kept_macs": float(attn_kept),
    }


# ----------------------------------------------------------------------------------------------------------
# The registered method (entry point `zoo.adapters.dsee:METHOD`)


def kernel_path(model: nn.Module) -> str:
    """The sparse-LoRA path the DSEE layers' last forward ran ('reference', 'triton', 'lowrank/autograd', …;
    'mixed' if they differ; see zoo.adapters.kernels.dispatch).

    Before any forward: 'triton' where the fused paths can run (CUDA), else 'reference'.
    """
    layers = list(dsee_layers(model).values())
    ran = {m.last_backend for m in layers if m.last_backend is not None}
    if not ran and layers:
        w = layers[0].weight
        ran = {backend_for(torch.empty(1, w.shape[1], device=w.device, dtype=w.dtype))}
    return ran.pop() if len(ran) == 1 else ("mixed" if ran else "reference")


class DSEE(MethodBase):
    name = "dsee"
    summary = "sparse + low-rank update (LoRA + S2), then magnitude pruning and retraining"
    config_cls = DSEEConfig
    post_training = True  # prune + retrain (a no-op when both ratios are 0 and no heads are removed)
    preserves_outputs_at_init = True  # B = 0, S2 = 0

    def apply(self, model: nn.Module, cfg: DSEEConfig, ctx: MethodContext | None = None) -> nn.Module:
        return apply(model, cfg)  # the module function: stage 1

    def after_training(self, model: nn.Module, cfg: DSEEConfig, ctx: MethodContext) -> nn.Module:
        return after_training(model, cfg, ctx)

    def describe(self, model: nn.Module) -> dict[str, Any]:
        out = parameter_counts(model)
        groups = list(_backbone_linears(model).values()) + list(dsee_layers(model).values())
        total = sum(m.weight.numel() for m in groups)
        pruned = sum(int((~m.prune_mask).sum()) for m in groups if getattr(m, "prune_mask", None) is not None)
        shares = sparsity(model)
        out.update(
            sparsity=pruned / total if total else 0.0,
            sparsity_backbone=shares["backbone"],
            sparsity_adapted=shares["adapted"],
            heads_removed=int(shares["heads_removed"]),
            dsee_params=num_dsee_parameters(model),
            # The official max_seq_length; the share depends on it only through the attention term.
            inference_macs_removed=inference_flops(model, seq_len=128)["removed"],
            kernel=kernel_path(model),
        )
        return out

    def save(self, model: nn.Module, directory: Path) -> None:
        """The adapter (reloadable onto the base) and, beside it, the merged pruned checkpoint."""
        save_adapter(model, directory)
        export_merged(model, directory)

    def load(self, model: nn.Module, directory: Path) -> nn.Module:
        return load_adapter(model, directory)


METHOD = DSEE()
