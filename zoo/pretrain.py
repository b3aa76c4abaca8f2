"""Pretraining recipe on the engine: setup → data → model → fit → save.

`zoo pretrain DOMAIN` from scratch, `--from RUN` continually (the LR re-warms; replay mixes in an old
corpus), `--resume auto|PATH` exactly where a killed run stopped. Everything a user can get wrong
(config keys, corpus paths, objective options, an empty corpus) fails before the run dir exists.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo import run as runs
from zoo.config import PretrainConfig, build_config, check_model_sizes, save_yaml, to_dict
from zoo.domain import CorpusSpec, Domain
from zoo.engine import Engine, FitResult, Plan, plot_curves, read_jsonl, stream_indices
from zoo.errors import UserError
from zoo.files import check_output_dir

EVAL_SEED = 12345


@dataclass
class PreparedData:
    train: list[dict[str, Any]]
    eval: list[dict[str, Any]]
    replay: list[dict[str, Any]]
    documents: int
    tokens: int


# ----------------------------------------------------------------------------------------------- data


def corpus_spec(domain: Domain, cfg: PretrainConfig) -> CorpusSpec:
    """The domain's reader with the run's `corpus.*` options over its defaults."""
    return CorpusSpec(domain.corpus.format, {**domain.corpus.options, **cfg.corpus})


def objective_choice(domain: Domain, cfg: PretrainConfig) -> tuple[str, dict[str, Any]]:
    """(objective name, options): the domain's objective with the run's `objective.*` options over its
    defaults, or another registered objective named by `objective.name` (e.g. `mlm`, the control of the
    legal domain's `rtd`) with the run's options only."""
    options = dict(cfg.objective)
    name = str(options.pop("name", domain.objective.name))
    defaults = domain.objective.options if name == domain.objective.name else {}
    return name, {**defaults, **options}


def build_domain_objective(domain: Domain, cfg: PretrainConfig, tokenizer: Any) -> Any:
    """The run's objective (`objective_choice`) built for `tokenizer`."""
    from zoo.objectives import build_objective

    return build_objective(*objective_choice(domain, cfg), tokenizer)


def corpus_paths(domain: Domain, cfg: PretrainConfig) -> list[Path]:
    from zoo.files import check_existing_path

    paths = [Path(p) for p in cfg.data.corpus] or [domain.sample_corpus]
    return [check_existing_path(p, "corpus") for p in paths]


def replay_paths(cfg: PretrainConfig) -> list[Path]:
    from zoo.files import check_existing_path

    return [check_existing_path(p, "replay corpus") for p in cfg.data.replay_corpus]


def documents(spec: CorpusSpec, paths: Sequence[Path], limit: int | None) -> Iterator[str]:
    from zoo.corpus import read_corpus

    for i, doc in enumerate(read_corpus(spec, paths)):
        if limit is not None and i >= limit:
            return
        yield doc


def tokenize_documents(tokenizer: Any, docs: Iterator[str], batch: int = 512) -> Iterator[dict[str, list]]:
    from zoo.tokenizer import word_start_mask

    def encode(texts: list[str]) -> list[dict[str, list]]:
        enc = tokenizer(texts, add_special_tokens=True, truncation=False, return_attention_mask=False)
        return [
            {"input_ids": ids, "word_starts": word_start_mask(tokenizer, ids)} for ids in enc["input_ids"]
        ]

    buf: list[str] = []
    for doc in docs:
        buf.append(doc)
        if len(buf) == batch:
            yield from encode(buf)
            buf = []
    if buf:
        yield from encode(buf)


def prepare_data(domain: Domain, cfg: PretrainConfig, tokenizer: Any) -> PreparedData:
    """Tokenize and pack the corpus; every k-th document is held out for eval loss. A model family that
    cannot isolate packed documents (`ModelFamily.packs`) gets one document window per block instead."""
    from zoo.families import get_family
    from zoo.packing import pack_documents, window_documents

    blocks = pack_documents if get_family(domain.model.family).packs else window_documents

    every = max(2, round(1 / cfg.data.eval_fraction)) if cfg.data.eval_fraction > 0 else 0
    spec = corpus_spec(domain, cfg)
    train_docs: list[dict[str, list]] = []
    eval_docs: list[dict[str, list]] = []
    docs = documents(spec, corpus_paths(domain, cfg), cfg.data.max_documents)
    for i, doc in enumerate(tokenize_documents(tokenizer, docs)):
        (eval_docs if every and i % every == every - 1 else train_docs).append(doc)
    if not train_docs:
        raise UserError("the corpus holds no documents to train on (check --corpus and data.max_documents)")
    pad, seq_len = tokenizer.pad_token_id, cfg.data.seq_len
    replay: list[dict[str, Any]] = []
    if cfg.data.replay_corpus and cfg.data.replay_ratio > 0:
        rpaths = replay_paths(cfg)
        replay_docs = tokenize_documents(tokenizer, documents(spec, rpaths, cfg.data.max_documents))
        replay = list(blocks(replay_docs, seq_len, pad))
    return PreparedData(
        train=list(blocks(train_docs, seq_len, pad)),
        eval=list(blocks(eval_docs, seq_len, pad)),
        replay=replay,
        documents=len(train_docs) + len(eval_docs),
        tokens=sum(len(d["input_ids"]) for d in train_docs),
    )


def global_batch(data: PreparedData, cfg: PretrainConfig, step: int) -> list[dict[str, Any]]:
    b = cfg.train.batch_size
    n_replay = round(b * cfg.data.replay_ratio) if data.replay else 0
    n_main = b - n_replay
    blocks = [data.train[i] for i in stream_indices(len(data.train), step * n_main, n_main, cfg.train.seed)]
    if n_replay:
        idx = stream_indices(len(data.replay), step * n_replay, n_replay, cfg.train.seed + 7)
        blocks += [data.replay[i] for i in idx]
    return blocks


# ------------------------------------------------------------------------------------ tokenizer / model


def obtain_tokenizer(domain: Domain, cfg: PretrainConfig, from_model: Path | None) -> Any:
    if cfg.tokenizer.path:
        path = Path(cfg.tokenizer.path)
        if not path.is_dir():
            raise UserError(f"tokenizer directory '{path}' does not exist")
        return runs.load_tokenizer(path)
    if from_model is not None:
        return runs.load_tokenizer(from_model)
    from zoo.tokenizer import load_recipe, train_tokenizer

    recipe = load_recipe(cfg.tokenizer.recipe or domain.tokenizer)
    docs = documents(corpus_spec(domain, cfg), corpus_paths(domain, cfg), cfg.data.max_documents)
    return train_tokenizer(recipe, docs, vocab_size=cfg.tokenizer.vocab_size)


def model_config(domain: Domain, cfg: PretrainConfig) -> dict[str, Any]:
    """The domain's model config with the run's `model.*` sizes over it (None keeps the domain's)."""
    merged = dict(domain.model.config)
    merged.update({k: v for k, v in to_dict(cfg.model).items() if v is not None})
    check_model_sizes(merged)
    if cfg.model.attention_window is not None:
        from zoo.families import get_family

        family = get_family(domain.model.family)
        if not family.windowed:
            raise UserError(
                f"model.attention_window: the '{family.name}' model family has no sliding-window attention; "
                "drop the key (it applies to families such as longformer)"
            )
    if merged.get("max_position_embeddings", 0) < cfg.data.seq_len:
        merged["max_position_embeddings"] = cfg.data.seq_len
    merged.setdefault("attn_implementation", "sdpa")
    return merged


def build_model(
    domain: Domain, cfg: PretrainConfig, objective: Any, tokenizer: Any, from_path: Path | None
) -> Any:
    from zoo.families import get_family

    family = get_family(domain.model.family)
    if from_path is None:
        return objective.build_model(family, model_config(domain, cfg), tokenizer, cfg.train.seed)
    model = objective.load_model(family, from_path)
    if model.get_input_embeddings().num_embeddings < len(tokenizer):
        raise UserError(
            f"model '{from_path}' has a smaller vocabulary than its tokenizer; it cannot be continued"
        )
    return model


# ---------------------------------------------------------------------------------------------- recipe


def resumed_config(domain: Domain, resume: str, out: str | Path | None) -> tuple[Path, PretrainConfig]:
    """The run to resume and its saved config (which alone reproduces it)."""
    run_dir = runs.resume_dir(domain.name, "pretrain", resume, out)
    if not runs.checkpoints(run_dir):
        raise UserError(f"--resume: '{run_dir}' has no checkpoint to resume from")
    cfg = build_config(PretrainConfig, config_file=run_dir / "config.yaml")
    cfg.tokenizer.path = str(run_dir / "tokenizer")
    return run_dir, cfg


def pretrain(
    domain: Domain,
    cfg: PretrainConfig,
    *,
    out: str | Path | None = None,
    resume: str | None = None,
    quiet: bool = False,
) -> Path:
    """Pretrain (from scratch, or continually with `cfg.from_model`) and return the run directory."""
    from zoo.families import quiet_transformers
    from zoo.objectives import objective_options

    run_dir = None
    if resume is not None:
        run_dir, cfg = resumed_config(domain, resume, out)
    elif out is not None:
        check_output_dir(out, resumable=True)
    cfg.domain = domain.name
    # Everything that can fail on user input happens before the run dir is created, the cheap checks first.
    objective_options(*objective_choice(domain, cfg))
    model_config(domain, cfg)
    corpus_paths(domain, cfg)
    replay_paths(cfg)
    from_path = (
        runs.resolve_model(cfg.from_model, domain, cfg.allow_foreign_model) if cfg.from_model else None
    )
    quiet_transformers()
    engine = Engine(cfg.train, quiet=quiet)
    tokenizer = obtain_tokenizer(domain, cfg, from_path)
    objective = build_domain_objective(domain, cfg, tokenizer)
    data = prepare_data(domain, cfg, tokenizer)
    model = build_model(domain, cfg, objective, tokenizer, from_path)
    created = run_dir is None
    if run_dir is None:
        run_dir = _start_run(engine, domain, cfg, out, tokenizer, model, data, from_path)
    elif engine.is_main:
        runs.write_info(run_dir, status="running")
    with runs.discarded_on_user_error(run_dir, created, engine.is_main):
        result = engine.fit(
            model,
            _plan(engine, domain, cfg, objective, data, tokenizer),
            run_dir,
            run_dir / "metrics.jsonl",
            resume=resume is not None,
        )
        if engine.is_main:
            _finish(run_dir, objective, result, tokenizer)
    engine.wait()
    return run_dir


def _start_run(
    engine: Engine,
    domain: Domain,
    cfg: PretrainConfig,
    out: Any,
    tokenizer: Any,
    model: Any,
    data: PreparedData,
    from_path: Path | None,
) -> Path:
    run_dir = engine.new_run_dir(domain.name, "pretrain", out)
    if engine.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        saved = dataclasses.replace(cfg, from_model=str(from_path) if from_path else None)
        save_yaml(saved, run_dir / "config.yaml")
        tokenizer.save_pretrained(run_dir / "tokenizer")
        runs.write_info(
            run_dir,
            domain=domain.name,
            verb="pretrain",
            status="running",
            training_mode="continual" if from_path else "scratch",
            from_model=str(from_path) if from_path else None,
            parameters=sum(p.numel() for p in model.parameters()),
            documents=data.documents,
            train_tokens=data.tokens,
            train_blocks=len(data.train),
            eval_blocks=len(data.eval),
            created_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
            **engine.facts(),
        )
    engine.wait()
    return run_dir


def _plan(
    engine: Engine, domain: Domain, cfg: PretrainConfig, objective: Any, data: PreparedData, tokenizer: Any
) -> Plan:
    pad = tokenizer.pad_token_id
    steps = cfg.train.max_steps
    if steps is None:
        raise UserError("pretraining needs train.max_steps")
    return Plan(
        label=f"{domain.name} pretrain",
        steps=steps,
        batch=lambda step: global_batch(data, cfg, step),
        collate=objective.collate,
        loss=objective.loss,
        units=lambda batch: int((batch["input_ids"] != pad).sum()),
        unit_name="token",
        seed=cfg.train.seed,
        evaluate=(lambda model, step: held_out_loss(engine, model, objective, data.eval, cfg))
        if data.eval
        else None,
        eval_every=cfg.train.eval_every or 0,
        save_every=cfg.train.save_every or 0,
        packed=True,
    )


def held_out_loss(
    engine: Engine, model: Any, objective: Any, blocks: list[dict[str, Any]], cfg: PretrainConfig
) -> dict[str, float]:
    """Held-out loss with fixed masking (the same seed every time), summed over processes."""
    import torch

    bs = max(1, cfg.train.batch_size // engine.world)
    totals = torch.zeros(2, device=engine.device)
    n_batches = min(cfg.train.eval_batches, math.ceil(len(blocks) / bs))
    for b in range(engine.acc.process_index, n_batches, engine.world):
        batch = objective.collate(blocks[b * bs : (b + 1) * bs], seed=EVAL_SEED + b)
        s, n = objective.loss(model, {k: v.to(engine.device) for k, v in batch.items()})
        totals += torch.stack([s.float(), torch.as_tensor(n, device=engine.device).float()])
    totals = engine.acc.reduce(totals, reduction="sum")
    loss = float(totals[0] / totals[1].clamp(min=1))
    return {"eval_loss": loss, "eval_ppl": math.exp(min(loss, 50))}


def _finish(run_dir: Path, objective: Any, result: FitResult, tokenizer: Any) -> None:
    """model/ (what the objective exports) and run.json, written last: the run is then complete."""
    final, tmp = run_dir / "model", run_dir / ".model.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    objective.export(result.model).save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    metrics = run_dir / "metrics.jsonl"
    plot_curves(metrics, run_dir / "loss.png", "eval_loss")
    evals = [r for r in read_jsonl(metrics) if "eval_loss" in r]
    runs.write_info(
        run_dir,
        status="complete",
        final_loss=result.last_loss,
        final_eval_loss=evals[-1]["eval_loss"] if evals else None,
        final_eval_ppl=evals[-1]["eval_ppl"] if evals else None,
        tokens_seen=result.units_seen,
        steps=result.steps,
        finished_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )
