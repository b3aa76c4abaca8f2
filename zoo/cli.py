"""The `zoo` command line. Heavy imports (torch, transformers) happen inside the verbs so that
`zoo --help` starts fast."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

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

Overrides = Annotated[Optional[list[str]], typer.Argument(help="Config overrides as section.key=value, e.g. train.lr=3e-4.", show_default=False)]
ConfigFile = Annotated[Optional[Path], typer.Option("--config", help="YAML config (sections: see the saved config.yaml of any run).")]
Out = Annotated[Optional[Path], typer.Option("--out", help="Run directory (default: runs/<domain>-<verb>-<time>).")]
FinetuneOverrides = Annotated[
    Optional[list[str]],
    typer.Argument(help="Fine-tuning overrides key=value: epochs, lr, batch_size, max_length, max_train_examples, …", show_default=False),
]


def _echo(text: str) -> None:
    typer.echo(text)


@app.command("domains")
def domains_cmd(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
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
    corpus: Annotated[Optional[list[Path]], typer.Option("--corpus", help="Corpus files or folders (default: the domain's sample).")] = None,
    recipe: Annotated[Optional[str], typer.Option("--recipe", help="Recipe name in tokenizers/ (default: the domain's first).")] = None,
    vocab_size: Annotated[Optional[int], typer.Option("--vocab-size", help="Vocabulary size (default: the recipe's).")] = None,
) -> None:
    """Train the domain's tokenizer recipe on a corpus and save a PreTrainedTokenizerFast directory."""
    from zoo.corpus import read_corpus
    from zoo.registry import get_domain
    from zoo.tokenizer import load_recipe, train_tokenizer

    d = get_domain(domain)
    paths = list(corpus or [d.sample_corpus])
    for p in paths:
        if not p.exists():
            raise UserError(f"corpus '{p}' does not exist")
    if out.exists() and any(out.iterdir()):
        raise UserError(f"output directory '{out}' is not empty; choose another --out")
    rec = load_recipe(recipe or d.tokenizer)
    tok = train_tokenizer(rec, read_corpus(d.corpus, paths), vocab_size=vocab_size)
    tok.save_pretrained(out)
    _echo(f"tokenizer '{rec.name}' with {len(tok):,} entries written to {out}")


