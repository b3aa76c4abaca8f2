"""Fine-tune-and-score: the engine behind `zoo finetune` and `zoo bench`.

For each task and seed: load the model (a run, a model dir, or the same architecture randomly
initialised), put the task head on, apply the tuning method, train for a fixed budget, score the
test split with the task's metrics, and record mean ± std over seeds on the leaderboard.
The reported score is the model after the last epoch: no checkpoint picking on the test split.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.config import FinetuneConfig, build_config, parse_override
from zoo.domain import Domain, TaskSpec
from zoo.errors import UserError

IGNORE = -100
TRAINED = "@trained"


@dataclass
class SeedScore:
    seed: int
    metrics: dict[str, float]
    train_seconds: float
    trained: dict[str, float] | None = None
    """For methods with a post-training step: the score just before it (DSEE stage 1 before pruning,
    EMoE in expert mode before a dense switch); `metrics` is the score after it."""


@dataclass
class TaskOutcome:
    task: TaskSpec
    scores: list[SeedScore]
    n_train: int
    n_eval: int
    trainable_params: int
    total_params: int
    sparsity: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def values(self, metric: str) -> list[float]:
        """Per-seed values of `metric` (or of 'metric@trained', the score before the post-training step)."""
        if metric.endswith(TRAINED):
            return [s.trained[metric.removesuffix(TRAINED)] for s in self.scores if s.trained]
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
class BenchOutcome:
    domain: str
    model: str
    method: str
    tasks: list[TaskOutcome]
    run_id: str | None = None

    def summary(self) -> str:
        lines = [f"{self.domain} · model {self.model} · method {self.method}"]
        for t in self.tasks:
            parts = []
            for metric in t.reported_metrics:
                mean, std = t.mean_std(metric)
                parts.append(f"{metric} {mean:.4f} ± {std:.4f}")
            lines.append(f"  {t.task.name} ({len(t.scores)} seed{'s' if len(t.scores) > 1 else ''}, "
                         f"{t.trainable_params:,} trainable params): " + ", ".join(parts))
            facts = {"sparsity": t.sparsity, **t.extra}
            shown = [f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in facts.items()
                     if v is not None and isinstance(v, (int, float)) and not isinstance(v, bool)]
            if shown:
                lines.append("    " + ", ".join(shown))
        if self.run_id:
            lines.append(f"recorded on the leaderboard as {self.run_id}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- inputs


def task_data_dir(domain: Domain, task: TaskSpec, data: Path | None) -> Path:
    """`--data` may be the task's own folder or a parent holding one folder per task."""
    if data is None:
        return domain.sample_dir / task.name
    if not data.exists():
        raise UserError(f"data directory '{data}' does not exist")
    return data / task.name if (data / task.name).is_dir() else data


@dataclass
class Backbone:
    path: Path | None
    tokenizer: Any
    init: str  # "pretrained" | "random"


def load_backbone(domain: Domain, model_ref: str | None, init: str) -> Backbone:
    """The tokenizer and weights source; without a model, the domain's tokenizer on its sample."""
    from transformers import AutoTokenizer

    from zoo.run import resolve_model

    if model_ref is not None:
        path = resolve_model(model_ref)
        return Backbone(path, AutoTokenizer.from_pretrained(path), init)
    from zoo.corpus import read_corpus
    from zoo.tokenizer import load_recipe, train_tokenizer

    vocab = domain.pretrain_defaults.get("tokenizer.vocab_size")
    tok = train_tokenizer(load_recipe(domain.tokenizer), read_corpus(domain.corpus, [domain.sample_corpus]), vocab_size=vocab)
    return Backbone(None, tok, "random")


def build_task_model(domain: Domain, task: TaskSpec, backbone: Backbone, labels: list[str], seed: int) -> Any:
    import torch
    from transformers import AutoConfig

    from zoo.models import build_model, model_class

    head = "token_classification" if task.type == "token_classification" else "sequence_classification"
    label_kwargs = {
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {l: i for i, l in enumerate(labels)},
    }
    cls = model_class(domain.model.family, head)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if backbone.path is None:
            model = build_model(domain.model.family, {**domain.model.config, **label_kwargs}, backbone.tokenizer, head, seed)
        elif backbone.init == "random":
            # Same architecture and tokenizer as the pretrained model, fresh weights: the baseline
            # that shows what pretraining bought.
            cfg = AutoConfig.from_pretrained(backbone.path, **label_kwargs)
            model = cls(cfg)
        else:
            model = cls.from_pretrained(backbone.path, **label_kwargs)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = backbone.tokenizer.pad_token_id
    return model


