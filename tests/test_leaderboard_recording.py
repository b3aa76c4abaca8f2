"""Training time is never lost to the leaderboard: a fine-tune that finishes while the database is locked
keeps its result in the run directory, and `zoo leaderboard record RUN` writes it later."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from run_helpers import subprocess_env

from zoo import leaderboard
from zoo.benchmarks.recording import PENDING
from zoo.config import FinetuneConfig, build_config
from zoo.finetune import finetune
from zoo.registry import get_domain


def _tiny_finetune() -> tuple[Any, FinetuneConfig]:
    """The biomedical embedded default, two steps on 16 examples: seconds."""
    domain = get_domain("biomedical")
    overrides = ["tasks=ncbi_disease", "train.max_steps=2", "task.max_length=32", "task.max_train_examples=16",
                 "task.max_eval_examples=16"]  # fmt: skip
    return domain, build_config(FinetuneConfig, domain.finetune_defaults, overrides=overrides)


def test_result_kept_when_the_leaderboard_is_locked_and_recorded_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = leaderboard.default_db_path()
    leaderboard.record(
        leaderboard.BenchResult(
            "biomedical", "earlier", [leaderboard.TaskScore("t", "f1", 0.5, is_primary=True)]
        ),
        db,
    )
    monkeypatch.setenv("ZOO_LEADERBOARD_BUSY_TIMEOUT", "0.5")
    domain, cfg = _tiny_finetune()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process is writing, for longer than our busy timeout
    try:
        out = finetune(domain, cfg, out=tmp_path / "run", quiet=True)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    err = capsys.readouterr().err
    info = json.loads((out.run_dir / "run.json").read_text())
    assert info["status"] == "complete" and info["leaderboard_run_id"] is None and out.run_id is None
    assert (out.run_dir / PENDING).is_file() and f"zoo leaderboard record {out.run_dir}" in err
    assert [r.model_id for r in leaderboard.query(db=db)] == ["earlier"]

    record = [sys.executable, "-m", "zoo", "leaderboard", "record", str(out.run_dir)]
    env = subprocess_env(ZOO_HOME=str(db.parent))
    done = subprocess.run(record, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    run_id = json.loads((out.run_dir / "run.json").read_text())["leaderboard_run_id"]
    assert run_id and f"as {run_id}" in done.stdout and not (out.run_dir / PENDING).exists()
    [row] = [r for r in leaderboard.query(db=db) if r.run_id == run_id]
    assert row.scores["ncbi_disease"].mean == pytest.approx(info["scores"]["ncbi_disease"]["f1"]["mean"])
    again = subprocess.run(record, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "no result waiting to be recorded" in again.stderr
    assert "Traceback" not in again.stderr


def test_a_fine_tune_records_on_the_postgres_board_named_by_the_environment(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZOO_LEADERBOARD_URL", postgres_url)
    domain, cfg = _tiny_finetune()
    out = finetune(domain, cfg, out=tmp_path / "run", quiet=True)
    assert out.run_id is not None and not leaderboard.default_db_path().exists()  # not the SQLite default
    shown = subprocess.run(
        [sys.executable, "-m", "zoo", "leaderboard", "--format", "json"],
        env=subprocess_env(ZOO_LEADERBOARD_URL=postgres_url),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    [row] = json.loads(shown.stdout)
    assert row["run_id"] == out.run_id and row["scores"]["ncbi_disease"]["metric"] == "f1"
