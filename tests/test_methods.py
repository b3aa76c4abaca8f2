"""The method registry: names, key=value options, what each method trains, the post-training hook, saving."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
import transformers
from tiny_models import tiny_bert, tiny_llama
from zoo.adapters import dsee, emoe
from zoo.adapters.methods import get_method, method_names

from zoo.config import parse_override, set_key
from zoo.errors import UserError

IDS = torch.randint(1, 99, (2, 7), generator=torch.Generator().manual_seed(1))


@torch.no_grad()
def out(model: torch.nn.Module) -> torch.Tensor:
    return model(input_ids=IDS).logits


def configured(name: str, *options: str):
    method = get_method(name)
    cfg = method.config_cls()
    for text in options:
        set_key(cfg, *parse_override(text))
    return method, cfg


def test_registry_names_and_unknown_method_error():
    assert method_names() == ["full", "lora", "dsee", "emoe"]
    with pytest.raises(UserError, match="did you mean 'dsee'"):
        get_method("dse")


def test_options_come_from_key_value_strings():
    _, cfg = configured(
        "dsee",
        "r=8",
        "alpha=16",
        "num_sparse=16",
        "target_modules=q_proj,v_proj",
        "sparse_init=magnitude",
        "prune_heads=3",
    )
    assert (cfg.r, cfg.alpha, cfg.num_sparse, cfg.prune_heads) == (8, 16.0, 16, 3)
    assert cfg.target_modules == ["q_proj", "v_proj"] and cfg.sparse_init == "magnitude"
    _, ecfg = configured("emoe", "num_experts=8", "top_k=2", "layers=[0, 1]", "eval_dense=true")
    assert (ecfg.num_experts, ecfg.top_k, ecfg.layers, ecfg.eval_dense) == (8, 2, [0, 1], True)
    with pytest.raises(UserError, match="sparse_init"):
        configured("dsee", "sparse_init=svd")
    with pytest.raises(UserError, match="unknown config key"):
        configured("lora", "rank=4")
    method, bad = configured("emoe", "num_experts=4", "top_k=9")  # set after construction: caught by apply
    with pytest.raises(UserError, match="top_k"):
        method.apply(tiny_bert(), bad)


def test_full_trains_everything():
    method, cfg = configured("full")
    model = tiny_bert().requires_grad_(False)
    summary = method.trainable_summary(method.apply(model, cfg))
    assert (
        summary["trainable_params"] == summary["total_params"] == sum(p.numel() for p in model.parameters())
    )


@pytest.mark.parametrize(
    "make, targets", [(tiny_bert, {"query", "value"}), (tiny_llama, {"q_proj", "v_proj"})]
)
def test_lora_adapts_the_family_attention_targets_and_trains_the_head(make, targets):
    method, cfg = configured("lora")
    base_out = out(make())
    model = method.apply(make(), cfg)
    assert set(model.peft_config["default"].target_modules) == targets
    torch.testing.assert_close(out(model), base_out)  # B = 0 at init
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    head = "classifier" if make is tiny_bert else "score"
    assert any(f"{head}.modules_to_save" in n for n in trainable)
    assert all("lora_" in n or "modules_to_save" in n for n in trainable)
    lora = 2 * 2 * (16 * 32 + 32 * 16)  # 2 layers x 2 targets x (A + B)
    head_params = 32 * 3 + (3 if make is tiny_bert else 0)
    assert method.trainable_summary(model)["trainable_params"] == lora + head_params


def test_dsee_after_training_prunes_then_retrains_once():
    method, cfg = configured("dsee", "r=4", "num_sparse=8", "sparse_init=random", "prune_ratio=0.2")
    model = method.apply(tiny_bert(), cfg)
    summary = method.trainable_summary(model)
    assert summary["dsee_params"] == 4 * (4 * 32 * 2 + 8) and summary["sparsity"] == 0.0
    calls = []

    def retrain(m):
        calls.append(dsee.sparsity(m)["backbone"])  # already pruned when retraining starts

    model = method.after_training(model, cfg, retrain)
    assert len(calls) == 1 and calls[0] == pytest.approx(0.2, abs=1e-3)
    summary = method.trainable_summary(model)
    assert summary["sparsity"] == pytest.approx(0.2, abs=1e-3)
    assert summary["inference_macs_removed"] > 0.1


def test_dsee_without_pruning_has_no_stage_two():
    method, cfg = configured("dsee", "r=4", "num_sparse=8", "sparse_init=random", "prune_ratio=0")
    model = method.apply(tiny_bert(), cfg)
    calls = []
    assert method.after_training(model, cfg, calls.append) is model
    assert calls == [] and method.trainable_summary(model)["sparsity"] == 0.0


def test_dsee_save_writes_adapter_and_a_loadable_merged_checkpoint(tmp_path):
    method, cfg = configured("dsee", "r=4", "num_sparse=8", "sparse_init=random")
    model = method.after_training(method.apply(tiny_bert(), cfg), cfg, lambda m: m)
    method.save(model, tmp_path)
    assert (tmp_path / dsee.WEIGHTS_NAME).is_file() and (tmp_path / "config.json").is_file()
    plain = transformers.BertForSequenceClassification.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(out(plain), out(dsee.merged_copy(model)))
    torch.testing.assert_close(out(dsee.load_adapter(tiny_bert(), tmp_path)), out(model))


def test_emoe_method_saves_a_plain_checkpoint_plus_the_expert_split(tmp_path):
    method, cfg = configured("emoe", "num_experts=8", "top_k=2")
    model = method.apply(tiny_bert(), cfg)
    assert method.trainable_summary(model)["emoe_layers"] == [0]
    method.save(model, tmp_path)
    reloaded = emoe.load(
        transformers.BertForSequenceClassification.from_pretrained(tmp_path).eval(), tmp_path
    )
    assert torch.equal(out(reloaded), out(model))
    model = method.after_training(
        model, emoe.EMoEConfig(num_experts=8, top_k=2, eval_dense=True), lambda m: m
    )
    assert method.trainable_summary(model)["dense_eval"] is True
    assert torch.equal(out(model), out(tiny_bert()))
