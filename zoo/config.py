"""Typed run configuration: dataclasses, a YAML file, and `section.key=value` overrides.

Precedence (last wins): dataclass defaults < the domain's defaults < --config FILE.yaml < key=value.
Unknown keys are errors that list the valid ones, so a typo never silently trains the wrong thing.

Every numeric key states its valid range where it is declared (`bounded(default, ge=…, gt=…, le=…, lt=…)`,
a `dataclasses.field` carrying a `Range`); rules between keys live in the section's `validate()`.
`check_config` applies both, once, when a config is built (`build_config`, `typed_options` for method and
objective options) — before any file is written — and names the key, the value and the valid range.
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
from zoo.files import check_existing_path, read_yaml

SEED_MAX = 2**32 - 1
"""numpy and accelerate's set_seed take seeds below 2**32."""


@dataclass(frozen=True)
class Range:
    """The valid values of a numeric key (of each item, for a list): lower and upper bounds, open or closed."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def holds(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return True  # the type was checked when the value was set
        return not (
            (self.ge is not None and value < self.ge)
            or (self.gt is not None and value <= self.gt)
            or (self.le is not None and value > self.le)
            or (self.lt is not None and value >= self.lt)
        )

    def describe(self) -> str:
        bounds = (("≥", self.ge), (">", self.gt), ("≤", self.le), ("<", self.lt))
        return " and ".join(f"{sign} {_num(x)}" for sign, x in bounds if x is not None)


def _num(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def bounded(
    default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING, **bounds: float
) -> Any:
    """A dataclass field whose value (each item of a list) must lie in `Range(**bounds)`; None is always
    allowed where the type allows it. Checked by `check_config`."""
    meta = {"range": Range(**bounds)}
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def check_config(cfg: Any, prefix: str = "") -> None:
    """Every `bounded` field of `cfg` and its sections in range, then each section's `validate()` (rules
    between keys, which raise a UserError naming them). The message names key, value and valid range."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            check_config(value, f"{prefix}{f.name}.")
            continue
        rng = f.metadata.get("range")
        if rng is None or value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            if not rng.holds(item):
                raise UserError(f"{prefix}{f.name}={item} is out of range: it must be {rng.describe()}")
    validate = getattr(cfg, "validate", None)
    if callable(validate):
        validate()


def typed_options(cls: type[C], options: Mapping[str, Any], owner: str, prefix: str) -> C:
    """`cls()` (a plug-in's options dataclass) with `options` set through the typed setters and checked
    like any config. `owner` ("tuning method 'lora'") and `prefix` ("method.") are for the messages."""
    cfg = cls()
    known = [f.name for f in dataclasses.fields(cls)]
    for key in options:
        if key.split(".")[0] not in known:
            hint = did_you_mean(key, known) if known else " (it has no options)"
            raise UserError(f"unknown option '{prefix}{key}' for {owner}{hint}")
    try:
        for key, value in options.items():
            set_key(cfg, key, value, prefix=prefix)
        check_config(cfg, prefix)
    except UserError as err:
        raise UserError(f"{owner}: {err}") from None
    return cfg


@dataclass
class ModelConfig:
    """Model size; None keeps the domain's default for that field."""

    hidden_size: int | None = bounded(None, ge=1)
    num_hidden_layers: int | None = bounded(None, ge=1)
    num_attention_heads: int | None = bounded(None, ge=1)
    num_key_value_heads: int | None = bounded(None, ge=1)
    intermediate_size: int | None = bounded(None, ge=1)
    max_position_embeddings: int | None = bounded(None, ge=2)
    dropout: float | None = bounded(None, ge=0.0, lt=1.0)
    """Hidden and attention dropout (BERT-style families)."""
    attention_window: int | None = bounded(None, ge=2)
    """Sliding-window attention width in tokens, even (families with windowed attention: longformer)."""


