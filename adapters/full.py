"""Full fine-tuning: every parameter trains. Registered as `full` (entry point `zoo.adapters.full:METHOD`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from zoo.adapters.base import MethodBase, MethodContext


@dataclass
class FullConfig:
    """Full fine-tuning has no options."""


class Full(MethodBase):
    name = "full"
    summary = "every parameter trains"
    config_cls = FullConfig
    preserves_outputs_at_init = True

    def apply(self, model: nn.Module, cfg: Any, ctx: MethodContext | None = None) -> nn.Module:
        # A backbone loaded for another method may have frozen parts; full tuning unfreezes them all.
        return model.requires_grad_(True)


METHOD = Full()
