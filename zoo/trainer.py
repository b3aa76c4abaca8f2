"""The shared pretraining loop (accelerate): every domain pretrains through `pretrain()`.

Launch: `zoo pretrain DOMAIN …` on one device, or `accelerate launch -m zoo pretrain DOMAIN …` for
DDP / FSDP / DeepSpeed from the accelerate config.

Reproducibility is by construction rather than by saved iterators: the blocks of global step `s` and
their masking are a pure function of (seed, s), so a resumed run only needs the step number plus the
model / optimizer / scheduler / RNG states that accelerate checkpoints. The loss of a global batch is
normalised by the number of labelled tokens in the *whole* global batch, so 1 process × B and
2 processes × B/2 (or gradient accumulation) compute the same gradient.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo import run as runs
from zoo.config import PretrainConfig, save_yaml, to_dict
from zoo.domain import Domain
from zoo.errors import UserError
from zoo.objectives import IGNORE, token_loss_sum


@dataclass
class PreparedData:
    train: list[dict[str, Any]]
    eval: list[dict[str, Any]]
    replay: list[dict[str, Any]]
    documents: int
    tokens: int


# ----------------------------------------------------------------------------- data


def corpus_paths(domain: Domain, cfg: PretrainConfig) -> list[Path]:
    paths = [Path(p) for p in cfg.data.corpus] or [domain.sample_corpus]
    for p in paths:
        if not p.exists():
            raise UserError(f"corpus '{p}' does not exist (give files or folders with --corpus)")
    return paths


def _documents(domain: Domain, paths: Sequence[Path], limit: int | None) -> Iterator[str]:
    from zoo.corpus import read_corpus

    for i, doc in enumerate(read_corpus(domain.corpus, paths)):
        if limit is not None and i >= limit:
            return
        yield doc


def _tokenize(tokenizer: Any, texts: list[str]) -> list[dict[str, list]]:
    from zoo.tokenizer import word_start_mask

    enc = tokenizer(texts, add_special_tokens=True, truncation=False, return_attention_mask=False)
    return [{"input_ids": ids, "word_starts": word_start_mask(tokenizer, ids)} for ids in enc["input_ids"]]


def tokenize_documents(tokenizer: Any, docs: Iterator[str], batch: int = 512) -> Iterator[dict[str, list]]:
    buf: list[str] = []
    for doc in docs:
        buf.append(doc)
        if len(buf) == batch:
            yield from _tokenize(tokenizer, buf)
            buf = []
    if buf:
        yield from _tokenize(tokenizer, buf)


def prepare_data(domain: Domain, cfg: PretrainConfig, tokenizer: Any) -> PreparedData:
    """Tokenize and pack the corpus; every k-th document is held out for eval loss."""
    from zoo.packing import pack_documents

    every = max(2, round(1 / cfg.data.eval_fraction)) if cfg.data.eval_fraction > 0 else 0
    train_docs: list[dict[str, list]] = []
    eval_docs: list[dict[str, list]] = []
    n_docs = 0
    docs = _documents(domain, corpus_paths(domain, cfg), cfg.data.max_documents)
    for i, doc in enumerate(tokenize_documents(tokenizer, docs)):
        n_docs += 1
        (eval_docs if every and i % every == every - 1 else train_docs).append(doc)
    if not train_docs:
        raise UserError("the corpus holds no documents to train on (check --corpus and data.max_documents)")
    pad = tokenizer.pad_token_id
    train = list(pack_documents(train_docs, cfg.data.seq_len, pad_id=pad))
    held = list(pack_documents(eval_docs, cfg.data.seq_len, pad_id=pad))
    replay: list[dict[str, Any]] = []
    if cfg.data.replay_corpus and cfg.data.replay_ratio > 0:
        rpaths = [Path(p) for p in cfg.data.replay_corpus]
        for p in rpaths:
            if not p.exists():
                raise UserError(f"replay corpus '{p}' does not exist")
        replay_docs = tokenize_documents(tokenizer, _documents(domain, rpaths, cfg.data.max_documents))
        replay = list(pack_documents(replay_docs, cfg.data.seq_len, pad_id=pad))
    tokens = sum(len(d["input_ids"]) for d in train_docs)
    return PreparedData(train, held, replay, n_docs, tokens)


def _stream_indices(n: int, start: int, count: int, seed: int) -> list[int]:
    """Items start..start+count of an endless stream of seeded permutations of range(n)."""
    import torch

    out: list[int] = []
    pos = start
    while len(out) < count:
        epoch, offset = divmod(pos, n)
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        perm = torch.randperm(n, generator=g).tolist()
        take = perm[offset : offset + count - len(out)]
        out += take
        pos += len(take)
    return out


def global_batch(data: PreparedData, cfg: PretrainConfig, step: int) -> list[dict[str, Any]]:
    b = cfg.train.batch_size
    n_replay = round(b * cfg.data.replay_ratio) if data.replay else 0
    n_main = b - n_replay
    blocks = [data.train[i] for i in _stream_indices(len(data.train), step * n_main, n_main, cfg.train.seed)]
    if n_replay:
        idx = _stream_indices(len(data.replay), step * n_replay, n_replay, cfg.train.seed + 7)
        blocks += [data.replay[i] for i in idx]
    return blocks


# ----------------------------------------------------------------------------- loss


def _label_count(batch: dict[str, Any], causal: bool) -> int:
    labels = batch["labels"][:, 1:] if causal else batch["labels"]
    return int((labels != IGNORE).sum())


def _rows(batch: dict[str, Any], lo: int, hi: int) -> dict[str, Any]:
    return {k: v[lo:hi] for k, v in batch.items()}


def _step_seed(seed: int, step: int) -> int:
    return (seed * 1_000_003 + step * 7919 + 17) % (2**31 - 1)


# ----------------------------------------------------------------------------- schedule


def lr_lambda(cfg: PretrainConfig):
    total = cfg.train.max_steps
    warm = int(cfg.train.warmup_ratio * total)
    floor = cfg.train.min_lr_ratio

    def f(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if cfg.train.schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warm) / max(1, total - warm))
        decay = 0.5 * (1 + math.cos(math.pi * progress)) if cfg.train.schedule == "cosine" else 1 - progress
        return floor + (1 - floor) * decay

    return f


def _optimizer(model: Any, cfg: PretrainConfig) -> Any:
    import torch

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "norm" in name.lower() else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.train.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.train.lr, betas=(0.9, 0.98), eps=1e-6)


def _mixed_precision(choice: str) -> str:
    if choice != "auto":
        return choice
    import torch

    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


# ----------------------------------------------------------------------------- tokenizer / model


def obtain_tokenizer(domain: Domain, cfg: PretrainConfig, from_model: Path | None) -> Any:
    from transformers import AutoTokenizer

    if cfg.tokenizer.path:
        path = Path(cfg.tokenizer.path)
        if not path.is_dir():
            raise UserError(f"tokenizer directory '{path}' does not exist")
        return AutoTokenizer.from_pretrained(path)
    if from_model is not None:
        return AutoTokenizer.from_pretrained(from_model)
    from zoo.tokenizer import load_recipe, train_tokenizer

    recipe = load_recipe(cfg.tokenizer.recipe or domain.tokenizer)
    docs = _documents(domain, corpus_paths(domain, cfg), cfg.data.max_documents)
    return train_tokenizer(recipe, docs, vocab_size=cfg.tokenizer.vocab_size)


def model_config(domain: Domain, cfg: PretrainConfig) -> dict[str, Any]:
    merged = dict(domain.model.config)
    for key, value in to_dict(cfg.model).items():
        if value is None:
            continue
        if key == "dropout":
            if domain.model.family in ("bert", "electra", "longformer"):
                merged["hidden_dropout_prob"] = merged["attention_probs_dropout_prob"] = value
            else:
                merged["attention_dropout"] = value
        else:
            merged[key] = value
    if merged.get("max_position_embeddings", 0) < cfg.data.seq_len:
        merged["max_position_embeddings"] = cfg.data.seq_len
    merged.setdefault("attn_implementation", "sdpa")
    return merged


def _build_or_load_model(domain: Domain, cfg: PretrainConfig, tokenizer: Any, head: str, from_model: Path | None) -> Any:
    from zoo.models import build_model, model_class

    if from_model is not None:
        model = model_class(domain.model.family, head).from_pretrained(from_model)
        if model.get_input_embeddings().num_embeddings < len(tokenizer):
            raise UserError(f"model '{from_model}' has a smaller vocabulary than its tokenizer; it cannot be continued")
        return model
    return build_model(domain.model.family, model_config(domain, cfg), tokenizer, head, seed=cfg.train.seed)


# ----------------------------------------------------------------------------- the loop


def _resolve_resume(domain: Domain, resume: str, out: str | Path | None) -> Path:
    if resume == "auto":
        if out is not None:
            run_dir = Path(out)
            if not runs.checkpoints(run_dir):
                raise UserError(f"--resume auto: '{run_dir}' has no checkpoint to resume from")
            return run_dir
        found = runs.find_resumable(domain.name, "pretrain")
        if found is None:
            raise UserError(f"--resume auto: no unfinished {domain.name} pretraining run with a checkpoint under {runs.RUNS_DIR}/")
        return found
    path = Path(resume)
    if path.name.startswith("step-") and path.parent.name == "checkpoints":
        path = path.parent.parent
    if not runs.checkpoints(path):
        raise UserError(f"--resume {resume}: no checkpoint found in '{path}'")
    return path


def pretrain(
    domain: Domain,
    cfg: PretrainConfig,
    *,
    out: str | Path | None = None,
    resume: str | None = None,
    from_model: str | Path | None = None,
    quiet: bool = False,
) -> Path:
    """Pretrain (from scratch, or continually with `from_model`) and return the run directory."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from zoo.config import build_config
    from zoo.objectives import build_objective

    run_dir: Path | None = None
    start_step = 0
    if resume is not None:
        run_dir = _resolve_resume(domain, resume, out)
        info = runs.read_info(run_dir)
        if runs.is_complete(run_dir):
            raise UserError(f"run '{run_dir}' is already complete; nothing to resume")
        cfg = build_config(PretrainConfig, config_file=run_dir / "config.yaml")
        cfg.tokenizer.path = str(run_dir / "tokenizer")
        from_model = info.get("from_model")
    from_path = runs.resolve_model(from_model) if from_model is not None else None

    from zoo.models import quiet_transformers

    quiet_transformers()
    acc = Accelerator(mixed_precision=_mixed_precision(cfg.train.mixed_precision))
    world, rank = acc.num_processes, acc.process_index
    per_proc, rem = divmod(cfg.train.batch_size, world * cfg.train.grad_accum)
    if rem or per_proc == 0:
        raise UserError(
            f"train.batch_size={cfg.train.batch_size} must be a multiple of processes × grad_accum "
            f"= {world} × {cfg.train.grad_accum}"
        )
    set_seed(cfg.train.seed)

    # Everything that can fail on user input happens before the run dir is created.
    tokenizer = obtain_tokenizer(domain, cfg, from_path)
    objective = build_objective(domain.objective, tokenizer)
    causal = objective.head == "causal_lm"
    data = prepare_data(domain, cfg, tokenizer)
    model = _build_or_load_model(domain, cfg, tokenizer, objective.head, from_path)
    n_params = sum(p.numel() for p in model.parameters())

    if run_dir is None:
        run_dir = runs.new_run_dir(domain.name, "pretrain", out)
        if acc.is_main_process:
            run_dir.mkdir(parents=True, exist_ok=True)
            save_yaml(cfg, run_dir / "config.yaml")
            tokenizer.save_pretrained(run_dir / "tokenizer")
            runs.write_info(
                run_dir,
                domain=domain.name,
                verb="pretrain",
                status="running",
                training_mode="continual" if from_path else "scratch",
                from_model=str(from_path) if from_path else None,
                parameters=n_params,
                documents=data.documents,
                train_tokens=data.tokens,
                train_blocks=len(data.train),
                eval_blocks=len(data.eval),
                created_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
            )
        acc.wait_for_everyone()

    optimizer = _optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
    model, optimizer = acc.prepare(model, optimizer)
    # The scheduler is stepped once per global step by us; accelerate's wrapper would step it once
    # per process. It still goes into checkpoints.
    acc.register_for_checkpointing(scheduler)

    metrics_path = run_dir / "metrics.jsonl"
    tokens_seen = 0
    ckpts = runs.checkpoints(run_dir)
    if resume is not None and ckpts:
        last = ckpts[-1]
        acc.load_state(str(last))
        state = json.loads((last / "trainer_state.json").read_text())
        start_step, tokens_seen = state["step"], state["tokens_seen"]
        if acc.is_main_process and metrics_path.exists():
            # Drop what was logged after the checkpoint: those steps are about to be redone.
            kept = [l for l in metrics_path.read_text().splitlines() if json.loads(l)["step"] <= start_step]
            runs.atomic_write_text(metrics_path, "".join(l + "\n" for l in kept))
        runs.write_info(run_dir, status="running")

    progress = None
    if acc.is_main_process and not quiet:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        progress = Progress(
            TextColumn(f"[bold]{domain.name}[/] pretrain"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[tps]} tok/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
        )
        progress.start()
        bar = progress.add_task("train", total=cfg.train.max_steps, completed=start_step, loss="–", tps="–")

    def log(record: dict[str, Any]) -> None:
        if acc.is_main_process:
            with metrics_path.open("a") as f:
                f.write(json.dumps(record) + "\n")

    model.train()
    t0 = time.perf_counter()
    window_tokens, window_t = 0, t0
    last_loss = float("nan")
    try:
        for step in range(start_step, cfg.train.max_steps):
            batch = objective.collate(global_batch(data, cfg, step), seed=_step_seed(cfg.train.seed, step))
            n_global = max(1, _label_count(batch, causal))
            real_tokens = int((batch["input_ids"] != tokenizer.pad_token_id).sum())
            mine = _rows(batch, rank * per_proc * cfg.train.grad_accum, (rank + 1) * per_proc * cfg.train.grad_accum)
            loss_sum = torch.zeros((), device=acc.device)
            for m in range(cfg.train.grad_accum):
                micro = {k: v.to(acc.device) for k, v in _rows(mine, m * per_proc, (m + 1) * per_proc).items()}
                sync = m == cfg.train.grad_accum - 1
                with (nullcontext() if sync else acc.no_sync(model)), acc.autocast():
                    s, _ = token_loss_sum(model, micro, causal)
                    # DDP averages gradients over processes, hence × world.
                    acc.backward(s / n_global * world)
                loss_sum += s.detach()
            loss = float(acc.reduce(loss_sum, reduction="sum")) / n_global
            acc.clip_grad_norm_(model.parameters(), cfg.train.max_grad_norm)
            step_lr = scheduler.get_last_lr()[0]  # the LR this step uses (logged after the step)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            tokens_seen += real_tokens
            window_tokens += real_tokens
            last_loss = loss
            done = step + 1
            if done % cfg.train.log_every == 0 or done == cfg.train.max_steps or done == start_step + 1:
                now = time.perf_counter()
                tps = window_tokens / max(now - window_t, 1e-9)
                window_tokens, window_t = 0, now
                log({"step": done, "loss": loss, "lr": step_lr, "tokens": tokens_seen, "tokens_per_s": tps})
                if progress is not None:
                    progress.update(bar, loss=f"{loss:.3f}", tps=f"{tps:,.0f}")
            if progress is not None:
                progress.update(bar, completed=done)
            if data.eval and (done % cfg.train.eval_every == 0 or done == cfg.train.max_steps):
                ev = evaluate_loss(model, objective, data.eval, cfg, acc, causal)
                log({"step": done, "eval_loss": ev, "eval_ppl": math.exp(min(ev, 50))})
            if done % cfg.train.save_every == 0 and done < cfg.train.max_steps:
                save_checkpoint(acc, run_dir, done, tokens_seen, cfg.train.keep_checkpoints)
    finally:
        if progress is not None:
            progress.stop()

    acc.wait_for_everyone()
    if acc.is_main_process:
        final = run_dir / "model"
        tmp = run_dir / ".model.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        acc.unwrap_model(model).save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        plot_loss_curve(metrics_path, run_dir / "loss.png")
        evals = [r for r in _read_jsonl(metrics_path) if "eval_loss" in r]
        runs.write_info(
            run_dir,
            status="complete",
            final_loss=last_loss,
            final_eval_loss=evals[-1]["eval_loss"] if evals else None,
            final_eval_ppl=evals[-1]["eval_ppl"] if evals else None,
            tokens_seen=tokens_seen,
            steps=cfg.train.max_steps,
            finished_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
        )
    acc.wait_for_everyone()
    return run_dir


