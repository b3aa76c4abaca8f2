"""What a tuning method is, and what it is given (entry-point group `zoo.methods`).

A method is one module in `adapters/` exposing `METHOD` (a `Method`; subclassing `MethodBase` gives the
defaults) and one entry point, exactly as the built-ins full, lora, dsee and emoe are registered in
pyproject.toml:

    [project.entry-points."zoo.methods"]
    mymethod = "my_package.my_method:METHOD"

Its options are a dataclass (`config_cls`, fields with attribute docstrings) set from `method.key=value`.
`apply(model, cfg, ctx)` turns a freshly built task model into the model to train; after the engine
trained it, `after_training(model, cfg, ctx)` may do more (DSEE prunes and retrains through
`ctx.train`, a search scores trials through `ctx.evaluate`). Every registered method runs through the
shared contract table in tests/test_methods.py. `options_table(config_cls)` is what `zoo methods` prints.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from torch import nn

from zoo.domain import TaskSpec
from zoo.registry import Registry


@dataclass
class MethodContext:
    """What a method may use: the task and its data, and the run's engine for training and scoring."""

    task: TaskSpec
    kind: Any
    """The task's `zoo.benchmarks.kinds.TaskKind`."""
    tokenizer: Any
    labels: Sequence[str]
    splits: dict[str, list[Any]]
    """Examples per split ('train', 'dev', 'test')."""
    rows: dict[str, list[dict[str, Any]]]
    """The same, encoded by the kind (what the engine trains and predicts on)."""
    seed: int
    train: Callable[..., nn.Module]
    """`train(model, phase="retrain")` fine-tunes `model` on the train split with the run's budget (the
    engine: device, precision, accumulation, checkpoints) and returns it."""
    evaluate: Callable[..., dict[str, float]]
    """`evaluate(model, split="dev")` → the task's metrics on that split."""
    device: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    """Plug-in data a kind adds for its methods (e.g. the graph of a node-classification task: 'graph', 'data'),
    and from the recipe 'model_path' (the backbone's directory, None for a random init) and 'workdir'."""


@runtime_checkable
class Method(Protocol):
    name: str
    summary: str
    config_cls: type
    post_training: bool
    """True when `after_training` changes the model (the score before it is kept as 'metric@trained')."""
    preserves_outputs_at_init: bool
    """True when `apply` leaves the model's outputs unchanged (checked by the contract table)."""

    def apply(self, model: nn.Module, cfg: Any, ctx: MethodContext | None) -> nn.Module: ...

    def after_training(self, model: nn.Module, cfg: Any, ctx: MethodContext) -> nn.Module: ...

    def describe(self, model: nn.Module) -> dict[str, Any]:
        """trainable_params, total_params, trainable_percent, and method facts (sparsity, kernel path…)."""
        ...

    def save(self, model: nn.Module, directory: Path) -> None: ...

    def load(self, model: nn.Module, directory: Path) -> nn.Module:
        """Re-create the saved method state on a freshly built `model` of the same base."""
        ...


def _check_method(obj: Any) -> Method:
    if isinstance(obj, type):
        obj = obj()
    if not isinstance(obj, Method):
        raise TypeError(f"{obj!r} does not implement zoo.adapters.base.Method")
    return obj


METHODS: Registry[Method] = Registry("zoo.methods", "tuning method", _check_method, "METHOD")


def get_method(name: str) -> Method:
    return METHODS.get(name)


def method_config(method: Method, options: dict[str, Any]) -> Any:
    """The method's typed config from `method.*` options; an unknown key names the valid ones."""
    from zoo.config import typed_options

    return typed_options(method.config_cls, options, f"tuning method '{method.name}'", "method.")


def method_label(method: Method, cfg: Any) -> str:
    """The method as a leaderboard row names it: its name, plus its `variant_options` that differ from their
    defaults, e.g. 'graph_adapter (pretrain_epochs=0)' beside the pretrained 'graph_adapter'."""
    # Optional for a plug-in that implements the protocol without subclassing MethodBase.
    variants = getattr(method, "variant_options", ())
    if not variants:
        return method.name
    defaults = method_config(method, {})
    changed = [f"{k}={getattr(cfg, k)}" for k in variants if getattr(cfg, k) != getattr(defaults, k)]
    return f"{method.name} ({', '.join(changed)})" if changed else method.name


# ------------------------------------------------------------------------------------------------ defaults


def parameter_counts(model: nn.Module) -> dict[str, Any]:
    """trainable_params, total_params, trainable_percent: the keys every `describe` reports."""
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


def load_pretrained(model: nn.Module, directory: Path) -> nn.Module:
    """`from_pretrained` of `model`'s own class from `directory`, placed like `model` (device, dtype, mode).

    transformers' loader (not a bare state dict) so tied, sharded and renamed weights load as they were saved.
    """
    ref = next(model.parameters())
    loaded = type(model).from_pretrained(str(directory), dtype=ref.dtype).to(ref.device)
    return loaded.train(model.training)


class MethodBase:
    """Defaults for a `Method`; a plug-in subclasses it and sets the class attributes, then overrides `apply`.

    after_training: nothing (returns the model); describe: parameter counts; save/load: the model's own
    `save_pretrained` / `from_pretrained`.
    """

    name: str = ""
    summary: str = ""
    config_cls: type
    post_training: bool = False
    preserves_outputs_at_init: bool = True
    variant_options: tuple[str, ...] = ()
    """Options that make a different variant of the method (not a tuning knob): set away from their default,
    they join the method's leaderboard label (`method_label`)."""

    def apply(self, model: nn.Module, cfg: Any, ctx: MethodContext | None) -> nn.Module:
        raise NotImplementedError

    def after_training(self, model: nn.Module, cfg: Any, ctx: MethodContext) -> nn.Module:
        return model

    def describe(self, model: nn.Module) -> dict[str, Any]:
        return parameter_counts(model)

    def save(self, model: nn.Module, directory: Path) -> None:
        model.save_pretrained(str(directory))

    def load(self, model: nn.Module, directory: Path) -> nn.Module:
        return load_pretrained(model, directory)

    def __repr__(self) -> str:
        return f"<method {self.name}: {self.summary}>"


# ------------------------------------------------------------------------------------------------ options


def _attribute_docs(cls: type) -> dict[str, str]:
    """Field name -> the string literal right below its annotation (litgpt/args.py style), base classes
    first so a subclass may override; {} when the source is not available (e.g. a class built in a REPL)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for stmt, nxt in itertools.pairwise(body):
            if (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[stmt.target.id] = " ".join(nxt.value.value.split())
    return docs


def options_table(config_cls: type) -> list[tuple[str, str, Any, str]]:
    """(name, type, default, doc) for every option of a method's config dataclass, in field order.

    `type` is the annotation as written (e.g. "int", "list[str]", "Literal['grebsmo', 'random']"); `default`
    is the value a fresh config holds (None for a required field); `doc` is the attribute docstring or "",
    followed by the valid range of a `bounded` field.
    What `zoo methods` and `zoo finetune --help` print.
    """
    docs = _attribute_docs(config_cls)
    rows = []
    for f in dataclasses.fields(config_cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", repr(f.type))
        doc, valid = docs.get(f.name, ""), f.metadata.get("range")
        if valid is not None:  # a `zoo.config.bounded` field
            doc = f"{doc} Valid: {valid.describe()}.".strip()
        rows.append((f.name, kind, default, doc))
    return rows
