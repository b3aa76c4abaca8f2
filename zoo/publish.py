"""`zoo publish RUN --repo-id OWNER/NAME`: a finished run as a Hub model repository.

The repository folder is built completely on disk first (`RUN/hub/`, or `--out`): the run's `model/` as
saved (safetensors weights and config, or a peft adapter and its config; DSEE's merged export; EMoE's
weights and expert split), its tokenizer, the training config, metrics and loss plot, and a model card
made with `huggingface_hub`'s `ModelCard`. Every number in the card's `model-index` is read from the
leaderboard (this run's recorded scores and benches of its model); none is typed by hand. `--dry-run` stops
there. The upload is one `upload_folder` commit through an `HfApi` (injected by tests), which reads the
token itself: the zoo never holds it, and scrubs it from any error it shows.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from zoo import hub
from zoo import run as runs
from zoo.errors import UserError

_LICENSE = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")
# transformers architecture suffix -> (Hub pipeline tag, the Auto class that loads it).
_PIPELINE = {
    "ForTokenClassification": ("token-classification", "AutoModelForTokenClassification"),
    "ForSequenceClassification": ("text-classification", "AutoModelForSequenceClassification"),
    "ForMultipleChoice": ("multiple-choice", "AutoModelForMultipleChoice"),
    "ForMaskedLM": ("fill-mask", "AutoModelForMaskedLM"),
    "ForCausalLM": ("text-generation", "AutoModelForCausalLM"),
}
# What transformers / peft read from a model folder; anything else a method saved is its own state.
_STANDARD_FILES = (
    "config.json", "generation_config.json", "model.safetensors", "model-*.safetensors",
    "model.safetensors.index.json", "adapter_config.json", "adapter_model.safetensors", "tokenizer*",
    "special_tokens_map.json", "vocab.*", "merges.txt", "*.model", "README.md",
)  # fmt: skip
# Copied beside the model: what reproduces and documents the run.
_RUN_FILES = {"config.yaml": "zoo_config.yaml", "metrics.jsonl": "metrics.jsonl", "loss.png": "loss.png"}


class HubClient(Protocol):
    """The `huggingface_hub.HfApi` methods publishing uses (tests pass a recording double)."""

    def create_repo(self, repo_id: str, **kw: Any) -> Any: ...
    def create_branch(self, repo_id: str, **kw: Any) -> Any: ...
    def upload_folder(self, **kw: Any) -> Any: ...


@dataclass
class Publication:
    folder: Path
    repo_id: str
    card: str
    files: list[str]
    results: list[dict[str, Any]] = field(default_factory=list)
    commit: str | None = None

    def tree(self) -> str:
        return "\n".join([f"{self.folder}/", *(f"  {f}" for f in self.files)])


def publish(
    run_dir: Path,
    repo_id: str,
    *,
    license: str | None,
    private: bool = False,
    dry_run: bool = False,
    revision: str | None = None,
    out: Path | None = None,
    language: list[str] | None = None,
    datasets: list[str] | None = None,
    db: str | Path | None = None,
    api: HubClient | None = None,
) -> Publication:
    """Build the repository folder of a finished run and (unless `dry_run`) upload it as one commit."""
    hub.check_repo_id(repo_id, what="--repo-id")
    model_dir = _finished_model(Path(run_dir))
    if not license:
        raise UserError(
            "the model card needs a license: pass --license with an SPDX id (apache-2.0, mit, cc-by-4.0, …) "
            "or 'other'"
        )
    if not _LICENSE.match(license):
        raise UserError(f"--license '{license}' is not a Hub license id (lower-case, e.g. apache-2.0 or mit)")
    if revision is not None and not re.match(r"^[\w.-]+$", revision):
        raise UserError(f"--revision '{revision}' is not a branch name (letters, digits, '.', '_', '-')")
    info = runs.read_info(Path(run_dir))
    results = recorded_results(Path(run_dir), model_dir, info, db)
    card = model_card(Path(run_dir), model_dir, info, repo_id, license, results, language, datasets)
    target = Path(out) if out is not None else Path(run_dir) / "hub"
    files = _write_folder(Path(run_dir), model_dir, card, target)
    pub = Publication(target, repo_id, card, files, results)
    if not dry_run:
        pub.commit = _upload(
            api,
            target,
            repo_id,
            repo_type="model",
            message=f"zoo publish {Path(run_dir).name}",
            private=private,
            revision=revision,
        )
    return pub


def _finished_model(run_dir: Path) -> Path:
    if not (run_dir / "run.json").is_file():
        raise UserError(f"'{run_dir}' is not a zoo run directory (no run.json); give the folder a verb wrote")
    if runs.is_complete(run_dir) and not (run_dir / "model").is_dir():
        raise UserError(
            f"run '{run_dir}' keeps one model per task (<task>/model), not one model/; publish a single-task "
            "fine-tune (`zoo finetune … --task T`)"
        )
    if not runs.is_complete(run_dir) or not (run_dir / "model").is_dir():
        raise UserError(
            f"run '{run_dir}' is not complete (run.json status '{runs.read_info(run_dir).get('status')}', "
            f"model/ {'present' if (run_dir / 'model').is_dir() else 'missing'}); finish it with --resume {run_dir}"
        )
    return run_dir / "model"


# ---------------------------------------------------------------------------------------------- results


def recorded_results(
    run_dir: Path, model_dir: Path, info: dict[str, Any], db: str | Path | None
) -> list[dict[str, Any]]:
    """Test-split scores on the leaderboard for this run, and for benches of its model (a pretraining run)."""
    from zoo.leaderboard import all_scores

    own = info.get("leaderboard_run_id")
    mine = {run_dir.resolve(), model_dir.resolve()}

    def ours(row: dict[str, Any]) -> bool:
        if own and row["run_id"] == own:
            return True
        path = row.get("model_path")
        return bool(path) and Path(path).resolve() in mine

    return [r for r in all_scores(db) if ours(r) and r["split"] == "test" and "@" not in r["metric"]]


def eval_results(results: list[dict[str, Any]]) -> list[Any]:
    from huggingface_hub import EvalResult

    return [
        EvalResult(
            task_type=_task_type(r["domain"], r["task"]),
            task_name=r["task"],
            dataset_type=r["task"],
            dataset_name=r["task"],
            dataset_split=r["split"],
            metric_type=r["metric"],
            metric_value=r["value"],
            metric_name=f"{r['metric']} (mean of {r['n_seeds']} seed{'s' if r['n_seeds'] > 1 else ''})",
            metric_args={
                "std": r["std"],
                "n_seeds": r["n_seeds"],
                "seeds": json.loads(r["seeds"]),
                "method": r["method"],
                "leaderboard_run": r["run_id"],
            },
        )
        for r in results
    ]


def _task_type(domain: str, task: str) -> str:
    """The task's kind as a Hub task id (token_classification → token-classification)."""
    from zoo.registry import get_domain

    try:
        return get_domain(domain).task(task).type.replace("_", "-")
    except UserError:
        return "other"


