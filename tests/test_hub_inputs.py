"""Hub models as inputs: `--from hf://OWNER/NAME[@REV]` or a plain repo id loads through the Hub cache.

No network: the model is laid into a Hub cache folder exactly as huggingface_hub stores a download
(models--OWNER--NAME/refs/main → snapshots/<commit>/…), and every run has HF_HUB_OFFLINE=1."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from run_helpers import subprocess_env, tiny_pretrain_run

from zoo import hub, leaderboard

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hub")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOO_HOME", str(root / "zoo_home"))
        run = tiny_pretrain_run(root / "base")
    cache = root / "cache"
    repo = cache / "models--my-lab--tiny-pubmedbert"
    shutil.copytree(run / "model", repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return cache


def _zoo(cache: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = subprocess_env(HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1", ZOO_HOME=str(cwd / "zoo_home"))
    return subprocess.run(
        [sys.executable, "-m", "zoo", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


FAST = ["train.max_steps=2", "task.max_length=32", "task.max_train_examples=16", "task.max_eval_examples=16"]


@pytest.mark.parametrize(
    "ref", ["hf://my-lab/tiny-pubmedbert", f"hf://my-lab/tiny-pubmedbert@{COMMIT}", "my-lab/tiny-pubmedbert"]
)
def test_finetune_from_a_cached_hub_model_offline(hub_cache: Path, tmp_path: Path, ref: str) -> None:
    proc = _zoo(hub_cache, tmp_path, "finetune", "biomedical", "--task", "ncbi_disease", "--from", ref,
                "--out", "run", "--quiet", *FAST)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "complete" and info["model"].endswith(f"snapshots/{COMMIT}")
    assert info["command"].startswith(f"zoo finetune biomedical --task ncbi_disease --from {ref} --out run")
    [row] = leaderboard.all_scores(tmp_path / "zoo_home" / "leaderboard.sqlite")[:1]
    assert row["model_id"] == ref and row["model_revision"] == COMMIT


def test_pretrain_continues_from_a_hub_model(hub_cache: Path, tmp_path: Path) -> None:
    proc = _zoo(hub_cache, tmp_path, "pretrain", "biomedical", "--from", "hf://my-lab/tiny-pubmedbert",
                "--out", "run", "--quiet", "train.max_steps=2", "data.max_documents=50", "data.seq_len=64",
                "train.batch_size=4", "train.eval_every=2")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "run" / "run.json").read_text())["training_mode"] == "continual"


def test_uncached_hub_model_offline_says_so(hub_cache: Path, tmp_path: Path) -> None:
    for ref, needles in (
        ("hf://my-lab/absent", ["'my-lab/absent' is not in the Hub cache", "HF_HUB_OFFLINE=1"]),
        ("hf://my-lab/tiny-pubmedbert@v2", ["at revision v2 is not in the Hub cache"]),
        ("my-lab/absent", ["no local run or model directory", "not in the Hub cache"]),
        ("hf://bad name/x", ["is not a valid Hub repo id"]),
    ):
        proc = _zoo(hub_cache, tmp_path, "bench", "biomedical", "--model", ref, "--quiet", *FAST)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        for needle in needles:
            assert needle in proc.stderr, proc.stderr
    assert not (tmp_path / "runs").exists()  # refused before any run directory was made


def test_refs_are_told_apart_and_revisions_read_from_the_cache_path(tmp_path: Path) -> None:
    (tmp_path / "runs" / "x").mkdir(parents=True)
    assert hub.is_hub_ref("hf://a/b") and hub.is_hub_ref("a/b@main") and not hub.is_hub_ref("model")
    assert not hub.is_hub_ref(str(tmp_path / "runs" / "x"))  # an existing local folder is never the Hub
    assert hub.split_ref("hf://a/b@v1") == ("a/b", "v1") and hub.split_ref("a/b") == ("a/b", None)
    assert hub.revision_of(tmp_path / "models--a--b" / "snapshots" / COMMIT) == COMMIT
    assert hub.revision_of(tmp_path / "runs" / "x") is None
