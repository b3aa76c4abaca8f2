"""LoRA through peft on the attention projections; the task head trains in full (peft `modules_to_save`).

Registered as `lora` (entry point `zoo.adapters.lora:METHOD`). Saved as a peft adapter (adapter_config.json +
adapter_model.safetensors, head included) and loaded back onto the same base with `PeftModel.from_pretrained`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from zoo.adapters.base import MethodBase, MethodContext
from zoo.adapters.dsee import resolve_targets
from zoo.config import bounded


@dataclass
class LoRAConfig:
    """peft LoRA on the attention projections (BERT query/value, Llama q_proj/v_proj by default)."""

    r: int = bounded(16, ge=1)
    """LoRA rank."""
    alpha: float = bounded(32, gt=0.0)
    """LoRA alpha (scale alpha / r)."""
    dropout: float = bounded(0.0, ge=0.0, lt=1.0)
    """Dropout on the LoRA input (peft's default 0)."""
    target_modules: list[str] = field(default_factory=lambda: ["query", "value"])
    """As in DSEE: BERT names are translated for Llama (query → q_proj) and back."""
    head_modules: list[str] = field(default_factory=lambda: ["classifier", "score"])
    """Task-head modules trained in full alongside the adapter (those present in the model)."""


class LoRA(MethodBase):
    name = "lora"
    summary = "peft LoRA (r=16) on attention query/value; the task head trains in full"
    config_cls = LoRAConfig
    preserves_outputs_at_init = True  # B = 0

    def apply(self, model: nn.Module, cfg: LoRAConfig, ctx: MethodContext | None = None) -> nn.Module:
        from peft import LoraConfig, get_peft_model

        # peft matches leaf names; resolve_targets finds them in this family (and checks they exist).
        leaves = sorted({n.rsplit(".", 1)[-1] for n in resolve_targets(model, cfg.target_modules)})
        heads = [h for h in cfg.head_modules if h in dict(model.named_children())]
        peft_config = LoraConfig(
            r=cfg.r,
            lora_alpha=cfg.alpha,
            lora_dropout=cfg.dropout,
            target_modules=leaves,
            modules_to_save=heads or None,
        )
        return get_peft_model(model, peft_config)

    def save(self, model: nn.Module, directory: Path) -> None:
        model.save_pretrained(str(directory))  # a PeftModel writes just its adapter (and the head)

    def load(self, model: nn.Module, directory: Path) -> nn.Module:
        from peft import PeftModel

        return PeftModel.from_pretrained(model, str(directory), is_trainable=True)


METHOD = LoRA()