# ---------------------------------------------------------------------------------------------- card

_TEMPLATE = """---
{{ card_data }}
---

# {{ name }}

{{ summary }}

## How to use

```python
{{ usage }}
```

{% if method_files %}
The `{{ method }}` method saved its own state beside the weights ({{ method_files }}). With `pip install
domain-zoo`, `zoo.adapters.base.get_method({{ method | tojson }}).load(model, folder)` rebuilds the run's model
exactly from this repository's folder (e.g. `huggingface_hub.snapshot_download`) on a task model of the same
architecture (built from the base model where the method adapts one).
{% endif %}
## Evaluation

{% if results %}Scores recorded on the Domain Zoo leaderboard (test split, mean ± sample std over seeds):

| task | metric | value | std | seeds | method |
|---|---|---:|---:|---:|---|
{% for r in results %}| {{ r.task }} | {{ r.metric }} | {{ r.value }} | {{ r.std }} | {{ r.n_seeds }} | {{ r.method }} |
{% endfor %}{% else %}No benchmark result of this model is on the leaderboard yet (`zoo bench {{ domain }} --model RUN`).
{% endif %}
## How it was made

- Command: `{{ command }}`; the run's resolved config is `zoo_config.yaml` in this repository, and
  `zoo {{ verb }} --config zoo_config.yaml` alone reproduces the run.
- Domain: `{{ domain }}`{% if method %}, tuning method `{{ method }}`{% endif %}{% if base %}, from `{{ base }}`{% endif %}.
- Zoo version: {{ zoo_version }} (domain-zoo).
- Hardware: {{ hardware }}; precision {{ precision }}; {{ world_size }} process(es).
- Trained {{ created_at }} – {{ finished_at }}. Training metrics are in `metrics.jsonl`, the loss curve in `loss.png`.

## Limitations

Trained and evaluated with the zoo's recipe on the data named above; scores on other data will differ.
"""