def check_model_sizes(config: Mapping[str, Any]) -> None:
    """Rules between the model sizes, on the domain's config with the run's `model.*` over it."""
    hidden, heads = config.get("hidden_size"), config.get("num_attention_heads")
    kv = config.get("num_key_value_heads")
    if hidden and heads and hidden % heads:
        raise UserError(
            f"model.hidden_size={hidden} is not divisible by model.num_attention_heads={heads}; "
            "each head gets hidden_size / num_attention_heads dimensions"
        )
    window = config.get("attention_window")
    if isinstance(window, int) and window % 2:
        raise UserError(f"model.attention_window={window} must be even (half of it on each side of a token)")
    if heads and kv and heads % kv:
        raise UserError(
            f"model.num_attention_heads={heads} is not divisible by model.num_key_value_heads={kv}; "
            "each key/value head serves a whole group of attention heads"
        )


@dataclass
class TokenizerConfig:
    recipe: str | None = None
    """Recipe name in tokenizers/ (or a YAML path); None = the domain's default recipe."""
    vocab_size: int | None = bounded(None, ge=1)
    """None = the recipe's vocab size."""
    path: str | None = None
    """An existing tokenizer directory to use instead of training one."""


@dataclass
class DataConfig:
    corpus: list[str] = field(default_factory=list)
    """Files or folders to pretrain on; empty = the domain's embedded sample corpus."""
    seq_len: int = bounded(128, ge=2)
    """Tokens per packed block."""
    eval_fraction: float = bounded(0.02, ge=0.0, lt=1.0)
    """Share of documents held out for eval loss / perplexity."""
    replay_corpus: list[str] = field(default_factory=list)
    """Second corpus mixed in during continual pretraining (against forgetting)."""
    replay_ratio: float = bounded(0.0, ge=0.0, lt=1.0)
    """Share of training blocks drawn from replay_corpus."""
    max_documents: int | None = bounded(None, ge=1)
    prepared: str | None = None
    """A folder written by `zoo data prepare` to train from (its blocks and tokenizer) instead of a corpus."""
    cache_dir: str | None = None
    """Where corpora are prepared once and reused (tokenized, packed, memory-mapped) and trained tokenizers
    are kept; None = $ZOO_HOME/cache."""
    num_proc: int = bounded(1, ge=1)
    """Processes that tokenize while the cache is built."""
    streaming: bool = False
    """Read, tokenize and pack the corpus on the fly (no cache on disk): for corpora larger than the disk."""
    shuffle_buffer: int = bounded(1000, ge=1)
    """Streaming: blocks held in the shuffle buffer."""

    def validate(self) -> None:
        if self.replay_ratio > 0 and not self.replay_corpus:
            raise UserError(
                f"data.replay_ratio={self.replay_ratio} needs data.replay_corpus (the corpus to replay)"
            )
        if self.prepared and self.corpus:
            raise UserError(
                "data.prepared already holds the tokenized corpus: drop --corpus / data.corpus, or drop "
                "data.prepared to prepare the given corpus"
            )
        if self.streaming and (self.prepared or self.replay_corpus):
            other = "data.prepared" if self.prepared else "data.replay_corpus"
            raise UserError(
                f"data.streaming=true reads the corpus on the fly; it cannot be combined with {other}"
            )


