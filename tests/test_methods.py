"""The method registry and its contract table: every registered method × {tiny BERT, tiny Llama} ×
{token task, sequence task} (peft's `tests/test_custom_models.py` TEST_CASES is the model).

A method joins every contract test by its registration alone (entry-point group `zoo.methods`); `CASES` only
makes a run smaller or names the extra summary keys a method promises. The method-specific tests follow.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
import transformers
from tiny_models import IDS, out, tiny_bert, tiny_llama, tiny_t5
from torch import nn

from zoo.adapters import dsee, emoe
from zoo.adapters.base import METHODS, Method, MethodContext, get_method, method_config, options_table
from zoo.config import parse_override
from zoo.domain import TaskSpec
from zoo.errors import UserError

SUMMARY_KEYS = {"trainable_params", "total_params", "trainable_percent"}


@dataclass(frozen=True)
class Case:
    """How the table runs one method; a method without an entry runs with its defaults."""

    options: dict[str, Any] = field(default_factory=dict)
    """Small options for tiny models (method_config keys)."""
    identity_options: dict[str, Any] | None = None
    """Options under which outputs must equal the base model's, for a method that does not promise it by
    default (`preserves_outputs_at_init` False)."""
    subset: bool = False
    """The method trains a strict subset of the parameters (PEFT)."""
    keys: frozenset[str] = frozenset()
    """Summary keys beyond trainable_params / total_params / trainable_percent."""
    refuses: frozenset[str] = frozenset()
    """MODELS rows the method cannot adapt with `options`: `apply` must say so (UserError), and the contract
    tests leave the row out."""
    needs_graph: bool = False
    """The method applies to node-classification tasks only (a graph in the context): the model-based rows
    below do not apply; tests/test_graph_adapter.py runs its contract on a graph."""


CASES: dict[str, Case] = {
    "lora": Case(options={"r": 4}, subset=True),
    "dsee": Case(
        options={"r": 4, "num_sparse": 8, "sparse_init": "magnitude"},
        subset=True,
        keys=frozenset(
            {
                "sparsity",
                "sparsity_backbone",
                "sparsity_adapted",
                "heads_removed",
                "dsee_params",
                "inference_macs_removed",
                "kernel",
            }
        ),
    ),
    # BERT's FFN has 64 neurons and Llama's 48: 4 experts divide both.
    "emoe": Case(
        options={"num_experts": 4, "top_k": 2},
        identity_options={"num_experts": 4, "top_k": 4},
        keys=frozenset({"emoe_layers", "dense_eval"}),
    ),
    "serial_adapter": Case(
        options={"size": 4},
        identity_options={"size": 4, "init": "zero"},
        subset=True,
        keys=frozenset({"autopeft_params"}),
    ),
    "parallel_adapter": Case(options={"size": 4}, subset=True, keys=frozenset({"autopeft_params"})),
    "prefix": Case(
        options={"length": 3, "hidden": 8},
        subset=True,
        keys=frozenset({"autopeft_params"}),
        refuses=frozenset({"t5-sequence"}),  # T5's encoder takes no key/value cache
    ),
    "autopeft": Case(
        options={"serial": 4, "parallel": 2, "prefix": 3, "prefix_hidden": 8, "layers": [1], "lora_r": 2},
        identity_options={"serial": 4, "parallel": 2, "serial_init": "zero", "layers": [0]},
        subset=True,
        keys=frozenset({"autopeft_params"}),
        refuses=frozenset({"t5-sequence"}),  # its options include a prefix
    ),
    "graph_adapter": Case(needs_graph=True),
}

MODELS: dict[str, Callable[[], nn.Module]] = {
    "bert-token": lambda: tiny_bert(token=True),
    "bert-sequence": tiny_bert,
    "llama-token": lambda: tiny_llama(token=True),
    "llama-sequence": tiny_llama,
    "t5-sequence": tiny_t5,
}
LABELS = {
    "token": torch.randint(0, 3, IDS.shape, generator=torch.Generator().manual_seed(2)),
    "sequence": torch.tensor([0, 2]),
}


def case(name: str) -> Case:
    return CASES.get(name, Case())


TABLE = [
    (name, model)
    for name in METHODS.names()
    if not case(name).needs_graph
    for model in MODELS
    if model not in case(name).refuses
]
REFUSED = [(name, model) for name in METHODS.names() for model in sorted(case(name).refuses)]


def build(name: str, model: str, options: dict[str, Any] | None = None) -> tuple[Method, Any, nn.Module]:
    method = get_method(name)
    cfg = method_config(method, case(name).options if options is None else options)
    return method, cfg, method.apply(MODELS[model](), cfg, None)


@pytest.mark.parametrize("name, model", REFUSED)
def test_a_method_refuses_a_model_it_cannot_adapt_with_a_user_error(name: str, model: str) -> None:
    with pytest.raises(UserError, match="family"):
        build(name, model)


def loss(model: nn.Module, model_key: str) -> torch.Tensor:
    labels = LABELS[model_key.split("-")[1]]
    logits = model(input_ids=IDS).logits
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))


def adam_steps(model: nn.Module, model_key: str, steps: int = 1, lr: float = 1e-3) -> nn.Module:
    """Train in eval mode (no dropout) so that the loss is a deterministic function of the weights."""
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss(model, model_key).backward()
        opt.step()
    return model


def context(model_key: str, phases: list[str]) -> MethodContext:
    """An engine stand-in: `train` runs a few Adam steps on the fixed batch, `evaluate` returns a metric."""

    def train(model: nn.Module, phase: str = "train") -> nn.Module:
        phases.append(phase)
        return adam_steps(model, model_key, steps=3)

    task = model_key.split("-")[1]
    return MethodContext(
        task=TaskSpec(name="tiny", type=f"{task}_classification", format="csv", metrics=("accuracy",)),
        kind=None,
        tokenizer=None,
        labels=["a", "b", "c"],
        splits={},
        rows={},
        seed=0,
        train=train,
        evaluate=lambda model, split="dev": {"accuracy": 0.5},
    )


# ------------------------------------------------------------------------------------------------ registry


def test_builtins_are_registered_through_entry_points_and_unknown_names_suggest_one():
    assert {"full", "lora", "dsee", "emoe"} <= set(METHODS.names())
    with pytest.raises(UserError, match="did you mean 'dsee'"):
        get_method("dse")


def test_options_come_from_key_value_strings():
    def options(*texts: str) -> dict[str, Any]:
        return dict(parse_override(t) for t in texts)

    cfg = method_config(
        get_method("dsee"),
        options("r=8", "alpha=16", "num_sparse=16", "target_modules=q_proj,v_proj", "sparse_init=magnitude"),
    )
    assert (cfg.r, cfg.alpha, cfg.num_sparse) == (8, 16.0, 16)
    assert cfg.target_modules == ["q_proj", "v_proj"] and cfg.sparse_init == "magnitude"
    ecfg = method_config(
        get_method("emoe"), options("num_experts=8", "top_k=2", "layers=[0, 1]", "eval_dense=true")
    )
    assert (ecfg.num_experts, ecfg.top_k, ecfg.layers, ecfg.eval_dense) == (8, 2, [0, 1], True)


@pytest.mark.parametrize(
    "name, opts, match",
    [
        ("dsee", {"sparse_init": "svd"}, "sparse_init"),
        (
            "lora",
            {"alpah": 4},
            "unknown option 'method.alpah' for tuning method 'lora' — did you mean 'alpha'",
        ),
        ("emoe", {"num_experts": 4, "top_k": 9}, "top_k"),  # each key valid, the pair is not
        ("dsee", {"r": 0, "num_sparse": 0}, "not both 0"),
    ],
)
def test_bad_options_are_user_errors(name, opts, match):
    with pytest.raises(UserError, match=match):
        method_config(get_method(name), opts)


def test_options_table_reads_types_defaults_and_attribute_docstrings():
    rows = {row[0]: row for row in options_table(dsee.DSEEConfig)}
    assert rows["r"] == ("r", "int", 16, "LoRA rank (official scripts: 16). Valid: ≥ 0.")
    assert rows["target_modules"][1:3] == ("list[str]", ["query", "value"])
    assert rows["sparse_init"][1].startswith("Literal[") and rows["prune_adapted_ratio"][2] is None
    assert [r[0] for r in options_table(emoe.EMoEConfig)][:2] == ["num_experts", "top_k"]


# ------------------------------------------------------------------------------------------ contract table


@pytest.mark.parametrize("name", METHODS.names())
def test_method_implements_the_protocol_with_documented_options(name):
    method = get_method(name)
    assert isinstance(method, Method) and method.name == name and method.summary
    assert dataclasses.is_dataclass(method.config_cls)
    method_config(method, {})  # the defaults are a valid config
    for option, kind, _, doc in options_table(method.config_cls):
        assert kind and doc, f"{name}: option '{option}' needs a type and an attribute docstring"
    fields = {f.name for f in dataclasses.fields(method.config_cls)}
    assert set(getattr(method, "variant_options", ())) <= fields, f"{name}: variant_options names no option"


def identity_options(name: str) -> dict[str, Any] | None:
    """Options under which `name` must leave outputs unchanged; None: it promises no such config (prefix)."""
    return case(name).options if get_method(name).preserves_outputs_at_init else case(name).identity_options


@pytest.mark.parametrize("name, model", [(n, m) for n, m in TABLE if identity_options(n) is not None])
def test_outputs_unchanged_at_init_where_promised(name, model):
    _, _, adapted = build(name, model, identity_options(name))
    torch.testing.assert_close(out(adapted), out(MODELS[model]()), rtol=0, atol=0)


@pytest.mark.parametrize("name, model", TABLE)
def test_describe_reports_trainable_parameters_and_method_keys(name, model):
    method, _, adapted = build(name, model)
    summary = method.describe(adapted)
    assert SUMMARY_KEYS | case(name).keys <= set(summary)
    assert 0 < summary["trainable_params"] <= summary["total_params"]
    if case(name).subset:
        assert summary["trainable_params"] < summary["total_params"]
    assert summary["trainable_percent"] == pytest.approx(
        100 * summary["trainable_params"] / summary["total_params"]
    )


@pytest.mark.parametrize("name, model", TABLE)
def test_one_adam_step_lowers_the_loss_on_a_fixed_batch(name, model):
    _, _, adapted = build(name, model)
    before = loss(adapted, model).item()
    adam_steps(adapted, model)
    assert loss(adapted, model).item() < before


@pytest.mark.parametrize("name, model", TABLE)
def test_save_then_load_onto_a_fresh_base_gives_identical_outputs(name, model, tmp_path):
    method, _, adapted = build(name, model)
    adam_steps(adapted, model)  # non-trivial adapter and head weights
    expected = out(adapted)
    method.save(adapted, tmp_path)
    loaded = method.load(MODELS[model](), tmp_path)
    torch.testing.assert_close(out(loaded), expected, rtol=0, atol=0)


@pytest.mark.parametrize("name, model", TABLE)
def test_after_training_with_a_context_returns_a_working_model(name, model):
    method, cfg, adapted = build(name, model)
    adam_steps(adapted, model)
    phases: list[str] = []
    result = method.after_training(adapted, cfg, context(model, phases))
    assert isinstance(result, nn.Module) and torch.isfinite(out(result)).all()
    assert method.post_training or phases == []  # a method without a stage 2 does not train again


# ------------------------------------------------------------------------------------------ per method


def test_full_trains_everything():
    method, _, model = build("full", "bert-sequence")
    summary = method.describe(model.requires_grad_(False))
    assert summary["trainable_params"] == 0  # describe counts what is trainable now
    summary = method.describe(method.apply(model, method_config(method, {}), None))
    assert (
        summary["trainable_params"] == summary["total_params"] == sum(p.numel() for p in model.parameters())
    )


@pytest.mark.parametrize(
    "model, targets, head, head_params",
    [
        ("bert-sequence", {"query", "value"}, "classifier", 32 * 3 + 3),
        ("llama-token", {"q_proj", "v_proj"}, "score", 32 * 3 + 3),
        ("llama-sequence", {"q_proj", "v_proj"}, "score", 32 * 3),  # Llama's sequence head has no bias
        ("t5-sequence", {"q", "v"}, "classifier", 32 * 3 + 3),  # T5 names: query → q
    ],
)
def test_lora_adapts_the_family_attention_targets_and_trains_the_head(model, targets, head, head_params):
    method, _, adapted = build("lora", model, {})
    assert set(adapted.peft_config["default"].target_modules) == targets
    trainable = [n for n, p in adapted.named_parameters() if p.requires_grad]
    assert any(f"{head}.modules_to_save" in n for n in trainable)
    assert all("lora_" in n or "modules_to_save" in n for n in trainable)
    lora = 2 * 2 * (16 * 32 + 32 * 16)  # 2 layers x 2 targets x (A + B), r=16
    assert method.describe(adapted)["trainable_params"] == lora + head_params


def test_dsee_after_training_prunes_then_retrains_once_through_the_context():
    options = {"r": 4, "num_sparse": 8, "sparse_init": "random", "prune_ratio": 0.2}
    method, cfg, model = build("dsee", "bert-sequence", options)
    summary = method.describe(model)
    assert summary["dsee_params"] == 4 * (4 * 32 * 2 + 8) and summary["sparsity"] == 0.0
    ctx = context("bert-sequence", [])
    seen: list[tuple[str, float]] = []

    def spy(m: nn.Module, phase: str = "train") -> nn.Module:
        seen.append((phase, dsee.sparsity(m)["backbone"]))
        return ctx.train(m, phase)

    model = method.after_training(model, cfg, dataclasses.replace(ctx, train=spy))
    assert seen == [("retrain", pytest.approx(0.2, abs=1e-3))]  # pruned before retraining, once
    summary = method.describe(model)
    assert summary["sparsity"] == pytest.approx(0.2, abs=1e-3)
    # The exported model is exact, so q and v are dense there ((mask ⊙ W) + ΔW): only the other linears save
    # MACs, a share below the 20 % pruned but well above zero.
    assert 0.05 < summary["inference_macs_removed"] < 0.2


def test_dsee_without_pruning_has_no_stage_two():
    method, cfg, model = build("dsee", "bert-sequence", {"r": 4, "num_sparse": 8, "prune_ratio": 0})
    phases: list[str] = []
    assert method.after_training(model, cfg, context("bert-sequence", phases)) is model
    assert phases == [] and method.describe(model)["sparsity"] == 0.0


def test_dsee_summary_names_the_kernel_path_that_ran():
    method, _, model = build("dsee", "llama-sequence")
    assert method.describe(model)["kernel"] == "reference"  # CPU, before any forward: what would run
    out(model)
    layers = dsee.dsee_layers(model).values()
    assert {m.last_backend for m in layers} == {"reference"}
    assert method.describe(model)["kernel"] == "reference"


def test_dsee_save_writes_the_adapter_and_a_loadable_merged_checkpoint(tmp_path):
    method, cfg, model = build("dsee", "bert-sequence", {"r": 4, "num_sparse": 8, "sparse_init": "random"})
    model = method.after_training(adam_steps(model, "bert-sequence"), cfg, context("bert-sequence", []))
    method.save(model, tmp_path)
    assert (tmp_path / dsee.WEIGHTS_NAME).is_file() and (tmp_path / "config.json").is_file()
    plain = transformers.BertForSequenceClassification.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(out(plain), out(dsee.merged_copy(model)))
    assert torch.equal(out(method.load(tiny_bert(), tmp_path)), out(model))


def test_emoe_saves_a_plain_checkpoint_plus_the_split_and_reloads_dense_if_saved_dense(tmp_path):
    method, _, model = build("emoe", "bert-sequence", {"num_experts": 8, "top_k": 2})
    assert method.describe(model)["emoe_layers"] == [0]
    method.save(model, tmp_path / "moe")
    plain = transformers.BertForSequenceClassification.from_pretrained(tmp_path / "moe").eval()
    assert torch.equal(out(emoe.load(plain, tmp_path / "moe")), out(model))
    dense_cfg = method_config(method, {"num_experts": 8, "top_k": 2, "eval_dense": True})
    model = method.after_training(model, dense_cfg, context("bert-sequence", []))
    assert method.describe(model)["dense_eval"] is True and torch.equal(out(model), out(tiny_bert()))
    method.save(model, tmp_path / "dense")
    reloaded = method.load(tiny_bert(), tmp_path / "dense")
    assert method.describe(reloaded)["dense_eval"] is True and torch.equal(out(reloaded), out(model))


# ------------------------------------------------------------------------------- AutoPEFT's modules


def _autopeft(model: str, **options: Any) -> nn.Module:
    return build("autopeft", model, options)[2]


def test_parallel_adapter_adds_four_times_its_bottleneck_of_the_ffn_input_to_the_ffn_output():
    method, _, model = build("parallel_adapter", "llama-sequence", {"size": 4, "layers": [1]})
    adam_steps(model, "llama-sequence")  # a non-zero up-projection
    block = model.model.layers[1]
    pa = block.autopeft_ffn.parallel
    assert (
        pa.scale == 4.0
        and block.autopeft_ffn.serial is None
        and not hasattr(model.model.layers[0], "autopeft_ffn")
    )
    x = torch.randn(2, 5, 32)
    with torch.no_grad():
        plain = block.mlp.down_proj(block.mlp.act_fn(block.mlp.gate_proj(x)) * block.mlp.up_proj(x))
        expected = plain + 4.0 * pa.up(torch.relu(pa.down(x)))
        torch.testing.assert_close(block.mlp(x), expected)
    assert method.describe(model)["autopeft_params"] == 2 * 32 * 4 + 32 + 4  # one layer: down + up


def test_serial_adapter_uses_bert_init_and_sits_after_the_ffn_output_dense():
    _, _, model = build("serial_adapter", "bert-sequence", {"size": 4})
    block = model.bert.encoder.layer[0]
    sa = block.autopeft_ffn.serial
    assert sa.up.weight.abs().sum() > 0 and float(sa.up.weight.detach().std()) == pytest.approx(0.02, rel=0.5)
    h = torch.randn(2, 5, 64)
    with torch.no_grad():
        f = torch.nn.functional.linear(h, block.output.dense.weight, block.output.dense.bias)
        torch.testing.assert_close(block.output.dense(h), f + sa.up(torch.relu(sa.down(f))))
    assert not any(p.requires_grad for n, p in model.bert.named_parameters() if "autopeft" not in n)


def test_serial_and_parallel_compose_at_one_layer_and_both_train():
    model = _autopeft("bert-token", serial=4, parallel=2, layers=[0])
    ffn = model.bert.encoder.layer[0].autopeft_ffn
    assert ffn.serial is not None and ffn.parallel is not None
    before = [p.detach().clone() for p in ffn.parameters()]
    adam_steps(model, "bert-token", steps=2)  # the parallel down-projection moves once up is non-zero
    assert all(not torch.equal(a, b) for a, b in zip(before, ffn.parameters()))


@pytest.mark.parametrize("model", ["bert-sequence", "llama-token"])
def test_prefix_sees_every_token_of_a_padded_row_as_the_row_alone_would(model):
    adapted = build("prefix", model, {"length": 3, "hidden": 8})[2]
    ids = IDS.clone()
    mask = torch.ones_like(ids)
    mask[1, -3:] = 0
    with torch.no_grad():
        both = adapted(input_ids=ids, attention_mask=mask).logits
        alone = adapted(input_ids=ids[1:, :-3]).logits
        base = MODELS[model]()(input_ids=ids[1:, :-3]).logits
    if model.endswith("token"):
        torch.testing.assert_close(both[1, :-3], alone[0], rtol=1e-5, atol=1e-5)
    else:  # BERT pools the first token
        torch.testing.assert_close(both[1], alone[0], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(alone, base)  # the prefix is attended to


def test_prefix_counts_its_reparametrisation_mlp_and_layers_out_of_range_are_user_errors():
    method, _, model = build("prefix", "llama-sequence", {"length": 3, "hidden": 8})
    # embedding 3x32, Linear 32->8, Linear 8->(2 layers x k,v x 4 heads x 8 dims)
    assert method.describe(model)["autopeft_params"] == 3 * 32 + (32 * 8 + 8) + (8 * 128 + 128)
    with pytest.raises(UserError, match=r"method.layers \[5\] out of range"):
        _autopeft("bert-sequence", serial=2, layers=[5])


def test_autopeft_over_dsee_saves_and_reloads(tmp_path):
    method, _, model = build("autopeft", "bert-sequence", {"parallel": 2, "dsee_n": 4, "lora_r": 2})
    adam_steps(model, "bert-sequence")
    assert dsee.dsee_layers(model) and method.describe(model)["autopeft_params"] > 0
    method.save(model, tmp_path)
    torch.testing.assert_close(out(method.load(tiny_bert(), tmp_path)), out(model), rtol=0, atol=0)


def test_dsee_head_pruning_refuses_t5_with_the_fix():
    """T5 shares one relative-position bias (a value per head) across layers: heads cannot go per layer."""
    method, cfg, model = build("dsee", "t5-sequence", {"r": 4, "num_sparse": 8, "prune_heads": 1})
    with pytest.raises(UserError, match="method.prune_heads=0"):
        method.after_training(model, cfg, context("t5-sequence", []))
