"""Pretraining on the engine: falling loss, exact resume after a kill, 1 vs 2 processes, continual pretraining."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from run_helpers import (
    KILL_AFTER_FIRST_CHECKPOINT,
    accelerate_two_cpu_processes,
    metrics,
    subprocess_env,
    train_losses,
)

from zoo.config import PretrainConfig, build_config
from zoo.pretrain import pretrain
from zoo.registry import get_domain

TINY = [
    "model.hidden_size=32",
    "model.num_hidden_layers=1",
    "model.num_attention_heads=2",
    "model.intermediate_size=64",
    "model.dropout=0.0",
    "tokenizer.vocab_size=300",
    "data.seq_len=32",
    "train.batch_size=4",
    "train.lr=3e-3",
    "train.eval_every=4",
    "train.save_every=4",
    "train.log_every=1",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import random

    rng = random.Random(0)
    words = "patients treated with aspirin showed reduced risk of stroke and myocardial infarction in the trial".split()
    path = tmp_path_factory.mktemp("corpus") / "c.txt"
    path.write_text(
        "\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(5, 40))) for _ in range(300))
    )
    return path


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "zoo", *args],
        env=subprocess_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_loss_falls_and_run_is_complete(tmp_path: Path, corpus: Path) -> None:
    cfg = build_config(PretrainConfig, overrides=[*TINY, f"data.corpus={corpus}", "train.max_steps=24"])
    run = pretrain(get_domain("biomedical"), cfg, out=tmp_path / "run", quiet=True)
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "complete" and (run / "model" / "config.json").is_file()
    assert (run / "loss.png").stat().st_size > 1000
    losses = train_losses(run)
    first = sum(losses[s] for s in (1, 2, 3)) / 3
    last = sum(losses[s] for s in (22, 23, 24)) / 3
    assert last < first - 0.5, (first, last)
    evals = [r for r in metrics(run) if "eval_loss" in r]
    assert [r["step"] for r in evals] == [4, 8, 12, 16, 20, 24]
    assert evals[-1]["eval_loss"] < evals[0]["eval_loss"]
    # Only the last keep_checkpoints (2) checkpoints remain; none is half-written.
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-16", "step-20"]


@pytest.mark.parametrize(
    "data", [[], ["data.streaming=true", "data.shuffle_buffer=16"]], ids=["cached", "streamed"]
)
def test_resume_after_kill_reproduces_the_uninterrupted_loss_exactly(
    tmp_path: Path, corpus: Path, data: list[str]
) -> None:
    args = ["pretrain", "biomedical", "--corpus", str(corpus), "--quiet", *TINY, "train.max_steps=12", *data]
    full = _cli(*args, "--out", str(tmp_path / "full"))
    assert full.returncode == 0, full.stderr
    # Run the same job in a process that SIGKILLs itself right after its first checkpoint is on disk.
    killer = tmp_path / "killer.py"
    killer.write_text(KILL_AFTER_FIRST_CHECKPOINT)
    cut = tmp_path / "cut"
    killed = subprocess.run(
        [sys.executable, str(killer), *args, "--out", str(cut)],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert killed.returncode == -9
    assert [p.name for p in (cut / "checkpoints").iterdir()] == ["step-4"]
    assert not (cut / "model").exists() and json.loads((cut / "run.json").read_text())["status"] == "running"
    resumed = _cli("pretrain", "biomedical", "--resume", "auto", "--out", str(cut), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    a, b = train_losses(tmp_path / "full"), train_losses(cut)
    assert sorted(a) == sorted(b)
    assert all(a[s] == b[s] for s in a), {s: (a[s], b[s]) for s in a if a[s] != b[s]}
    assert (
        json.loads((cut / "run.json").read_text())["final_loss"]
        == json.loads((tmp_path / "full" / "run.json").read_text())["final_loss"]
    )


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path: Path, corpus: Path) -> None:
    common = [
        "pretrain",
        "biomedical",
        "--corpus",
        str(corpus),
        "--quiet",
        *TINY,
        "train.max_steps=6",
        "train.save_every=100",
    ]
    one = _cli(*common, "--out", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr
    two = subprocess.run(
        [*accelerate_two_cpu_processes(29641), "-m", "zoo", *common, "--out", str(tmp_path / "two")],
        env={**subprocess_env(), "ACCELERATE_USE_CPU": "true"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = train_losses(tmp_path / "one"), train_losses(tmp_path / "two")
    assert sorted(a) == sorted(b) == list(range(1, 7))
    for s in a:
        assert b[s] == pytest.approx(a[s], rel=1e-4, abs=1e-5), (s, a[s], b[s])


def test_continual_pretraining_starts_from_the_given_model(tmp_path: Path, corpus: Path) -> None:
    cfg = build_config(PretrainConfig, overrides=[*TINY, f"data.corpus={corpus}", "train.max_steps=16"])
    base = pretrain(get_domain("biomedical"), cfg, out=tmp_path / "base", quiet=True)
    cont_cfg = build_config(
        PretrainConfig,
        overrides=[
            *TINY,
            f"data.corpus={corpus}",
            "train.max_steps=20",
            f"data.replay_corpus={corpus}",
            "data.replay_ratio=0.5",
            f"from_model={base}",
        ],
    )
    cont = pretrain(get_domain("biomedical"), cont_cfg, out=tmp_path / "cont", quiet=True)
    info = json.loads((cont / "run.json").read_text())
    assert info["training_mode"] == "continual" and info["from_model"] == str(base / "model")
    # It starts where the base model ended, far below a fresh model's first loss.
    fresh_first = train_losses(base)[1]
    assert train_losses(cont)[1] < fresh_first - 0.5
    # LR re-warms: the first logged LR is below the peak, then reaches it.
    lrs = [r["lr"] for r in metrics(cont) if "lr" in r]
    assert lrs[0] == pytest.approx(3e-3 / 2) and max(lrs) == pytest.approx(3e-3) and lrs[-1] < 3e-3 / 5


def test_flex_attention_on_a_cpu_is_refused_before_training(tmp_path: Path, corpus: Path) -> None:
    """FlexAttention has no CPU backward: train.attention=flex there is a user error, named with its fix."""
    proc = _cli(
        "pretrain",
        "biomedical",
        *TINY,
        f"data.corpus={corpus}",
        "train.attention=flex",
        "--out",
        str(tmp_path / "r"),
    )
    assert proc.returncode == 2, proc.stderr
    assert "train.attention=flex" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "r").exists()  # refused before the run directory is made


def test_attention_choice_for_packed_blocks() -> None:
    """auto: flex only on CUDA for a model without attention dropout; flex asked where it cannot run
    is a user error naming the fix."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, LlamaConfig, LlamaForCausalLM

    from zoo.engine import attention_implementation
    from zoo.errors import UserError

    tiny = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
    llama, bert = (
        LlamaForCausalLM(LlamaConfig(vocab_size=40, **tiny)),
        BertForMaskedLM(BertConfig(vocab_size=40, **tiny)),
    )
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert attention_implementation("auto", llama, cuda) == "flex_attention"
    assert attention_implementation("auto", llama, cpu) is None
    assert attention_implementation("auto", bert, cuda) is None  # attention dropout 0.1
    assert attention_implementation("sdpa", bert, cuda) == "sdpa"
    with pytest.raises(UserError, match="attention dropout 0.1"):
        attention_implementation("flex", bert, cuda)
    bert.config.attention_probs_dropout_prob = 0.0
    assert attention_implementation("auto", bert, cuda) == "flex_attention"
