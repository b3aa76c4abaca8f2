"""The `zoo` command line. Heavy imports (torch, transformers) happen inside the verbs so that
`zoo --help` starts fast."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core

from zoo.errors import UserError

app = typer.Typer(
    name="zoo",
    help="Train, adapt, evaluate and publish domain-specific foundation models.\n\n"
    "Every verb runs on the domain's embedded default when given only the domain: "
    "`zoo pretrain biomedical`, then `zoo bench biomedical --model runs/<that run>`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
tokenizer_app = typer.Typer(help="Domain tokenizers.", no_args_is_help=True)
app.add_typer(tokenizer_app, name="tokenizer")

Overrides = Annotated[
    list[str] | None,
    typer.Argument(help="Config overrides as section.key=value, e.g. train.lr=3e-4.", show_default=False),
]
ConfigFile = Annotated[
    Path | None,
    typer.Option("--config", help="YAML config (sections: see the saved config.yaml of any run)."),
]
Out = Annotated[
    Path | None, typer.Option("--out", help="Run directory (default: runs/<domain>-<verb>-<time>).")
]
CorpusOption = Annotated[
    list[Path] | None,
    typer.Option("--corpus", help="Corpus files or folders (default: the domain's embedded sample)."),
]
AllowForeign = Annotated[
    bool,
    typer.Option(
        "--allow-foreign-model",
        help="Accept a model that another domain pretrained (same model family) on purpose.",
    ),
]


def _echo(text: str) -> None:
    # Under `accelerate launch` every process runs the verb; only the main one reports.
    if os.environ.get("RANK", "0") == "0":
        typer.echo(text)


@app.command("domains")
def domains_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List domain plugins (built-in and installed third-party) with their model, objective and tasks."""
    from zoo.registry import all_domains

    good, broken = all_domains()
    rows = [
        {
            "name": d.name,
            "summary": d.summary,
            "model": d.model.family,
            "objective": d.objective.name,
            "tokenizers": list(d.tokenizers),
            "tasks": [t.name for t in d.tasks],
        }
        for d in good
    ]
    if as_json:
        _echo(json.dumps({"domains": rows, "broken": [b.__dict__ for b in broken]}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="zoo domains")
    for col in ("name", "model", "objective", "tasks", "summary"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["name"], r["model"], r["objective"], ", ".join(r["tasks"]), r["summary"])
    console = Console()
    console.print(table)
    for b in broken:
        console.print(f"[red]broken plugin[/] {b.name} ({b.target}): {b.error}")


@tokenizer_app.command("train")
def tokenizer_train(
    domain: Annotated[str, typer.Argument(help="Domain name (see `zoo domains`).")],
    out: Annotated[Path, typer.Option("--out", help="Directory to write the tokenizer to.")],
    corpus: Annotated[
        list[Path] | None,
        typer.Option("--corpus", help="Corpus files or folders (default: the domain's sample)."),
    ] = None,
    recipe: Annotated[
        str | None,
        typer.Option("--recipe", help="Recipe name in tokenizers/ (default: the domain's first)."),
    ] = None,
    vocab_size: Annotated[
        int | None, typer.Option("--vocab-size", help="Vocabulary size (default: the recipe's).")
    ] = None,
) -> None:
    """Train the domain's tokenizer recipe on a corpus and save a PreTrainedTokenizerFast directory."""
    import shutil

    from zoo.corpus import read_corpus
    from zoo.files import check_existing_path, check_output_dir
    from zoo.registry import get_domain
    from zoo.tokenizer import load_recipe, train_tokenizer

    d = get_domain(domain)
    paths = [check_existing_path(p, "corpus") for p in corpus or [d.sample_corpus]]
    check_output_dir(out)
    rec = load_recipe(recipe or d.tokenizer)
    tok = train_tokenizer(rec, read_corpus(d.corpus, paths), vocab_size=vocab_size)
    tmp = out.with_name(f".{out.name}.tmp")  # whole or absent, like a run's model/
    shutil.rmtree(tmp, ignore_errors=True)
    tok.save_pretrained(tmp)
    if out.is_dir():
        out.rmdir()
    tmp.rename(out)
    _echo(f"tokenizer '{rec.name}' with {len(tok):,} entries written to {out}")


def _refuse_options_with_resume(resume: str | None, options_given: bool) -> None:
    if resume is not None and options_given:
        raise UserError(
            "--resume continues a run with its saved config; drop the config options or start a new run"
        )


def _domain(domain: str | None, config: Path | None) -> Any:
    """The domain named on the command line, else the one a run's saved config names."""
    from zoo.registry import get_domain

    if domain is None and config is not None:
        from zoo.config import load_yaml

        domain = load_yaml(config).get("domain") or None
    if domain is None:
        raise UserError("name a domain (see `zoo domains`), or give --config with a run's config.yaml")
    return get_domain(domain)


@app.command("pretrain", context_settings={"allow_extra_args": False})
def pretrain_cmd(
    domain: Annotated[
        str | None,
        typer.Argument(
            help="Domain name (see `zoo domains`) or pkg.module:DOMAIN; optional with --config of a run.",
            show_default=False,
        ),
    ] = None,
    overrides: Overrides = None,
    config: ConfigFile = None,
    corpus: CorpusOption = None,
    from_model: Annotated[
        str | None,
        typer.Option(
            "--from", help="Continue pretraining a run or model directory (LR re-warms and re-decays)."
        ),
    ] = None,
    resume: Annotated[
        str | None,
        typer.Option("--resume", help="'auto' (latest unfinished run, or --out) or a run/checkpoint path."),
    ] = None,
    out: Out = None,
    allow_foreign_model: AllowForeign = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Pretrain a domain model from scratch (or continually with --from) with the domain's objective.

    Overrides: model.*, tokenizer.*, data.*, objective.* (e.g. objective.mask_prob=0.3), corpus.*
    (e.g. corpus.window=4096), train.* (e.g. train.max_steps=5000 train.lr=3e-4)."""
    from zoo.config import PretrainConfig, build_config

    d = _domain(domain, config)
    extra = list(overrides or [])
    if corpus:
        extra.append("data.corpus=" + ",".join(str(p) for p in corpus))
    if from_model:
        extra.append(f"from_model={from_model}")
    if allow_foreign_model:
        extra.append("allow_foreign_model=true")
    _refuse_options_with_resume(resume, bool(overrides or config or corpus or from_model))
    cfg = build_config(PretrainConfig, d.pretrain_defaults, config, extra)
    from zoo.pretrain import pretrain

    run_dir = pretrain(d, cfg, out=out, resume=resume, quiet=quiet)
    from zoo.run import read_info

    info = read_info(run_dir)
    ppl = info.get("final_eval_ppl")
    _echo(
        f"run {run_dir}: {info.get('parameters', 0):,} parameters, final loss {info.get('final_loss', float('nan')):.4f}"
        + (f", held-out perplexity {ppl:.2f}" if ppl else "")
    )


data_app = typer.Typer(help="Pretraining data: tokenize and pack a corpus once.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("prepare")
def data_prepare_cmd(
    domain: Annotated[str, typer.Argument(help="Domain name (see `zoo domains`).")],
    out: Annotated[
        Path, typer.Option("--out", help="Folder to write the prepared data to (absent or empty).")
    ],
    overrides: Overrides = None,
    corpus: CorpusOption = None,
    tokenizer: Annotated[
        Path | None,
        typer.Option(
            "--tokenizer", help="Tokenizer folder (default: train the domain's recipe on the corpus)."
        ),
    ] = None,
) -> None:
    """Tokenize and pack a corpus into memory-mapped blocks; train on them with `zoo pretrain DOMAIN
    data.prepared=OUT` (any number of runs and processes share the folder).

    Overrides: data.seq_len, data.eval_fraction, data.max_documents, data.num_proc, corpus.*, tokenizer.*."""
    from zoo.config import PretrainConfig, build_config

    d = _domain(domain, None)
    extra = list(overrides or [])
    if corpus:
        extra.append("data.corpus=" + ",".join(str(p) for p in corpus))
    if tokenizer:
        extra.append(f"tokenizer.path={tokenizer}")
    cfg = build_config(PretrainConfig, d.pretrain_defaults, None, extra)
    from zoo.pretrain import prepare_folder

    prepare_folder(d, cfg, out, report=_echo)


def _method_help() -> str:
    """`--method` help from the registry (entry-point names only: no plug-in is imported)."""
    from zoo.registry import entry_point_names

    return (
        "Tuning method (`zoo methods` lists their options): "
        + ", ".join(entry_point_names("zoo.methods"))
        + "."
    )


MethodOption = Annotated[str | None, typer.Option("--method", help=_method_help(), show_default=False)]
FinetuneOverrides = Annotated[
    list[str] | None,
    typer.Argument(
        help="Overrides section.key=value: train.* (epochs, lr, batch_size, grad_accum, …), task.* (max_length, "
        "max_train_examples, max_eval_examples), method.* (the method's options, e.g. method.r=8), select=dev.",
        show_default=False,
    ),
]
Resume = Annotated[
    str | None,
    typer.Option("--resume", help="'auto' (latest unfinished run, or --out) or a run directory."),
]


def _seed_list(first: int, count: int | None) -> str | None:
    """`--seed`/`--seeds` as the config's seeds (None: keep the config's)."""
    if count is None:
        return None if first == 0 else str(first)
    if count < 1:
        raise UserError(f"--seeds {count}: the number of seeds must be at least 1")
    return ",".join(str(s) for s in range(first, first + count))


def _finetune_cfg(d: Any, config: Path | None, overrides: list[str] | None, **flags: Any) -> Any:
    from zoo.config import FinetuneConfig, build_config

    extra = [f"{k}={v}" for k, v in flags.items() if v is not None]
    return build_config(FinetuneConfig, d.finetune_defaults, config, [*extra, *(overrides or [])])


def _run_finetune(
    verb: str,
    d: Any,
    cfg: Any,
    *,
    out: Path | None,
    resume: str | None,
    record: bool,
    quiet: bool,
    fresh: bool,
) -> None:
    _refuse_options_with_resume(resume, not fresh)
    from zoo.finetune import finetune

    _echo(finetune(d, cfg, verb=verb, out=out, resume=resume, record=record, quiet=quiet).summary())


class _WithMethodOptions(typer.core.TyperCommand):
    """`--help` ends with every registered method and its options. Built only when help is shown:
    listing options imports the method plug-ins (and torch), which the CLI otherwise defers."""

    def format_epilog(self, ctx: Any, formatter: Any) -> None:
        super().format_epilog(ctx, formatter)
        from zoo.adapters.base import METHODS, options_table

        good, broken = METHODS.all()
        with formatter.section("Methods (set options as method.KEY=VALUE)"):
            for name, method in good.items():
                rows = [
                    (f"method.{o[0]}={o[2]}", f"{o[1]}: {o[3]}") for o in options_table(method.config_cls)
                ]
                formatter.write_text(f"{name}: {method.summary}")
                if rows:
                    with formatter.indentation():
                        formatter.write_dl(rows)
            for b in broken:
                formatter.write_text(f"{b.name}: broken plug-in ({b.error})")


@app.command("finetune", cls=_WithMethodOptions)
def finetune_cmd(
    domain: Annotated[
        str | None,
        typer.Argument(help="Domain name; optional with --config of a run.", show_default=False),
    ] = None,
    task: Annotated[str | None, typer.Option("--task", help="Task name (see `zoo domains`).")] = None,
    from_model: Annotated[
        str | None,
        typer.Option(
            "--from", help="Run or model directory (default: random init, the no-pretraining baseline)."
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Task data dir (with train/dev/test files) or its parent (default: embedded sample).",
        ),
    ] = None,
    method: MethodOption = None,
    seed: Annotated[int, typer.Option("--seed", help="First fine-tuning seed.")] = 0,
    seeds: Annotated[
        int | None,
        typer.Option(
            "--seeds", help="Number of seeds, starting at --seed (mean ± std is recorded; default 1)."
        ),
    ] = None,
    init: Annotated[
        str | None,
        typer.Option(
            "--init",
            help="'pretrained' weights of --from (default), or 'random': same architecture and tokenizer, fresh weights.",
        ),
    ] = None,
    overrides: FinetuneOverrides = None,
    config: ConfigFile = None,
    out: Out = None,
    resume: Resume = None,
    allow_foreign_model: AllowForeign = False,
    record: Annotated[
        bool, typer.Option("--record/--no-record", help="Write the score to the leaderboard.")
    ] = True,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Fine-tune a model on one benchmark task (dev scored every epoch), score the test split once and
    record the result. `zoo finetune --config RUN/config.yaml` reruns a run."""
    d = _domain(domain, config)
    cfg = _finetune_cfg(
        d,
        config,
        overrides,
        tasks=task,
        model=from_model,
        data=data,
        init=init,
        seeds=_seed_list(seed, seeds),
        allow_foreign_model="true" if allow_foreign_model else None,
        **{"method.name": method},
    )
    if not cfg.tasks and resume is None:
        raise UserError(
            f"name the task with --task (tasks of {d.name}: {', '.join(t.name for t in d.tasks)})"
        )
    fresh = not (task or from_model or data or method or seeds or init or overrides or config)
    _run_finetune("finetune", d, cfg, out=out, resume=resume, record=record, quiet=quiet, fresh=fresh)


@app.command("bench", cls=_WithMethodOptions)
def bench_cmd(
    domain: Annotated[
        str | None,
        typer.Argument(help="Domain name; optional with --config of a run.", show_default=False),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Run or model directory (default: random init baseline).")
    ] = None,
    tasks: Annotated[
        str | None,
        typer.Option("--tasks", help="Comma-separated task names (default: all of the domain's)."),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Folder holding one sub-folder per task (default: embedded sample)."),
    ] = None,
    seeds: Annotated[
        int | None,
        typer.Option("--seeds", help="Fine-tuning seeds per task (mean ± std is recorded; default 1)."),
    ] = None,
    method: MethodOption = None,
    init: Annotated[
        str | None,
        typer.Option(
            "--init",
            help="'pretrained' weights of --model (default), or 'random': same architecture and tokenizer, fresh weights.",
        ),
    ] = None,
    overrides: FinetuneOverrides = None,
    config: ConfigFile = None,
    out: Out = None,
    resume: Resume = None,
    allow_foreign_model: AllowForeign = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Run the domain's benchmark suite on a model and record every score on the leaderboard."""
    d = _domain(domain, config)
    if tasks is not None and not [t for t in tasks.split(",") if t.strip()]:
        raise UserError(
            f"--tasks {tasks!r} names no task (tasks of {d.name}: {', '.join(t.name for t in d.tasks)})"
        )
    cfg = _finetune_cfg(
        d,
        config,
        overrides,
        tasks=tasks,
        model=model,
        data=data,
        init=init,
        seeds=_seed_list(0, seeds),
        allow_foreign_model="true" if allow_foreign_model else None,
        **{"method.name": method},
    )
    fresh = not (tasks or model or data or method or seeds or init or overrides or config)
    _run_finetune("bench", d, cfg, out=out, resume=resume, record=True, quiet=quiet, fresh=fresh)


@app.command("methods")
def methods_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List tuning methods (built-in and installed third-party) with their options and defaults."""
    from zoo.adapters.base import METHODS, options_table

    good, broken = METHODS.all()
    rows = [
        {
            "name": name,
            "summary": m.summary,
            "options": [
                dict(zip(("name", "type", "default", "doc"), o)) for o in options_table(m.config_cls)
            ],
        }
        for name, m in good.items()
    ]
    if as_json:
        _echo(json.dumps({"methods": rows, "broken": [b.__dict__ for b in broken]}, indent=2, default=str))
        return
    for r in rows:
        _echo(f"{r['name']}: {r['summary']}")
        for o in r["options"]:
            _echo(f"    method.{o['name']}={o['default']!s}  ({o['type']}) {o['doc']}")
    for b in broken:
        _echo(f"broken plugin {b.name} ({b.target}): {b.error}")


LeaderboardDb = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Leaderboard: a SQLite file or a database URL such as postgresql://user@host/db "
        "(default: $ZOO_LEADERBOARD_URL, else $ZOO_HOME/leaderboard.sqlite, ZOO_HOME=~/.zoo).",
        show_default=False,
    ),
]
leaderboard_app = typer.Typer(
    help="Show recorded benchmark results (`zoo leaderboard --format html --out board.html`), push them to a "
    "Hub dataset repo (--push OWNER/NAME), or record a result a run kept (`zoo leaderboard record RUN`).",
    invoke_without_command=True,
)
app.add_typer(leaderboard_app, name="leaderboard")


@leaderboard_app.callback()
def leaderboard_cmd(
    ctx: typer.Context,
    domain: Annotated[str | None, typer.Option("--domain", help="Only this domain.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, markdown, json or html.")] = "table",
    out: Annotated[Path | None, typer.Option("--out", help="Write to this file instead of stdout.")] = None,
    db: LeaderboardDb = None,
    push: Annotated[
        str | None,
        typer.Option(
            "--push",
            help="Upload the leaderboard (README table, HTML page, JSON, Parquet) to this Hub dataset repo.",
            show_default=False,
        ),
    ] = None,
    private: Annotated[bool, typer.Option("--private", help="With --push: create the repo private.")] = False,
) -> None:
    """Show recorded benchmark results."""
    if ctx.invoked_subcommand is not None:
        return
    from zoo import leaderboard

    if fmt not in leaderboard.FORMATS:
        raise UserError(f"unknown format '{fmt}' (choose from: {', '.join(leaderboard.FORMATS)})")
    if push is not None:
        from zoo.publish import push_leaderboard

        folder = out or leaderboard.zoo_home() / "leaderboard-hub"
        pub = push_leaderboard(push, db=db, domain=domain, private=private, folder=folder)
        _echo(
            f"pushed {len(pub.files)} files ({', '.join(pub.files)}) to dataset {push} (commit {pub.commit})"
        )
        return
    if out is not None:
        from zoo.files import check_output_file

        check_output_file(out)
    text = leaderboard.render(leaderboard.query(domain=domain, db=db), fmt)
    if out is not None:
        from zoo.run import atomic_write_text

        atomic_write_text(out, text)
        _echo(f"wrote {out}")
    else:
        _echo(text)


@leaderboard_app.command("record")
def leaderboard_record_cmd(
    run: Annotated[Path, typer.Argument(help="A run that kept its result (leaderboard-pending.json).")],
    db: LeaderboardDb = None,
) -> None:
    """Record the result a fine-tune or bench kept in its run directory because the leaderboard was
    locked, read-only or unreachable when it finished."""
    from zoo.benchmarks.recording import record_pending

    _echo(f"recorded {run} on the leaderboard as {record_pending(run, db)}")


@app.command("search")
def search_cmd(
    domain: Annotated[str, typer.Argument(help="Domain name.", show_default=False)],
    task: Annotated[str, typer.Option("--task", help="Task name (its dev split is searched on).")],
    from_model: Annotated[
        str | None, typer.Option("--from", help="Run or model directory (default: random init).")
    ] = None,
    data: Annotated[Path | None, typer.Option("--data", help="Task data dir or its parent.")] = None,
    space: Annotated[
        str | None,
        typer.Option(
            "--space", help="Search-space blocks: serial,parallel,prefix,layers,lora,dsee (default: all)."
        ),
    ] = None,
    sampler: Annotated[
        str, typer.Option("--sampler", help="gp (optuna GPSampler, multi-objective), tpe or random.")
    ] = "gp",
    trials: Annotated[int, typer.Option("--trials", help="Completed trials the study should hold.")] = 20,
    startup: Annotated[int, typer.Option("--startup", help="Random trials before the gp/tpe model.")] = 10,
    storage: Annotated[
        str | None,
        typer.Option("--storage", help="optuna storage URL (default sqlite:///$ZOO_HOME/search.sqlite)."),
    ] = None,
    study: Annotated[str | None, typer.Option("--study", help="Study name (default DOMAIN-TASK).")] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the existing study (also: join it as a worker).")
    ] = False,
    workers: Annotated[
        int, typer.Option("--workers", help="Processes on this machine sharing the study.")
    ] = 1,
    train_fraction: Annotated[
        float, typer.Option("--train-fraction", help="Low fidelity: share of train per trial.")
    ] = 1.0,
    trial_epochs: Annotated[
        float | None,
        typer.Option("--trial-epochs", help="Low fidelity: epochs per trial (default train.epochs)."),
    ] = None,
    prune_runs: Annotated[
        bool, typer.Option("--prune-runs", help="Delete each trial's run dir once scored.")
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Sampler, subset and first fine-tuning seed.")] = 0,
    heartbeat: Annotated[int, typer.Option("--heartbeat", help="Seconds between trial heartbeats.")] = 10,
    hv_ref: Annotated[
        str, typer.Option("--hv-ref", help="Hypervolume reference point SCORE,PERCENT.")
    ] = "0,20",
    retrain_pareto: Annotated[
        int,
        typer.Option("--retrain-pareto", help="Retrain the K best-dev front configs; test scores recorded."),
    ] = 0,
    seeds: Annotated[int, typer.Option("--seeds", help="Seeds per retrained config.")] = 3,
    compare: Annotated[
        list[str] | None,
        typer.Option(
            "--compare",
            help="A hand-picked autopeft config scored like a trial, e.g. 'lora_r=16' or 'serial=16' (repeatable).",
        ),
    ] = None,
    overrides: FinetuneOverrides = None,
    config: ConfigFile = None,
    out: Out = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """AutoPEFT configuration search: dev score vs % trainable parameters, optuna multi-objective."""
    from zoo.search import SearchOptions, parse_config, parse_space, search

    d = _domain(domain, config)
    cfg = _finetune_cfg(d, config, overrides, tasks=task, model=from_model, data=data, seeds=str(seed))
    try:
        ref = tuple(float(x) for x in hv_ref.split(","))
    except ValueError:
        ref = ()
    if len(ref) != 2:
        raise UserError(f"--hv-ref '{hv_ref}': give SCORE,PERCENT, e.g. 0,20")
    opts = SearchOptions(
        trials=trials, sampler=sampler, startup=startup, space=parse_space(space), storage=storage, study=study,
        resume=resume, workers=workers, train_fraction=train_fraction, keep_runs=not prune_runs, seed=seed,
        heartbeat=heartbeat, reference=ref, retrain_pareto=retrain_pareto, retrain_seeds=seeds, quiet=quiet,
        compare=[parse_config(c) for c in compare or []],
    )  # fmt: skip
    _echo(search(d, cfg, opts, trial_epochs=trial_epochs, out=out).summary())


@app.command("publish")
def publish_cmd(
    run: Annotated[Path, typer.Argument(help="A finished run directory (pretrain, finetune or bench).")],
    repo_id: Annotated[str, typer.Option("--repo-id", help="Hub model repo OWNER/NAME.", show_default=False)],
    license: Annotated[
        str | None,
        typer.Option("--license", help="The model's license, an SPDX id such as apache-2.0 (required)."),
    ] = None,
    private: Annotated[bool, typer.Option("--private", help="Create the repo private.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Build the folder and print its tree and card; upload nothing.")
    ] = False,
    revision: Annotated[
        str | None, typer.Option("--revision", help="Branch to commit to (created if missing; default main).")
    ] = None,
    language: Annotated[
        list[str] | None, typer.Option("--language", help="Card language code(s), e.g. en.")
    ] = None,
    dataset: Annotated[
        list[str] | None, typer.Option("--dataset", help="Hub dataset id(s) the model was trained on.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Where to build the repo folder (default RUN/hub).")
    ] = None,
    db: LeaderboardDb = None,
) -> None:
    """Publish a finished run to the Hugging Face Hub: weights (or adapter), config, tokenizer, training
    config, metrics, loss plot and a model card whose results come from the leaderboard."""
    from zoo.publish import publish

    pub = publish(
        run,
        repo_id,
        license=license,
        private=private,
        dry_run=dry_run,
        revision=revision,
        out=out,
        language=language,
        datasets=dataset,
        db=db,
    )
    if dry_run:
        _echo(pub.tree() + "\n\n" + pub.card)
        return
    _echo(f"published {run} to {repo_id} (commit {pub.commit}; {len(pub.files)} files from {pub.folder})")


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors (the zoo's, click's usage errors, a path the OS refuses) become
    one line on stderr and exit status 2; Ctrl-C says how to resume and exits 130."""
    import shlex

    from zoo import run as runs

    try:  # typer ≥ 0.20 runs on its own copy of click
        from typer._click import exceptions as click
    except ImportError:
        from click import exceptions as click  # type: ignore[no-redef]
    no_args = getattr(click, "NoArgsIsHelpError", ())  # click < 8.2 prints the help itself
    runs.COMMAND = "zoo " + shlex.join(sys.argv[1:] if argv is None else argv)  # run.json keeps it
    try:
        code = app(args=argv, standalone_mode=False)
        if code == 130:  # typer turns Ctrl-C inside a verb into Exit(130)
            _interrupted()
        if isinstance(code, int) and code:
            sys.exit(code)
    except UserError as err:
        _fail(str(err))
    except no_args as err:
        err.show()
        sys.exit(2)
    except click.UsageError as err:
        _fail(err.format_message(), f" (see `{err.ctx.command_path} --help`)" if err.ctx else "")
    except click.ClickException as err:
        _fail(err.format_message())
    except (KeyboardInterrupt, typer.Abort):
        _interrupted()
    except OSError as err:
        from zoo.files import os_error_message

        message = os_error_message(err)
        if message is None:
            raise
        _fail(message)
    finally:
        runs.COMMAND = None


def _fail(message: str, hint: str = "") -> None:
    typer.echo(f"error: {' '.join(message.split())}{hint}", err=True)
    sys.exit(2)


def _interrupted() -> None:
    """Mark the run this process was writing as interrupted and say how to continue it."""
    from zoo import run as runs

    run_dir = runs.active_run()
    if run_dir is None:
        typer.echo("interrupted — no run directory was written; run the command again", err=True)
    else:
        if os.environ.get("RANK", "0") == "0":
            runs.write_info(run_dir, status="interrupted")
        if any(run_dir.rglob("checkpoints/step-*")):
            typer.echo(f"interrupted — resume with `{runs.resume_command(run_dir)}`", err=True)
        else:
            typer.echo(
                f"interrupted before the first checkpoint of {run_dir}; nothing to resume, run the command again",
                err=True,
            )
    sys.exit(130)
