"""`zoo search`: AutoPEFT's multi-objective configuration search (arXiv 2301.12132), on optuna.

A trial is one `autopeft` configuration (zoo.adapters.autopeft), fine-tuned on the train split (a seeded
subset at low fidelity) and scored on **dev** only: the test split is dropped before anything trains.
Objectives: the task's primary metric on dev (maximised) and the % of trainable parameters counted from
the adapted model (minimised). The space is made of blocks: the anchor's module sizes {0, 1, 3, …, d} for
the serial adapter, parallel adapter and prefix, its per-layer bits, plus LoRA's rank and DSEE's N.

The study lives in optuna RDB storage (SQLite `$ZOO_HOME/search.sqlite` by default, any SQLAlchemy URL:
PostgreSQL for several machines). Worker processes heartbeat their running trial: a trial whose process
died is marked failed once its heartbeat is stale and re-queued with the same configuration
(`RetryFailedTrialCallback`), so a killed search continues with `--resume` and loses nothing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import socket
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.config import FinetuneConfig
from zoo.domain import Domain
from zoo.errors import UserError
from zoo.search_report import (
    completed,
    config_text,
    dominating,
    front_rows,
    front_text,
    hypervolume,
    pareto,
    write_reports,
)

SAMPLERS = ("gp", "tpe", "random")
SPACE_KEY = "zoo_space"


# ------------------------------------------------------------------------------------------------ space


def module_sizes(dim: int) -> list[int]:
    """The anchor's sizes: dim / 2^k down to 1, and 0 (off): {0, 1, 3, …, 768} for BERT-base."""
    return sorted({0} | {dim >> k for k in range(11) if dim >> k >= 1})


@dataclass(frozen=True)
class Dims:
    hidden: int
    layers: int


@dataclass(frozen=True)
class Block:
    """A part of the space: the choices of each optuna parameter it adds, and how they become config."""

    choices: Callable[[Dims], dict[str, list[int]]]
    config: Callable[[dict[str, int], Dims], dict[str, Any]]


def _one(key: str, choices: Callable[[Dims], list[int]]) -> Block:
    return Block(lambda d: {key: choices(d)}, lambda p, d: {key: p[key]})


BLOCKS: dict[str, Block] = {
    "serial": _one("serial", lambda d: module_sizes(d.hidden)),
    "parallel": _one("parallel", lambda d: module_sizes(d.hidden)),
    "prefix": _one("prefix", lambda d: module_sizes(d.hidden)),
    "layers": Block(
        lambda d: {f"layer_{i}": [0, 1] for i in range(d.layers)},
        lambda p, d: {"layers": [i for i in range(d.layers) if p[f"layer_{i}"]]},
    ),
    "lora": Block(
        lambda d: {"lora_r": [r for r in (0, 1, 2, 4, 8, 16, 32, 64) if r <= d.hidden]},
        lambda p, d: {"lora_r": p["lora_r"]},
    ),
    "dsee": Block(lambda d: {"dsee_n": [0, 8, 16, 32, 64]}, lambda p, d: {"dsee_n": p["dsee_n"]}),
}
DEFAULT_SPACE = ("serial", "parallel", "prefix", "layers", "lora", "dsee")


def parse_space(text: str | None) -> list[str]:
    names = [n.strip() for n in (text or ",".join(DEFAULT_SPACE)).split(",") if n.strip()]
    unknown = [n for n in names if n not in BLOCKS]
    if unknown or not names:
        raise UserError(
            f"--space: unknown search-space block {', '.join(repr(n) for n in unknown) or '(none given)'}; "
            f"choose from {', '.join(BLOCKS)}"
        )
    return list(dict.fromkeys(names))


def space_choices(blocks: Sequence[str], dims: Dims) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for name in blocks:
        out.update(BLOCKS[name].choices(dims))
    return out


