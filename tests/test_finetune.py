"""Fine-tuning on the engine: learns a learnable task, dev every epoch, select=dev, methods' post-training
step, runs that reproduce from their config, exact resume after a kill, 1 vs 2 processes."""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from run_helpers import KILL_AFTER_FIRST_CHECKPOINT, accelerate_two_cpu_processes, metrics, subprocess_env

from zoo import leaderboard
from zoo.config import FinetuneConfig, build_config
from zoo.finetune import finetune
from zoo.registry import get_domain

SMALL = ["train.epochs=12", "train.lr=1e-3", "train.batch_size=8", "task.max_length=32"]


def _board() -> sqlite3.Connection:
    """The test's leaderboard file, read with plain sqlite3 (rows by column name)."""
    conn = sqlite3.connect(leaderboard.default_db_path())
    conn.row_factory = sqlite3.Row
    return conn


def _cfg(domain, *overrides: str) -> FinetuneConfig:
    return build_config(FinetuneConfig, domain.finetune_defaults, overrides=list(overrides))


@pytest.fixture(scope="module")
def ner_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny IOB task whose entities are always the same few words: any working recipe learns it."""
    rng = random.Random(0)
    diseases = [["diabetes"], ["lung", "cancer"], ["asthma"], ["heart", "failure"]]
    filler = "patients with a history of were treated for and improved after therapy".split()
    d = tmp_path_factory.mktemp("ner")
    for split, n in (("train", 120), ("dev", 30), ("test", 40)):
        lines = []
        for _ in range(n):
            words = [(w, "O") for w in rng.sample(filler, 4)]
            ent = rng.choice(diseases)
            words += [(w, ("B-" if i == 0 else "I-") + "Disease") for i, w in enumerate(ent)]
            words += [(w, "O") for w in rng.sample(filler, 3)]
            lines += [f"{w}\t{t}" for w, t in words] + [""]
        (d / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return d


def test_token_classification_learns_scores_dev_every_epoch_andmetrics(ner_dir: Path, tmp_path: Path) -> None:
    domain = get_domain("biomedical")
    cfg = _cfg(domain, *SMALL, "tasks=ncbi_disease", f"data={ner_dir}", "seeds=0,1")
    out = finetune(domain, cfg, out=tmp_path / "run", quiet=True)
    t = out.tasks[0]
    assert [s.seed for s in t.scores] == [0, 1]
    f1, std = t.mean_std("f1")
    assert f1 > 0.9, t.scores
    assert 0 <= std < 0.1
    # 120 examples / batch 8 = 15 steps an epoch: dev is scored after each of the 12 epochs, per seed.
    dev = [r for r in metrics(out.run_dir) if "dev_f1" in r]
    assert [r["step"] for r in dev if r["seed"] == 0] == [15 * k for k in range(1, 13)]
    assert dev[-1]["epoch"] == 12.0 and dev[-1]["dev_f1"] > dev[0]["dev_f1"]
    info = json.loads((out.run_dir / "run.json").read_text())
    assert info["status"] == "complete" and info["world_size"] == 1 and info["precision"] == "fp32"
    assert (out.run_dir / "model" / "config.json").is_file() and (out.run_dir / "loss.png").is_file()
    with _board() as conn:
        run = conn.execute("SELECT * FROM runs WHERE run_id = ?", (out.run_id,)).fetchone()
        splits = {s for (s,) in conn.execute("SELECT split FROM scores WHERE run_id = ?", (out.run_id,))}
        curve = [
            (m, v)
            for (m, v) in conn.execute(
                "SELECT metric, value FROM scores WHERE run_id = ? AND split = 'dev' AND metric LIKE 'f1@eval%' "
                "ORDER BY rowid",
                (out.run_id,),
            )
        ]
    assert (run["precision"], run["world_size"], run["select_by"]) == ("fp32", 1, "last")
    assert run["hardware"].startswith("cpu") and splits == {"test", "dev"}
    # The dev curve, mean over the two seeds per evaluation, is on the leaderboard too.
    assert [m for m, _ in curve] == [f"f1@eval{k}" for k in range(1, 13)]
    first = [next(r["dev_f1"] for r in dev if r["seed"] == seed) for seed in (0, 1)]
    assert curve[0][1] == pytest.approx(sum(first) / 2)


def test_select_dev_scores_the_dev_best_epoch(ner_dir: Path, tmp_path: Path) -> None:
    domain = get_domain("biomedical")
    cfg = _cfg(
        domain,
        "train.epochs=4",
        "train.lr=3e-4",
        "train.batch_size=8",
        "task.max_length=32",
        "tasks=ncbi_disease",
        f"data={ner_dir}",
        "select=dev",
    )
    out = finetune(domain, cfg, out=tmp_path / "run", quiet=True, record=False)
    curve = [r["dev_f1"] for r in metrics(out.run_dir) if "dev_f1" in r]
    assert len(curve) == 4
    # The scored model is the dev-best epoch's: its dev F1 is the curve's maximum (not the last value).
    assert out.tasks[0].scores[0].dev["f1"] == pytest.approx(max(curve))
    assert "dev" in out.summary()


def test_lora_trains_a_fraction_of_the_parameters(ner_dir: Path, tmp_path: Path) -> None:
    domain = get_domain("biomedical")
    common = ["train.epochs=1", *SMALL[1:], "tasks=ncbi_disease", f"data={ner_dir}"]
    full = finetune(domain, _cfg(domain, *common), out=tmp_path / "full", quiet=True, record=False)
    lora = finetune(
        domain,
        _cfg(domain, *common, "method.name=lora", "method.r=4"),
        out=tmp_path / "lora",
        quiet=True,
        record=False,
    )
    assert lora.tasks[0].summary["trainable_params"] < full.tasks[0].summary["trainable_params"] / 5
    assert lora.tasks[0].summary["total_params"] >= full.tasks[0].summary["total_params"]
    saved = json.loads((lora.run_dir / "run.json").read_text())["method"]
    assert saved["name"] == "lora" and saved["r"] == 4 and "alpha" in saved  # resolved, defaults included


def test_sequence_classification_on_dna_with_a_decoder(tmp_path: Path) -> None:
    rng = random.Random(1)
    data = tmp_path / "dna"
    data.mkdir()
    for split, n in (("train", 200), ("dev", 40), ("test", 60)):
        rows = ["sequence,label"]
        for _ in range(n):
            label = rng.randint(0, 1)
            core = "TATAAAAGGC" if label else "CGCGCGATCG"
            seq = (
                "".join(rng.choice("ACGT") for _ in range(20))
                + core
                + "".join(rng.choice("ACGT") for _ in range(16))
            )
            rows.append(f"{seq},{label}")
        (data / f"{split}.csv").write_text("\n".join(rows) + "\n")
    domain = get_domain("genomic")
    cfg = _cfg(
        domain,
        "train.epochs=15",
        "train.lr=2e-3",
        "train.batch_size=16",
        "task.max_length=32",
        "tasks=gue_prom_core_all",
        f"data={data}",
    )
    metrics = finetune(domain, cfg, out=tmp_path / "run", quiet=True, record=False).tasks[0].scores[0].metrics
    assert set(metrics) == set(domain.task("gue_prom_core_all").metrics)
    assert metrics["accuracy"] > 0.85 and metrics["mcc"] > 0.7, metrics


def test_post_training_step_reports_both_scores(ner_dir: Path, tmp_path: Path) -> None:
    """DSEE: the stage-1 score ('@trained') and the score after pruning + retraining are both kept."""
    domain = get_domain("biomedical")
    cfg = _cfg(
        domain,
        "train.epochs=2",
        *SMALL[1:],
        "tasks=ncbi_disease",
        f"data={ner_dir}",
        "method.name=dsee",
        "method.r=4",
        "method.num_sparse=8",
        "method.sparse_init=magnitude",
        "method.prune_ratio=0.2",
    )
    out = finetune(domain, cfg, out=tmp_path / "run", quiet=True)
    t = out.tasks[0]
    assert t.reported_metrics == [
        "f1",
        "precision",
        "recall",
        "f1@trained",
        "precision@trained",
        "recall@trained",
    ]
    assert t.summary["sparsity"] == pytest.approx(0.2, abs=0.01)
    assert t.summary["kernel"] == "reference"  # CPU: the plain-torch path of the fused layer ran
    phases = {r["phase"] for r in metrics(out.run_dir) if "loss" in r}
    assert phases == {"train", "retrain"}
    with _board() as conn:
        recorded = {m for (m,) in conn.execute("SELECT metric FROM scores WHERE run_id = ?", (out.run_id,))}
        (sparsity,) = conn.execute("SELECT sparsity FROM runs WHERE run_id = ?", (out.run_id,)).fetchone()
    assert {"f1", "f1@trained"} <= recorded
    assert sparsity == pytest.approx(0.2, abs=0.01)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "zoo", *args],
        env={**subprocess_env(), "ZOO_HOME": str(cwd / ".zoo")},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _test_scores(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())["per_seed"]


def test_saved_config_alone_reruns_the_run(ner_dir: Path, tmp_path: Path) -> None:
    args = [
        "finetune",
        "biomedical",
        "--task",
        "ncbi_disease",
        "--data",
        str(ner_dir),
        "--quiet",
        "--no-record",
        "--method",
        "lora",
        "method.r=4",
        "train.epochs=2",
        *SMALL[1:],
    ]
    first = _cli(*args, "--out", "a", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = _cli(
        "finetune", "--config", "a/config.yaml", "--out", "b", "--quiet", "--no-record", cwd=tmp_path
    )
    assert again.returncode == 0, again.stderr
    a, b = _test_scores(tmp_path / "a"), _test_scores(tmp_path / "b")
    assert [s["metrics"] for s in a["ncbi_disease"]] == [s["metrics"] for s in b["ncbi_disease"]]
    assert (tmp_path / "a" / "config.yaml").read_text() == (tmp_path / "b" / "config.yaml").read_text()


def test_resume_after_kill_gives_the_identical_test_score(ner_dir: Path, tmp_path: Path) -> None:
    args = [
        "finetune",
        "biomedical",
        "--task",
        "ncbi_disease",
        "--data",
        str(ner_dir),
        "--quiet",
        "--no-record",
        "train.epochs=3",
        *SMALL[1:],
    ]
    full = _cli(*args, "--out", "full", cwd=tmp_path)
    assert full.returncode == 0, full.stderr
    (tmp_path / "killer.py").write_text(KILL_AFTER_FIRST_CHECKPOINT)
    killed = subprocess.run(
        [sys.executable, "killer.py", *args, "--out", "cut"],
        cwd=tmp_path,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert killed.returncode == -9, killed.stderr
    ckpts = tmp_path / "cut" / "ncbi_disease" / "seed-0" / "train" / "checkpoints"
    assert [p.name for p in ckpts.iterdir()] == ["step-15"]
    resumed = _cli(
        "finetune", "biomedical", "--resume", "auto", "--out", "cut", "--quiet", "--no-record", cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr
    a, b = _test_scores(tmp_path / "full"), _test_scores(tmp_path / "cut")
    assert a["ncbi_disease"][0]["metrics"] == b["ncbi_disease"][0]["metrics"]
    full_losses = {r["step"]: r["loss"] for r in metrics(tmp_path / "full") if "loss" in r}
    cut_losses = {r["step"]: r["loss"] for r in metrics(tmp_path / "cut") if "loss" in r}
    assert full_losses and all(
        cut_losses[s] == v for s, v in full_losses.items()
    )  # the resumed one also logs its first step


@pytest.fixture(scope="module")
def dropout_free_model(tmp_path_factory: pytest.TempPathFactory, ner_dir: Path) -> Path:
    """A tiny BERT without dropout, so 1 and 2 processes draw no different random numbers."""
    import transformers

    from zoo.finetune import load_backbone

    domain = get_domain("biomedical")
    tok = load_backbone(domain, _cfg(domain)).tokenizer
    cfg = transformers.BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=tok.pad_token_id,
    )
    path = tmp_path_factory.mktemp("tiny-bert")
    transformers.BertForMaskedLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_two_processes_match_one_process_with_the_same_global_batch(
    ner_dir: Path, dropout_free_model: Path, tmp_path: Path
) -> None:
    common = [
        "finetune",
        "biomedical",
        "--task",
        "ncbi_disease",
        "--data",
        str(ner_dir),
        "--from",
        str(dropout_free_model),
        "--quiet",
        "--no-record",
        "train.epochs=1",
        "train.lr=1e-3",
        "train.batch_size=8",
        "task.max_length=32",
        "train.log_every=1",
    ]
    one = _cli(*common, "--out", "one", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    two = subprocess.run(
        [*accelerate_two_cpu_processes(29642), "-m", "zoo", *common, "--out", "two"],
        env={**subprocess_env(), "ZOO_HOME": str(tmp_path / ".zoo"), "ACCELERATE_USE_CPU": "true"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    a = {r["step"]: r["loss"] for r in metrics(tmp_path / "one") if "loss" in r}
    b = {r["step"]: r["loss"] for r in metrics(tmp_path / "two") if "loss" in r}
    assert sorted(a) == sorted(b) == list(range(1, 16))
    for s in a:
        assert b[s] == pytest.approx(a[s], rel=1e-4, abs=1e-5), (s, a[s], b[s])
    assert json.loads((tmp_path / "two" / "run.json").read_text())["world_size"] == 2
    fa = _test_scores(tmp_path / "one")["ncbi_disease"][0]["metrics"]["f1"]
    fb = _test_scores(tmp_path / "two")["ncbi_disease"][0]["metrics"]["f1"]
    assert fb == pytest.approx(fa, abs=0.02)
