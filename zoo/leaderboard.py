"""The leaderboard: benchmark runs in a database addressed by URL (`zoo/leaderboard_db.py`), and renderings.

Schema after lm-eval's results and the Open LLM Leaderboard (reference/platform-and-style.md §3):
`runs` (one row per benchmarked model: provenance, tuning method and parameter counts), `scores` (long
format, one row per task × metric × split, mean over seeds with its spread), `aggregates` (suite-level
numbers such as the average of the primary metrics). Every `record` is one transaction: a failure leaves
no row behind. Renders to a rich table, LexGLUE-style Markdown, JSON, or one self-contained HTML page.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import html
import io
import json
import math
import statistics
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa

from zoo import leaderboard_db as store
from zoo.errors import UserError, did_you_mean
from zoo.leaderboard_db import SCHEMA_VERSION, default_db_path, zoo_home

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

__all__ = [
    "SCHEMA_VERSION",
    "BenchResult",
    "TaskScore",
    "default_db_path",
    "query",
    "record",
    "render",
    "zoo_home",
]
Format = Literal["table", "markdown", "json", "html"]
FORMATS: tuple[str, ...] = ("table", "markdown", "json", "html")


# ---------------------------------------------------------------- what a benchmark run hands over


@dataclass(frozen=True)
class TaskScore:
    """One metric of one task: mean and sample std over seeds (std 0 for a single seed)."""

    task: str
    metric: str
    mean: float
    std: float = 0.0
    values: tuple[float, ...] = ()  # per seed, in seed order
    is_primary: bool = False
    n_seeds: int = 0  # 0: len(values), or 1 without values
    split: str = "test"
    task_version: str = "1"
    n_samples: int | None = None  # size of the scored split
    higher_is_better: bool = True

    def __post_init__(self) -> None:
        n = self.n_seeds or max(1, len(self.values))
        if self.values and n != len(self.values):
            raise ValueError(f"{self.task}/{self.metric}: n_seeds={n} but {len(self.values)} per-seed values")
        object.__setattr__(self, "n_seeds", n)
        object.__setattr__(self, "values", tuple(float(v) for v in self.values))

    @classmethod
    def from_values(cls, task: str, metric: str, values: Sequence[float], **kw: Any) -> TaskScore:
        """Mean ± sample std of per-seed values (LexGLUE reports mean over seeds with its std)."""
        vals = tuple(float(v) for v in values)
        if not vals:
            raise ValueError(f"{task}/{metric}: no values")
        std = statistics.stdev(vals) if len(vals) > 1 else 0.0
        return cls(task, metric, statistics.fmean(vals), std, vals, **kw)


@dataclass
class BenchResult:
    """A benchmark of one model on one domain suite: run metadata and its task scores."""

    domain: str
    model_id: str
    scores: list[TaskScore]
    method: str = "full"  # tuning method: full | lora | dsee | emoe | ...
    trainable_params: int | None = None
    total_params: int | None = None
    sparsity: float | None = None  # fraction of zeroed weights (DSEE), None if dense
    model_path: str | None = None
    base_model: str | None = None
    training_mode: str | None = None  # scratch | continual | finetune
    domain_version: str = "1"
    suite_version: str = "1"
    precision: str | None = None
    hardware: str | None = None
    world_size: int | None = None  # processes the fine-tune ran on (accelerate launch)
    select: str | None = None  # which model was scored on test: "last" epoch or "dev"-best
    seeds: tuple[int, ...] = (0,)
    config_hash: str | None = None
    status: str = "finished"
    results_path: str | None = None
    model_revision: str | None = None  # the Hub commit of a model loaded by repo id
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    created_at: str = field(
        default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> BenchResult:
        data = json.loads(text)
        data["scores"] = [TaskScore(**{**s, "values": tuple(s["values"])}) for s in data["scores"]]
        data["seeds"] = tuple(data["seeds"])
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def primary(self) -> list[TaskScore]:
        """The primary test-split scores: dev scores (kept to show what selection saw) never enter the
        average."""
        return [s for s in self.scores if s.is_primary and s.split == "test"]

    def aggregate(self) -> tuple[float, float, int] | None:
        """(mean, seed std, n_seeds) of the average of primary metrics across tasks, None without any.

        The seed std is the std of the per-seed averages when every task has the same seeds, else 0.
        """
        prim = self.primary()
        if not prim:
            return None
        mean = statistics.fmean(s.mean for s in prim)
        n = {s.n_seeds for s in prim}
        if len(n) == 1 and (k := n.pop()) > 1 and all(len(s.values) == k for s in prim):
            per_seed = [statistics.fmean(s.values[i] for s in prim) for i in range(k)]
            return mean, statistics.stdev(per_seed), k
        return mean, 0.0, min(s.n_seeds for s in prim)


# ---------------------------------------------------------------- store


def record(
    result: BenchResult, db: str | Path | None = None, *, replace: bool = False, timeout: float | None = None
) -> str:
    """Store a benchmark result in one transaction and return its run_id.

    `db` is a SQLite file or a database URL (default: `$ZOO_LEADERBOARD_URL`, else the SQLite file in
    ZOO_HOME). `replace=True` overwrites an earlier record of the same run_id (a re-bench of the same run);
    otherwise recording a run_id twice is a UserError. A writer waits `timeout` seconds for another's lock.
    """
    _validate(result)
    from zoo import __version__

    with store.transaction(db, timeout=timeout) as conn:
        exists = conn.execute(sa.select(store.runs.c.run_id).where(store.runs.c.run_id == result.run_id))
        if exists.first() is not None:
            if not replace:
                raise UserError(
                    f"run '{result.run_id}' is already on the leaderboard; "
                    "bench again with a new run id or record it with replace=True"
                )
            for table in (store.scores, store.aggregates, store.runs):
                conn.execute(table.delete().where(table.c.run_id == result.run_id))
        _insert_run(conn, result, __version__)
        _insert_scores(conn, result)
        _insert_aggregates(conn, result)
    return result.run_id


def _validate(result: BenchResult) -> None:
    seen: set[tuple[str, str, str]] = set()
    primaries: set[tuple[str, str]] = set()
    for s in result.scores:
        key = (s.task, s.split, s.metric)
        if key in seen:
            raise ValueError(f"duplicate score for task {s.task}, split {s.split}, metric {s.metric}")
        seen.add(key)
        if not all(math.isfinite(v) for v in (s.mean, s.std, *s.values)):
            raise ValueError(f"non-finite score for {s.task}/{s.metric}: {s.mean} ± {s.std}")
        if s.is_primary:
            if (s.task, s.split) in primaries:
                raise ValueError(f"task {s.task} ({s.split}) has more than one primary metric")
            primaries.add((s.task, s.split))


def _insert_run(conn: Connection, r: BenchResult, zoo_version: str) -> None:
    columns = set(store.runs.c.keys())
    fields = {k: v for k, v in asdict(r).items() if k in columns}  # same names, except the three below
    extra = {"zoo_version": zoo_version, "seeds": json.dumps(list(r.seeds)), "select_by": r.select}
    conn.execute(store.runs.insert().values({**fields, **extra}))


def _insert_scores(conn: Connection, r: BenchResult) -> None:
    if not r.scores:
        return
    conn.execute(
        store.scores.insert(),
        [
            {
                "run_id": r.run_id,
                "task": s.task,
                "task_version": s.task_version,
                "split": s.split,
                "metric": s.metric,
                "value": s.mean,
                "std": s.std,
                "stderr": s.std / math.sqrt(s.n_seeds),
                "seed_values": json.dumps(list(s.values)),
                "n_samples": s.n_samples,
                "n_seeds": s.n_seeds,
                "higher_is_better": int(s.higher_is_better),
                "is_primary": int(s.is_primary),
                "position": i,
            }
            for i, s in enumerate(r.scores)
        ],
    )


def _insert_aggregates(conn: Connection, r: BenchResult) -> None:
    agg = r.aggregate()
    if agg is not None:
        mean, seed_std, n_seeds = agg
        conn.execute(
            store.aggregates.insert().values(
                run_id=r.run_id,
                suite=r.domain,
                name="average",
                value=mean,
                method="mean of primary metrics over tasks",
                n_seeds=n_seeds,
                seed_std=seed_std,
            )
        )


# ---------------------------------------------------------------- query


@dataclass(frozen=True)
class Cell:
    """A rendered number: the primary metric of a task (or the average), mean ± std over n_seeds."""

    metric: str
    mean: float
    std: float
    n_seeds: int


@dataclass(frozen=True)
class Row:
    """One leaderboard line: a run with its primary score per task and the average."""

    run_id: str
    created_at: str
    domain: str
    model_id: str
    method: str
    trainable_params: int | None
    total_params: int | None
    sparsity: float | None
    precision: str | None
    status: str
    scores: dict[str, Cell]  # task -> primary metric, in recording order
    average: Cell | None


def query(domain: str | None = None, db: str | Path | None = None) -> list[Row]:
    """Runs (optionally of one domain) best average first within each domain. Reads only."""
    with store.reading(db) as conn:
        if conn is None:
            return []
        runs = store.runs
        sel = sa.select(runs).order_by(runs.c.domain, runs.c.created_at)
        found = conn.execute(sel if domain is None else sel.where(runs.c.domain == domain)).mappings().all()
        if domain is not None and not found:
            known = list(conn.execute(sa.select(runs.c.domain).distinct()).scalars())
            if domain not in known and known:
                raise UserError(
                    f"no runs of domain '{domain}' on the leaderboard{did_you_mean(domain, known)}"
                )
        rows = [_row(conn, run) for run in found]
    return sorted(rows, key=lambda r: (r.domain, -(r.average.mean if r.average else -math.inf)))


def scores_of(run_id: str, db: str | Path | None = None) -> list[dict[str, Any]]:
    """Every recorded score of one run (all splits and metrics) with its run's fields, in recording order."""
    with store.reading(db) as conn:
        if conn is None:
            return []
        s, r = store.scores, store.runs
        sel = (
            sa.select(s, r.c.domain, r.c.model_id, r.c.method, r.c.seeds, r.c.created_at)
            .join(r, r.c.run_id == s.c.run_id)
            .where(s.c.run_id == run_id)
            .order_by(s.c.position)
        )
        return [dict(m) for m in conn.execute(sel).mappings()]


