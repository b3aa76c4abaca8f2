"""The modules AutoPEFT searches over (arXiv 2301.12132, cambridgeltl/autopeft), as methods of their own.

- serial adapter (`serial_adapter`): a Pfeiffer bottleneck at the FFN output, f + up(relu(down(f))), BERT
  init (normal 0.02, zero bias) as in the anchor;
- parallel adapter (`parallel_adapter`): He et al.'s bottleneck beside the FFN, f + 4·up(relu(down(a))) with
  a the FFN input, down Kaiming, up zero (so outputs are unchanged at init);
- prefix-tuning (`prefix`): L trained keys/values per layer produced by a reparametrisation MLP (embedding
  → Linear → tanh → Linear), handed to the backbone as a pre-filled cache. peft's PrefixTuning refuses BERT
  under transformers 5 ("does not support past key values"), so this is the zoo's, the same for both
  families;
- `autopeft`: any of the three at once on the chosen layers (the anchor's per-layer bits), optionally on
  top of LoRA (rank `lora_r`) or DSEE (`dsee_n` sparse entries): the configurations `zoo search` explores.

Where the FFN is comes from the model family (`zoo.families`: `layers`, `ffn_input`, `ffn_output`); the
modules attach with forward hooks, transformers' code is untouched. Differences from the anchor: the
serial adapter reads the FFN output f rather than LN(f + a) (the anchor reuses the pretrained LayerNorm
inside the adapter, which only BERT has in that place); the per-layer bits switch the serial and parallel
adapters, not the prefix (one attention mask serves every layer); both adapters may sit at one layer as
two modules (the anchor had to fuse them). The prefix MLP's parameters count as trainable.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from zoo.adapters.base import MethodBase, MethodContext, load_pretrained, parameter_counts
from zoo.config import bounded
from zoo.errors import UserError

FFN_NAME = "autopeft_ffn"
PREFIX_NAME = "autopeft_prefix"
STATE_FILE = "autopeft.safetensors"
CONFIG_FILE = "autopeft.json"


@dataclass
class AutoPEFTConfig:
    """Serial + parallel adapters + prefix on chosen layers, optionally over LoRA or DSEE."""

    serial: int = bounded(0, ge=0)
    """Serial adapter bottleneck size (0 = none)."""
    parallel: int = bounded(0, ge=0)
    """Parallel adapter bottleneck size (0 = none)."""
    prefix: int = bounded(0, ge=0)
    """Prefix length in virtual tokens per layer (0 = none)."""
    prefix_hidden: int = bounded(800, ge=1)
    """Hidden size of the prefix reparametrisation MLP (anchor: 800)."""
    layers: list[int] | None = bounded(None, ge=0)
    """Layers that get the serial/parallel adapters (None = all): the anchor's per-layer bits."""
    parallel_scaling: float = bounded(4.0, gt=0.0)
    """Scale of the parallel adapter's output (He et al.: 4.0)."""
    serial_init: Literal["bert", "zero"] = "bert"
    """'bert': normal(0, 0.02) weights as in the anchor; 'zero': up-projection 0 (outputs unchanged at init)."""
    lora_r: int = bounded(0, ge=0)
    """LoRA rank on attention query/value underneath (0 = none; with dsee_n > 0 it is DSEE's rank)."""
    dsee_n: int = bounded(0, ge=0)
    """DSEE sparse entries per adapted matrix underneath (0 = no DSEE; here: top-|W| support, no pruning)."""
    head_modules: list[str] = field(default_factory=lambda: ["classifier", "score"])
    """Task-head modules trained in full alongside the modules (those present in the model)."""


class Bottleneck(nn.Module):
    """down → ReLU → up, times `scale`."""

    def __init__(self, dim: int, size: int, scale: float, init: str) -> None:
        super().__init__()
        self.down, self.up, self.scale = nn.Linear(dim, size), nn.Linear(size, dim), scale
        if init == "bert":  # adapter-transformers' "bert" init: normal(0, 0.02), zero bias
            for layer in (self.down, self.up):
                nn.init.normal_(layer.weight, std=0.02)
                nn.init.zeros_(layer.bias)
        else:  # He et al.: down keeps nn.Linear's Kaiming-uniform, up starts at 0
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.up(torch.relu(self.down(x)))


