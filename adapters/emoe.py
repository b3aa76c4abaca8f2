"""EMoE: emergent mixture-of-experts inside a dense FFN, with no added parameters.

Qiu et al., "Emergent Mixture-of-Experts: Can Dense Pre-trained Transformers Benefit from Emergent Modular
Structures?" (arXiv 2310.10908; official code qiuzh20/EMoE). The FFN's intermediate neurons of a chosen layer
are split into `num_experts` equal groups by balanced k-means on the L2-normalised rows of the input weight
(BERT `intermediate.dense`, Llama `gate_proj`). For each token, the score of an expert is the mean
pre-activation of its neurons (the official "avg-k" gate: x · mean(keys)), the `top_k` experts are kept and
the other neurons' activations are zeroed before the output projection. This is the block masking of the
official LLaMA version, not the tutel dispatch of its BERT version: no gate noise, no capacity drop, no
auxiliary loss, and the gate is always computed from the current weights (the official tutel path re-copies
the means into a frozen gate after every step, which is the same thing).

Implementation: two hooks per layer (one reads the pre-activation, one masks the output projection's input)
and a parameter-free `EMoEGate` submodule holding the cluster ids as a non-persistent buffer. Parameter
names and the state dict are untouched, so an EMoE-trained model is a plain checkpoint and can be evaluated
dense (`set_dense`), as the paper's "EMoE2LoRA" numbers show it may be.

Registered as `emoe` (entry point `zoo.adapters.emoe:METHOD`), which saves the plain checkpoint plus the
split: `save(model, dir)` writes `emoe_config.json` + `emoe_clusters.safetensors` (cluster id of every
neuron per layer); `load(model, dir)` re-applies them without re-running k-means (dense again if it was
saved dense).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from zoo.adapters.base import MethodBase, MethodContext, load_pretrained, parameter_counts
from zoo.adapters.head_pruning import blocks
from zoo.config import SEED_MAX, bounded
from zoo.errors import UserError

CONFIG_NAME = "emoe_config.json"
WEIGHTS_NAME = "emoe_clusters.safetensors"


@dataclass
class EMoEConfig:
    """Split FFN neurons into experts and keep the `top_k` best per token (arXiv 2310.10908)."""

    num_experts: int = bounded(64, ge=1)
    """Experts per chosen layer; must divide the FFN's intermediate size."""
    top_k: int = bounded(16, ge=1)
    """Experts kept per token (official: 16 of 64 for BERT and Llama, 32 of 64 for GPT2-XL)."""
    layers: list[int] | None = None
    """Layer indices (negative counts from the end); None = one late layer, the second-to-last (the
    official BERT-base default `--moe_layers 10` of 12)."""
    kmeans_max_iter: int = bounded(1000, ge=1)
    """Balanced k-means iterations (official KMeansConstrained max_iter); stops earlier at convergence."""
    seed: int = bounded(0, ge=0, le=SEED_MAX)
    """k-means++ seed (official random_state=0)."""
    eval_dense: bool = False
    """After training, switch the masks off and evaluate the dense FFN (official "EMoE2LoRA")."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Checked at construction and again by `apply` (key=value overrides set fields afterwards)."""
        if self.num_experts < 1 or not 1 <= self.top_k <= self.num_experts:
            raise UserError(
                f"EMoE needs 1 <= top_k <= num_experts, got top_k={self.top_k}, "
                f"num_experts={self.num_experts}"
            )


# ----------------------------------------------------------------------------------------------------------
# Balanced k-means


def _kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centers = [x[rng.integers(len(x))]]
    d2 = ((x - centers[0]) ** 2).sum(1)
    for _ in range(1, k):
        probs = d2 / d2.sum() if d2.sum() > 0 else np.full(len(x), 1.0 / len(x))
        centers.append(x[rng.choice(len(x), p=probs)])
        d2 = np.minimum(d2, ((x - centers[-1]) ** 2).sum(1))
    return np.stack(centers)


def _balanced_assign(cost: np.ndarray, size: int) -> np.ndarray:
    """Optimal assignment of n points to k clusters of exactly `size` each (min total cost).

    Solved as a linear assignment onto k·size slots (scipy's LAPJV), which has the same optimum as
    KMeansConstrained's min-cost flow. O(n²) memory: 75 MB for 3072 neurons.
    """
    from scipy.optimize import linear_sum_assignment

    _, slots = linear_sum_assignment(np.repeat(cost, size, axis=1))
    return slots // size


def balanced_kmeans(x: torch.Tensor, k: int, seed: int = 0, max_iter: int = 1000) -> torch.Tensor:
    """Cluster ids (n,) of the rows of x, every cluster holding exactly n / k rows."""
    n = x.shape[0]
    if n % k:
        raise UserError(
            f"EMoE: {n} FFN neurons cannot be split into {k} equal experts; pick num_experts dividing {n}"
        )
    size = n // k
    pts = x.detach().double().cpu().numpy()
    centers = _kmeans_pp(pts, k, np.random.default_rng(seed))
    labels = np.full(n, -1)
    for _ in range(max_iter):
        cost = (pts**2).sum(1, keepdims=True) - 2 * pts @ centers.T + (centers**2).sum(1)
        new = _balanced_assign(cost, size)
        if np.array_equal(new, labels):
            break
        labels = new
        centers = np.stack([pts[labels == c].mean(0) for c in range(k)])
    return torch.from_numpy(labels).long()