@dataclass
class TrainConfig:
    """The engine's budget and optimiser, shared by pretraining and fine-tuning."""

    max_steps: int | None = bounded(300, ge=1)
    """Optimizer steps; None = derived from `epochs` (fine-tuning)."""
    epochs: float | None = bounded(None, gt=0.0)
    """Passes over the training data (fractional allowed); used when max_steps is None."""
    batch_size: int = bounded(16, ge=1)
    """Global batch size (blocks or examples), split over processes and accumulation steps."""
    grad_accum: int = bounded(1, ge=1)
    lr: float = bounded(5e-4, gt=0.0)
    weight_decay: float = bounded(0.01, ge=0.0)
    adam_beta2: float = bounded(0.98, gt=0.0, lt=1.0)
    adam_eps: float = bounded(1e-6, gt=0.0)
    warmup_ratio: float = bounded(0.1, ge=0.0, le=1.0)
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    min_lr_ratio: float = bounded(0.0, ge=0.0, le=1.0)
    max_grad_norm: float = bounded(1.0, gt=0.0)
    eval_every: int | None = bounded(100, ge=0)
    """Steps between evaluations; None = once per epoch."""
    eval_batches: int = bounded(20, ge=1)
    """Pretraining: held-out batches per evaluation."""
    save_every: int | None = bounded(100, ge=0)
    """Steps between checkpoints; None = once per epoch, 0 = never."""
    keep_checkpoints: int = bounded(2, ge=0)
    """Newest checkpoints kept per fit; 0 = all."""
    log_every: int = bounded(10, ge=1)
    seed: int = bounded(0, ge=0, le=SEED_MAX)
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
    allow_foreign_model: bool = False
    """Accept a `from_model` that another domain pretrained (same model family), on purpose."""
    model: ModelConfig = field(default_factory=ModelConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    objective: dict[str, Any] = field(default_factory=dict)
    """Options of the domain's objective over its defaults, e.g. objective.mask_prob=0.3; objective.name=mlm
    picks another registered objective (with only the options given here)."""
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
    max_length: int = bounded(128, ge=2)
    """Tokens per example (longer ones are truncated)."""
    max_train_examples: int | None = bounded(None, ge=1)
    """Cap on training examples (None = all): for quick runs on big tasks."""
    max_eval_examples: int | None = bounded(None, ge=1)
    """Cap on dev and test examples (None = all)."""
    allow_unseen_labels: bool = False
    """Accept dev/test labels that the train split never has (an error by default: usually a data mistake)."""


@dataclass
class FinetuneConfig:
    domain: str = ""
    tasks: list[str] = field(default_factory=list)
    """Tasks to fine-tune on (bench: all of the domain's)."""
    model: str | None = None
    """Run or model directory; None = the domain's architecture, randomly initialised."""
    allow_foreign_model: bool = False
    """Accept a `model` that another domain pretrained (same model family), on purpose."""
    init: Literal["pretrained", "random"] = "pretrained"
    """'random': same architecture and tokenizer as `model`, fresh weights (the no-pretraining baseline)."""
    data: str | None = None
    """Task data folder (or a parent with one folder per task); None = the embedded sample."""
    seeds: list[int] = bounded(default_factory=lambda: [0], ge=0, le=SEED_MAX)
    select: Literal["last", "dev"] = "last"
    """Which model scores on test: after the last epoch, or the dev-best epoch."""
    task: TaskDataConfig = field(default_factory=TaskDataConfig)
    train: TrainConfig = field(default_factory=_finetune_train)
    method: dict[str, Any] = field(default_factory=lambda: {"name": "full"})
    """Tuning method: method.name=lora plus its options, e.g. method.r=8 (see `zoo methods`)."""

    def validate(self) -> None:
        if not self.seeds:
            raise UserError("seeds is empty: give at least one seed (--seeds N ≥ 1)")


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


def set_key(cfg: Any, dotted: str, value: Any, root: type | None = None, prefix: str = "") -> None:
    """Set `a.b=value` on a nested dataclass, with type checking and did-you-mean on unknown keys.
    `prefix` is how messages name the key's section (e.g. "method.")."""
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
                    set_key(cfg, f"{dotted}.{k}", v, root, prefix)
                return
            setattr(obj, part, _coerce(value, hint, prefix + dotted))
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
    p = check_existing_path(path, "config file")
    if p.is_dir():
        raise UserError(f"config file '{p}' is a directory; give the YAML file (e.g. {p / 'config.yaml'})")
    data = read_yaml(p, "config file") or {}
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
        try:
            apply_mapping(cfg, load_yaml(config_file))
        except UserError as err:
            raise UserError(
                err.args[0] if str(config_file) in str(err) else f"config file '{config_file}': {err}"
            ) from None
    for text in overrides:
        key, value = parse_override(text)
        set_key(cfg, key, value)
    check_config(cfg)
    return cfg


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def save_yaml(cfg: Any, path: Path) -> None:
    import yaml

    path.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