def all_scores(db: str | Path | None = None) -> list[dict[str, Any]]:
    """The long table: one dict per recorded score with its run's fields (the Hub export)."""
    with store.reading(db) as conn:
        if conn is None:
            return []
        s, r = store.scores, store.runs
        cols = [c for c in r.c if c.name != "run_id"]
        sel = (
            sa.select(s, *cols)
            .join(r, r.c.run_id == s.c.run_id)
            .order_by(r.c.created_at, s.c.run_id, s.c.position)
        )
        return [dict(m) for m in conn.execute(sel).mappings()]


def _row(conn: Connection, run: Any) -> Row:
    scores: dict[str, Cell] = {}
    # Primary metric per task; a task scored on several splits shows its test split.
    s = store.scores
    prim = sa.select(s).where(s.c.run_id == run["run_id"], s.c.is_primary == 1).order_by(s.c.position)
    for sc in conn.execute(prim).mappings():
        if sc["task"] not in scores or sc["split"] == "test":
            scores[sc["task"]] = Cell(sc["metric"], sc["value"], sc["std"], sc["n_seeds"])
    a = store.aggregates
    agg = (
        conn.execute(sa.select(a).where(a.c.run_id == run["run_id"], a.c.name == "average"))
        .mappings()
        .first()
    )
    average = Cell("average", agg["value"], agg["seed_std"] or 0.0, agg["n_seeds"]) if agg else None
    return Row(
        run["run_id"],
        run["created_at"],
        run["domain"],
        run["model_id"],
        run["method"],
        run["trainable_params"],
        run["total_params"],
        run["sparsity"],
        run["precision"],
        run["status"],
        scores,
        average,
    )


