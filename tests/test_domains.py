"""The contract every registered domain passes (built-in and, once installed, third-party): one table,
no per-domain branches. A new domain joins every test by its registration."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest

from zoo import leaderboard
from zoo.config import FinetuneConfig, PretrainConfig, build_config
from zoo.registry import domain_names, get_domain

DOMAINS = domain_names()
TINY_MODEL = [
    "model.hidden_size=32",
    "model.num_hidden_layers=1",
    "model.num_attention_heads=2",
    "model.num_key_value_heads=2",
    "model.intermediate_size=64",
]


def test_the_builtins_are_registered() -> None:
    assert {"biomedical", "genomic", "stackoverflow", "url", "legal"} <= set(DOMAINS)


@pytest.mark.parametrize("name", DOMAINS)
def test_sample_corpus_reads_and_every_recipe_trains(name: str) -> None:
    from zoo.corpus import read_corpus
    from zoo.tokenizer import load_recipe, train_tokenizer

    domain = get_domain(name)
    docs = list(itertools.islice(read_corpus(domain.corpus, [domain.sample_corpus]), 300))
    assert len(docs) >= 50 and all(doc.strip() for doc in docs)
    for recipe in domain.tokenizers:
        tok = train_tokenizer(
            load_recipe(recipe), iter(docs), vocab_size=domain.pretrain_defaults.get("tokenizer.vocab_size")
        )
        assert len(tok) > len(tok.all_special_ids) + 10
        assert tok.pad_token_id is not None


@pytest.mark.parametrize("name", DOMAINS)
def test_objective_collates_a_packed_batch_with_a_finite_loss(name: str) -> None:

    from zoo.pretrain import build_domain_objective, build_model, obtain_tokenizer, prepare_data

    domain = get_domain(name)
    cfg = build_config(
        PretrainConfig,
        domain.pretrain_defaults,
        overrides=[*TINY_MODEL, "data.max_documents=100", "data.seq_len=64"],
    )
    tok = obtain_tokenizer(domain, cfg, None)
    objective = build_domain_objective(domain, cfg, tok)
    data = prepare_data(domain, cfg, tok)
    batch = objective.collate(data.train[:4], seed=0)
    assert batch["input_ids"].shape == (4, 64)
    total, count = objective.loss(build_model(domain, cfg, objective, tok, None), batch)
    assert count > 0 and math.isfinite(float(total)) and float(total) > 0


@pytest.mark.parametrize("name", DOMAINS)
def test_every_task_loads_train_dev_test_through_its_kind(name: str) -> None:
    from zoo.benchmarks.kinds import get_kind

    domain = get_domain(name)
    for task in domain.tasks:
        kind = get_kind(task.type)
        splits = {s: kind.load(task, domain.sample_dir / task.name, s) for s in ("train", "dev", "test")}
        assert all(len(v) >= 20 for v in splits.values()), {s: len(v) for s, v in splits.items()}
        assert len(kind.label_space(splits["train"])) >= 2


@pytest.mark.parametrize("name", DOMAINS)
def test_a_two_step_finetune_on_every_task_records_a_leaderboard_row(name: str, tmp_path: Path) -> None:
    from zoo.finetune import finetune

    domain = get_domain(name)
    cfg = build_config(
        FinetuneConfig,
        domain.finetune_defaults,
        overrides=[
            "train.max_steps=2",
            "train.batch_size=4",
            "task.max_length=32",
            "task.max_eval_examples=16",
        ],
    )
    out = finetune(domain, cfg, verb="bench", out=tmp_path / "bench", quiet=True)
    assert [t.task.name for t in out.tasks] == [t.name for t in domain.tasks]
    rows = [r for r in leaderboard.query(domain=name) if r.run_id == out.run_id]
    assert len(rows) == 1 and set(rows[0].scores) == {t.name for t in domain.tasks}


@pytest.mark.parametrize("name", DOMAINS)
def test_embedded_default_pretrains_and_reloads(name: str, tmp_path: Path) -> None:
    from transformers import AutoModel

    from zoo.pretrain import pretrain

    domain = get_domain(name)
    cfg = build_config(
        PretrainConfig,
        domain.pretrain_defaults,
        overrides=[
            *TINY_MODEL,
            "data.max_documents=200",
            "data.seq_len=64",
            "train.batch_size=4",
            "train.max_steps=3",
            "train.eval_every=3",
        ],
    )
    run = pretrain(domain, cfg, out=tmp_path / "run", quiet=True)
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "complete" and info["final_eval_loss"] is not None
    model = AutoModel.from_pretrained(run / "model")
    assert model.config.hidden_size == 32
    assert model.config.model_type == domain.model.family