def trial_config(blocks: Sequence[str], params: dict[str, int], dims: Dims) -> dict[str, Any]:
    """The `autopeft` options of one point of the space."""
    config: dict[str, Any] = {}
    for name in blocks:
        config.update(BLOCKS[name].config(params, dims))
    if "layers" in config and not config["layers"]:  # every bit off: no adapter anywhere
        config["serial"] = config["parallel"] = 0
        config["layers"] = None
    return config


# ------------------------------------------------------------------------------------------------ options


@dataclass
class SearchOptions:
    trials: int = 20
    """Trials in the study (completed ones count; a failed trial is re-queued, not counted)."""
    sampler: str = "gp"
    """gp: optuna's GPSampler (multi-objective: log-EHVI); tpe: multi-objective TPE; random."""
    startup: int = 10
    """Random trials before the GP/TPE model is used."""
    space: list[str] = field(default_factory=lambda: list(DEFAULT_SPACE))
    storage: str | None = None
    study: str | None = None
    resume: bool = False
    workers: int = 1
    train_fraction: float = 1.0
    """Low fidelity: the seeded share of the train split each trial trains on."""
    keep_runs: bool = True
    """Keep each trial's run directory (checkpoints, metrics) or delete it once scored."""
    seed: int = 0
    heartbeat: int = 10
    """Seconds between a running trial's heartbeats; a trial silent for 2× this is failed and retried."""
    reference: tuple[float, float] = (0.0, 20.0)
    """Hypervolume reference point: (dev score, % trainable)."""
    retrain_pareto: int = 0
    retrain_seeds: int = 3
    compare: list[dict[str, Any]] = field(default_factory=list)
    """Hand-picked `autopeft` configurations scored like a trial (same subset, budget, dev) after the search."""
    quiet: bool = False

    def check(self) -> None:
        if self.sampler not in SAMPLERS:
            raise UserError(f"--sampler {self.sampler}: choose from {', '.join(SAMPLERS)}")
        if not 0.0 < self.train_fraction <= 1.0:
            raise UserError(f"--train-fraction {self.train_fraction}: must be in (0, 1]")
        for name in ("trials", "workers", "heartbeat", "retrain_seeds"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1")


# ------------------------------------------------------------------------------------------------ storage


def default_storage() -> str:
    from zoo.leaderboard_db import zoo_home

    home = zoo_home()
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'search.sqlite'}"


def open_storage(url: str | None, heartbeat: int) -> Any:
    """optuna RDB storage with heartbeats and retry of dead trials; an unreachable URL is a UserError."""
    import optuna
    import sqlalchemy
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    from sqlalchemy.engine import make_url

    text = url or default_storage()
    if "://" not in text:
        text = f"sqlite:///{Path(text).expanduser()}"
    try:
        parsed = make_url(text)
    except sqlalchemy.exc.ArgumentError:
        raise UserError(
            f"--storage '{text}' is not a database URL (postgresql://user@host/db or sqlite:///FILE)"
        ) from None
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    shown = parsed.render_as_string(hide_password=True)
    engine_kwargs = (
        {"connect_args": {"connect_timeout": 10}} if parsed.get_backend_name() == "postgresql" else {}
    )
    try:
        return optuna.storages.RDBStorage(
            parsed.render_as_string(hide_password=False),
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat,
            grace_period=2 * heartbeat,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3),
        )
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError) as exc:
        reason = str(exc.orig if getattr(exc, "orig", None) else exc).strip().splitlines()[0]
        raise UserError(f"cannot reach the search storage {shown}: {reason}; check --storage") from None
    except ModuleNotFoundError as exc:
        raise UserError(
            f"--storage {shown}: no driver for it ({exc.name}); use sqlite or postgresql"
        ) from None


def make_sampler(opts: SearchOptions) -> Any:
    import optuna

    if opts.sampler == "random":
        return optuna.samplers.RandomSampler(seed=opts.seed)
    if opts.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=opts.seed, n_startup_trials=opts.startup, multivariate=True)
    return optuna.samplers.GPSampler(seed=opts.seed, n_startup_trials=opts.startup)


