"""The tuning-method registry: one `Method` per name, used by `zoo finetune --method NAME`.

A method turns a freshly built task model into the model to train (`apply`), may do something after
training (`after_training`: DSEE prunes and calls `retrain_fn` to retrain), reports what it trains
(`trainable_summary`) and may save in its own format (`save`). Its options are a dataclass (`config_cls`)
whose fields the CLI sets from `key=value` strings with `zoo.config.set_key`.

    full  every parameter trains                      (no options)
    lora  peft LoRA on the family's attention targets (r=16, alpha=32; task head via modules_to_save)
    dsee  sparse + low-rank update, then pruning      (zoo.adapters.dsee.DSEEConfig)
    emoe  emergent MoE over FFN neurons, full tuning   (zoo.adapters.emoe.EMoEConfig)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn
from zoo.adapters import dsee, emoe

from zoo.errors import UserError, did_you_mean

RetrainFn = Callable[[nn.Module], Any]


@dataclass(frozen=True)
class Method:
    name: str
    config_cls: type
    apply: Callable[[nn.Module, Any], nn.Module]
    trainable_summary: Callable[[nn.Module], dict[str, Any]]
    after_training: Callable[[nn.Module, Any, RetrainFn], nn.Module] | None = None
    save: Callable[[nn.Module, Path], None] | None = None
    """None = the model's own `save_pretrained` (a peft model saves just its adapter)."""
    summary: str = ""


def _counts(model: nn.Module) -> dict[str, Any]:
    if hasattr(model, "get_nb_trainable_parameters"):  # peft: counts modules_to_save copies correctly
        trainable, total = model.get_nb_trainable_parameters()
    else:
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
    return {
        "trainable_params": int(trainable),
        "total_params": int(total),
        "trainable_percent": 100.0 * trainable / total if total else 0.0,
    }


def _head_names(model: nn.Module) -> list[str]:
    children = dict(model.named_children())
    return [h for h in ("classifier", "score") if h in children]


# ------------------------------------------------------------------------------------------------ full


@dataclass
class FullConfig:
    """Full fine-tuning has no options."""


def _apply_full(model: nn.Module, config: FullConfig) -> nn.Module:
    model.requires_grad_(True)
    return model


# ------------------------------------------------------------------------------------------------ lora


@dataclass
class LoRAConfig:
    """peft LoRA on the attention projections (BERT query/value, Llama q_proj/v_proj by default)."""

    r: int = 16
    """LoRA rank."""
    alpha: float = 32
    """LoRA alpha (scale alpha / r)."""
    dropout: float = 0.0
    """Dropout on the LoRA input (peft's default 0)."""
    target_modules: list[str] = field(default_factory=lambda: ["query", "value"])
    """As in DSEE: BERT names are translated for Llama (query → q_proj) and back."""


def _apply_lora(model: nn.Module, config: LoRAConfig) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    leaves = sorted({n.rsplit(".", 1)[-1] for n in dsee.resolve_targets(model, config.target_modules)})
    peft_config = LoraConfig(
        r=config.r,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=leaves,
        modules_to_save=_head_names(model) or None,
    )
    return get_peft_model(model, peft_config)


# ------------------------------------------------------------------------------------------------ dsee


def _dsee_summary(model: nn.Module) -> dict[str, Any]:
    out = _counts(model)
    groups = [m for m in dsee._backbone_linears(model).values()] + list(dsee.dsee_layers(model).values())
    total = sum(m.weight.numel() for m in groups)
    pruned = sum(int((~m.prune_mask).sum()) for m in groups if getattr(m, "prune_mask", None) is not None)
    shares = dsee.sparsity(model)
    out.update(
        sparsity=pruned / total if total else 0.0,
        sparsity_backbone=shares["backbone"],
        sparsity_adapted=shares["adapted"],
        heads_removed=int(shares["heads_removed"]),
        dsee_params=dsee.num_dsee_parameters(model),
        # The official max_seq_length; the share depends on it only through the attention term.
        inference_macs_removed=dsee.inference_flops(model, seq_len=128)["removed"],
    )
    return out


def _save_dsee(model: nn.Module, directory: Path) -> None:
    """The adapter (reloadable onto the base) and, beside it, the merged pruned checkpoint."""
    dsee.save_adapter(model, directory)
    dsee.export_merged(model, directory)


# ------------------------------------------------------------------------------------------------ emoe


def _emoe_summary(model: nn.Module) -> dict[str, Any]:
    out = _counts(model)
    gates = emoe.gates(model)
    out.update(emoe_layers=sorted(gates), dense_eval=any(not g.enabled for g in gates.values()))
    return out


def _save_emoe(model: nn.Module, directory: Path) -> None:
    """The plain checkpoint (EMoE adds no weights) plus the expert split beside it."""
    model.save_pretrained(str(directory))
    emoe.save(model, directory)


_METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("full", FullConfig, _apply_full, _counts, summary="every parameter trains"),
        Method("lora", LoRAConfig, _apply_lora, _counts, summary="peft LoRA r=16 on attention query/value"),
        Method(
            "dsee",
            dsee.DSEEConfig,
            dsee.apply,
            _dsee_summary,
            dsee.after_training,
            _save_dsee,
            summary="sparse + low-rank update (LoRA + S2), then magnitude pruning and retraining",
        ),
        Method(
            "emoe",
            emoe.EMoEConfig,
            emoe.apply,
            _emoe_summary,
            emoe.after_training,
            _save_emoe,
            summary="FFN neurons split into experts, top-k per token, full fine-tuning",
        ),
    )
}


def get_method(name: str) -> Method:
    if name not in _METHODS:
        raise UserError(f"unknown tuning method '{name}'{did_you_mean(name, _METHODS)}")
    return _METHODS[name]


def method_names() -> list[str]:
    return list(_METHODS)
