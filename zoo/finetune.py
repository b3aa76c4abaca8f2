"""Fine-tuning recipe on the engine: `zoo finetune` (one task) and `zoo bench` (the domain's suite).

For each task and seed: build the task model (a run's weights, or the same architecture freshly
initialised), let the tuning method `apply` itself, train on the train split through the engine with
the dev split scored every epoch, let the method do its post-training step, and score the test split
once — the model after the last epoch (`select=last`) or the dev-best one (`select=dev`). Every fine-tune
is a run directory: config.yaml (alone reproduces it), metrics.jsonl (train loss and dev curve),
`<task>/seed-N/` (checkpoints, score.json), run.json and model/ (the last seed's, in the method's format).
The task kind (`zoo.benchmarks.kinds`) does everything that differs between kinds of task.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo import run as runs
from zoo.config import FinetuneConfig, build_config, save_yaml
from zoo.domain import Domain, TaskSpec
from zoo.engine import Engine, Plan, plot_curves, stream_indices
from zoo.errors import UserError
from zoo.files import check_output_dir

TRAINED = "@trained"
PREDICT_BATCH = 64


@dataclass
class SeedScore:
    seed: int
    metrics: dict[str, float]
    train_seconds: float
    trained: dict[str, float] | None = None
    """With a post-training step: the test score just before it (DSEE stage 1, EMoE before its dense switch)."""
    dev: dict[str, float] | None = None
    """Dev score of the model that was scored on test."""
    dev_curve: list[float] = field(default_factory=list)
    """The primary metric on dev after each evaluation of the (first) training phase."""


@dataclass
class TaskOutcome:
    task: TaskSpec
    scores: list[SeedScore]
    n_train: int
    n_dev: int
    n_eval: int
    summary: dict[str, Any] = field(default_factory=dict)
    """The method's `describe` of the last seed's model: trainable params, sparsity, kernel path…"""

    def values(self, metric: str, split: str = "test") -> list[float]:
        if metric.endswith(TRAINED):
            return [s.trained[metric.removesuffix(TRAINED)] for s in self.scores if s.trained]
        if split == "dev":
            return [s.dev[metric] for s in self.scores if s.dev]
        return [s.metrics[metric] for s in self.scores]

    def mean_std(self, metric: str) -> tuple[float, float]:
        values = self.values(metric)
        return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)

    @property
    def reported_metrics(self) -> list[str]:
        """The task's metrics, then the same with '@trained' where a post-training step ran."""
        extra = [m + TRAINED for m in self.task.metrics] if self.scores and self.scores[0].trained else []
        return [*self.task.metrics, *extra]


@dataclass
class FinetuneOutcome:
    domain: str
    model: str
    method: str
    select: str
    tasks: list[TaskOutcome]
    run_dir: Path
    run_id: str | None = None

    def summary(self) -> str:
        lines = [
            f"{self.domain} · model {self.model} · method {self.method} · test scored on the {self.select} model"
        ]
        for t in self.tasks:
            parts = [f"{m} {t.mean_std(m)[0]:.4f} ± {t.mean_std(m)[1]:.4f}" for m in t.reported_metrics]
            n = len(t.scores)
            trainable = t.summary.get("trainable_params", 0)
            lines.append(
                f"  {t.task.name} ({n} seed{'s' if n > 1 else ''}, {trainable:,} trainable params): "
                + ", ".join(parts)
            )
            facts = {k: v for k, v in t.summary.items() if k not in ("trainable_params", "total_params")}
            shown = [
                f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                for k, v in facts.items()
                if isinstance(v, (int, float, str)) and not isinstance(v, bool)
            ]
            if shown:
                lines.append("    " + ", ".join(shown))
        lines.append(
            f"run {self.run_dir}"
            + (f" · recorded on the leaderboard as {self.run_id}" if self.run_id else "")
        )
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- inputs


@dataclass
class Backbone:
    path: Path | None
    tokenizer: Any
    init: str  # "pretrained" | "random"