@app.command("pretrain", context_settings={"allow_extra_args": False})
def pretrain_cmd(
    domain: Annotated[str, typer.Argument(help="Domain name (see `zoo domains`) or pkg.module:DOMAIN.")],
    overrides: Overrides = None,
    config: ConfigFile = None,
    corpus: Annotated[Optional[list[Path]], typer.Option("--corpus", help="Corpus files or folders (default: the domain's embedded sample).")] = None,
    from_model: Annotated[Optional[str], typer.Option("--from", help="Continue pretraining a run or model directory (LR re-warms and re-decays).")] = None,
    resume: Annotated[Optional[str], typer.Option("--resume", help="'auto' (latest unfinished run, or --out) or a run/checkpoint path.")] = None,
    out: Out = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Pretrain a domain model from scratch (or continually with --from) with the domain's objective."""
    from zoo.config import PretrainConfig, build_config
    from zoo.registry import get_domain

    d = get_domain(domain)
    extra = list(overrides or [])
    if corpus:
        extra.append("data.corpus=" + ",".join(str(p) for p in corpus))
    cfg = build_config(PretrainConfig, d.pretrain_defaults, config, extra)
    if resume is not None and (overrides or config or corpus or from_model):
        raise UserError("--resume continues a run with its saved config; drop the config options or start a new run")
    from zoo.trainer import pretrain

    run_dir = pretrain(d, cfg, out=out, resume=resume, from_model=from_model, quiet=quiet)
    from zoo.run import read_info

    info = read_info(run_dir)
    ppl = info.get("final_eval_ppl")
    _echo(
        f"run {run_dir}: {info.get('parameters', 0):,} parameters, final loss {info.get('final_loss', float('nan')):.4f}"
        + (f", held-out perplexity {ppl:.2f}" if ppl else "")
    )


@app.command("finetune")
def finetune_cmd(
    domain: Annotated[str, typer.Argument(help="Domain name.")],
    task: Annotated[str, typer.Option("--task", help="Task name (see `zoo domains`).")],
    from_model: Annotated[Optional[str], typer.Option("--from", help="Run or model directory (default: random init, the no-pretraining baseline).")] = None,
    data: Annotated[Optional[Path], typer.Option("--data", help="Task data dir (with train/dev/test files) or its parent (default: embedded sample).")] = None,
    method: Annotated[str, typer.Option("--method", help="Tuning method: full, lora, dsee, emoe.")] = "full",
    method_config: Annotated[Optional[list[str]], typer.Option("--method-config", help="Method option key=value (repeatable), e.g. r=16.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="First fine-tuning seed.")] = 0,
    seeds: Annotated[int, typer.Option("--seeds", help="Number of seeds, starting at --seed (mean ± std is recorded).")] = 1,
    init: Annotated[str, typer.Option("--init", help="'pretrained' weights of --from, or 'random': same architecture and tokenizer, fresh weights.")] = "pretrained",
    overrides: FinetuneOverrides = None,
    config: ConfigFile = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Save the fine-tuned model (of the last seed) in this directory.")] = None,
    record: Annotated[bool, typer.Option("--record/--no-record", help="Write the score to the leaderboard.")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Fine-tune a model on one benchmark task, score it on the test split and record the result."""
    from zoo.registry import get_domain

    d = get_domain(domain)
    from zoo.benchmarks.runner import finetune

    result = finetune(
        d,
        d.task(task),
        model_ref=from_model,
        data=data,
        method=method,
        method_options=list(method_config or []),
        seeds=list(range(seed, seed + seeds)),
        overrides=list(overrides or []),
        config_file=config,
        init=init,
        out=out,
        record=record,
        quiet=quiet,
    )
    _echo(result.summary())


@app.command("bench")
def bench_cmd(
    domain: Annotated[str, typer.Argument(help="Domain name.")],
    model: Annotated[Optional[str], typer.Option("--model", help="Run or model directory (default: random init baseline).")] = None,
    tasks: Annotated[Optional[str], typer.Option("--tasks", help="Comma-separated task names (default: all of the domain's).")] = None,
    data: Annotated[Optional[Path], typer.Option("--data", help="Folder holding one sub-folder per task (default: embedded sample).")] = None,
    seeds: Annotated[int, typer.Option("--seeds", help="Fine-tuning seeds per task (mean ± std is recorded).")] = 1,
    method: Annotated[str, typer.Option("--method", help="Tuning method: full, lora, dsee, emoe.")] = "full",
    method_config: Annotated[Optional[list[str]], typer.Option("--method-config", help="Method option key=value (repeatable).")] = None,
    init: Annotated[str, typer.Option("--init", help="'pretrained' weights of --model, or 'random': same architecture and tokenizer, fresh weights.")] = "pretrained",
    overrides: FinetuneOverrides = None,
    config: ConfigFile = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Run the domain's benchmark suite on a model and record every score on the leaderboard."""
    from zoo.registry import get_domain

    d = get_domain(domain)
    names = [t.strip() for t in tasks.split(",") if t.strip()] if tasks else [t.name for t in d.tasks]
    specs = [d.task(n) for n in names]
    from zoo.benchmarks.runner import bench

    result = bench(
        d,
        specs,
        model_ref=model,
        data=data,
        method=method,
        method_options=list(method_config or []),
        seeds=list(range(seeds)),
        overrides=list(overrides or []),
        config_file=config,
        init=init,
        quiet=quiet,
    )
    _echo(result.summary())


@app.command("leaderboard")
def leaderboard_cmd(
    domain: Annotated[Optional[str], typer.Option("--domain", help="Only this domain.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, markdown, json or html.")] = "table",
    out: Annotated[Optional[Path], typer.Option("--out", help="Write to this file instead of stdout.")] = None,
    db: Annotated[Optional[Path], typer.Option("--db", help="Leaderboard database (default: $ZOO_HOME/leaderboard.sqlite, ZOO_HOME=~/.zoo).")] = None,
) -> None:
    """Show recorded benchmark results."""
    from zoo import leaderboard

    if fmt not in ("table", "markdown", "json", "html"):
        raise UserError(f"unknown format '{fmt}' (choose from: table, markdown, json, html)")
    rows = leaderboard.query(domain=domain, db_path=db)
    text = leaderboard.render(rows, fmt)
    if out is not None:
        out.write_text(text)
        _echo(f"wrote {out}")
    else:
        _echo(text)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one line on stderr and exit status 2."""
    try:
        app(args=argv)
    except UserError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted (resume with --resume auto)", err=True)
        sys.exit(130)
