"""Typed run configuration: dataclasses, a YAML file, and `section.key=value` overrides.

Precedence (last wins): dataclass defaults < the domain's defaults < --config FILE.yaml < key=value.
Unknown keys are errors that list the valid ones, so a typo never silently trains the wrong thing.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from zoo.errors import UserError, did_you_mean


@dataclass
class ModelConfig:
    """Model size; None keeps the domain's default for that field."""

    hidden_size: int | None = None
    num_hidden_layers: int | None = None
    num_attention_heads: int | None = None
    num_key_value_heads: int | None = None
    intermediate_size: int | None = None
    max_position_embeddings: int | None = None
    dropout: float | None = None
    """Hidden and attention dropout (BERT-style families)."""


@dataclass
class TokenizerConfig:
    recipe: str | None = None
    """Recipe name in tokenizers/ (or a YAML path); None = the domain's default recipe."""
    vocab_size: int | None = None
    """None = the recipe's vocab size."""
    path: str | None = None
    """An existing tokenizer directory to use instead of training one."""


@dataclass
class DataConfig:
    corpus: list[str] = field(default_factory=list)
    """Files or folders to pretrain on; empty = the domain's embedded sample corpus."""
    seq_len: int = 128
    """Tokens per packed block."""
    eval_fraction: float = 0.02
    """Share of documents held out for eval loss / perplexity."""
    replay_corpus: list[str] = field(default_factory=list)
    """Second corpus mixed in during continual pretraining (against forgetting)."""
    replay_ratio: float = 0.0
    """Share of training blocks drawn from replay_corpus."""
    max_documents: int | None = None


@dataclass
class TrainConfig:
    """The engine's budget and optimiser, shared by pretraining and fine-tuning."""

    max_steps: int | None = 300
    """Optimizer steps; None = derived from `epochs` (fine-tuning)."""
    epochs: float | None = None
    """Passes over the training data (fractional allowed); used when max_steps is None."""
    batch_size: int = 16
    """Global batch size (blocks or examples), split over processes and accumulation steps."""
    grad_accum: int = 1
    lr: float = 5e-4
    weight_decay: float = 0.01
    adam_beta2: float = 0.98
    adam_eps: float = 1e-6
    warmup_ratio: float = 0.1
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    min_lr_ratio: float = 0.0
    max_grad_norm: float = 1.0
    eval_every: int | None = 100
    """Steps between evaluations; None = once per epoch."""
    eval_batches: int = 20
    """Pretraining: held-out batches per evaluation."""
    save_every: int | None = 100
    """Steps between checkpoints; None = once per epoch, 0 = never."""
    keep_checkpoints: int = 2
    log_every: int = 10
    seed: int = 0
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    """auto = bf16 where the device supports it (CUDA), else fp32."""
    attention: Literal["auto", "flex", "sdpa", "eager"] = "auto"
    """Pretraining on packed blocks: flex = FlexAttention with block masks (no [L, L] mask; skips the
    blocked tiles; CUDA only, no attention dropout), sdpa/eager = the dense additive mask. auto = flex on
    CUDA where the model supports it and has no attention dropout, else the dense mask."""
    compile: bool = False
    """torch.compile the model (CUDA: faster steps after a slower first one; off on CPU by default)."""