def model_card(
    run_dir: Path,
    model_dir: Path,
    info: dict[str, Any],
    repo_id: str,
    license: str,
    results: list[dict[str, Any]],
    language: list[str] | None,
    datasets: list[str] | None,
) -> str:
    from huggingface_hub import ModelCard, ModelCardData

    from zoo import __version__

    verb, domain = info.get("verb", "pretrain"), info.get("domain", "")
    method = _method_name(info) if verb != "pretrain" else None
    is_adapter = (model_dir / "adapter_config.json").is_file()
    base = _base_model(run_dir, info)
    pipeline_tag, auto_class = _pipeline(model_dir)
    data = ModelCardData(
        model_name=repo_id.split("/")[1],
        license=license,
        language=language or None,
        datasets=datasets or None,
        library_name="peft" if is_adapter else "transformers",
        pipeline_tag=pipeline_tag,
        tags=[t for t in (domain, method, "domain-zoo") if t],
        base_model=base if base and hub.is_hub_ref(base) else None,
        eval_results=eval_results(results) or None,
    )
    card = ModelCard.from_template(
        data,
        template_str=_TEMPLATE,
        name=repo_id,
        summary=_summary(verb, domain, method, info),
        usage=_usage(repo_id, is_adapter, base, auto_class),
        method_files=", ".join(f"`{f}`" for f in _method_files(model_dir)),
        results=[{**r, "value": f"{r['value']:.4f}", "std": f"{r['std']:.4f}"} for r in results],
        command=info.get("command") or f"zoo {verb} --config zoo_config.yaml",
        domain=domain,
        verb=verb,
        method=method,
        base=base if base and hub.is_hub_ref(base) else f"{base} (a local model)" if base else None,
        zoo_version=__version__,
        hardware=info.get("device", "unknown"),
        precision=info.get("precision", "unknown"),
        world_size=info.get("world_size", 1),
        created_at=info.get("created_at", "?"),
        finished_at=info.get("finished_at", "?"),
    )
    return str(card)


def _method_files(model_dir: Path) -> list[str]:
    from fnmatch import fnmatch

    names = sorted(p.name for p in model_dir.iterdir() if p.is_file())
    return [n for n in names if not any(fnmatch(n, pattern) for pattern in _STANDARD_FILES)]


def _method_name(info: dict[str, Any]) -> str:
    method = info.get("method")
    return method.get("name", "full") if isinstance(method, dict) else str(method or "full")


def _base_model(run_dir: Path, info: dict[str, Any]) -> str | None:
    """What the run started from, as the user named it (a Hub id for a Hub model, else a local name)."""
    from zoo.config import load_yaml

    cfg = load_yaml(run_dir / "config.yaml") if (run_dir / "config.yaml").is_file() else {}
    ref = cfg.get("model") or cfg.get("from_model") or info.get("model") or info.get("from_model")
    if not ref:
        return None
    ref = str(ref)
    if hub.is_hub_ref(ref):
        return hub.split_ref(ref)[0]
    return Path(ref).name


def _pipeline(model_dir: Path) -> tuple[str | None, str]:
    """(pipeline tag, loader) from the saved config's architecture; (None, AutoModel) when unknown.

    The loader is the Auto class, unless a model family's head is the zoo's own class (the T5 encoder
    classifier, Longformer's multiple-choice head): transformers' Auto class would then build a different
    model from the same weights, so the card names the zoo class ('pkg.module:Class') instead."""
    config = model_dir / "config.json"
    archs = json.loads(config.read_text()).get("architectures") or [] if config.is_file() else []
    for arch in archs:
        for suffix, (tag, auto_class) in _PIPELINE.items():
            if arch.endswith(suffix):
                return tag, _zoo_head(arch) or auto_class
    return None, "AutoModel"


def _zoo_head(arch: str) -> str | None:
    """'pkg.module:Class' of a registered family head named `arch` that is not transformers' own."""
    from zoo.families import FAMILIES

    for name in FAMILIES.names():
        for target in FAMILIES.get(name).heads.values():
            if ":" in target and target.rsplit(":", 1)[1] == arch:
                return target
    return None


def _summary(verb: str, domain: str, method: str | None, info: dict[str, Any]) -> str:
    if verb == "pretrain":
        mode = info.get("training_mode", "scratch")
        return (
            f"A {domain} model pretrained ({mode}) with Domain Zoo: "
            f"{info.get('parameters', 0):,} parameters, {info.get('tokens_seen', 0):,} training tokens."
        )
    tasks = ", ".join(info.get("tasks") or [])
    return f"A {domain} model fine-tuned on {tasks} with the `{method}` method of Domain Zoo."