def evaluate_loss(model: Any, objective: Any, blocks: list[dict[str, Any]], cfg: PretrainConfig, acc: Any, causal: bool) -> float:
    """Held-out token loss with fixed masking (same seed every time), averaged over processes."""
    import torch

    was_training = model.training
    model.eval()
    bs = max(1, cfg.train.batch_size // acc.num_processes)
    total = torch.zeros((), device=acc.device)
    count = torch.zeros((), device=acc.device)
    with torch.no_grad():
        n_batches = min(cfg.train.eval_batches, math.ceil(len(blocks) / bs))
        for b in range(acc.process_index, n_batches, acc.num_processes):
            batch = objective.collate(blocks[b * bs : (b + 1) * bs], seed=12345 + b)
            batch = {k: v.to(acc.device) for k, v in batch.items()}
            with acc.autocast():
                s, n = token_loss_sum(model, batch, causal)
            total += s
            count += n
    total = acc.reduce(total, reduction="sum")
    count = acc.reduce(count, reduction="sum")
    if was_training:
        model.train()
    return float(total / count.clamp(min=1))


def save_checkpoint(acc: Any, run_dir: Path, step: int, tokens_seen: int, keep: int) -> None:
    """Write checkpoints/step-N whole or not at all (temp dir + rename)."""
    tmp = run_dir / "checkpoints" / f".tmp-step-{step}"
    if acc.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)
    acc.wait_for_everyone()
    acc.save_state(str(tmp))
    acc.wait_for_everyone()
    if acc.is_main_process:
        (tmp / "trainer_state.json").write_text(json.dumps({"step": step, "tokens_seen": tokens_seen}))
        tmp.rename(run_dir / "checkpoints" / f"step-{step}")
        runs.prune_checkpoints(run_dir, keep)
    acc.wait_for_everyone()


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()] if path.exists() else []


def plot_loss_curve(metrics_path: Path, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _read_jsonl(metrics_path)
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    evals = [(r["step"], r["eval_loss"]) for r in rows if "eval_loss" in r]
    fig, ax = plt.subplots(figsize=(6, 4))
    if train:
        ax.plot(*zip(*train), label="train loss")
    if evals:
        ax.plot(*zip(*evals), "o-", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
