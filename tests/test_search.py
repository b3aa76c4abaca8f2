"""`zoo search`: the space, the front and its hypervolume, dev-only trials, bad input (exit 2), a killed
search resumed without losing or repeating a trial (SQLite), and two worker processes sharing one study
on a real PostgreSQL server."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from run_helpers import subprocess_env

from zoo.errors import UserError
from zoo.search import BLOCKS, Dims, module_sizes, parse_space, space_choices, trial_config
from zoo.search_report import dominating, hypervolume, pareto

TINY = ["task.max_length=24", "train.batch_size=8", "train.lr=1e-3", "task.max_eval_examples=20"]


@pytest.fixture(scope="module")
def ner_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small IOB task (one entity word among filler)."""
    rng = random.Random(0)
    filler = "patients with a history of were treated for and improved after therapy".split()
    d = tmp_path_factory.mktemp("ner")
    for split, n in (("train", 60), ("dev", 20), ("test", 20)):
        lines = []
        for _ in range(n):
            words = [(w, "O") for w in rng.sample(filler, 4)] + [("asthma", "B-Disease")]
            lines += [f"{w}\t{t}" for w, t in words] + [""]
        (d / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return d


def _zoo(*args: str, home: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "zoo", *args],
        env=subprocess_env(ZOO_HOME=str(home)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def _search(ner_dir: Path, out: Path, *extra: str) -> list[str]:
    return ["search", "biomedical", "--task", "ncbi_disease", "--data", str(ner_dir), "--trial-epochs", "1",
            "--out", str(out), "--quiet", "--startup", "2", *extra, *TINY]  # fmt: skip


def _finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


# ------------------------------------------------------------------------------------------------ units


def test_the_anchor_sizes_and_the_space_blocks():
    assert module_sizes(768) == [0, 1, 3, 6, 12, 24, 48, 96, 192, 384, 768]
    assert module_sizes(32) == [0, 1, 2, 4, 8, 16, 32]
    choices = space_choices(["serial", "layers", "lora"], Dims(hidden=32, layers=3))
    assert set(choices) == {"serial", "layer_0", "layer_1", "layer_2", "lora_r"}
    assert choices["lora_r"] == [0, 1, 2, 4, 8, 16, 32]
    params = {"serial": 8, "layer_0": 1, "layer_1": 0, "layer_2": 1, "lora_r": 4}
    assert trial_config(["serial", "layers", "lora"], params, Dims(32, 3)) == {
        "serial": 8,
        "layers": [0, 2],
        "lora_r": 4,
    }
    off = trial_config(
        ["serial", "parallel", "layers"],
        {"serial": 8, "parallel": 2, **{f"layer_{i}": 0 for i in range(3)}},
        Dims(32, 3),
    )
    assert off == {"serial": 0, "parallel": 0, "layers": None}  # every bit off: no adapter
    assert parse_space("lora, serial,lora") == ["lora", "serial"]
    with pytest.raises(
        UserError, match="unknown search-space block 'adpater'; choose from " + ", ".join(BLOCKS)
    ):
        parse_space("serial,adpater")


def test_front_and_hypervolume_of_known_points():
    points = [(0.5, 1.0), (0.4, 2.0), (0.7, 3.0), (0.6, 0.5), (0.9, 30.0)]
    assert pareto(points) == [3, 2, 4]  # by increasing percent; (0.5, 1%) and (0.4, 2%) are dominated
    # reference (score 0, 10%): the 30% point lies outside; 0.6 over [0.5, 3) and 0.7 over [3, 10)
    assert hypervolume(points, (0.0, 10.0)) == pytest.approx(0.6 * 2.5 + 0.7 * 7.0)
    assert hypervolume([(0.9, 30.0)], (0.0, 10.0)) == 0.0
    front = [
        {"trial": 3, "trainable_percent": 0.5, "dev": 0.6},
        {"trial": 2, "trainable_percent": 3.0, "dev": 0.7},
    ]
    assert dominating(front, 0.65, 3.0) == 2 and dominating(front, 0.6, 0.5) is None
    assert dominating(front, 0.55, 1.0) == 3 and dominating(front, 0.75, 5.0) is None


# ------------------------------------------------------------------------------------------------ CLI


def test_a_search_scores_dev_only_and_writes_front_plot_and_html(ner_dir: Path, tmp_path: Path):
    broken = tmp_path / "task"
    broken.mkdir()
    for split in ("train", "dev"):
        (broken / f"{split}.tsv").write_text((ner_dir / f"{split}.tsv").read_text())
    (broken / "test.tsv").write_text("not\ta\tvalid\tline\n")  # finetune would stop on it
    args = _search(broken, tmp_path / "s", "--trials", "3", "--space", "serial,parallel,lora", "--sampler", "tpe",
                   "--prune-runs", "--train-fraction", "0.5", "--compare", "serial=2 lora_r=1")  # fmt: skip
    code, out, err = _finish(_zoo(*args, home=tmp_path / "home"))
    assert code == 0, err
    front = json.loads((tmp_path / "s" / "front.json").read_text())
    assert front["front"] and len(front["hypervolume"]) == 3 and "Pareto front" in out
    for row in front["front"]:
        assert set(row["config"]) == {"serial", "parallel", "lora_r"} and 0 < row["trainable_percent"] < 100
    html = (tmp_path / "s" / "search.html").read_text()
    assert "data:image/png;base64," in html and "Hypervolume over trials" in html and "http" not in html
    assert (tmp_path / "s" / "search.png").read_bytes()[:4] == b"\x89PNG"
    assert not list((tmp_path / "s").glob("trial-*"))  # --prune-runs
    [picked] = json.loads((tmp_path / "s" / "compare.json").read_text())
    assert picked["config"] == {"serial": 2, "lora_r": 1} and 0 < picked["trainable_percent"] < 100
    assert ("hand-picked serial=2 lora_r=1: " in out) and (
        "dominated by front trial" in out or "not dominated" in out
    )


def _one_line(result: tuple[int, str, str], *needles: str) -> None:
    code, _, err = result
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err


def test_bad_input_is_one_line_and_exit_2(ner_dir: Path, tmp_path: Path):
    import socket

    home = tmp_path / "home"
    _one_line(
        _finish(_zoo(*_search(ner_dir, tmp_path / "a", "--space", "serial,adpater"), home=home)),
        "adpater",
        "choose from",
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://zoo:s3cret@127.0.0.1:{port}/zoo"
    result = _finish(_zoo(*_search(ner_dir, tmp_path / "b", "--storage", url), home=home))
    err = result[2]
    _one_line(result, "cannot reach the search storage", f"127.0.0.1:{port}", "--storage")
    assert "s3cret" not in err
    first = _search(ner_dir, tmp_path / "c", "--trials", "1", "--space", "serial", "--study", "s")
    code, _, err = _finish(_zoo(*first, home=home))
    assert code == 0, err
    again = _search(
        ner_dir, tmp_path / "c", "--trials", "1", "--space", "parallel", "--study", "s", "--resume"
    )
    _one_line(_finish(_zoo(*again, home=home)), "study 's'", "another search space", "--study")
    first[first.index("--out") + 1] = str(tmp_path / "d")
    _one_line(_finish(_zoo(*first, home=home)), "already exists", "--resume")


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.05)


def _trials(url: str, study: str) -> list:
    import optuna

    return optuna.load_study(study_name=study, storage=url).get_trials(deepcopy=False)


def test_a_search_killed_mid_trial_resumes_without_losing_or_repeating_a_trial(ner_dir: Path, tmp_path: Path):
    from optuna.trial import TrialState

    home, out = tmp_path / "home", tmp_path / "s"
    args = _search(
        ner_dir, out, "--trials", "3", "--study", "k", "--heartbeat", "1", "--space", "serial,lora"
    )
    proc = _zoo(*args, home=home, start_new_session=True)
    _wait_for(out / "trial-0001", proc)  # trial 1 has started training
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    url = f"sqlite:///{home / 'search.sqlite'}"
    before = _trials(url, "k")
    assert [t.state for t in before] == [TrialState.COMPLETE, TrialState.RUNNING]
    time.sleep(2.5)  # the dead trial's heartbeat is now older than the 2 s grace period
    code, stdout, err = _finish(_zoo(*args, "--resume", home=home))
    assert code == 0, err
    after = _trials(url, "k")
    states = [t.state for t in after]
    assert states.count(TrialState.COMPLETE) == 3 and states.count(TrialState.RUNNING) == 0
    assert after[1].state == TrialState.FAIL  # the killed trial, marked failed …
    retried = [t for t in after if t.system_attrs.get("failed_trial") == after[1].number]
    assert len(retried) == 1 and retried[0].params == after[1].params  # … and run once more, same config
    assert after[0].datetime_complete == before[0].datetime_complete  # the finished trial was not redone
    assert "trials run by this process: [2, 3]" in stdout


def test_two_workers_share_one_postgres_study(ner_dir: Path, tmp_path: Path, postgres_url: str):
    from optuna.trial import TrialState

    common = [
        "--trials",
        "8",
        "--study",
        "pg",
        "--storage",
        postgres_url,
        "--space",
        "parallel,lora",
        "--sampler",
        "random",
    ]
    # Longer trials (4 epochs) so that the second process, which starts once the study exists, finds work.
    common += ["--trial-epochs", "4"]
    first = _zoo(*_search(ner_dir, tmp_path / "s", *common), home=tmp_path / "h1")
    _wait_for(tmp_path / "s" / "trial-0000", first)  # the study exists
    second = _zoo(*_search(ner_dir, tmp_path / "s2", *common, "--resume"), home=tmp_path / "h2")
    runs = []
    for proc in (first, second):
        code, out, err = _finish(proc)
        assert code == 0, err
        [line] = [x for x in out.splitlines() if x.startswith("trials run by this process:")]
        runs.append(set(json.loads(line.split(":", 1)[1])))
    trials = _trials(postgres_url.replace("postgresql://", "postgresql+psycopg://"), "pg")
    done = {t.number for t in trials if t.state == TrialState.COMPLETE}
    assert runs[0] and runs[1] and not runs[0] & runs[1]  # both worked, no trial twice
    assert runs[0] | runs[1] == done == {t.number for t in trials} and len(done) >= 8
    assert len({t.user_attrs["worker"] for t in trials}) == 2


def test_retrain_pareto_records_test_scores_of_front_configs_as_autopeft(ner_dir: Path, tmp_path: Path):
    import sqlite3

    import yaml

    home = tmp_path / "home"
    args = _search(
        ner_dir,
        tmp_path / "s",
        "--trials",
        "2",
        "--space",
        "parallel,lora",
        "--retrain-pareto",
        "1",
        "--seeds",
        "2",
    )
    code, out, err = _finish(_zoo(*args, home=home))
    assert code == 0, err
    best = max(json.loads((tmp_path / "s" / "front.json").read_text())["front"], key=lambda r: r["dev"])
    with sqlite3.connect(home / "leaderboard.sqlite") as conn:
        [(method, path, seeds)] = conn.execute("SELECT method, results_path, seeds FROM runs").fetchall()
    assert method == "autopeft" and json.loads(seeds) == [0, 1]
    saved = yaml.safe_load((Path(path) / "config.yaml").read_text())["method"]
    assert saved["name"] == "autopeft" and {k: saved[k] for k in best["config"]} == best["config"]
    assert Path(path) == tmp_path / "s" / f"retrain-trial-{best['trial']:04d}"


def test_workers_share_one_sqlite_study(ner_dir: Path, tmp_path: Path):
    from optuna.trial import TrialState

    home = tmp_path / "home"
    args = _search(ner_dir, tmp_path / "s", "--trials", "6", "--workers", "2", "--study", "w", "--space", "parallel,lora",
                   "--sampler", "random", "--trial-epochs", "4")  # fmt: skip
    code, out, err = _finish(_zoo(*args, home=home))
    assert code == 0, err
    trials = _trials(f"sqlite:///{home / 'search.sqlite'}", "w")
    assert [t.state for t in trials].count(TrialState.COMPLETE) >= 6
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both processes took trials
    assert "trials run by this process: []" in out  # the invoking process only watched


def test_a_configuration_scores_the_same_whatever_ran_before_it(ner_dir: Path, tmp_path: Path, monkeypatch):
    import torch

    from zoo.config import FinetuneConfig, build_config
    from zoo.registry import get_domain
    from zoo.search import SearchOptions, TrialRunner

    domain = get_domain("biomedical")
    overrides = [*TINY, "tasks=ncbi_disease", f"data={ner_dir}", "train.epochs=1"]
    cfg = build_config(FinetuneConfig, domain.finetune_defaults, overrides=overrides)
    runner = TrialRunner(domain, cfg, SearchOptions(keep_runs=False), tmp_path)
    assert set(runner.data.rows) == {"train", "dev"}  # the test split is not even loaded
    config = {"serial": 4, "prefix": 2, "prefix_hidden": 8, "lora_r": 2}
    first = runner.adapted(config, tmp_path / "a")[1].state_dict()
    torch.rand(1000)  # another trial's worth of random numbers in between
    second = runner.adapted(config, tmp_path / "b")[1].state_dict()
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    score, percent, _ = runner(config, "c")
    assert 0 < percent < 100 and 0.0 <= score <= 1.0
