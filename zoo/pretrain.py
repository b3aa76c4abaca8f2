"""Pretraining recipe on the engine: setup → data → model → fit → save.

`zoo pretrain DOMAIN` from scratch, `--from RUN` continually (the LR re-warms; replay mixes in an old
corpus), `--resume auto|PATH` exactly where a killed run stopped. Everything a user can get wrong
(config keys, corpus paths, objective options, an empty corpus) fails before the run dir exists.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from zoo import run as runs
from zoo.config import PretrainConfig, build_config, check_model_sizes, save_yaml, to_dict
from zoo.domain import CorpusSpec, Domain
from zoo.engine import Engine, FitResult, Plan, plot_curves, read_jsonl, stream_indices
from zoo.errors import UserError
from zoo.files import check_output_dir
from zoo.prepared import BlockStream, Recipe

EVAL_SEED = 12345
T = TypeVar("T")


@dataclass
class PreparedData:
    train: Sequence[dict[str, Any]] | None
    """Memory-mapped blocks (`zoo.prepared.Blocks`); None when streamed."""
    eval: Sequence[dict[str, Any]]
    replay: Sequence[dict[str, Any]]
    documents: int | None
    """Documents read (None when streamed: unknown until a pass ends)."""
    tokens: int | None
    stream: BlockStream | None = None


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


def cache_root(cfg: PretrainConfig) -> Path:
    """data.cache_dir, else $ZOO_HOME/cache: prepared corpora (prepared/) and trained tokenizers (tokenizers/)."""
    from zoo.files import zoo_home

    return Path(cfg.data.cache_dir) if cfg.data.cache_dir else zoo_home() / "cache"


def corpus_recipe(domain: Domain, cfg: PretrainConfig, paths: Sequence[Path], *, held_out: bool) -> Recipe:
    """What the blocks of `paths` depend on; with `held_out`, every k-th document goes to eval."""
    frac = cfg.data.eval_fraction
    every = max(2, round(1 / frac)) if held_out and frac > 0 else 0
    from zoo.families import get_family

    spec = corpus_spec(domain, cfg)
    packs = get_family(domain.model.family).packs  # else one document window per block (Longformer)
    return Recipe(spec, tuple(paths), cfg.data.seq_len, every, cfg.data.max_documents, packs)


def prepare_data(domain: Domain, cfg: PretrainConfig, tokenizer: Any) -> PreparedData:
    """The corpus as packed blocks: from data.prepared, from the cache (built on first use, silently:
    `zoo data prepare` shows progress), or streamed."""
    from zoo.prepared import BlockStream, load, prepared, stream_blocks, tokenizer_fingerprint

    if cfg.data.streaming:
        recipe = corpus_recipe(domain, cfg, corpus_paths(domain, cfg), held_out=True)
        stream = BlockStream(recipe, tokenizer, cfg.train.batch_size, cfg.train.seed, cfg.data.shuffle_buffer)
        n_eval = cfg.train.eval_batches * cfg.train.batch_size
        held = (
            list(itertools.islice(stream_blocks(recipe, tokenizer, "eval"), n_eval))
            if recipe.eval_every
            else []
        )
        return PreparedData(None, held, [], None, None, stream)
    if cfg.data.prepared:
        main = load(Path(cfg.data.prepared))
        check_prepared_fits(domain, main.folder, main.meta, cfg, tokenizer_fingerprint(tokenizer))
    else:
        recipe = corpus_recipe(domain, cfg, corpus_paths(domain, cfg), held_out=True)
        cache = cache_root(cfg) / "prepared"
        main = prepared(recipe, tokenizer, cache, num_proc=cfg.data.num_proc)
    replay: Sequence[dict[str, Any]] = []
    if cfg.data.replay_corpus and cfg.data.replay_ratio > 0:
        recipe = corpus_recipe(domain, cfg, replay_paths(cfg), held_out=False)
        cache = cache_root(cfg) / "prepared"
        replay = prepared(recipe, tokenizer, cache, num_proc=cfg.data.num_proc).train
    return PreparedData(main.train, main.eval, replay, main.documents, main.tokens)


def prepare_folder(domain: Domain, cfg: PretrainConfig, out: Path, report: Callable[[str], None]) -> None:
    """`zoo data prepare`: the corpus tokenized and packed into `out` (checked before anything is read)."""
    from zoo.prepared import build

    check_output_dir(out)
    recipe = corpus_recipe(domain, cfg, corpus_paths(domain, cfg), held_out=True)
    tokenizer = obtain_tokenizer(domain, cfg, None)
    build(recipe, tokenizer, out, num_proc=cfg.data.num_proc, progress=True, report=report)


def check_prepared_fits(
    domain: Domain, folder: Path, meta: dict[str, Any], cfg: PretrainConfig, tokenizer_sha: str
) -> None:
    """data.prepared must have been built with this run's seq_len, packing policy and tokenizer."""
    from zoo.families import get_family

    if meta["seq_len"] != cfg.data.seq_len:
        raise UserError(
            f"prepared data '{folder}' holds blocks of {meta['seq_len']} tokens but data.seq_len="
            f"{cfg.data.seq_len}; pass data.seq_len={meta['seq_len']} or prepare the corpus again"
        )
    packs = get_family(domain.model.family).packs
    if meta.get("packs", True) != packs:
        raise UserError(
            f"prepared data '{folder}' was cut for a model family that "
            f"{'does not pack' if packs else 'packs'} several documents per block, unlike "
            f"'{domain.model.family}'; prepare the corpus again for this domain"
        )
    if meta["tokenizer"] != tokenizer_sha:
        raise UserError(
            f"prepared data '{folder}' was tokenized with another tokenizer than this run's; drop "
            "tokenizer.path / --from to use the one saved in it, or prepare again with --tokenizer"
        )