def load_backbone(domain: Domain, cfg: FinetuneConfig) -> Backbone:
    """The tokenizer and weights source; without a model, the tokenizer the domain's embedded-default
    pretraining would train (its recipe on its sample corpus)."""
    if cfg.model is not None:
        path = runs.resolve_model(cfg.model, domain, cfg.allow_foreign_model)
        return Backbone(path, runs.load_tokenizer(path), cfg.init)
    from zoo.config import PretrainConfig
    from zoo.pretrain import obtain_tokenizer

    embedded = build_config(PretrainConfig, domain.pretrain_defaults)
    return Backbone(None, obtain_tokenizer(domain, embedded, None), "random")


def task_data_dir(domain: Domain, task: TaskSpec, data: str | None) -> Path:
    """`data` may be the task's own folder or a parent holding one folder per task."""
    from zoo.files import check_existing_path

    if data is None:
        return domain.sample_dir / task.name
    root = check_existing_path(data, "data directory")
    return root / task.name if (root / task.name).is_dir() else root


@dataclass
class TaskData:
    """One task's examples and encoded rows per split, and its label space."""

    task: TaskSpec
    kind: Any
    labels: list[str]
    splits: dict[str, list[Any]]
    rows: dict[str, list[dict[str, Any]]]
    folder: Path | None = None
    """Where the task's files were read (a kind's `context_extra` reads more from it, e.g. a graph)."""


def load_task(domain: Domain, task: TaskSpec, cfg: FinetuneConfig, tokenizer: Any) -> TaskData:
    return encode_task(read_task(domain, task, cfg), cfg, tokenizer)


def read_task(domain: Domain, task: TaskSpec, cfg: FinetuneConfig, *, test: bool = True) -> TaskData:
    """A task's examples per split, checked across splits and cut to the run's limits; `rows` stays
    empty (see `encode_task`). Pure Python: bad data fails before any model or tokenizer is loaded.
    `test=False` never opens the test split (a search selects on dev)."""
    from zoo.benchmarks.kinds import get_kind
    from zoo.benchmarks.tasks import check_label_splits, split_path

    kind = get_kind(task.type)
    folder = task_data_dir(domain, task, cfg.data)
    splits = {"train": kind.load(task, folder, "train")}
    if test:
        splits["test"] = kind.load(task, folder, "test")
    try:
        split_path(task, folder, "dev")
    except UserError:  # no dev file: fine unless the run selects on dev
        if cfg.select == "dev":
            raise UserError(f"select=dev needs a dev split of task '{task.name}' in {folder}") from None
    else:
        splits["dev"] = kind.load(task, folder, "dev")
    check_label_splits(task, splits, cfg.task.allow_unseen_labels)
    limits = {
        "train": cfg.task.max_train_examples,
        "dev": cfg.task.max_eval_examples,
        "test": cfg.task.max_eval_examples,
    }
    splits = {
        name: examples[: limits[name]] if limits[name] else examples for name, examples in splits.items()
    }
    labels = kind.label_space([x for examples in splits.values() for x in examples])
    return TaskData(task, kind, labels, splits, {}, folder)


def encode_task(data: TaskData, cfg: FinetuneConfig, tokenizer: Any) -> TaskData:
    """Each split tokenized once: the rows are kept in $ZOO_HOME/cache/finetune under a key of the
    examples themselves (so the task files and the run's limits), the labels, the tokenizer and max_length."""
    import hashlib

    from zoo.files import zoo_home
    from zoo.prepared import cached_rows, digest, tokenizer_fingerprint

    tok = tokenizer_fingerprint(tokenizer)
    rows = {}
    for name, examples in data.splits.items():
        content = hashlib.sha256()
        for example in examples:
            content.update(repr(example).encode())
        key = digest([data.task.type, data.labels, cfg.task.max_length, tok, content.hexdigest()])
        rows[name] = cached_rows(
            zoo_home() / "cache" / "finetune" / key,
            lambda examples=examples: data.kind.encode(tokenizer, examples, data.labels, cfg.task.max_length),
        )
    return dataclasses.replace(data, rows=rows)


def build_task_model(domain: Domain, data: TaskData, backbone: Backbone, seed: int) -> Any:
    import torch
    from transformers import AutoConfig

    from zoo.families import get_family

    family = get_family(domain.model.family)
    cls = family.head_class(data.kind.head)
    head = data.kind.head_config(data.labels)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if backbone.path is None:
            model = family.build(data.kind.head, {**domain.model.config, **head}, backbone.tokenizer, seed)
        elif backbone.init == "random":
            # Same architecture and tokenizer as the pretrained model, fresh weights: the baseline that
            # shows what pretraining bought.
            model = cls(AutoConfig.from_pretrained(backbone.path, **head))
        else:
            model = cls.from_pretrained(backbone.path, **head)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = backbone.tokenizer.pad_token_id
    return model


# ------------------------------------------------------------------------------------------- one seed


class SeedRun:
    """One (task, seed): the method's context, the engine's fits (with dev scoring), the test score."""

    def __init__(
        self,
        engine: Engine,
        cfg: FinetuneConfig,
        data: TaskData,
        method: Any,
        mcfg: Any,
        run_dir: Path,
        seed: int,
        pad_id: int,
        resume: bool,
    ) -> None:
        self.engine, self.cfg, self.data, self.method, self.mcfg = engine, cfg, data, method, mcfg
        self.seed, self.pad_id, self.resume = seed, pad_id, resume
        self.run_dir = run_dir
        self.workdir = run_dir / data.task.name / f"seed-{seed}"
        n, bs = len(data.rows["train"]), cfg.train.batch_size
        self.per_epoch = max(1, math.ceil(n / bs))
        self.steps = cfg.train.max_steps or max(1, round(self.per_epoch * (cfg.train.epochs or 1.0)))
        self.dev_curve: list[float] = []

    def context(self, backbone: Backbone) -> Any:
        from zoo.adapters.base import MethodContext

        d = self.data
        # A kind may hand its methods more of the task than examples (node classification: the graph).
        extra = getattr(d.kind, "context_extra", None)
        return MethodContext(
            task=d.task,
            kind=d.kind,
            tokenizer=backbone.tokenizer,
            labels=d.labels,
            splits=d.splits,
            rows=d.rows,
            seed=self.seed,
            train=self.train,
            evaluate=self.evaluate,
            device=self.engine.device,
            extra={
                "model_path": backbone.path,
                "workdir": self.workdir,
                **(extra(d.task, d.folder, d.labels) if extra and d.folder else {}),
            },
        )

    def train(self, model: Any, phase: str = "train") -> Any:
        """Fine-tune on the train split with the run's budget; with select=dev, end on the dev-best weights."""
        d, cfg, rows = self.data, self.cfg, self.data.rows["train"]
        bs, n, seed = cfg.train.batch_size, len(rows), self.seed
        workdir = self.workdir / phase
        has_dev = "dev" in d.rows
        plan = Plan(
            label=f"{d.task.name} · {self.method.name} · seed {seed}"
            + ("" if phase == "train" else f" · {phase}"),
            steps=self.steps,
            batch=lambda step: [rows[i] for i in stream_indices(n, step * bs, bs, seed)],
            collate=lambda items, _seed: d.kind.collate(items, self.pad_id),
            loss=d.kind.loss,
            units=lambda batch: len(batch["labels"]),
            unit_name="example",
            seed=seed,
            evaluate=(lambda m, step: self._dev_hook(m, step, plan, workdir)) if has_dev else None,
            eval_every=cfg.train.eval_every or self.per_epoch,
            save_every=self.per_epoch if cfg.train.save_every is None else cfg.train.save_every,
            save_final=True,
            tags={"task": d.task.name, "seed": seed, "phase": phase},
        )
        model = self.engine.fit(
            model, plan, workdir, self.run_dir / "metrics.jsonl", resume=self.resume
        ).model
        if cfg.select == "dev" and (workdir / "best.safetensors").is_file():
            from safetensors.torch import load_model

            load_model(model, str(workdir / "best.safetensors"), device=str(self.engine.device))
        return model

    def _dev_hook(self, model: Any, step: int, plan: Plan, workdir: Path) -> dict[str, float]:
        scores = self.evaluate(model, "dev")
        value = scores[self.data.task.primary_metric]
        if plan.tags["phase"] == "train":
            plan.state["curve"] = [*plan.state.get("curve", []), value]
            self.dev_curve = plan.state["curve"]
        best = plan.state.get("best")
        if self.cfg.select == "dev" and (best is None or value > best["value"]):
            plan.state["best"] = {"step": step, "value": value}
            if self.engine.is_main:
                from safetensors.torch import save_model

                workdir.mkdir(parents=True, exist_ok=True)
                save_model(self.engine.acc.unwrap_model(model), str(workdir / "best.safetensors"))
            self.engine.wait()
        return {"epoch": round(step / self.per_epoch, 3), **{f"dev_{k}": v for k, v in scores.items()}}

    def predict(self, model: Any, split: str) -> list[Any]:
        import torch

        rows, kind = self.data.rows[split], self.data.kind
        was_training = model.training
        model.eval()
        out: list[Any] = []
        with torch.no_grad(), self.engine.autocast():
            for i in range(0, len(rows), PREDICT_BATCH):
                batch = kind.collate(rows[i : i + PREDICT_BATCH], self.pad_id)
                out += kind.predict(model, {k: v.to(self.engine.device) for k, v in batch.items()})
        model.train(was_training)
        return out

    def evaluate(self, model: Any, split: str = "dev") -> dict[str, float]:
        if split not in self.data.rows:
            raise UserError(f"task '{self.data.task.name}' has no '{split}' split to evaluate on")
        d = self.data
        return d.kind.score(d.task, d.splits[split], self.predict(model, split), d.labels)

    def run(
        self, domain: Domain, backbone: Backbone, save_to: Path | None
    ) -> tuple[SeedScore, dict[str, Any]]:
        """Train and score this seed; a seed finished before a resume is read back, not redone."""
        done = self.workdir / "score.json"
        if self.resume and done.is_file():
            saved = json.loads(done.read_text())
            return SeedScore(**saved["score"]), saved["summary"]
        model = build_task_model(domain, self.data, backbone, self.seed).to(self.engine.device)
        ctx = self.context(backbone)
        model = self.method.apply(model, self.mcfg, ctx)
        t0 = time.perf_counter()
        model = self.train(model)
        trained = self.evaluate(model, "test") if self.method.post_training else None
        model = self.method.after_training(model, self.mcfg, ctx)
        seconds = time.perf_counter() - t0
        dev = self.evaluate(model, "dev") if "dev" in self.data.rows else None
        score = SeedScore(self.seed, self.evaluate(model, "test"), seconds, trained, dev, self.dev_curve)
        summary = self.method.describe(model)
        if self.engine.is_main:
            if save_to is not None:
                save_model_dir(self.method, model, backbone.tokenizer, save_to)
            self.workdir.mkdir(parents=True, exist_ok=True)
            payload = {"score": dataclasses.asdict(score), "summary": summary}
            runs.atomic_write_text(done, json.dumps(payload, indent=2, default=str))
        self.engine.wait()
        return score, summary


