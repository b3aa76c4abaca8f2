"""The contract every registered domain passes (built-in and, once installed, third-party)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zoo.benchmarks.tasks import label_list, load_split
from zoo.config import PretrainConfig, build_config
from zoo.registry import domain_names, get_domain
from zoo.tokenizer import load_recipe

DOMAINS = domain_names()


def test_the_builtins_are_registered() -> None:
    assert {"biomedical", "genomic"} <= set(DOMAINS)


@pytest.mark.parametrize("name", DOMAINS)
def test_embedded_tasks_load_every_split(name: str) -> None:
    domain = get_domain(name)
    for task in domain.tasks:
        splits = {s: load_split(task, domain.sample_dir / task.name, s) for s in task.splits}
        assert all(len(v) >= 20 for v in splits.values()), {s: len(v) for s, v in splits.items()}
        assert len(label_list(splits["train"])) >= 2


@pytest.mark.parametrize("name", DOMAINS)
def test_tokenizer_recipes_load(name: str) -> None:
    for recipe in get_domain(name).tokenizers:
        assert load_recipe(recipe).name == recipe


@pytest.mark.parametrize("name", DOMAINS)
def test_embedded_default_pretrains_and_reloads(name: str, tmp_path: Path) -> None:
    from transformers import AutoModel

    from zoo.trainer import pretrain

    domain = get_domain(name)
    tiny = ["model.hidden_size=32", "model.num_hidden_layers=1", "model.num_attention_heads=2",
            "model.intermediate_size=64", "data.max_documents=200", "data.seq_len=64",
            "train.batch_size=4", "train.max_steps=3", "train.eval_every=3"]
    if name == "genomic":
        tiny.append("model.num_key_value_heads=2")
    cfg = build_config(PretrainConfig, domain.pretrain_defaults, overrides=tiny)
    run = pretrain(domain, cfg, out=tmp_path / "run", quiet=True)
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "complete" and info["final_eval_loss"] is not None
    model = AutoModel.from_pretrained(run / "model")
    assert model.config.hidden_size == 32
    assert model.config.model_type == domain.model.family