def encode_tokens(tokenizer: Any, examples: Sequence[Any], label2id: dict[str, int], max_length: int) -> list[dict[str, list[int]]]:
    """Word-level IOB examples → subword ids; the label sits on each word's first piece."""
    enc = tokenizer([e.tokens for e in examples], is_split_into_words=True, truncation=True, max_length=max_length)
    rows = []
    for i, e in enumerate(examples):
        word_ids = enc.word_ids(i)
        labels, prev = [], None
        for w in word_ids:
            labels.append(label2id[e.tags[w]] if w is not None and w != prev else IGNORE)
            prev = w
        rows.append({"input_ids": enc["input_ids"][i], "labels": labels, "word_ids": word_ids})
    return rows


def encode_texts(tokenizer: Any, examples: Sequence[Any], label2id: dict[str, int], max_length: int) -> list[dict[str, Any]]:
    pairs = [e.text_pair for e in examples]
    has_pair = any(p is not None for p in pairs)
    texts = [e.text for e in examples]
    enc = tokenizer(texts, [p or "" for p in pairs] if has_pair else None, truncation=True, max_length=max_length)
    return [{"input_ids": enc["input_ids"][i], "labels": label2id[e.label]} for i, e in enumerate(examples)]


def collate(rows: Sequence[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    import torch

    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    token_level = isinstance(rows[0]["labels"], list)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long) if token_level else torch.empty(len(rows), dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r["input_ids"])
        ids[i, :n] = torch.tensor(r["input_ids"])
        mask[i, :n] = 1
        if token_level:
            labels[i, :n] = torch.tensor(r["labels"])
        else:
            labels[i] = r["labels"]
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


# ----------------------------------------------------------------------------- training


def _batches(n: int, size: int, shuffle_seed: int | None) -> list[list[int]]:
    import torch

    order = torch.randperm(n, generator=torch.Generator().manual_seed(shuffle_seed)).tolist() if shuffle_seed is not None else list(range(n))
    return [order[i : i + size] for i in range(0, n, size)]


def train_epochs(model: Any, rows: list[dict[str, Any]], cfg: FinetuneConfig, pad_id: int, seed: int, epochs: float, quiet: bool, label: str) -> None:
    """AdamW + linear warmup/decay over `epochs` passes (fractional epochs allowed)."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise UserError("the tuning method left no trainable parameters")
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    per_epoch = math.ceil(len(rows) / cfg.batch_size)
    total = max(1, round(per_epoch * epochs))
    warm = int(cfg.warmup_ratio * total)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm)))
    progress = None
    if not quiet:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        progress = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn())
        progress.start()
        bar = progress.add_task("ft", total=total, loss="–")
    model.train()
    step, epoch = 0, 0
    try:
        while step < total:
            for idx in _batches(len(rows), cfg.batch_size, seed * 9973 + epoch):
                if step >= total:
                    break
                batch = collate([rows[i] for i in idx], pad_id)
                loss = model(**batch).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
                step += 1
                if progress is not None:
                    progress.update(bar, advance=1, loss=f"{loss.item():.3f}")
            epoch += 1
    finally:
        if progress is not None:
            progress.stop()


def predict(model: Any, rows: list[dict[str, Any]], pad_id: int, batch_size: int = 64) -> list[Any]:
    import torch

    model.eval()
    out: list[Any] = []
    with torch.no_grad():
        for idx in _batches(len(rows), batch_size, None):
            batch = collate([rows[i] for i in idx], pad_id)
            labels = batch.pop("labels")
            logits = model(**batch).logits
            pred = logits.argmax(-1)
            if pred.dim() == 1:
                out += pred.tolist()
            else:
                for i in range(len(idx)):
                    keep = labels[i] != IGNORE
                    out.append(pred[i][keep].tolist())
    return out


def score_task(task: TaskSpec, examples: Sequence[Any], preds: list[Any], labels: list[str]) -> dict[str, float]:
    from zoo.benchmarks.metrics import compute

    if task.type == "token_classification":
        # Words cut off by max_length count as predicted "O" so truncation cannot inflate the score.
        predictions = [[labels[p] for p in ps] + ["O"] * (len(e.tags) - len(ps)) for e, ps in zip(examples, preds)]
        references = [e.tags for e in examples]
    else:
        predictions = [labels[p] for p in preds]
        references = [e.label for e in examples]
    result = compute(task.type, predictions, references)
    return {m: float(result[m]) for m in task.metrics}


# ----------------------------------------------------------------------------- entry points


def _method(name: str, options: Sequence[str]) -> tuple[Any, Any]:
    from zoo.adapters.methods import get_method
    from zoo.config import set_key

    method = get_method(name)
    cfg = method.config_cls()
    for text in options:
        key, value = parse_override(text)
        set_key(cfg, key, value)
    return method, cfg


def run_task(
    domain: Domain,
    task: TaskSpec,
    backbone: Backbone,
    data: Path | None,
    method_name: str,
    method_options: Sequence[str],
    seeds: Sequence[int],
    cfg: FinetuneConfig,
    quiet: bool,
    save_dir: Path | None = None,
) -> TaskOutcome:
    from zoo.benchmarks.tasks import label_list, load_split

    data_dir = task_data_dir(domain, task, data)
    train = load_split(task, data_dir, "train")
    test = load_split(task, data_dir, cfg.eval_split)
    if cfg.max_train_examples:
        train = train[: cfg.max_train_examples]
    if cfg.max_eval_examples:
        test = test[: cfg.max_eval_examples]
    labels = label_list(list(train) + list(test))
    label2id = {l: i for i, l in enumerate(labels)}
    encode = encode_tokens if task.type == "token_classification" else encode_texts
    tok = backbone.tokenizer
    train_rows = encode(tok, train, label2id, cfg.max_length)
    test_rows = encode(tok, test, label2id, cfg.max_length)
    scores: list[SeedScore] = []
    summary: dict[str, Any] = {}
    for seed in seeds:
        import torch

        torch.manual_seed(seed)
        model = build_task_model(domain, task, backbone, labels, seed)
        method, mcfg = _method(method_name, method_options)
        model = method.apply(model, mcfg)
        t0 = time.perf_counter()
        label = f"{task.name} · {method_name} · seed {seed}"
        train_epochs(model, train_rows, cfg, tok.pad_token_id, seed, cfg.epochs, quiet, label)
        after = getattr(method, "after_training", None)
        trained = None
        if after is not None:
            trained = score_task(task, test, predict(model, test_rows, tok.pad_token_id), labels)
            model = after(
                model,
                mcfg,
                lambda m: train_epochs(m, train_rows, cfg, tok.pad_token_id, seed + 1, cfg.epochs, quiet, label + " · retrain"),
            )
        seconds = time.perf_counter() - t0
        preds = predict(model, test_rows, tok.pad_token_id)
        scores.append(SeedScore(seed, score_task(task, test, preds, labels), seconds, trained))
        summary = method.trainable_summary(model)
    if save_dir is not None:
        # The last seed's model, in the method's own format (peft adapters save as adapters).
        save = getattr(method, "save", None)
        save(model, save_dir) if save is not None else model.save_pretrained(save_dir)
        tok.save_pretrained(save_dir)
    return TaskOutcome(
        task=task,
        scores=scores,
        n_train=len(train),
        n_eval=len(test),
        trainable_params=int(summary.get("trainable_params", 0)),
        total_params=int(summary.get("total_params", 0)),
        sparsity=summary.get("sparsity"),
        extra={k: v for k, v in summary.items() if k not in ("trainable_params", "total_params", "sparsity")},
    )


def bench(
    domain: Domain,
    tasks: Sequence[TaskSpec],
    *,
    model_ref: str | None,
    data: Path | None,
    method: str = "full",
    method_options: Sequence[str] = (),
    seeds: Sequence[int] = (0,),
    overrides: Sequence[str] = (),
    config_file: Path | None = None,
    init: str = "pretrained",
    record: bool = True,
    quiet: bool = False,
    out: Path | None = None,
) -> BenchOutcome:
    """Fine-tune and score every task over every seed; record one leaderboard run."""
    from zoo.models import quiet_transformers

    quiet_transformers()
    cfg = build_config(FinetuneConfig, domain.finetune_defaults, config_file, overrides)
    _method(method, method_options)  # validate the method and its options before any work
    if init not in ("pretrained", "random"):
        raise UserError(f"--init must be 'pretrained' or 'random', not '{init}'")
    for t in tasks:
        task_data_dir(domain, t, data)
    if out is not None and out.exists() and any(out.iterdir()):
        raise UserError(f"output directory '{out}' is not empty; choose another --out")
    backbone = load_backbone(domain, model_ref, init)
    outcomes = [
        run_task(domain, t, backbone, data, method, method_options, seeds, cfg, quiet, out / t.name if out and len(tasks) > 1 else out)
        for t in tasks
    ]
    model_name = str(model_ref) if model_ref else f"{domain.name}-random-init"
    if backbone.init == "random" and model_ref:
        model_name += " (random init)"
    result = BenchOutcome(domain.name, model_name, method, outcomes)
    if record:
        from zoo.benchmarks.recording import record_outcome

        result.run_id = record_outcome(domain, result, backbone, cfg, seeds, method_options)
    return result


def finetune(domain: Domain, task: TaskSpec, **kwargs: Any) -> BenchOutcome:
    return bench(domain, [task], **kwargs)