# ---------------------------------------------------------------- render


def render(rows: Sequence[Row], fmt: Format | str = "table") -> str:
    """The leaderboard as text: 'table' (rich, plain text), 'markdown', 'json' or 'html' (one page)."""
    if fmt not in FORMATS:
        raise UserError(f"unknown leaderboard format '{fmt}'{did_you_mean(fmt, FORMATS)}")
    if fmt == "json":
        return json.dumps([asdict(r) for r in rows], indent=2)
    if fmt == "markdown":
        return _markdown(rows)
    if fmt == "html":
        return _html(rows)
    from rich.console import Console

    console = Console(file=io.StringIO(), width=240, color_system=None, force_terminal=False)
    for t in rich_tables(rows):
        console.print(t)
    return console.file.getvalue()  # type: ignore[attr-defined]


def rich_tables(rows: Sequence[Row]) -> list[Any]:
    """One rich Table per domain (the CLI prints these directly, in colour)."""
    from rich.table import Table

    tables = []
    for domain, group in _by_domain(rows).items():
        table = Table(title=f"{domain} leaderboard", title_justify="left")
        for name in _header(group):
            table.add_column(name, justify="left" if name in ("Model", "Method") else "right")
        for cells in _body(group):
            table.add_row(*cells)
        tables.append(table)
    return tables


def _by_domain(rows: Sequence[Row]) -> dict[str, list[Row]]:
    groups: dict[str, list[Row]] = {}
    for r in rows:
        groups.setdefault(r.domain, []).append(r)
    return groups


def _tasks(rows: Sequence[Row]) -> dict[str, str]:
    """task -> its primary metric, in order of first appearance."""
    tasks: dict[str, str] = {}
    for r in rows:
        for task, cell in r.scores.items():
            tasks.setdefault(task, cell.metric)
    return tasks


def _header(rows: Sequence[Row]) -> list[str]:
    return ["Model", "Method", "Params", *(f"{t} ({m})" for t, m in _tasks(rows).items()), "Average"]


def _body(rows: Sequence[Row]) -> list[list[str]]:
    tasks = list(_tasks(rows))
    return [
        [r.model_id, _method(r), _params(r), *(_fmt(r.scores.get(t)) for t in tasks), _fmt(r.average)]
        for r in rows
    ]


