"""`zoo publish` and `zoo leaderboard --push`: the repository folder of real runs (a tiny pretraining run and
full / LoRA / DSEE fine-tunes of it), loaded back with plain transformers / peft; the card's model-index read
back with huggingface_hub; uploads through an injected HfApi double (the one double: there is no network);
the token never shown; user errors exit 2 with nothing uploaded."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import torch
from run_helpers import tiny_pretrain_run

from zoo import leaderboard
from zoo.cli import main
from zoo.config import FinetuneConfig, build_config
from zoo.errors import UserError
from zoo.publish import publish, push_leaderboard
from zoo.registry import get_domain

TOKEN = "hf_zooTESTtokenDoNotLeak0123456789"
METHODS = {
    "full": [],
    "lora": ["method.name=lora", "method.r=4"],
    "dsee": [
        "method.name=dsee",
        "method.r=4",
        "method.num_sparse=8",
        "method.sparse_init=magnitude",
        "method.prune_ratio=0.2",
    ],
    "emoe": ["method.name=emoe", "method.num_experts=8", "method.top_k=4", "method.kmeans_max_iter=50"],
}


class RecordingHfApi:
    """Stands in for huggingface_hub.HfApi: records each call; `fail` makes upload_folder raise it."""

    calls: list[tuple[str, dict[str, Any]]] = []
    fail: Exception | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def create_repo(self, repo_id: str, **kw: Any) -> str:
        self.calls.append(("create_repo", {"repo_id": repo_id, **kw}))
        return f"https://hub.example/{repo_id}"

    def create_branch(self, repo_id: str, **kw: Any) -> None:
        self.calls.append(("create_branch", {"repo_id": repo_id, **kw}))

    def upload_folder(self, **kw: Any) -> Any:
        files = sorted(str(p.relative_to(kw["folder_path"])) for p in Path(kw["folder_path"]).rglob("*"))
        self.calls.append(("upload_folder", {**kw, "files": files}))
        if self.fail is not None:
            raise self.fail
        return type("CommitInfo", (), {"oid": f"commit{len(self.calls)}"})()


@pytest.fixture
def hf_api(monkeypatch: pytest.MonkeyPatch) -> type[RecordingHfApi]:
    import huggingface_hub

    monkeypatch.setattr(RecordingHfApi, "calls", [])
    monkeypatch.setattr(RecordingHfApi, "fail", None)
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingHfApi)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    return RecordingHfApi


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny biomedical pretraining run and three fine-tunes of it, recorded on one leaderboard; "models"
    holds each fine-tune's model as it was in memory when the run saved it."""
    import copy

    import zoo.finetune
    from zoo.finetune import finetune

    root = tmp_path_factory.mktemp("publish")
    domain = get_domain("biomedical")
    saved_models: dict[Path, torch.nn.Module] = {}
    original_save = zoo.finetune.save_model_dir

    def keep_a_copy(method: Any, model: Any, tokenizer: Any, target: Path) -> None:
        saved_models[target.parent] = copy.deepcopy(model).cpu().eval()  # the run's model, as trained
        original_save(method, model, tokenizer, target)

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOO_HOME", str(root / "zoo_home"))
        mp.setattr(zoo.finetune, "save_model_dir", keep_a_copy)
        base = tiny_pretrain_run(root / "base")
        data = _ner_dir(root / "ner")
        out = {"base": base, "db": root / "zoo_home" / "leaderboard.sqlite"}
        for name, options in METHODS.items():
            cfg = build_config(
                FinetuneConfig,
                domain.finetune_defaults,
                overrides=[f"model={base}", "tasks=ncbi_disease", f"data={data}", "train.epochs=6",
                           "train.lr=3e-3", "train.batch_size=8", "task.max_length=32", "seeds=0,1", *options],
            )  # fmt: skip
            out[name] = finetune(domain, cfg, out=root / name, quiet=True).run_dir
    out["models"] = saved_models
    return out


