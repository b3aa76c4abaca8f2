"""Acceptance: a throwaway third-party distribution registers a task kind, a model family, an objective
and a tuning method (plus a domain using them) through entry points, and the CLI runs them end to end —
with no edit to any file of the zoo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from run_helpers import install_distribution

PLUGIN = '''
"""zoo_extra: a regression task kind, a 'minibert' family, a uniform-masking objective, BitFit."""
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from zoo.adapters.base import MethodBase
from zoo.benchmarks.kinds.base import model_inputs, pad_inputs
from zoo.domain import CorpusSpec, Domain, ModelSpec, ObjectiveSpec, TaskSpec
from zoo.errors import UserError
from zoo.families import ModelFamily
from zoo.domain import IGNORE
from zoo.objectives import HeadObjective, token_loss_sum
from zoo.packing import block_attention_mask, stack_blocks

HERE = Path(__file__).parent

# ---- model family: BERT classes under another name, with its own head table
FAMILY = ModelFamily(
    name="minibert",
    config_class="BertConfig",
    heads={"masked_lm": "BertForMaskedLM", "sequence_classification": "BertForSequenceClassification"},
    dropout_keys=("hidden_dropout_prob", "attention_probs_dropout_prob"),
)


# ---- objective: mask a uniform 25 % of the real tokens (no 80/10/10, no whole words)
class UniformMLM(HeadObjective):
    name = "uniform_mlm"
    head = "masked_lm"

    def __init__(self, mask_id, specials, rate):
        self.mask_id, self.specials, self.rate = mask_id, torch.tensor(sorted(specials)), rate

    def collate(self, blocks, seed):
        batch = stack_blocks(blocks)
        g = torch.Generator().manual_seed(seed)
        real = (batch["doc_ids"] >= 0) & ~torch.isin(batch["input_ids"], self.specials)
        chosen = real & (torch.rand(batch["input_ids"].shape, generator=g) < self.rate)
        return {
            "input_ids": batch["input_ids"].masked_fill(chosen, self.mask_id),
            "attention_mask": block_attention_mask(batch["doc_ids"], causal=False),
            "position_ids": batch["position_ids"],
            "labels": torch.where(chosen, batch["input_ids"], IGNORE),
        }

    def loss(self, model, batch):
        return token_loss_sum(model, batch, causal=False)


def uniform_mlm(options, tokenizer):
    unknown = set(options) - {"rate"}
    if unknown:
        raise UserError(f"unknown option(s) {sorted(unknown)} for objective 'uniform_mlm'")
    return UniformMLM(tokenizer.mask_token_id, tokenizer.all_special_ids, float(options.get("rate", 0.25)))


# ---- task kind: regression of one number per text (MSE loss, Pearson r and MSE)
@dataclass(frozen=True)
class Scored:
    text: str
    value: float


class Regression:
    name = "regression"
    head = "sequence_classification"
    metrics = ("pearson", "mse")
    metric_options = frozenset()

    def load(self, task, data_dir, split):
        path = Path(data_dir) / f"{split}.tsv"
        if not path.is_file():
            raise UserError(f"no file {path} for split {split} of task {task.name}")
        out = []
        for n, line in enumerate(path.read_text().splitlines(), 1):
            value, _, text = line.partition("\\t")
            try:
                out.append(Scored(text, float(value)))
            except ValueError:
                raise UserError(f"{path}:{n}: expected <number><TAB><text>") from None
        return out

    def label_space(self, examples):
        return ["value"]

    def head_config(self, labels):
        return {"num_labels": 1, "problem_type": "regression"}

    def encode(self, tokenizer, examples, labels, max_length):
        enc = tokenizer([e.text for e in examples], truncation=True, max_length=max_length)
        return [{"input_ids": ids, "labels": e.value} for ids, e in zip(enc["input_ids"], examples)]

    def collate(self, rows, pad_id):
        batch = pad_inputs([r["input_ids"] for r in rows], pad_id)
        batch["labels"] = torch.tensor([r["labels"] for r in rows], dtype=torch.float32)
        return batch

    def loss(self, model, batch):
        pred = model(**model_inputs(batch)).logits.float().squeeze(-1)
        return F.mse_loss(pred, batch["labels"], reduction="sum"), torch.tensor(len(pred))

    def predict(self, model, batch):
        return model(**model_inputs(batch)).logits.float().squeeze(-1).tolist()

    def score(self, task, examples, predictions, labels):
        gold = torch.tensor([e.value for e in examples])
        pred = torch.tensor(predictions)
        pearson = torch.corrcoef(torch.stack([pred, gold]))[0, 1]
        return {"pearson": float(pearson), "mse": float(((pred - gold) ** 2).mean())}


KIND = Regression()


# ---- tuning method: BitFit (only biases and the task head train)
@dataclass
class BitFitConfig:
    train_head: bool = True
    """Also train the task head (classifier)."""


class BitFit(MethodBase):
    name = "bitfit"
    summary = "only bias terms (and the task head) train"
    config_cls = BitFitConfig

    def apply(self, model, cfg, ctx):
        for name, p in model.named_parameters():
            p.requires_grad_(name.endswith(".bias") or (cfg.train_head and name.startswith("classifier")))
        return model


METHOD = BitFit()

# ---- a domain built from all four
DOMAIN = Domain(
    name="extra",
    summary="third-party plug-ins end to end",
    model=ModelSpec("minibert", {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                 "intermediate_size": 64, "max_position_embeddings": 64}),
    tokenizers=("biomedical-wordpiece",),
    objective=ObjectiveSpec("uniform_mlm", {"rate": 0.25}),
    corpus=CorpusSpec("text"),
    tasks=(TaskSpec(name="length", type="regression", format="tsv", metrics=("pearson", "mse")),),
    sample_dir=HERE / "sample",
    pretrain_defaults={"tokenizer.vocab_size": 300, "data.seq_len": 32, "train.batch_size": 4,
                       "train.max_steps": 30, "train.lr": 3e-3, "train.log_every": 5},
    finetune_defaults={"train.epochs": 20, "train.lr": 3e-2, "train.batch_size": 8, "task.max_length": 32},
)
'''

PYPROJECT = """
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"
[project]
name = "zoo-extra"
version = "0.0.1"
[tool.setuptools]
packages = ["zoo_extra"]
[tool.setuptools.package-data]
zoo_extra = ["sample/*", "sample/*/*"]
[project.entry-points."zoo.domains"]
extra = "zoo_extra:DOMAIN"
[project.entry-points."zoo.families"]
minibert = "zoo_extra:FAMILY"
[project.entry-points."zoo.objectives"]
uniform_mlm = "zoo_extra:uniform_mlm"
[project.entry-points."zoo.task_kinds"]
regression = "zoo_extra:KIND"
[project.entry-points."zoo.methods"]
bitfit = "zoo_extra:METHOD"
"""


def _write_distribution(src: Path) -> None:
    import random

    pkg = src / "zoo_extra"
    (pkg / "sample" / "length").mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    (src / "pyproject.toml").write_text(textwrap.dedent(PYPROJECT))
    rng = random.Random(0)
    words = "short texts and longer texts about nothing in particular keep the model busy".split()
    (pkg / "sample" / "corpus.txt").write_text(
        "\n".join(" ".join(rng.choices(words, k=rng.randint(3, 20))) for _ in range(400))
    )
    for split, n in (("train", 160), ("dev", 40), ("test", 40)):
        # The target is the text's length in words (scaled): learnable from the [PAD]-free token count.
        lines = []
        for _ in range(n):
            k = rng.randint(1, 12)
            lines.append(f"{k / 4:.2f}\t" + " ".join(rng.choices(words, k=k)))
        (pkg / "sample" / "length" / f"{split}.tsv").write_text("\n".join(lines) + "\n")


def test_third_party_kind_family_objective_and_method_run_end_to_end(tmp_path: Path) -> None:
    src, site = tmp_path / "src", tmp_path / "site"
    _write_distribution(src)
    install_distribution(src, site)
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "ZOO_HOME": str(tmp_path / ".zoo"),
    }

    def zoo(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "zoo", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    methods = zoo("methods", "--json")
    assert methods.returncode == 0, methods.stderr
    bitfit = next(m for m in json.loads(methods.stdout)["methods"] if m["name"] == "bitfit")
    assert bitfit["options"][0]["name"] == "train_head" and "task head" in bitfit["options"][0]["doc"]
    assert "bitfit" in zoo("finetune", "--help").stdout

    pre = zoo("pretrain", "extra", "--out", "pre", "--quiet")
    assert pre.returncode == 0, pre.stderr
    losses = [
        r["loss"]
        for r in map(json.loads, (tmp_path / "pre" / "metrics.jsonl").read_text().splitlines())
        if "loss" in r
    ]
    assert losses[-1] < losses[0]  # the third-party objective trains the third-party family

    ft = zoo(
        "finetune",
        "extra",
        "--task",
        "length",
        "--from",
        "pre",
        "--method",
        "bitfit",
        "--out",
        "ft",
        "--quiet",
    )
    assert ft.returncode == 0, ft.stderr
    info = json.loads((tmp_path / "ft" / "run.json").read_text())
    summary = info["summary"]["length"]
    assert 0 < summary["trainable_params"] < summary["total_params"] / 10  # biases + head only
    # Biases alone learn some of it: predictions correlate with the truth (an untrained head gives ≈ 0).
    scores = info["scores"]["length"]
    assert scores["pearson"]["mean"] > 0.3 and scores["mse"]["mean"] > 0, scores
    board = zoo("leaderboard", "--domain", "extra", "--format", "json")
    assert board.returncode == 0, board.stderr
    (row,) = json.loads(board.stdout)
    assert row["method"] == "bitfit" and row["scores"]["length"]["metric"] == "pearson"

    bad = zoo("finetune", "extra", "--task", "length", "--method", "bitfit", "method.train_hed=false")
    assert bad.returncode == 2 and "did you mean" in bad.stderr and "Traceback" not in bad.stderr