@dataclass
class PretrainConfig:
    domain: str = ""
    from_model: str | None = None
    """Continue pretraining this run or model directory (LR re-warms); None = from scratch."""
    model: ModelConfig = field(default_factory=ModelConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    objective: dict[str, Any] = field(default_factory=dict)
    """Options of the domain's objective over its defaults, e.g. objective.mask_prob=0.3."""
    corpus: dict[str, Any] = field(default_factory=dict)
    """Options of the domain's corpus reader over its defaults, e.g. corpus.window=4096."""
    train: TrainConfig = field(default_factory=TrainConfig)


def _finetune_train() -> TrainConfig:
    return TrainConfig(
        max_steps=None,
        epochs=3.0,
        lr=5e-5,
        weight_decay=0.0,
        adam_beta2=0.999,
        adam_eps=1e-8,
        eval_every=None,
        save_every=None,
        log_every=10,
    )


@dataclass
class TaskDataConfig:
    max_length: int = 128
    """Tokens per example (longer ones are truncated)."""
    max_train_examples: int | None = None
    """Cap on training examples (None = all): for quick runs on big tasks."""
    max_eval_examples: int | None = None
    """Cap on dev and test examples (None = all)."""


@dataclass
class FinetuneConfig:
    domain: str = ""
    tasks: list[str] = field(default_factory=list)
    """Tasks to fine-tune on (bench: all of the domain's)."""
    model: str | None = None
    """Run or model directory; None = the domain's architecture, randomly initialised."""
    init: Literal["pretrained", "random"] = "pretrained"
    """'random': same architecture and tokenizer as `model`, fresh weights (the no-pretraining baseline)."""
    data: str | None = None
    """Task data folder (or a parent with one folder per task); None = the embedded sample."""
    seeds: list[int] = field(default_factory=lambda: [0])
    select: Literal["last", "dev"] = "last"
    """Which model scores on test: after the last epoch, or the dev-best epoch."""
    task: TaskDataConfig = field(default_factory=TaskDataConfig)
    train: TrainConfig = field(default_factory=_finetune_train)
    method: dict[str, Any] = field(default_factory=lambda: {"name": "full"})
    """Tuning method: method.name=lora plus its options, e.g. method.r=8 (see `zoo methods`)."""


C = TypeVar("C")


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        last: UserError | None = None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except UserError as err:
                last = err
        raise last or UserError(f"bad value for '{key}'")
    if origin is Literal:
        if value not in args:
            raise UserError(f"'{key}' must be one of {', '.join(map(str, args))}, not {value!r}")
        return value
    if origin is list:
        items = (
            value
            if isinstance(value, list)
            else [_scalar(v.strip()) for v in str(value).split(",") if v.strip()]
        )
        return [_coerce(v, args[0], key) for v in items]
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"'{key}' must be true or false, not {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise UserError(f"'{key}' must be an integer, not {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise UserError(f"'{key}' must be a number, not {value!r}")
    if hint is str:
        return str(value)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise UserError(
                f"'{key}' must be a mapping of {', '.join(f.name for f in dataclasses.fields(hint))}"
            )
        return value
    return value


def valid_keys(cls: type, prefix: str = "") -> list[str]:
    keys: list[str] = []
    for f in dataclasses.fields(cls):
        hint = _field_types(cls)[f.name]
        if dataclasses.is_dataclass(hint):
            keys += valid_keys(hint, f"{prefix}{f.name}.")
        elif typing.get_origin(hint) is dict:
            keys.append(f"{prefix}{f.name}.*")
        else:
            keys.append(prefix + f.name)
    return keys


def set_key(cfg: Any, dotted: str, value: Any, root: type | None = None) -> None:
    """Set `a.b=value` on a nested dataclass, with type checking and did-you-mean on unknown keys."""
    root = root or type(cfg)
    obj = cfg
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        names = {f.name for f in dataclasses.fields(obj)}
        if part not in names:
            raise UserError(
                f"unknown config key '{dotted}'{did_you_mean(dotted, valid_keys(root))}"
                f" — valid keys: {', '.join(valid_keys(root))}"
            )
        hint = _field_types(type(obj))[part]
        if typing.get_origin(hint) is dict:
            # An open section (objective.*, corpus.*, method.*): its plug-in validates the keys.
            section = getattr(obj, part)
            if i == len(parts) - 1:
                if not isinstance(value, Mapping):
                    raise UserError(f"'{dotted}' is a section; set its keys, e.g. {dotted}.name=…")
                section.update(value)
            else:
                section[".".join(parts[i + 1 :])] = value
            return
        if i == len(parts) - 1:
            if dataclasses.is_dataclass(hint):
                if not isinstance(value, Mapping):
                    raise UserError(
                        f"'{dotted}' is a section; set its keys, e.g. {dotted}.{dataclasses.fields(hint)[0].name}=…"
                    )
                for k, v in value.items():
                    set_key(cfg, f"{dotted}.{k}", v, root)
                return
            setattr(obj, part, _coerce(value, hint, dotted))
            return
        if not dataclasses.is_dataclass(hint):
            raise UserError(
                f"'{'.'.join(parts[: i + 1])}' is not a section; valid keys: {', '.join(valid_keys(root))}"
            )
        obj = getattr(obj, part)


def apply_mapping(cfg: Any, values: Mapping[str, Any], prefix: str = "") -> None:
    for key, value in values.items():
        set_key(cfg, f"{prefix}{key}", value)


def _scalar(raw: str) -> Any:
    """A command-line value as YAML reads it, except that '3e-4' is a number (YAML wants '3.0e-4')."""
    import yaml

    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            pass
    return value


def parse_override(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise UserError(f"override '{text}' is not of the form key=value (e.g. train.lr=3e-4)")
    return key.strip(), _scalar(raw)


def load_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    p = Path(path)
    if not p.is_file():
        raise UserError(f"config file '{p}' does not exist")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise UserError(
            f"config file '{p}{where}' is not valid YAML: {getattr(err, 'problem', err)}"
        ) from None
    if not isinstance(data, dict):
        raise UserError(
            f"config file '{p}' must hold a mapping of keys and sections (as a run's config.yaml)"
        )
    return data


def build_config(
    cls: type[C],
    defaults: Mapping[str, Any] = {},
    config_file: str | Path | None = None,
    overrides: Iterable[str] = (),
) -> C:
    """Defaults < domain defaults (dotted keys) < YAML file (nested) < key=value overrides."""
    cfg = cls()
    for key, value in defaults.items():
        set_key(cfg, key, value)
    if config_file is not None:
        apply_mapping(cfg, load_yaml(config_file))
    for text in overrides:
        key, value = parse_override(text)
        set_key(cfg, key, value)
    return cfg


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def save_yaml(cfg: Any, path: Path) -> None:
    import yaml

    path.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