def _usage(repo_id: str, is_adapter: bool, base: str | None, auto_class: str) -> str:
    if is_adapter:
        return (
            "from peft import PeftModel\nfrom transformers import AutoModel, AutoTokenizer\n\n"
            f"base = AutoModel.from_pretrained({base!r})  # the model it was fine-tuned from, with its task head\n"
            f"model = PeftModel.from_pretrained(base, {repo_id!r})\n"
            f"tokenizer = AutoTokenizer.from_pretrained({repo_id!r})"
        )
    if ":" in auto_class:  # the zoo's own head class (pip install domain-zoo)
        module, cls = auto_class.rsplit(":", 1)
        imports = f"from transformers import AutoTokenizer\nfrom {module} import {cls}\n\n"
    else:
        cls, imports = auto_class, f"from transformers import {auto_class}, AutoTokenizer\n\n"
    return f"{imports}model = {cls}.from_pretrained({repo_id!r})\ntokenizer = AutoTokenizer.from_pretrained({repo_id!r})"


# ---------------------------------------------------------------------------------------------- folder


def _write_folder(run_dir: Path, model_dir: Path, card: str, target: Path) -> list[str]:
    """The repository folder, whole or not at all (built beside the target, then renamed into place)."""
    if target.exists() and not (target / "README.md").is_file() and any(target.iterdir()):
        raise UserError(
            f"--out '{target}' is a non-empty folder that is not a publish folder; choose another"
        )
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(model_dir, tmp, ignore=shutil.ignore_patterns(".*"))
    for src, name in _RUN_FILES.items():
        if (run_dir / src).is_file():
            shutil.copy2(run_dir / src, tmp / name)
    (tmp / "README.md").write_text(card)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())


def _upload(
    api: HubClient | None,
    folder: Path,
    repo_id: str,
    *,
    repo_type: str,
    message: str,
    private: bool = False,
    revision: str | None = None,
) -> str:
    """create_repo(exist_ok) + one upload_folder commit: republishing adds a commit, never a second repo."""
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type=repo_type)
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type=repo_type)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type=repo_type,
            revision=revision,
            commit_message=message,
        )
    except Exception as e:  # any failure of the Hub call: one line, and never the token
        first = hub.scrub(str(e)).splitlines()[0] if str(e).strip() else "no message"
        raise UserError(
            f"upload of {folder} to {repo_id} failed ({e.__class__.__name__}: {first}); nothing was uploaded — "
            "check the repo id, your token (HF_TOKEN or `hf auth login`) and the network"
        ) from None
    return str(getattr(info, "oid", None) or info)


# ---------------------------------------------------------------------------------------------- leaderboard


def push_leaderboard(
    repo_id: str,
    *,
    db: str | Path | None = None,
    domain: str | None = None,
    private: bool = False,
    folder: Path,
    api: HubClient | None = None,
    dry_run: bool = False,
) -> Publication:
    """The leaderboard as a Hub dataset repo: README (markdown table), the HTML page, JSON rows, Parquet scores."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from huggingface_hub import DatasetCard, DatasetCardData

    from zoo import leaderboard

    hub.check_repo_id(repo_id, what="--push")
    rows = leaderboard.query(domain=domain, db=db)
    scores = [r for r in leaderboard.all_scores(db) if domain is None or r["domain"] == domain]
    data = DatasetCardData(
        pretty_name="Domain Zoo leaderboard",
        tags=["domain-zoo", "leaderboard"],
        configs=[{"config_name": "default", "data_files": "scores.parquet"}],
    )
    body = (
        f"# Domain Zoo leaderboard\n\nScores ×100, mean ± std over seeds ({len(rows)} runs). "
        "`leaderboard.html` is the sortable page, `leaderboard.json` the rows shown here, `scores.parquet` every "
        "recorded score (one row per run × task × split × metric).\n\n" + leaderboard.render(rows, "markdown")
    )
    card = str(DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body}"))
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "README.md").write_text(card)
    (tmp / "leaderboard.html").write_text(leaderboard.render(rows, "html"))
    (tmp / "leaderboard.json").write_text(leaderboard.render(rows, "json"))
    pq.write_table(pa.Table.from_pylist(scores) if scores else pa.table({}), tmp / "scores.parquet")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    files = sorted(p.name for p in folder.iterdir())
    pub = Publication(folder, repo_id, card, files)
    if dry_run:
        return pub
    pub.commit = _upload(
        api,
        folder,
        repo_id,
        repo_type="dataset",
        message=f"zoo leaderboard --push ({len(rows)} runs)",
        private=private,
    )
    return pub