def save_model_dir(method: Any, model: Any, tokenizer: Any, target: Path) -> None:
    """The fine-tuned model in the method's own format (peft adapters save as adapters), whole or absent."""
    import shutil

    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    method.save(model, tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


# ---------------------------------------------------------------------------------------------- recipe


def resolve_method(cfg: FinetuneConfig) -> tuple[Any, Any]:
    """The method and its typed config from the `method` section; unknown names and keys fail here."""
    from zoo.adapters.base import get_method, method_config

    options = dict(cfg.method)
    method = get_method(str(options.pop("name", "full")))
    typed = method_config(method, options)
    # Once more through the typed setters, so the saved values have their declared types (alpha 32 → 32.0)
    # and a config.yaml written from them reads back identically.
    return method, method_config(method, dataclasses.asdict(typed))


def finetune(
    domain: Domain,
    cfg: FinetuneConfig,
    *,
    verb: str = "finetune",
    out: Path | None = None,
    resume: str | None = None,
    record: bool = True,
    quiet: bool = False,
) -> FinetuneOutcome:
    """Fine-tune and score every task of `cfg` over every seed; record one leaderboard run."""
    from zoo.families import quiet_transformers

    run_dir = None
    if resume is not None:
        run_dir = runs.resume_dir(domain.name, verb, resume, out)
        cfg = build_config(FinetuneConfig, config_file=run_dir / "config.yaml")
    elif out is not None:
        check_output_dir(out, resumable=True)
    quiet_transformers()
    cfg.domain = domain.name
    cfg.tasks = cfg.tasks or [t.name for t in domain.tasks]
    tasks = [domain.task(name) for name in cfg.tasks]
    method, mcfg = resolve_method(cfg)
    cfg.method = {"name": method.name, **dataclasses.asdict(mcfg)}
    # Everything that can fail on user input happens before the run dir is created, the cheap checks first.
    read = [read_task(domain, t, cfg) for t in tasks]
    engine = Engine(cfg.train, quiet=quiet)
    backbone = load_backbone(domain, cfg)
    datas = [encode_task(data, cfg, backbone.tokenizer) for data in read]
    created = run_dir is None
    if run_dir is None:
        run_dir = _start_run(engine, domain, cfg, verb, out, backbone)
    elif engine.is_main:
        runs.write_info(run_dir, status="running")
    with runs.discarded_on_user_error(run_dir, created, engine.is_main):
        outcomes = [
            _run_task(
                engine, domain, cfg, data, method, mcfg, backbone, run_dir, resume is not None, len(datas) > 1
            )
            for data in datas
        ]
        model_name = cfg.model or f"{domain.name}-random-init"
        if backbone.init == "random" and cfg.model:
            model_name += " (random init)"
        from zoo.adapters.base import method_label

        label = method_label(method, mcfg)
        outcome = FinetuneOutcome(domain.name, model_name, label, cfg.select, outcomes, run_dir)
        if engine.is_main:
            _finish(engine, domain, cfg, outcome, backbone, record)
    engine.wait()
    return outcome


def _run_task(
    engine: Engine,
    domain: Domain,
    cfg: FinetuneConfig,
    data: TaskData,
    method: Any,
    mcfg: Any,
    backbone: Backbone,
    run_dir: Path,
    resume: bool,
    many: bool,
) -> TaskOutcome:
    scores: list[SeedScore] = []
    summary: dict[str, Any] = {}
    pad_id = backbone.tokenizer.pad_token_id
    for i, seed in enumerate(cfg.seeds):
        last = i == len(cfg.seeds) - 1
        save_to = (run_dir / data.task.name / "model" if many else run_dir / "model") if last else None
        seed_run = SeedRun(engine, cfg, data, method, mcfg, run_dir, seed, pad_id, resume)
        score, summary = seed_run.run(domain, backbone, save_to)
        scores.append(score)
    n = {name: len(examples) for name, examples in data.splits.items()}
    return TaskOutcome(data.task, scores, n["train"], n.get("dev", 0), n["test"], summary)


def _start_run(
    engine: Engine, domain: Domain, cfg: FinetuneConfig, verb: str, out: Path | None, backbone: Backbone
) -> Path:
    run_dir = engine.new_run_dir(domain.name, verb, out)
    if engine.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_yaml(cfg, run_dir / "config.yaml")
        runs.write_info(
            run_dir,
            domain=domain.name,
            verb=verb,
            status="running",
            tasks=cfg.tasks,
            model=str(backbone.path) if backbone.path else None,
            init=backbone.init,
            method=cfg.method,
            seeds=cfg.seeds,
            select=cfg.select,
            created_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
            **engine.facts(),
        )
    engine.wait()
    return run_dir


def _finish(
    engine: Engine,
    domain: Domain,
    cfg: FinetuneConfig,
    outcome: FinetuneOutcome,
    backbone: Backbone,
    record: bool,
) -> None:
    if record:
        from zoo.benchmarks.recording import record_outcome

        outcome.run_id = record_outcome(domain, outcome, backbone, cfg, engine)
    primary = outcome.tasks[0].task.primary_metric
    plot_curves(outcome.run_dir / "metrics.jsonl", outcome.run_dir / "loss.png", f"dev_{primary}")
    runs.write_info(
        outcome.run_dir,
        status="complete",
        leaderboard_run_id=outcome.run_id,
        scores={
            t.task.name: {m: dict(zip(("mean", "std"), t.mean_std(m))) for m in t.reported_metrics}
            for t in outcome.tasks
        },
        per_seed={t.task.name: [dataclasses.asdict(s) for s in t.scores] for t in outcome.tasks},
        summary={t.task.name: t.summary for t in outcome.tasks},
        finished_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )
