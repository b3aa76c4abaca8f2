"""The legal domain's own parts: the longformer family (one document per window, global first token), the
rtd objective (ELECTRA: shared embeddings, labels, loss, what is saved), CaseHOLD's two layouts and the
legal tasks' bad inputs. The domain's generic contract is tests/test_domains.py."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from zoo.config import FinetuneConfig, PretrainConfig, build_config
from zoo.errors import UserError
from zoo.registry import get_domain

TINY = [
    "model.hidden_size=32",
    "model.num_hidden_layers=1",
    "model.num_attention_heads=2",
    "model.intermediate_size=64",
    "model.attention_window=16",
    "model.dropout=0",
    "data.max_documents=40",
    "data.seq_len=64",
    "tokenizer.vocab_size=400",
]


@pytest.fixture(scope="module")
def rtd_setup() -> tuple:
    from zoo.pretrain import build_domain_objective, build_model, obtain_tokenizer, prepare_data

    domain = get_domain("legal")
    cfg = build_config(PretrainConfig, domain.pretrain_defaults, overrides=TINY)
    tok = obtain_tokenizer(domain, cfg, None)
    objective = build_domain_objective(domain, cfg, tok)
    data = prepare_data(domain, cfg, tok)
    model = build_model(domain, cfg, objective, tok, None)
    return objective, model, data, tok


def test_longformer_blocks_hold_one_document_window_each(rtd_setup: tuple) -> None:
    from zoo.packing import window_documents

    _, _, data, _ = rtd_setup
    assert all(max(b["doc_ids"]) == 0 for b in data.train)  # one segment per block, never two documents
    blocks = list(window_documents([{"input_ids": list(range(1, 151))}, {"input_ids": [7, 8]}], 64, 0))
    assert [b["input_ids"][:2] for b in blocks] == [[1, 2], [65, 66], [129, 130], [7, 8]]
    assert blocks[2]["doc_ids"] == [0] * 22 + [-1] * 42 and blocks[1]["position_ids"][-1] == 63


def test_longformer_inputs_give_the_first_token_global_attention_and_refuse_packed_blocks(
    rtd_setup: tuple,
) -> None:
    from zoo.longformer import window_inputs

    objective, model, data, tok = rtd_setup
    batch = objective.collate(data.train[:2], seed=0)
    inputs = window_inputs(model.discriminator, batch, causal=False)
    assert inputs["global_attention_mask"][:, 0].tolist() == [1, 1]
    assert int(inputs["global_attention_mask"][:, 1:].sum()) == 0
    real = batch["doc_ids"] >= 0
    assert torch.equal(inputs["attention_mask"], real.long())
    assert torch.equal(inputs["position_ids"][real], batch["position_ids"][real] + tok.pad_token_id + 1)
    packed = {**batch, "doc_ids": batch["doc_ids"].clone()}
    packed["doc_ids"][0, 10:] = 1  # a second document in the block
    with pytest.raises(ValueError, match="more than one document"):
        window_inputs(model.discriminator, packed, causal=False)


def test_generator_and_discriminator_share_their_embedding_parameters(rtd_setup: tuple) -> None:
    _, model, _, _ = rtd_setup
    gen, disc = model.generator.base_model.embeddings, model.discriminator.base_model.embeddings
    for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        assert getattr(gen, name).weight is getattr(disc, name).weight
    assert model.generator.generator_lm_head.weight is disc.word_embeddings.weight
    shared = {id(p) for p in model.discriminator.parameters()}
    assert sum(id(p) in shared for p in model.generator.parameters()) == 3  # tables counted once
    assert model.generator.config.hidden_size < model.discriminator.config.hidden_size


def test_discriminator_labels_are_input_differs_from_the_original(rtd_setup: tuple) -> None:
    from zoo.packing import stack_blocks

    objective, model, data, _ = rtd_setup
    blocks = data.train[:4]
    batch = objective.collate(blocks, seed=3)
    original = stack_blocks(blocks)["input_ids"]
    parts = objective.parts(model, batch)
    real = batch["doc_ids"] >= 0
    assert torch.equal(parts["replaced"], (parts["discriminator_input"] != original) & real)
    chosen = batch["labels"] != -100
    assert torch.equal(parts["discriminator_input"][~chosen], original[~chosen])  # only chosen tokens change
    assert int(parts["replaced"].sum()) > 0  # an untrained generator replaces many of them
    assert int(parts["discriminator_count"]) == int(real.sum())


def test_rtd_loss_is_generator_mlm_plus_fifty_times_discriminator_bce(rtd_setup: tuple) -> None:
    objective, model, data, _ = rtd_setup
    batch = objective.collate(data.train[:4], seed=5)
    model.train()  # dropout is 0: train mode is deterministic
    with torch.no_grad():
        total, count = objective.loss(model, batch)
        p = objective.parts(model, batch)
    gen_mean = p["generator_sum"] / p["generator_count"]
    disc_mean = p["discriminator_sum"] / p["discriminator_count"]
    assert objective.discriminator_weight == 50.0
    assert float(total / count) == pytest.approx(float(gen_mean + 50 * disc_mean), rel=1e-5)
    model.eval()
    with torch.no_grad():
        held_out, n = objective.loss(model, batch)
    assert float(held_out / n) == pytest.approx(float(disc_mean), rel=1e-5)


def test_rtd_run_saves_only_the_discriminator_loadable_with_from_pretrained(tmp_path: Path) -> None:
    from safetensors import safe_open
    from transformers import AutoModelForTokenClassification, LongformerForTokenClassification

    from zoo.pretrain import pretrain

    domain = get_domain("legal")
    cfg = build_config(
        PretrainConfig,
        domain.pretrain_defaults,
        overrides=[*TINY, "train.batch_size=4", "train.max_steps=2", "train.eval_every=2"],
    )
    run = pretrain(domain, cfg, out=tmp_path / "run", quiet=True)
    with safe_open(str(run / "model" / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert keys and not any("generator" in k for k in keys)
    model = AutoModelForTokenClassification.from_pretrained(run / "model")
    assert isinstance(model, LongformerForTokenClassification) and model.config.num_labels == 1
    assert model.config.attention_window == [16]
    assert (
        sum(p.numel() for p in model.parameters()) < json.loads((run / "run.json").read_text())["parameters"]
    )


def test_mlm_stays_available_for_the_legal_domain_as_the_control(tmp_path: Path) -> None:
    from transformers import LongformerForMaskedLM

    from zoo.pretrain import pretrain

    domain = get_domain("legal")
    overrides = [
        *TINY,
        "train.batch_size=4",
        "train.max_steps=2",
        "objective.name=mlm",
        "objective.mask_prob=0.2",
    ]
    cfg = build_config(PretrainConfig, domain.pretrain_defaults, overrides=overrides)
    run = pretrain(domain, cfg, out=tmp_path / "mlm", quiet=True)
    assert isinstance(LongformerForMaskedLM.from_pretrained(run / "model"), LongformerForMaskedLM)
    bad = build_config(
        PretrainConfig,
        domain.pretrain_defaults,
        overrides=["objective.name=mlm", "objective.generator_size=0.5"],
    )
    with pytest.raises(UserError, match="generator_size"):  # rtd's options do not follow to another objective
        pretrain(domain, bad, out=tmp_path / "bad", quiet=True)
    assert not (tmp_path / "bad").exists()


# ------------------------------------------------------------------------------------------ CaseHOLD


def _casehold_rows(n: int = 24) -> list[dict]:
    return [
        {
            "context": f"The court considered question {i}. See Doe v. Roe, {i} P.3d 1 (<HOLDING>).",
            "endings": [f"holding that answer {i}-{j} applies" for j in range(5)],
            "label": i % 5,
        }
        for i in range(n)
    ]


def _write_casehold_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["", "citing_prompt", *(f"holding_{j}" for j in range(5)), "label"])
        for i, r in enumerate(rows):
            out.writerow([i, r["context"], *r["endings"], r["label"]])


def _write_casehold_json(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_casehold_reads_the_public_csv_and_the_lexglue_json_layouts_alike(tmp_path: Path) -> None:
    from zoo.casehold import load_casehold

    task = get_domain("legal").task("casehold")
    rows = _casehold_rows()
    _write_casehold_csv(tmp_path / "csv" / "train.csv", rows)
    _write_casehold_json(tmp_path / "json" / "train.jsonl", rows)
    from_csv = load_casehold(task, tmp_path / "csv", "train")
    from_json = load_casehold(task, tmp_path / "json", "train")
    assert from_csv == from_json and len(from_csv) == 24
    assert from_csv[7].label == "2" and from_csv[7].choices[4] == "holding that answer 7-4 applies"


@pytest.mark.parametrize(
    ("layout", "damage", "message"),
    [
        ("csv", lambda r: r[3]["endings"].__setitem__(2, ""), "train.csv:5: candidate holding 2 is empty"),
        (
            "csv",
            lambda r: r[3].__setitem__("label", 5),
            "train.csv:5: label '5' is not the index of a choice",
        ),
        ("json", lambda r: r[0]["endings"].pop(), "train.jsonl:1: 4 choices where the task has 5"),
        ("json", lambda r: r[2].__setitem__("label", -1), "train.jsonl:3: label -1 is not the index"),
    ],
)
def test_casehold_bad_rows_name_file_and_line(tmp_path: Path, layout: str, damage, message: str) -> None:
    from zoo.casehold import load_casehold

    rows = _casehold_rows()
    damage(rows)
    write = _write_casehold_csv if layout == "csv" else _write_casehold_json
    write(tmp_path / f"train.{'csv' if layout == 'csv' else 'jsonl'}", rows)
    with pytest.raises(UserError) as err:
        load_casehold(get_domain("legal").task("casehold"), tmp_path, "train")
    assert message in str(err.value)


def test_casehold_fine_tunes_on_a_generated_lexglue_json_sample(tmp_path: Path) -> None:
    from zoo.finetune import finetune

    for split in ("train", "dev", "test"):
        _write_casehold_json(tmp_path / "data" / f"{split}.jsonl", _casehold_rows())
    cfg = build_config(
        FinetuneConfig,
        get_domain("legal").finetune_defaults,
        overrides=[
            "tasks=[casehold]",
            f"data={tmp_path / 'data'}",
            "train.max_steps=2",
            "train.batch_size=4",
        ],
    )
    out = finetune(get_domain("legal"), cfg, out=tmp_path / "ft", quiet=True)
    score = out.tasks[0].scores[0].metrics
    assert 0.0 <= score["accuracy"] <= 1.0 and set(score) >= {"accuracy", "macro_f1"}


# --------------------------------------------------------------------------------- CLI: bad task data


def _cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    from zoo.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(args)
    return int(exit_.value.code), capsys.readouterr().err


def test_an_unknown_unfair_tos_label_fails_naming_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    sample = get_domain("legal").sample_dir / "unfair_tos"
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "dev", "test"):
        lines = (sample / f"{split}.jsonl").read_text().splitlines()
        if split == "dev":
            row = json.loads(lines[4])
            lines[4] = json.dumps({**row, "labels": ["Limitation of liabilty"]})
        (data / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "ft"
    code, err = _cli(
        ["finetune", "legal", "--task", "unfair_tos", "--data", str(data), "--out", str(out)], capsys
    )
    assert code == 2 and not out.exists()
    assert f"{data / 'dev.jsonl'}:5: unknown label 'Limitation of liabilty'" in err
    assert "did you mean 'Limitation of liability'" in err and "Traceback" not in err


def test_a_casehold_row_without_a_candidate_fails_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    rows = _casehold_rows()
    for split in ("train", "dev", "test"):
        _write_casehold_csv(tmp_path / "data" / f"{split}.csv", rows)
    text = (tmp_path / "data" / "test.csv").read_text().splitlines()
    text[2] = text[2].replace("holding that answer 1-3 applies", "")
    (tmp_path / "data" / "test.csv").write_text("\n".join(text) + "\n")
    out = tmp_path / "ft"
    code, err = _cli(
        ["finetune", "legal", "--task", "casehold", "--data", str(tmp_path / "data"), "--out", str(out)],
        capsys,
    )
    assert code == 2 and not out.exists()
    assert f"{tmp_path / 'data' / 'test.csv'}:3: candidate holding 3 is empty" in err


@pytest.mark.parametrize("method", ["full", "lora", "dsee", "emoe"])
def test_methods_fine_tune_a_longformer(method: str, tmp_path: Path) -> None:
    from zoo.finetune import finetune

    domain = get_domain("legal")
    cfg = build_config(
        FinetuneConfig,
        domain.finetune_defaults,
        overrides=["tasks=[unfair_tos]", "train.max_steps=2", "train.batch_size=4", f"method.name={method}"],
    )
    out = finetune(domain, cfg, out=tmp_path / method, quiet=True)
    assert set(out.tasks[0].scores[0].metrics) >= {"macro_f1", "micro_f1"}


def test_dsee_head_pruning_refuses_longformer_attention(tmp_path: Path) -> None:
    from zoo.finetune import finetune

    domain = get_domain("legal")
    overrides = ["tasks=[unfair_tos]", "train.max_steps=1", "train.batch_size=4", "method.name=dsee"]
    cfg = build_config(
        FinetuneConfig, domain.finetune_defaults, overrides=[*overrides, "method.prune_heads=1"]
    )
    with pytest.raises(UserError, match="head pruning does not support Longformer"):
        finetune(domain, cfg, out=tmp_path / "dsee", quiet=True)


def test_longformer_takes_4096_positions_and_names_the_fix_beyond() -> None:
    from types import SimpleNamespace

    from zoo.longformer import window_inputs

    model = SimpleNamespace(config=SimpleNamespace(pad_token_id=0, max_position_embeddings=4098))
    for length, fits in ((4096, True), (4098, False)):
        batch = {
            "doc_ids": torch.zeros(1, length, dtype=torch.long),
            "position_ids": torch.arange(length)[None],
        }
        if fits:
            assert int(window_inputs(model, batch, causal=False)["position_ids"].max()) == 4096
        else:
            with pytest.raises(UserError, match="set model.max_position_embeddings"):
                window_inputs(model, batch, causal=False)