def _fmt(cell: Cell | None) -> str:
    """Scores ×100 as in BLURB/LexGLUE tables; '± std' only when there were several seeds."""
    if cell is None:
        return "–"
    return f"{100 * cell.mean:.2f}" + (f" ± {100 * cell.std:.2f}" if cell.n_seeds > 1 else "")


def _count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def _params(r: Row) -> str:
    if r.total_params is None:
        return _count(r.trainable_params) if r.trainable_params is not None else "–"
    if r.trainable_params is None or r.trainable_params == r.total_params:
        return _count(r.total_params)
    return (
        f"{_count(r.trainable_params)} / {_count(r.total_params)} ({r.trainable_params / r.total_params:.2%})"
    )


def _method(r: Row) -> str:
    return r.method + (f" ({r.sparsity:.0%} sparse)" if r.sparsity else "")


def _markdown(rows: Sequence[Row]) -> str:
    groups = _by_domain(rows)
    parts = []
    for domain, group in groups.items():
        header = _header(group)
        lines = [
            "| " + " | ".join(header) + " |",
            "|" + "|".join(":---" if i < 2 else "---:" for i in range(len(header))) + "|",
            *("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |" for cells in _body(group)),
        ]
        parts.append((f"### {domain}\n\n" if len(groups) > 1 else "") + "\n".join(lines))
    return "\n\n".join(parts) + "\n" if parts else "_No runs on the leaderboard yet._\n"


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; margin-bottom: 2rem; }
th, td { padding: .35rem .7rem; border-bottom: 1px solid #ddd; }
th { background: #f3f3f3; cursor: pointer; user-select: none; text-align: left; }
th.asc::after { content: " \\25B2"; } th.desc::after { content: " \\25BC"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
"""

# Click a header to sort its table by that column (numbers by their data-v value), click again to reverse.
_JS = """
document.querySelectorAll("table.lb th").forEach(th => th.addEventListener("click", () => {
  const body = th.closest("table").tBodies[0], col = th.cellIndex, asc = !th.classList.contains("asc");
  th.parentNode.querySelectorAll("th").forEach(h => h.classList.remove("asc", "desc"));
  th.classList.add(asc ? "asc" : "desc");
  const key = td => td.dataset.v !== undefined ? parseFloat(td.dataset.v) : td.textContent.toLowerCase();
  [...body.rows].sort((a, b) => {
    const x = key(a.cells[col]), y = key(b.cells[col]);
    return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
  }).forEach(r => body.appendChild(r));
}));
// The domain filter shows one domain's section (or all of them).
const filter = document.getElementById("domain-filter");
if (filter) filter.addEventListener("change", () => document.querySelectorAll("section.domain").forEach(
  s => { s.hidden = filter.value !== "" && s.dataset.domain !== filter.value; }));
"""


def _html(rows: Sequence[Row]) -> str:
    """One self-contained page: inline CSS and sort script, no external URL."""
    sections = []
    for domain, group in _by_domain(rows).items():
        tasks = list(_tasks(group))
        head = "".join(f"<th>{html.escape(h)}</th>" for h in _header(group))
        body = []
        for r, cells in zip(group, _body(group), strict=True):
            nums = [r.scores.get(t) for t in tasks] + [r.average]
            tds = [f"<td>{html.escape(c)}</td>" for c in cells[:2]]
            params = r.trainable_params or r.total_params or 0
            tds.append(f'<td class="num" data-v="{params}">{html.escape(cells[2])}</td>')
            for cell, text in zip(nums, cells[3:], strict=True):
                v = cell.mean if cell else "-Infinity"  # JS parseFloat reads it; a missing score sorts last
                tds.append(f'<td class="num" data-v="{v}">{html.escape(text)}</td>')
            body.append("<tr>" + "".join(tds) + "</tr>")
        name = html.escape(domain, quote=True)
        sections.append(
            f'<section class="domain" data-domain="{name}">\n<h2>{name}</h2>\n'
            f'<table class="lb"><thead><tr>{head}</tr></thead>\n'
            f"<tbody>\n" + "\n".join(body) + "\n</tbody></table>\n</section>"
        )
    options = "".join(
        f'<option value="{html.escape(d, quote=True)}">{html.escape(d)}</option>' for d in _by_domain(rows)
    )
    picker = f'<p><label>Domain <select id="domain-filter"><option value="">all</option>{options}</select></label></p>\n'
    content = picker + "\n".join(sections) if sections else "<p>No runs on the leaderboard yet.</p>"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Domain Zoo leaderboard</title>\n<style>{_CSS}</style></head>\n<body>\n"
        "<h1>Domain Zoo leaderboard</h1>\n"
        "<p>Scores ×100 (mean ± std over seeds); click a column to sort, pick a domain to filter.</p>\n"
        f"{content}\n<script>{_JS}</script>\n</body></html>\n"
    )