class FFNAdapters(nn.Module):
    """A block's serial and/or parallel adapter; the family's FFN modules call it through hooks."""

    def __init__(self, dim: int, cfg: AutoPEFTConfig) -> None:
        super().__init__()
        self.serial = Bottleneck(dim, cfg.serial, 1.0, cfg.serial_init) if cfg.serial else None
        self.parallel = Bottleneck(dim, cfg.parallel, cfg.parallel_scaling, "zero") if cfg.parallel else None
        self._ffn_input: torch.Tensor | None = None

    def read_input(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        self._ffn_input = args[0]

    def add_to_output(self, module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
        out = output
        if self.serial is not None:
            out = out + self.serial(output)
        if self.parallel is not None:
            out = out + self.parallel(self._ffn_input)
        self._ffn_input = None
        return out


class PrefixEncoder(nn.Module):
    """L virtual tokens → per-layer keys and values through embedding → Linear → tanh → Linear."""

    def __init__(self, config: Any, length: int, hidden: int) -> None:
        super().__init__()
        self.layers = config.num_hidden_layers
        self.heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        self.length = length
        self.embedding = nn.Embedding(length, config.hidden_size)
        self.mlp = nn.Sequential(
            nn.Linear(config.hidden_size, hidden),
            nn.Tanh(),
            nn.Linear(hidden, self.layers * 2 * self.heads * self.head_dim),
        )
        self._config = config

    def forward(self, batch: int) -> torch.Tensor:
        """(layers, 2, batch, heads, L, head_dim)."""
        kv = self.mlp(self.embedding.weight)  # (L, layers·2·heads·head_dim)
        kv = kv.view(self.length, self.layers, 2, self.heads, self.head_dim).permute(1, 2, 3, 0, 4)
        return kv.unsqueeze(2).expand(-1, -1, batch, -1, -1, -1)

    def before_backbone(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Hand the backbone a cache holding the prefix, a mask that shows it, and unshifted positions."""
        from transformers import DynamicCache

        if kwargs.get("cache") is not None or kwargs.get("past_key_values") is not None:
            return None  # a later generation step: the prefix is in the cache already
        ids = kwargs.get("input_ids", args[0] if args else None)
        shape = (ids if ids is not None else kwargs["inputs_embeds"]).shape[:2]
        kv = self(shape[0])
        cache = DynamicCache(config=self._config)
        for i in range(self.layers):
            cache.update(kv[i, 0], kv[i, 1], i)
        device = kv.device
        mask = kwargs.get("attention_mask")
        if mask is None:
            mask = torch.ones(shape, dtype=torch.long, device=device)
        ones = torch.ones(shape[0], self.length, dtype=mask.dtype, device=device)
        if kwargs.get("position_ids") is None:  # the tokens keep positions 0..T-1, as pretrained
            kwargs["position_ids"] = torch.arange(shape[1], device=device).expand(shape[0], -1)
        kwargs.update(cache=cache, attention_mask=torch.cat([ones, mask], dim=1))
        kwargs.pop("past_key_values", None)
        return args, kwargs


# ------------------------------------------------------------------------------------------------ attach


def _unwrap(model: nn.Module) -> nn.Module:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _blocks(model: nn.Module) -> list[nn.Module]:
    from zoo.families import family_of

    family = family_of(_unwrap(model))
    if not (family.layers and family.ffn_input and family.ffn_output):
        raise UserError(
            f"model family '{family.name}' names no FFN for adapters (layers/ffn_input/ffn_output)"
        )
    return list(_unwrap(model).base_model.get_submodule(family.layers))


def check_layers(model: nn.Module, layers: list[int] | None) -> list[int]:
    n = len(_blocks(model))
    chosen = list(range(n)) if layers is None else sorted(set(layers))
    bad = [i for i in chosen if not 0 <= i < n]
    if bad:
        raise UserError(f"method.layers {bad} out of range: this model has layers 0..{n - 1}")
    return chosen


def attach(model: nn.Module, cfg: AutoPEFTConfig) -> nn.Module:
    """Add the configured adapters and prefix to `model` (in place; new parameters are trainable)."""
    from zoo.families import family_of

    base = _unwrap(model)
    family = family_of(base)
    config = base.config
    if cfg.serial or cfg.parallel:
        for i in check_layers(model, cfg.layers):
            block = _blocks(model)[i]
            adapters = FFNAdapters(config.hidden_size, cfg).to(next(block.parameters()).device)
            block.add_module(FFN_NAME, adapters)
            block.get_submodule(family.ffn_input).register_forward_pre_hook(adapters.read_input)
            block.get_submodule(family.ffn_output).register_forward_hook(adapters.add_to_output)
    if cfg.prefix:
        if not family.prefix_cache:
            raise UserError(
                f"prefix-tuning needs a backbone that takes a key/value cache; model family '{family.name}' "
                "has none: tune this model without a prefix (serial/parallel adapters, LoRA or DSEE)"
            )
        backbone = base.base_model
        encoder = PrefixEncoder(config, cfg.prefix, cfg.prefix_hidden).to(next(backbone.parameters()).device)
        backbone.add_module(PREFIX_NAME, encoder)
        backbone.register_forward_pre_hook(encoder.before_backbone, with_kwargs=True)
    return model


def own_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapters' and prefix's weights, by name in the unwrapped model."""
    return {
        n: p.detach().contiguous()
        for n, p in _unwrap(model).state_dict().items()
        if FFN_NAME in n or PREFIX_NAME in n
    }


# ------------------------------------------------------------------------------------------------ method


def _underneath(cfg: AutoPEFTConfig) -> tuple[Any, Any] | None:
    """(method, config) of the LoRA or DSEE the modules sit on, or None (frozen backbone)."""
    from zoo.adapters.base import get_method, method_config

    if cfg.dsee_n:
        dsee = get_method("dsee")
        return (
            dsee,
            method_config(
                dsee,
                {
                    "r": cfg.lora_r,
                    "num_sparse": cfg.dsee_n,
                    "sparse_init": "magnitude",  # the official 'omp'; GreBsmo's 100 iterations per trial cost too much
                    "prune_ratio": 0.0,
                    "head_modules": cfg.head_modules,
                },
            ),
        )
    if cfg.lora_r:
        lora = get_method("lora")
        return lora, method_config(
            lora, {"r": cfg.lora_r, "alpha": 2 * cfg.lora_r, "head_modules": cfg.head_modules}
        )
    return None


class AutoPEFT(MethodBase):
    name = "autopeft"
    summary = (
        "serial + parallel adapters and prefix on chosen layers, over LoRA/DSEE (the `zoo search` space)"
    )
    config_cls = AutoPEFTConfig
    preserves_outputs_at_init = False  # BERT-initialised serial adapters and the prefix change outputs

    def to_autopeft(self, cfg: Any) -> AutoPEFTConfig:
        return cfg

    def apply(self, model: nn.Module, cfg: Any, ctx: MethodContext | None = None) -> nn.Module:
        full = self.to_autopeft(cfg)
        check_layers(model, full.layers)
        under = _underneath(full)
        if under is None:
            model.requires_grad_(False)
            for name, child in model.named_children():
                if name in full.head_modules:
                    child.requires_grad_(True)
        else:
            model = under[0].apply(model, under[1], ctx)
        model = attach(model, full)
        _remember(model, full)  # so that `save` needs only the model
        return model

    def describe(self, model: nn.Module) -> dict[str, Any]:
        counts = parameter_counts(model)
        counts["autopeft_params"] = sum(t.numel() for t in own_state(model).values())
        return counts

    def save(self, model: nn.Module, directory: Path) -> None:
        from safetensors.torch import save_file

        cfg = model.autopeft_config
        under = _underneath(cfg)
        if under:
            under[0].save(model, directory)
        else:
            super().save(model, directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file(own_state(model), str(directory / STATE_FILE))
        (directory / CONFIG_FILE).write_text(json.dumps(asdict(cfg), indent=2))

    def load(self, model: nn.Module, directory: Path) -> nn.Module:
        from safetensors.torch import load_file

        cfg = AutoPEFTConfig(**json.loads((directory / CONFIG_FILE).read_text()))
        under = _underneath(cfg)
        model = under[0].load(model, directory) if under else load_pretrained(model, directory)
        model = attach(model, cfg)
        missing = _unwrap(model).load_state_dict(load_file(str(directory / STATE_FILE)), strict=False)
        if missing.unexpected_keys:
            raise UserError(f"{directory / STATE_FILE} holds weights this configuration has no place for")
        _remember(model, cfg)
        return model


def _remember(model: nn.Module, cfg: AutoPEFTConfig) -> None:
    # Not an nn.Module attribute (it would be saved with the weights): a plain object attribute.
    object.__setattr__(model, "autopeft_config", cfg)


# -------------------------------------------------------------------------------------- single modules


@dataclass
class BottleneckOptions:
    """A bottleneck adapter on the chosen layers; backbone frozen."""

    size: int = bounded(16, ge=1)
    """Bottleneck size."""
    layers: list[int] | None = bounded(None, ge=0)
    """Layers that get an adapter (None = all)."""
    head_modules: list[str] = field(default_factory=lambda: ["classifier", "score"])
    """Task-head modules trained in full alongside the adapter (those present in the model)."""


@dataclass
class SerialAdapterConfig(BottleneckOptions):
    """Pfeiffer serial bottleneck at the FFN output of the chosen layers; backbone frozen."""

    init: Literal["bert", "zero"] = "bert"
    """'bert': normal(0, 0.02) as in the anchor; 'zero': up-projection 0 (outputs unchanged at init)."""


@dataclass
class ParallelAdapterConfig(BottleneckOptions):
    """He et al. bottleneck parallel to the FFN of the chosen layers; backbone frozen."""

    scaling: float = bounded(4.0, gt=0.0)
    """Scale of the adapter's output (He et al.: 4.0)."""


@dataclass
class PrefixConfig:
    """Prefix-tuning with the reparametrisation MLP; backbone frozen."""

    length: int = bounded(30, ge=1)
    """Virtual tokens per layer."""
    hidden: int = bounded(800, ge=1)
    """Hidden size of the reparametrisation MLP (anchor: 800)."""
    head_modules: list[str] = field(default_factory=lambda: ["classifier", "score"])
    """Task-head modules trained in full alongside the prefix (those present in the model)."""


class OneModule(AutoPEFT):
    """One of AutoPEFT's modules as a method of its own: its options renamed into an `AutoPEFTConfig`."""

    def __init__(
        self, name: str, summary: str, config_cls: type, renames: dict[str, str], preserves: bool
    ) -> None:
        self.name, self.summary, self.config_cls = name, summary, config_cls
        self.renames, self.preserves_outputs_at_init = renames, preserves

    def to_autopeft(self, cfg: Any) -> AutoPEFTConfig:
        return AutoPEFTConfig(**{self.renames.get(k, k): v for k, v in asdict(cfg).items()})


METHOD = AutoPEFT()
SERIAL = OneModule(
    "serial_adapter",
    "Pfeiffer serial bottleneck (16) at the FFN output; backbone frozen, head trains",
    SerialAdapterConfig,
    {"size": "serial", "init": "serial_init"},
    preserves=False,  # BERT init
)
PARALLEL = OneModule(
    "parallel_adapter",
    "He et al. parallel bottleneck (16, scale 4) beside the FFN; backbone frozen, head trains",
    ParallelAdapterConfig,
    {"size": "parallel", "scaling": "parallel_scaling"},
    preserves=True,  # up-projection 0
)
PREFIX = OneModule(
    "prefix",
    "prefix-tuning (30 tokens) with the reparametrisation MLP; backbone frozen, head trains",
    PrefixConfig,
    {"length": "prefix", "hidden": "prefix_hidden"},
    preserves=False,
)