def open_study(opts: SearchOptions, name: str, signature: dict[str, Any], run_dir: Path | None) -> Any:
    """Create the study, or with `resume` load it; its stored space must equal this one."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    storage = open_storage(opts.storage, opts.heartbeat)
    existing = {s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    if name in existing:
        if not opts.resume:
            raise UserError(
                f"search study '{name}' already exists in {storage_shown(opts.storage)}; "
                "add --resume to continue it or name a new one with --study"
            )
        study = optuna.load_study(study_name=name, storage=storage, sampler=make_sampler(opts))
        stored = study.user_attrs.get(SPACE_KEY)
        if stored != signature:
            raise UserError(
                f"search study '{name}' was created with another search space or task "
                f"({_differences(stored, signature)}); name a new study with --study"
            )
        return study
    if opts.resume:
        raise UserError(
            f"--resume: no search study '{name}' in {storage_shown(opts.storage)}; drop --resume to start it"
        )
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        sampler=make_sampler(opts),
        directions=["maximize", "minimize"],
    )
    study.set_user_attr(SPACE_KEY, signature)
    if run_dir is not None:
        study.set_user_attr("run_dir", str(run_dir))
    return study


def storage_shown(url: str | None) -> str:
    from sqlalchemy.engine import make_url

    text = url or default_storage()
    try:
        return make_url(text).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for a message
        return text


def _differences(stored: dict[str, Any] | None, new: dict[str, Any]) -> str:
    if not stored:
        return "it records no zoo space"
    keys = sorted(k for k in set(stored) | set(new) if stored.get(k) != new.get(k))
    return "; ".join(f"{k}: {stored.get(k)} there, {new.get(k)} here" for k in keys)


# ------------------------------------------------------------------------------------------------ trials


class TrialRunner:
    """Loads the task once (train subset + dev; never test) and fine-tunes one configuration per trial."""

    def __init__(self, domain: Domain, cfg: FinetuneConfig, opts: SearchOptions, run_dir: Path) -> None:
        from zoo.engine import Engine
        from zoo.finetune import encode_task, load_backbone, read_task

        self.domain, self.cfg, self.opts, self.run_dir = domain, cfg, opts, run_dir
        task = domain.task(cfg.tasks[0])
        data = read_task(domain, task, cfg, test=False)
        if "dev" not in data.splits:
            raise UserError(f"zoo search scores on dev: task '{task.name}' has no dev split")
        train = list(data.splits["train"])
        if opts.train_fraction < 1.0:
            keep = max(1, round(len(train) * opts.train_fraction))
            picked = sorted(random.Random(opts.seed).sample(range(len(train)), keep))
            train = [train[i] for i in picked]
        data = dataclasses.replace(data, splits={"train": train, "dev": data.splits["dev"]})
        self.backbone = load_backbone(domain, cfg)
        self.data = encode_task(data, cfg, self.backbone.tokenizer)
        self.engine = Engine(cfg.train, quiet=True)
        self.fixed = {k: v for k, v in cfg.method.items() if k != "name"}

    def dims(self) -> Dims:
        from zoo.finetune import build_task_model

        model = build_task_model(self.domain, self.data, self.backbone, 0)
        return Dims(model.config.hidden_size, model.config.num_hidden_layers)

    def adapted(self, config: dict[str, Any], workdir: Path) -> tuple[Any, Any, Any]:
        """(method, the task model with the configuration applied, its SeedRun). The modules' init depends
        on the seed only, not on what earlier trials drew from the global generator."""
        import torch

        from zoo.adapters.base import get_method, method_config
        from zoo.finetune import SeedRun, build_task_model

        method = get_method("autopeft")
        mcfg = method_config(method, {**self.fixed, **config})
        seed, pad = self.cfg.seeds[0], self.backbone.tokenizer.pad_token_id
        run = SeedRun(self.engine, self.cfg, self.data, method, mcfg, workdir, seed, pad, False)
        model = build_task_model(self.domain, self.data, self.backbone, seed).to(self.engine.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return method, method.apply(model, mcfg, run.context(self.backbone)), run

    def __call__(self, config: dict[str, Any], label: str) -> tuple[float, float, dict[str, Any]]:
        """(dev primary metric, % trainable, the method's summary) of one configuration; its run dir is
        RUN/<label>."""
        workdir = self.run_dir / label
        workdir.mkdir(parents=True, exist_ok=True)
        method, model, run = self.adapted(config, workdir)
        summary = method.describe(model)
        model = run.train(model)
        dev = run.evaluate(model, "dev")
        score = float(dev[self.data.task.primary_metric])
        if self.opts.keep_runs:
            (workdir / "trial.json").write_text(
                json.dumps({"config": config, "dev": dev, "summary": summary}, indent=2, default=str)
            )
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        return score, float(summary["trainable_percent"]), summary


def objective(
    runner: TrialRunner, blocks: Sequence[str], choices: dict[str, list[int]], dims: Dims
) -> Callable:
    worker = f"{socket.gethostname()}:{os.getpid()}"

    def run(trial: Any) -> tuple[float, float]:
        params = {k: trial.suggest_categorical(k, v) for k, v in choices.items()}
        config = trial_config(blocks, params, dims)
        trial.set_user_attr("config", config)
        trial.set_user_attr("worker", worker)
        score, percent, summary = runner(config, f"trial-{trial.number:04d}")
        trial.set_user_attr("trainable_params", int(summary["trainable_params"]))
        return score, percent

    return run


def budget_left(study: Any, trials: int) -> bool:
    from optuna.trial import TrialState

    states = [t.state for t in study.get_trials(deepcopy=False)]
    return states.count(TrialState.COMPLETE) + states.count(TrialState.RUNNING) < trials


# ------------------------------------------------------------------------------------------------ recipe


@dataclass
class SearchOutcome:
    study: str
    storage: str
    run_dir: Path
    metric: str
    front: list[dict[str, Any]]
    hypervolume: float
    completed: int
    ran_here: list[int]
    reports: dict[str, Path]
    retrained: list[Any] = field(default_factory=list)
    compared: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        lines = [
            f"search study '{self.study}' in {self.storage}: {self.completed} completed trials, "
            f"hypervolume {self.hypervolume:.5f}",
            front_text(self.front, self.metric),
            f"trials run by this process: {self.ran_here}",
            f"reports: {self.reports['png']}, {self.reports['html']}, {self.reports['json']}",
        ]
        for c in self.compared:
            lines.append(
                f"hand-picked {config_text(c['config'])}: {c['trainable_percent']:.3f}% trainable, dev "
                f"{self.metric} {c['dev']:.4f} — "
                + (
                    f"dominated by front trial {c['dominated_by']}"
                    if c["dominated_by"] is not None
                    else "not dominated"
                )
            )
        lines += [o.summary() for o in self.retrained]
        return "\n".join(lines)


def _signature(
    domain: Domain, cfg: FinetuneConfig, opts: SearchOptions, choices: dict[str, list[int]]
) -> dict[str, Any]:
    """What must match for a study to be continued: the task, model, data, fidelity and the space."""
    return {
        "domain": domain.name,
        "task": cfg.tasks[0],
        "model": cfg.model,
        "data": str(cfg.data) if cfg.data else None,
        "blocks": list(opts.space),
        "choices": {k: list(v) for k, v in choices.items()},
        "fixed": {k: v for k, v in cfg.method.items() if k != "name"},
        "train_fraction": opts.train_fraction,
        "seed": cfg.seeds[0],
        "train": dataclasses.asdict(cfg.train),
        "task_options": dataclasses.asdict(cfg.task),
    }


def _trial_cfg(cfg: FinetuneConfig, trial_epochs: float | None) -> FinetuneConfig:
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train), task=dataclasses.replace(cfg.task))
    if trial_epochs is not None:
        cfg.train.epochs = trial_epochs
    cfg.seeds = cfg.seeds[:1]
    return cfg


def _check_method(cfg: FinetuneConfig) -> None:
    from zoo.adapters.base import get_method, method_config

    name = cfg.method.get("name", "autopeft")
    if name not in ("autopeft", "full"):  # "full" is the finetune default: no --method given
        raise UserError(f"zoo search explores 'autopeft' configurations; drop --method {name}")
    cfg.method = {k: v for k, v in cfg.method.items() if k != "name"}
    method_config(get_method("autopeft"), cfg.method)  # fixed options (e.g. method.prefix_hidden=64) valid


def search(
    domain: Domain,
    cfg: FinetuneConfig,
    opts: SearchOptions,
    *,
    trial_epochs: float | None = None,
    out: Path | None = None,
) -> SearchOutcome:
    """Run (or continue) the study until it holds `opts.trials` completed trials; report its front."""
    from zoo import run as runs
    from zoo.families import quiet_transformers

    opts.check()
    quiet_transformers()
    cfg.domain = domain.name
    if not cfg.tasks or len(cfg.tasks) != 1:
        raise UserError(
            f"name one task with --task (tasks of {domain.name}: {', '.join(t.name for t in domain.tasks)})"
        )
    _check_method(cfg)
    from zoo.adapters.base import get_method, method_config

    for config in opts.compare:  # a bad hand-picked option fails before any trial
        method_config(get_method("autopeft"), {**cfg.method, **config})
    trial_cfg = _trial_cfg(cfg, trial_epochs)
    runner = TrialRunner(domain, trial_cfg, opts, Path("."))
    dims = runner.dims()
    choices = space_choices(opts.space, dims)
    name = opts.study or f"{domain.name}-{cfg.tasks[0]}"
    # A new study gets a new run dir; a resumed one (or a worker joining it) keeps the study's or --out.
    planned = None if opts.resume else runs.new_run_dir(domain.name, "search", out)
    study = open_study(opts, name, _signature(domain, trial_cfg, opts, choices), planned)
    run_dir = Path(out) if out is not None else Path(study.user_attrs.get("run_dir") or planned)
    run_dir.mkdir(parents=True, exist_ok=True)
    runner.run_dir = run_dir
    metric = runner.data.task.primary_metric
    if opts.workers > 1:  # N equal worker processes; this one shows the progress
        workers = _spawn_workers(domain, trial_cfg, opts, name, run_dir, trial_epochs)
        ran = _work(study, None, opts, choices, dims, metric, lambda: any(w.is_alive() for w in workers))
        failed = [w.exitcode for w in workers if w.exitcode]
        if failed:
            raise UserError(
                f"a search worker process exited with status {failed[0]}; its trial is re-queued, continue with --resume"
            )
    else:
        ran = _work(study, runner, opts, choices, dims, metric)
    reports = write_reports(study, run_dir, metric, opts.reference)
    trials = completed(study)
    hv = hypervolume([tuple(t.values) for t in trials], opts.reference)
    outcome = SearchOutcome(
        name, storage_shown(opts.storage), run_dir, metric, front_rows(study), hv, len(trials), ran, reports
    )
    if opts.compare:
        outcome.compared = compare_configs(runner, opts.compare, outcome.front)
        (run_dir / "compare.json").write_text(json.dumps(outcome.compared, indent=2))
    if opts.retrain_pareto:
        outcome.retrained = retrain_front(domain, cfg, outcome.front, opts, run_dir)
    return outcome


def _work(
    study: Any,
    runner: TrialRunner | None,
    opts: SearchOptions,
    choices: dict[str, list[int]],
    dims: Dims,
    metric: str,
    watching: Callable[[], bool] | None = None,
) -> list[int]:
    """This process's share: trials until the study has enough (or, with `watching`, none: the bar follows
    other processes while `watching()` is true); a progress bar with the front and hypervolume."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    fn = objective(runner, opts.space, choices, dims) if runner is not None else None
    ran: list[int] = []

    def note(study: Any, trial: Any) -> None:
        ran.append(trial.number)

    with Progress(
        TextColumn("search"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
        disable=opts.quiet,
    ) as bar:  # fmt: skip
        task = bar.add_task("", total=opts.trials)

        def refresh() -> None:
            trials = completed(study)
            points = [tuple(t.values) for t in trials]
            best = max((p[0] for p in points), default=float("nan"))
            bar.update(
                task,
                completed=min(len(trials), opts.trials),
                description=f"front {len(pareto(points))} · HV {hypervolume(points, opts.reference):.4f} · best dev {metric} {best:.4f}",
            )

        refresh()
        while watching is not None and watching():
            time.sleep(2)
            refresh()
        while fn is not None and budget_left(study, opts.trials):
            study.optimize(fn, n_trials=1, callbacks=[note], gc_after_trial=True)
            refresh()
    return ran


def _spawn_workers(
    domain: Domain,
    cfg: FinetuneConfig,
    opts: SearchOptions,
    name: str,
    run_dir: Path,
    trial_epochs: float | None,
) -> list[Any]:
    """opts.workers processes on this machine, each loading the study and taking trials."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    job = (
        domain.name,
        dataclasses.asdict(cfg),
        dataclasses.replace(opts, resume=True, workers=1, quiet=True, retrain_pareto=0),
        name,
        str(run_dir),
    )
    procs = [ctx.Process(target=_worker_main, args=job, daemon=False) for _ in range(opts.workers)]
    for p in procs:
        p.start()
    return procs


def _worker_main(domain_name: str, cfg: dict[str, Any], opts: SearchOptions, name: str, run_dir: str) -> None:
    from zoo.config import build_config
    from zoo.families import quiet_transformers
    from zoo.registry import get_domain

    quiet_transformers()
    domain = get_domain(domain_name)
    fcfg = build_config(FinetuneConfig, cfg)
    runner = TrialRunner(domain, fcfg, opts, Path(run_dir))
    dims = runner.dims()
    choices = space_choices(opts.space, dims)
    study = open_study(opts, name, _signature(domain, fcfg, opts, choices), None)
    _work(study, runner, opts, choices, dims, runner.data.task.primary_metric)


def parse_config(text: str) -> dict[str, Any]:
    """'lora_r=16 dsee_n=64' → {'lora_r': 16, 'dsee_n': 64} (autopeft options, space-separated)."""
    from zoo.config import parse_override

    return dict(parse_override(part) for part in text.split())


def compare_configs(
    runner: TrialRunner, configs: Sequence[dict[str, Any]], front: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    out = []
    for i, config in enumerate(configs):
        score, percent, summary = runner(config, f"compare-{i}")
        out.append(
            {
                "config": config,
                "dev": score,
                "trainable_percent": percent,
                "trainable_params": int(summary["trainable_params"]),
                "dominated_by": dominating(front, score, percent),
            }
        )
    return out


def retrain_front(
    domain: Domain, cfg: FinetuneConfig, front: list[dict[str, Any]], opts: SearchOptions, run_dir: Path
) -> list[Any]:
    """The K best-dev front configurations, fine-tuned on the whole train split with `retrain_seeds` seeds;
    test scored once per seed and recorded on the leaderboard as method 'autopeft' (the config in its run)."""
    from zoo.finetune import finetune

    best = sorted(front, key=lambda r: -r["dev"])[: opts.retrain_pareto]
    outcomes = []
    for row in best:
        rcfg = dataclasses.replace(
            cfg, train=dataclasses.replace(cfg.train), task=dataclasses.replace(cfg.task)
        )
        rcfg.method = {"name": "autopeft", **cfg.method, **row["config"]}
        rcfg.seeds = list(range(opts.seed, opts.seed + opts.retrain_seeds))
        out = run_dir / f"retrain-trial-{row['trial']:04d}"
        outcomes.append(finetune(domain, rcfg, out=out, quiet=opts.quiet))
    return outcomes