def _ner_dir(d: Path) -> Path:
    rng = random.Random(0)
    words = "patients with a history of were treated for and improved after therapy".split()
    d.mkdir(parents=True)
    for split, n in (("train", 40), ("dev", 10), ("test", 12)):
        lines = []
        for _ in range(n):
            lines += [f"{w}\tO" for w in rng.sample(words, 3)] + ["lung\tB-Disease", "cancer\tI-Disease", ""]
        (d / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return d


def _zoo_reload(run: Path) -> torch.nn.Module:
    """The run's model as the zoo itself reloads it: the task model rebuilt from its saved config, then the
    method's own `load` of `run/model`."""
    from zoo.finetune import build_task_model, load_backbone, load_task, resolve_method

    domain = get_domain("biomedical")
    cfg = build_config(FinetuneConfig, config_file=run / "config.yaml")
    backbone = load_backbone(domain, cfg)
    data = load_task(domain, domain.task("ncbi_disease"), cfg, backbone.tokenizer)
    method, _ = resolve_method(cfg)
    return method.load(build_task_model(domain, data, backbone, seed=0), run / "model").eval()


def _logits(model: torch.nn.Module, tokenizer: Any) -> torch.Tensor:
    batch = tokenizer(["patients with lung cancer were treated", "a history of therapy"], padding=True, return_tensors="pt")  # fmt: skip
    with torch.no_grad():
        return model(**batch).logits


@pytest.mark.parametrize("method", list(METHODS))
def test_dry_run_folder_loads_with_plain_transformers_and_gives_the_runs_logits(
    runs: dict[str, Path], method: str, tmp_path: Path, hf_api: type[RecordingHfApi]
) -> None:
    from huggingface_hub import ModelCard
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    pub = publish(runs[method], "my-lab/tiny-ncbi", license="apache-2.0", dry_run=True, out=tmp_path / "repo", db=runs["db"])  # fmt: skip
    assert hf_api.calls == []  # a dry run uploads nothing
    files = set(pub.files)
    assert {"README.md", "zoo_config.yaml", "metrics.jsonl", "loss.png", "tokenizer.json"} <= files
    card = ModelCard.load(pub.folder / "README.md")
    assert card.data.license == "apache-2.0" and {"biomedical", method, "domain-zoo"} <= set(card.data.tags)
    tokenizer = AutoTokenizer.from_pretrained(pub.folder)
    if method == "lora":
        from peft import PeftModel

        assert {"adapter_config.json", "adapter_model.safetensors"} <= files and "config.json" not in files
        assert card.data.library_name == "peft"
        base = AutoModelForTokenClassification.from_pretrained(runs["base"] / "model", num_labels=3)
        published = PeftModel.from_pretrained(base, pub.folder).eval()
    else:
        assert {"config.json", "model.safetensors"} <= files and card.data.library_name == "transformers"
        assert card.data.pipeline_tag == "token-classification"
        published = AutoModelForTokenClassification.from_pretrained(pub.folder).eval()
    if method == "emoe":  # the plain weights, and beside them the expert split the zoo re-applies
        from zoo.adapters import emoe

        assert {"emoe_config.json", "emoe_clusters.safetensors"} <= files
        published = emoe.load(published, pub.folder).eval()
        assert (
            'get_method("emoe").load(model, folder)' in pub.card and "`emoe_clusters.safetensors`" in pub.card
        )
    if method in ("full", "lora"):
        assert "saved its own state" not in pub.card
    if method == "dsee":  # the merged, pruned export loads as a plain model and keeps its zeros
        assert "dsee_adapter.safetensors" in files
        assert sum(int((p == 0).sum()) for p in published.parameters()) > 1000
    trained = runs["models"][runs[method]]
    if (
        method == "dsee"
    ):  # what the run exported as its plain model: the merged, pruned copy of the trained one
        from zoo.adapters.dsee import merged_copy

        trained = merged_copy(trained).eval()
    expected, got = _logits(trained, tokenizer), _logits(published, tokenizer)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    # The zoo's own reload (the task model rebuilt, then the method's `load`) gives the same logits too.
    if method != "dsee":
        torch.testing.assert_close(
            _logits(_zoo_reload(runs[method]), tokenizer), expected, rtol=1e-4, atol=1e-5
        )
    assert "zoo finetune --config zoo_config.yaml" in pub.card and "Hardware: cpu" in pub.card


def test_model_index_numbers_are_the_leaderboard_rows(runs: dict[str, Path], tmp_path: Path) -> None:
    from huggingface_hub import ModelCard

    run = runs["dsee"]
    pub = publish(run, "my-lab/tiny-ncbi-dsee", license="mit", dry_run=True, out=tmp_path / "repo", db=runs["db"])  # fmt: skip
    run_id = json.loads((run / "run.json").read_text())["leaderboard_run_id"]
    recorded = {
        (s["task"], s["metric"]): s
        for s in leaderboard.scores_of(run_id, runs["db"])
        if s["split"] == "test" and "@" not in s["metric"]
    }
    results = ModelCard.load(pub.folder / "README.md").data.eval_results  # huggingface_hub's parser
    assert results and {(r.task_name, r.metric_type) for r in results} == set(recorded)
    assert recorded[("ncbi_disease", "f1")]["value"] > 0.1  # a real score, not a default
    for r in results:
        row = recorded[(r.task_name, r.metric_type)]
        assert r.metric_value == row["value"] and r.dataset_split == "test"
        assert r.metric_args == {
            "std": row["std"],
            "n_seeds": 2,
            "seeds": [0, 1],
            "method": "dsee",
            "leaderboard_run": run_id,
        }
        assert r.task_type == "token-classification"
    assert f"| ncbi_disease | f1 | {recorded[('ncbi_disease', 'f1')]['value']:.4f} |" in pub.card


def test_pretraining_card_lists_the_benches_of_its_model(runs: dict[str, Path], tmp_path: Path) -> None:
    from huggingface_hub import ModelCard

    pub = publish(runs["base"], "my-lab/tiny-pubmedbert", license="apache-2.0", dry_run=True, out=tmp_path / "r", db=runs["db"])  # fmt: skip
    card = ModelCard.load(pub.folder / "README.md")
    assert card.data.pipeline_tag == "fill-mask" and "zoo pretrain --config zoo_config.yaml" in pub.card
    sources = {r.metric_args["method"] for r in card.data.eval_results}
    assert sources == set(METHODS)  # each fine-tune of this model is a recorded bench of it
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= set(pub.files)


def test_upload_is_one_commit_and_republishing_adds_another(
    runs: dict[str, Path], tmp_path: Path, hf_api: type[RecordingHfApi]
) -> None:
    for _ in range(2):
        pub = publish(runs["full"], "my-lab/tiny", license="apache-2.0", private=True, revision="v1", out=tmp_path / "repo", db=runs["db"])  # fmt: skip
    names = [c[0] for c in hf_api.calls]
    assert names == ["create_repo", "create_branch", "upload_folder"] * 2
    create, branch, upload = (c[1] for c in hf_api.calls[:3])
    assert create == {"repo_id": "my-lab/tiny", "private": True, "exist_ok": True, "repo_type": "model"}
    assert branch == {"repo_id": "my-lab/tiny", "branch": "v1", "exist_ok": True, "repo_type": "model"}
    assert upload["repo_id"] == "my-lab/tiny" and upload["revision"] == "v1"
    assert upload["commit_message"] == "zoo publish full" and "model.safetensors" in upload["files"]
    assert pub.commit == "commit6"


def test_token_never_appears_anywhere(
    runs: dict[str, Path], tmp_path: Path, hf_api: type[RecordingHfApi], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "repo"
    main_args = ["publish", str(runs["lora"]), "--repo-id", "my-lab/tiny-lora", "--license", "apache-2.0",
                 "--out", str(out), "--db", str(runs["db"])]  # fmt: skip
    main(main_args)  # success returns normally (no SystemExit)
    hf_api.fail = RuntimeError(
        f"401 Unauthorized for url https://hub.example (Authorization: Bearer {TOKEN})"
    )
    with pytest.raises(SystemExit) as failed:
        main(main_args)
    assert failed.value.code == 2
    captured = capsys.readouterr()
    assert (
        "upload of" in captured.err and "***" in captured.err and len(captured.err.strip().splitlines()) == 1
    )
    texts = [captured.out, captured.err]
    for folder in (runs["lora"], out, runs["db"].parent):
        texts += [p.read_bytes().decode("utf-8", "replace") for p in folder.rglob("*") if p.is_file()]
    assert texts and not any(TOKEN in t for t in texts)
    assert not any(TOKEN[3:] in t for t in texts)


def _exit_2(args: list[str], capsys: pytest.CaptureFixture[str], *needles: str) -> None:
    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def test_bad_input_exits_2_and_uploads_nothing(
    runs: dict[str, Path], tmp_path: Path, hf_api: type[RecordingHfApi], capsys: pytest.CaptureFixture[str]
) -> None:
    run, out = str(runs["full"]), tmp_path / "repo"
    ok = ["--license", "mit", "--out", str(out), "--db", str(runs["db"])]
    _exit_2(["publish", run, "--repo-id", "my lab/ti ny", *ok], capsys, "--repo-id", "'my lab/ti ny'")
    _exit_2(["publish", run, "--repo-id", "tiny", *ok], capsys, "OWNER/NAME")
    _exit_2(
        ["publish", run, "--repo-id", "my-lab/tiny", "--out", str(out)],
        capsys,
        "needs a license",
        "--license",
    )
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    info = json.loads((runs["full"] / "run.json").read_text())
    (unfinished / "run.json").write_text(json.dumps({**info, "status": "running"}))
    _exit_2(["publish", str(unfinished), "--repo-id", "my-lab/tiny", *ok], capsys, "not complete", "--resume")
    (unfinished / "run.json").write_text(json.dumps(info))  # complete, but a bench keeps <task>/model only
    _exit_2(["publish", str(unfinished), "--repo-id", "my-lab/tiny", *ok], capsys, "one model per task")
    _exit_2(["publish", run, "--repo-id", "my-lab/tiny", "--license", "mit", "--out", str(out),
             "--db", "postgresql://zoo@127.0.0.1:1/zoo"], capsys, "cannot reach the leaderboard")  # fmt: skip
    _exit_2(["leaderboard", "--push", "not a repo"], capsys, "--push")
    assert hf_api.calls == [] and not out.exists()


def test_leaderboard_push_uploads_readme_html_json_parquet(
    runs: dict[str, Path], tmp_path: Path, hf_api: type[RecordingHfApi]
) -> None:
    import pyarrow.parquet as pq
    from huggingface_hub import DatasetCard

    pub = push_leaderboard("my-lab/zoo-board", db=runs["db"], folder=tmp_path / "board")
    assert pub.files == ["README.md", "leaderboard.html", "leaderboard.json", "scores.parquet"]
    assert [c[0] for c in hf_api.calls] == ["create_repo", "upload_folder"]
    assert hf_api.calls[0][1]["repo_type"] == "dataset" and hf_api.calls[1][1]["repo_type"] == "dataset"
    table = pq.read_table(pub.folder / "scores.parquet").to_pylist()
    assert len(table) == len(leaderboard.all_scores(runs["db"])) and {"run_id", "task", "value", "domain"} <= set(table[0])  # fmt: skip
    rows = json.loads((pub.folder / "leaderboard.json").read_text())
    assert len(rows) == len(METHODS) and {r["method"] for r in rows} == set(METHODS)
    card = DatasetCard.load(pub.folder / "README.md")
    assert (
        "domain-zoo" in card.data.tags
        and "| Model | Method | Params | ncbi_disease (f1) | Average |" in card.text
    )
    with pytest.raises(UserError, match="is not a valid Hub repo id"):
        push_leaderboard("bad//id", db=runs["db"], folder=tmp_path / "b2")


def test_dsee_merged_export_gives_the_trained_models_logits(runs: dict[str, Any], tmp_path: Path) -> None:
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(runs["dsee"] / "model")
    exported = AutoModelForTokenClassification.from_pretrained(runs["dsee"] / "model").eval()
    trained = runs["models"][runs["dsee"]]
    torch.testing.assert_close(
        _logits(exported, tokenizer), _logits(trained, tokenizer), rtol=1e-4, atol=1e-4
    )


def test_leaderboard_push_from_the_command_line(
    runs: dict[str, Any], tmp_path: Path, hf_api: type[RecordingHfApi], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["leaderboard", "--push", "my-lab/zoo-board", "--domain", "biomedical", "--private",
            "--db", str(runs["db"]), "--out", str(tmp_path / "board")]  # fmt: skip
    main(args)  # success returns normally (no SystemExit)
    out = capsys.readouterr().out
    assert "pushed 4 files" in out and "dataset my-lab/zoo-board (commit commit2)" in out
    assert hf_api.calls[0] == ("create_repo", {"repo_id": "my-lab/zoo-board", "private": True, "exist_ok": True, "repo_type": "dataset"})  # fmt: skip
    assert hf_api.calls[1][1]["commit_message"] == f"zoo leaderboard --push ({len(METHODS)} runs)"


@pytest.mark.parametrize("zoo_head", [True, False])
def test_the_cards_usage_snippet_loads_the_model_that_was_saved(tmp_path: Path, zoo_head: bool) -> None:
    """A zoo head class (the T5 encoder classifier) must be loaded by that class, not by the Auto class that
    transformers maps 't5' to (which would build an encoder-decoder around the same weights)."""
    import transformers
    from tiny_models import IDS, tiny_bert, tiny_t5
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel

    from zoo.publish import _pipeline, _usage

    model = (tiny_t5() if zoo_head else tiny_bert()).eval()
    model.save_pretrained(tmp_path)
    tok = Tokenizer(WordLevel({"[PAD]": 0, "a": 1}, unk_token="[PAD]"))
    transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]").save_pretrained(tmp_path)
    tag, loader = _pipeline(tmp_path)
    assert tag == "text-classification"
    assert loader == (
        "zoo.families_t5:T5EncoderForSequenceClassification"
        if zoo_head
        else "AutoModelForSequenceClassification"
    )
    scope: dict[str, Any] = {}
    exec(_usage(str(tmp_path), False, None, loader), scope)  # the snippet exactly as the card shows it
    loaded = scope["model"].eval()
    assert type(loaded) is type(model)
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=IDS).logits, model(input_ids=IDS).logits)