def global_batch(data: PreparedData, cfg: PretrainConfig, step: int) -> list[dict[str, Any]]:
    if data.stream is not None:
        return data.stream.batch(step)
    assert data.train is not None
    b = cfg.train.batch_size
    n_replay = round(b * cfg.data.replay_ratio) if data.replay else 0
    n_main = b - n_replay
    blocks = take(data.train, stream_indices(len(data.train), step * n_main, n_main, cfg.train.seed))
    if n_replay:
        idx = stream_indices(len(data.replay), step * n_replay, n_replay, cfg.train.seed + 7)
        blocks += take(data.replay, idx)
    return blocks


def take(blocks: Sequence[dict[str, Any]], indices: Sequence[int]) -> list[dict[str, Any]]:
    """Blocks at `indices` (one read for a memory-mapped `Blocks`)."""
    reader = getattr(blocks, "take", None)
    return reader(indices) if reader is not None else [blocks[i] for i in indices]


# ------------------------------------------------------------------------------------ tokenizer / model


def obtain_tokenizer(domain: Domain, cfg: PretrainConfig, from_model: Path | None) -> Any:
    """tokenizer.path, else the model's (--from), else data.prepared's, else the domain recipe trained on the
    corpus (kept in the cache: a second run on the same corpus does not read it again to train one)."""
    if cfg.tokenizer.path:
        path = Path(cfg.tokenizer.path)
        if not path.is_dir():
            raise UserError(f"tokenizer directory '{path}' does not exist")
        return runs.load_tokenizer(path)
    if from_model is not None:
        return runs.load_tokenizer(from_model)
    if cfg.data.prepared:
        return runs.load_tokenizer(Path(cfg.data.prepared) / "tokenizer")
    from zoo.prepared import cached_folder, corpus_fingerprint, digest
    from zoo.tokenizer import load_recipe, train_tokenizer

    recipe = load_recipe(cfg.tokenizer.recipe or domain.tokenizer)
    paths, spec = corpus_paths(domain, cfg), corpus_spec(domain, cfg)
    key = digest(
        [repr(recipe), cfg.tokenizer.vocab_size, cfg.data.max_documents, spec.format, spec.options]
        + corpus_fingerprint(paths)
    )

    def train(folder: Path) -> None:
        docs = documents(spec, paths, cfg.data.max_documents)
        train_tokenizer(recipe, docs, vocab_size=cfg.tokenizer.vocab_size).save_pretrained(folder)

    return runs.load_tokenizer(cached_folder(cache_root(cfg) / "tokenizers" / key, train))


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
    if cfg.data.prepared:
        from zoo.prepared import load

        load(Path(cfg.data.prepared))  # whole, and of this zoo's format
    from_path = (
        runs.resolve_model(cfg.from_model, domain, cfg.allow_foreign_model) if cfg.from_model else None
    )
    quiet_transformers()
    engine = Engine(cfg.train, quiet=quiet)
    # The main process trains the tokenizer and builds the cache; the others then find both and memory-map.
    tokenizer, data = main_process_first(engine, lambda: _tokenizer_and_data(domain, cfg, from_path))
    objective = build_domain_objective(domain, cfg, tokenizer)
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


def _tokenizer_and_data(
    domain: Domain, cfg: PretrainConfig, from_path: Path | None
) -> tuple[Any, PreparedData]:
    tokenizer = obtain_tokenizer(domain, cfg, from_path)
    return tokenizer, prepare_data(domain, cfg, tokenizer)


def main_process_first(engine: Engine, work: Callable[[], T]) -> T:
    """`work()` on the main process, then on the others (which find what it cached). A UserError on the
    main process stops every process with it, instead of leaving the others waiting at the barrier."""
    if engine.world == 1:
        return work()
    from accelerate.utils import broadcast_object_list

    failure: list[Any] = [None]
    if engine.is_main:
        try:
            result = work()
        except UserError as err:
            failure = [str(err)]
    engine.wait()
    broadcast_object_list(failure, from_process=0)
    if failure[0] is not None:
        raise UserError(failure[0])
    if not engine.is_main:
        result = work()
    engine.wait()
    return result


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
            train_blocks=len(data.train) if data.train is not None else None,
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
