"""What the subprocess tests share: the environment, a real 2-process CPU launch, a process that dies
right after its first checkpoint, a run's metrics, and installing a throwaway plug-in distribution."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def subprocess_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **extra}


def accelerate_two_cpu_processes(port: int) -> list[str]:
    """Two real CPU processes (gloo DDP). accelerate's simple launcher (`--cpu --num_processes 2`) starts
    one process only; its distributed launcher with ACCELERATE_USE_CPU=true starts two on the CPU."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(port)]  # fmt: skip


# Run as a script with the zoo CLI's arguments: the process SIGKILLs itself right after its first
# checkpoint is on disk (the engine's save_checkpoint is looked up at call time, so the patch holds).
KILL_AFTER_FIRST_CHECKPOINT = """
import os, signal, sys
import zoo.engine as engine
original = engine.save_checkpoint
def save_then_die(*a, **k):
    original(*a, **k)
    os.kill(os.getpid(), signal.SIGKILL)
engine.save_checkpoint = save_then_die
from zoo.cli import main
main(sys.argv[1:])
"""


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def train_losses(run: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in metrics(run) if "loss" in r}


def install_distribution(src: Path, site: Path) -> None:
    """pip-install the distribution in `src` into `site` (put it on PYTHONPATH to use it)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(src),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )


TINY_PRETRAIN = [
    "model.hidden_size=32",
    "model.num_hidden_layers=1",
    "model.num_attention_heads=2",
    "model.intermediate_size=64",
    "data.max_documents=200",
    "data.seq_len=64",
    "train.batch_size=4",
    "train.max_steps=3",
    "train.eval_every=3",
]


def tiny_pretrain_run(out: Path) -> Path:
    """A finished biomedical pretraining run of a ~100k-parameter BERT on the embedded sample (seconds)."""
    from zoo.config import PretrainConfig, build_config
    from zoo.pretrain import pretrain
    from zoo.registry import get_domain

    domain = get_domain("biomedical")
    cfg = build_config(PretrainConfig, domain.pretrain_defaults, overrides=TINY_PRETRAIN)
    return pretrain(domain, cfg, out=out, quiet=True)
