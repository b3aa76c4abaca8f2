"""Fine-tune-and-score: learns a learnable task, scores it right, records mean ± std per seed."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from zoo import leaderboard
from zoo.benchmarks.runner import bench
from zoo.registry import get_domain

SMALL = ["epochs=12", "lr=1e-3", "batch_size=8", "max_length=32"]


@pytest.fixture(scope="module")
def ner_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny IOB task whose entities are always the same few words: any working runner learns it."""
    rng = random.Random(0)
    diseases = [["diabetes"], ["lung", "cancer"], ["asthma"], ["heart", "failure"]]
    filler = "patients with a history of were treated for and improved after therapy".split()
    d = tmp_path_factory.mktemp("ner")
    for split, n in (("train", 120), ("test", 40)):
        lines = []
        for _ in range(n):
            words = [(w, "O") for w in rng.sample(filler, 4)]
            ent = rng.choice(diseases)
            words += [(w, ("B-" if i == 0 else "I-") + "Disease") for i, w in enumerate(ent)]
            words += [(w, "O") for w in rng.sample(filler, 3)]
            lines += [f"{w}\t{t}" for w, t in words] + [""]
        (d / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return d


def test_token_classification_learns_and_records(ner_dir: Path) -> None:
    domain = get_domain("biomedical")
    out = bench(domain, [domain.task("ncbi_disease")], model_ref=None, data=ner_dir, seeds=[0, 1], overrides=SMALL, quiet=True)
    t = out.tasks[0]
    assert [s.seed for s in t.scores] == [0, 1]
    f1, std = t.mean_std("f1")
    assert f1 > 0.9, t.scores
    assert 0 <= std < 0.1
    rows = leaderboard.query(domain="biomedical")
    assert len(rows) == 1
    assert out.run_id is not None


def test_lora_trains_a_fraction_of_the_parameters(ner_dir: Path) -> None:
    domain = get_domain("biomedical")
    full = bench(domain, [domain.task("ncbi_disease")], model_ref=None, data=ner_dir, seeds=[0], overrides=["epochs=1", *SMALL[2:]], quiet=True, record=False)
    lora = bench(domain, [domain.task("ncbi_disease")], model_ref=None, data=ner_dir, method="lora", seeds=[0], overrides=["epochs=1", *SMALL[2:]], quiet=True, record=False)
    assert lora.tasks[0].trainable_params < full.tasks[0].trainable_params / 5
    assert lora.tasks[0].total_params >= full.tasks[0].total_params


def test_sequence_classification_on_dna_with_a_decoder(tmp_path: Path) -> None:
    rng = random.Random(1)
    for split, n in (("train", 200), ("test", 60)):
        rows = ["sequence,label"]
        for _ in range(n):
            label = rng.randint(0, 1)
            core = "TATAAAAGGC" if label else "CGCGCGATCG"
            seq = "".join(rng.choice("ACGT") for _ in range(20)) + core + "".join(rng.choice("ACGT") for _ in range(16))
            rows.append(f"{seq},{label}")
        (tmp_path / f"{split}.csv").write_text("\n".join(rows) + "\n")
    domain = get_domain("genomic")
    out = bench(domain, [domain.task("gue_prom_core_all")], model_ref=None, data=tmp_path, seeds=[0],
                overrides=["epochs=15", "lr=2e-3", "batch_size=16", "max_length=32"], quiet=True, record=False)
    metrics = out.tasks[0].scores[0].metrics
    assert set(metrics) == {"mcc", "accuracy", "macro_f1"}
    assert metrics["accuracy"] > 0.85 and metrics["mcc"] > 0.7, metrics


def test_post_training_step_reports_both_scores(ner_dir: Path) -> None:
    """DSEE: the stage-1 score ('@trained') and the score after pruning + retraining are both kept."""
    domain = get_domain("biomedical")
    out = bench(domain, [domain.task("ncbi_disease")], model_ref=None, data=ner_dir, method="dsee",
                method_options=["r=4", "num_sparse=8", "sparse_init=magnitude", "prune_ratio=0.2"],
                seeds=[0], overrides=["epochs=2", *SMALL[1:]], quiet=True)
    t = out.tasks[0]
    assert t.reported_metrics == ["f1", "precision", "recall", "f1@trained", "precision@trained", "recall@trained"]
    assert t.sparsity == pytest.approx(0.2, abs=0.01)
    with leaderboard.connect() as conn:
        metrics = {m for (m,) in conn.execute("SELECT metric FROM scores WHERE run_id = ?", (out.run_id,))}
        (sparsity,) = conn.execute("SELECT sparsity FROM runs WHERE run_id = ?", (out.run_id,)).fetchone()
    assert {"f1", "f1@trained"} <= metrics
    assert sparsity == pytest.approx(0.2, abs=0.01)