def cluster_neurons(
    w_in: torch.Tensor, num_experts: int, seed: int = 0, max_iter: int = 1000
) -> torch.Tensor:
    """Expert id of every intermediate neuron, from the L2-normalised rows of the FFN input weight."""
    keys = torch.nn.functional.normalize(w_in.detach().float(), dim=1)
    return balanced_kmeans(keys, num_experts, seed, max_iter)


# ----------------------------------------------------------------------------------------------------------
# The gate and its hooks


class EMoEGate(nn.Module):
    """Per-layer top-k block mask over FFN neurons. No parameters: the ids are a non-persistent buffer."""

    def __init__(self, cluster_ids: torch.Tensor, num_experts: int, top_k: int) -> None:
        super().__init__()
        self.num_experts = num_experts
        self.top_k = top_k
        self.enabled = True
        # Sorting neurons by expert once turns the per-expert mean into a reshape + mean.
        order = torch.argsort(cluster_ids, stable=True)
        self.register_buffer("cluster_ids", cluster_ids.clone(), persistent=False)
        self.register_buffer("order", order, persistent=False)
        self._mask: torch.Tensor | None = None

    def scores(self, pre_activation: torch.Tensor) -> torch.Tensor:
        """(..., num_experts): mean pre-activation of each expert's neurons."""
        grouped = pre_activation.index_select(-1, self.order)
        return grouped.unflatten(-1, (self.num_experts, -1)).mean(-1)

    def neuron_mask(self, pre_activation: torch.Tensor) -> torch.Tensor:
        scores = self.scores(pre_activation.detach())
        top = scores.topk(self.top_k, dim=-1).indices
        experts = torch.zeros_like(scores).scatter_(-1, top, 1.0)
        return experts.index_select(-1, self.cluster_ids)

    def read_hook(self, module: nn.Module, args: Any, output: torch.Tensor) -> None:
        self._mask = self.neuron_mask(output) if self.enabled else None

    def mask_hook(self, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if self._mask is None:
            return None
        mask, self._mask = self._mask, None
        return (args[0] * mask.to(args[0].dtype), *args[1:])

    def extra_repr(self) -> str:
        return f"num_experts={self.num_experts}, top_k={self.top_k}, enabled={self.enabled}"


def ffn_parts(block: nn.Module) -> tuple[nn.Module, nn.Linear, nn.Linear]:
    """(owner of the gate, input projection whose rows are clustered, output projection to mask)."""
    if hasattr(block, "intermediate"):
        return block, block.intermediate.dense, block.output.dense
    if hasattr(block, "mlp") and hasattr(block.mlp, "gate_proj"):
        return block.mlp, block.mlp.gate_proj, block.mlp.down_proj
    ff = getattr(block.layer[-1], "DenseReluDense", None) if hasattr(block, "layer") else None
    if ff is not None:  # T5: wi (or the gated variant's wi_0) → activation → wo
        return block, ff.wi if hasattr(ff, "wi") else ff.wi_0, ff.wo
    raise UserError(
        f"EMoE: no FFN (intermediate/output, gate/up/down_proj or T5's wi/wo) in {type(block).__name__}"
    )


def chosen_layers(model: nn.Module, layers: list[int] | None) -> list[int]:
    n = len(blocks(model))
    wanted = [max(n - 2, 0)] if layers is None else layers
    out = []
    for i in wanted:
        if not -n <= i < n:
            raise UserError(f"EMoE layer {i} does not exist: the model has {n} layers (0..{n - 1})")
        out.append(i % n)
    return sorted(set(out))


def apply(
    model: nn.Module, config: EMoEConfig, cluster_ids: dict[int, torch.Tensor] | None = None
) -> nn.Module:
    """Turn the chosen layers' FFNs into emergent MoEs (in place); returns the model.

    `cluster_ids` (layer -> ids) skips k-means, e.g. from `load` or a cache; nothing is trained or added.
    """
    config.validate()
    if gates(model):
        raise UserError("EMoE is already applied to this model")
    layers = blocks(model)
    for i in chosen_layers(model, config.layers):
        owner, w_in, w_out = ffn_parts(layers[i])
        ids = cluster_ids[i] if cluster_ids and i in cluster_ids else None
        if ids is None:
            ids = cluster_neurons(w_in.weight, config.num_experts, config.seed, config.kmeans_max_iter)
        if (
            ids.shape != (w_in.out_features,)
            or torch.bincount(ids, minlength=config.num_experts).unique().numel() != 1
        ):
            raise UserError(f"EMoE cluster ids for layer {i} do not split {w_in.out_features} neurons evenly")
        gate = EMoEGate(ids.to(w_in.weight.device), config.num_experts, config.top_k)
        owner.emoe_gate = gate
        w_in.register_forward_hook(gate.read_hook)
        w_out.register_forward_pre_hook(gate.mask_hook)
    model.emoe_config = config  # type: ignore[assignment]
    return model


def gates(model: nn.Module) -> dict[int, EMoEGate]:
    """Layer index -> gate, for the layers EMoE was applied to."""
    out = {}
    for i, block in enumerate(blocks(model)):
        owner = block.mlp if hasattr(block, "mlp") else block
        if isinstance(getattr(owner, "emoe_gate", None), EMoEGate):
            out[i] = owner.emoe_gate
    return out


def set_dense(model: nn.Module, dense: bool = True) -> nn.Module:
    """Switch the expert masks off (dense FFN) or back on, keeping the clusters."""
    for gate in gates(model).values():
        gate.enabled = not dense
    return model


@contextlib.contextmanager
def dense(model: nn.Module) -> Iterator[nn.Module]:
    """`with emoe.dense(model): ...` evaluates the dense FFN, then restores the masks."""
    before = {i: g.enabled for i, g in gates(model).items()}
    set_dense(model, True)
    try:
        yield model
    finally:
        for i, g in gates(model).items():
            g.enabled = before.get(i, True)


def remove(model: nn.Module) -> nn.Module:
    """Undo `apply`: drop hooks and gates, leaving the plain model."""
    for i, gate in gates(model).items():
        owner, w_in, w_out = ffn_parts(blocks(model)[i])
        # Found by owner rather than kept as handles, so a deep-copied model removes its own hooks.
        for hooks in (w_in._forward_hooks, w_out._forward_pre_hooks):
            for key in [k for k, fn in hooks.items() if getattr(fn, "__self__", None) is gate]:
                del hooks[key]
        del owner.emoe_gate
    if hasattr(model, "emoe_config"):
        del model.emoe_config
    return model


def after_training(model: nn.Module, config: EMoEConfig, ctx: MethodContext | None = None) -> nn.Module:
    """Nothing to do after training (`ctx` is not needed), unless `eval_dense` asks for the dense FFN."""
    return set_dense(model, True) if config.eval_dense else model


def save(model: nn.Module, directory: str | Path) -> None:
    """Write the EMoE config and every layer's cluster ids next to (not inside) the model weights."""
    from safetensors.torch import save_file

    found = gates(model)
    if not found:
        raise UserError("this model has no EMoE layers to save; call emoe.apply first")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    cfg = dataclasses.asdict(model.emoe_config)
    cfg["layers"] = sorted(found)
    # The state as saved: a model switched to its dense FFN reloads dense.
    cfg["eval_dense"] = any(not g.enabled for g in found.values())
    (out / CONFIG_NAME).write_text(json.dumps(cfg, indent=2) + "\n")
    save_file(
        {f"layer.{i}": g.cluster_ids.cpu().contiguous() for i, g in found.items()}, str(out / WEIGHTS_NAME)
    )


def load(model: nn.Module, directory: str | Path) -> nn.Module:
    """Re-apply a saved EMoE split to `model` (the same architecture); no k-means is run."""
    from safetensors.torch import load_file

    src = Path(directory)
    if not (src / CONFIG_NAME).is_file() or not (src / WEIGHTS_NAME).is_file():
        raise UserError(
            f"'{src}' holds no EMoE split ({CONFIG_NAME} + {WEIGHTS_NAME}); save one with emoe.save"
        )
    config = EMoEConfig(**json.loads((src / CONFIG_NAME).read_text()))
    ids = {int(k.split(".")[1]): v for k, v in load_file(str(src / WEIGHTS_NAME)).items()}
    model = apply(model, config, cluster_ids=ids)
    return set_dense(model, True) if config.eval_dense else model


# ----------------------------------------------------------------------------------------------------------
# The registered method (entry point `zoo.adapters.emoe:METHOD`)


class EMoE(MethodBase):
    name = "emoe"
    summary = "FFN neurons split into experts, top-k per token, full fine-tuning"
    config_cls = EMoEConfig
    post_training = True  # switches to the dense FFN when eval_dense (a no-op otherwise)
    # Only top_k == num_experts is exactly dense; the default 16 of 64 masks neurons from the start.
    preserves_outputs_at_init = False

    def apply(self, model: nn.Module, cfg: EMoEConfig, ctx: MethodContext | None = None) -> nn.Module:
        return apply(model, cfg).requires_grad_(True)  # the module function; every weight trains

    def after_training(self, model: nn.Module, cfg: EMoEConfig, ctx: MethodContext) -> nn.Module:
        return after_training(model, cfg, ctx)

    def describe(self, model: nn.Module) -> dict[str, Any]:
        found = gates(model)
        return {
            **parameter_counts(model),
            "emoe_layers": sorted(found),
            "dense_eval": any(not g.enabled for g in found.values()),
        }

    def save(self, model: nn.Module, directory: Path) -> None:
        """The plain checkpoint (EMoE adds no weights) plus the expert split beside it."""
        model.save_pretrained(str(directory))
        save(model, directory)

    def load(self, model: nn.Module, directory: Path) -> nn.Module:
        return load(load_pretrained(model, directory), directory)


METHOD = EMoE()
