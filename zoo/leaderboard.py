"""The local leaderboard: a SQLite store of benchmark runs, and its renderings.

Schema after lm-eval's results and the Open LLM Leaderboard (reference/platform-and-style.md §3):
`runs` (one row per benchmarked model: provenance, tuning method and parameter counts), `scores` (long
format, one row per task × metric × split, mean over seeds with its spread), `aggregates` (suite-level
numbers such as the average of the primary metrics). Every `record` is one transaction: a failure leaves
no row behind. Renders to a rich table, LexGLUE-style Markdown, JSON, or one self-contained HTML page.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import html
import io
import json
import math
import os
import sqlite3
import statistics
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from zoo.errors import UserError, did_you_mean

SCHEMA_VERSION = 2
# Migrations from schema N to N+1, run in order inside one transaction.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: ("ALTER TABLE runs ADD COLUMN world_size INTEGER", "ALTER TABLE runs ADD COLUMN select_by TEXT"),
}
Format = Literal["table", "markdown", "json", "html"]
FORMATS: tuple[str, ...] = ("table", "markdown", "json", "html")


def zoo_home() -> Path:
    """`$ZOO_HOME`, default `~/.zoo`: the leaderboard database and caches live here."""
    return Path(os.environ.get("ZOO_HOME") or "~/.zoo").expanduser()


def default_db_path() -> Path:
    """`$ZOO_HOME/leaderboard.sqlite` (ZOO_HOME defaults to ~/.zoo); one database per zoo home."""
    return zoo_home() / "leaderboard.sqlite"


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
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    created_at: str = field(
        default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    )

    def primary(self) -> list[TaskScore]:
        return [s for s in self.scores if s.is_primary]

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

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, created_at TEXT NOT NULL, zoo_version TEXT NOT NULL,
    domain TEXT NOT NULL, domain_version TEXT, suite_version TEXT,
    model_id TEXT NOT NULL, model_path TEXT, base_model TEXT, training_mode TEXT,
    method TEXT NOT NULL, trainable_params INTEGER, total_params INTEGER, sparsity REAL,
    precision TEXT, hardware TEXT, seeds TEXT NOT NULL, config_hash TEXT,
    status TEXT NOT NULL, results_path TEXT, world_size INTEGER, select_by TEXT
);
CREATE TABLE IF NOT EXISTS scores (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    task TEXT NOT NULL, task_version TEXT, split TEXT NOT NULL, metric TEXT NOT NULL,
    value REAL NOT NULL, std REAL NOT NULL, stderr REAL, seed_values TEXT NOT NULL,
    n_samples INTEGER, n_seeds INTEGER NOT NULL,
    higher_is_better INTEGER NOT NULL, is_primary INTEGER NOT NULL,
    PRIMARY KEY (run_id, task, split, metric)
);
CREATE TABLE IF NOT EXISTS aggregates (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    suite TEXT NOT NULL, name TEXT NOT NULL, value REAL NOT NULL, method TEXT NOT NULL,
    n_seeds INTEGER NOT NULL, seed_std REAL,
    PRIMARY KEY (run_id, suite, name)
);
CREATE INDEX IF NOT EXISTS runs_domain ON runs(domain);
"""


@contextlib.contextmanager
def connect(db_path: Path | None = None) -> Iterator[sqlite3.Connection]:
    """Open (creating if needed) the leaderboard database and check its schema version."""
    path = Path(db_path) if db_path is not None else default_db_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=30)  # waits for a concurrent writer instead of failing
    except (OSError, sqlite3.OperationalError) as e:
        raise UserError(
            f"cannot open the leaderboard database {path} ({e}); set ZOO_HOME to a writable folder"
        ) from None
    try:
        _prepare(conn, path)
        yield conn
    finally:
        conn.close()


def _prepare(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a database written by a newer schema (before touching it), then create missing tables."""
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        has_meta = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
        ).fetchone()
        row = (
            conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if has_meta
            else None
        )
        if row is not None and int(row[0]) > SCHEMA_VERSION:
            raise UserError(
                f"{path} was written by a newer zoo (schema {row[0]}, this zoo reads {SCHEMA_VERSION}); "
                "upgrade domain-zoo or point ZOO_HOME at another folder"
            )
        if row is not None and int(row[0]) < SCHEMA_VERSION:
            _migrate(conn, int(row[0]))
        conn.executescript(_SCHEMA)  # idempotent (IF NOT EXISTS)
        with conn:
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
    except sqlite3.DatabaseError as e:
        raise UserError(
            f"{path} is not a usable zoo leaderboard database ({e}); move it away or set ZOO_HOME"
        ) from None


def _migrate(conn: sqlite3.Connection, version: int) -> None:
    """Bring an older database up to SCHEMA_VERSION, all steps in one transaction."""
    with conn:
        for v in range(version, SCHEMA_VERSION):
            for statement in _MIGRATIONS[v]:
                conn.execute(statement)
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))


def record(result: BenchResult, db_path: Path | None = None, *, replace: bool = False) -> str:
    """Store a benchmark result in one transaction and return its run_id.

    `replace=True` overwrites an earlier record of the same run_id (a re-bench of the same run);
    otherwise recording a run_id twice is a UserError.
    """
    _validate(result)
    from zoo import __version__

    with connect(db_path) as conn:
        with conn:  # one transaction: commit on success, roll back everything on any error
            exists = conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (result.run_id,)).fetchone()
            if exists and not replace:
                raise UserError(
                    f"run '{result.run_id}' is already on the leaderboard; "
                    "bench again with a new run id or record it with replace=True"
                )
            conn.execute(
                "DELETE FROM runs WHERE run_id = ?", (result.run_id,)
            )  # cascades to scores/aggregates
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


def _insert_run(conn: sqlite3.Connection, r: BenchResult, zoo_version: str) -> None:
    conn.execute(
        "INSERT INTO runs (run_id, created_at, zoo_version, domain, domain_version, suite_version, model_id, "
        "model_path, base_model, training_mode, method, trainable_params, total_params, sparsity, precision, "
        "hardware, seeds, config_hash, status, results_path, world_size, select_by) VALUES ("
        + ",".join("?" * 22)
        + ")",
        (
            r.run_id,
            r.created_at,
            zoo_version,
            r.domain,
            r.domain_version,
            r.suite_version,
            r.model_id,
            r.model_path,
            r.base_model,
            r.training_mode,
            r.method,
            r.trainable_params,
            r.total_params,
            r.sparsity,
            r.precision,
            r.hardware,
            json.dumps(list(r.seeds)),
            r.config_hash,
            r.status,
            r.results_path,
            r.world_size,
            r.select,
        ),
    )


def _insert_scores(conn: sqlite3.Connection, r: BenchResult) -> None:
    conn.executemany(
        "INSERT INTO scores (run_id, task, task_version, split, metric, value, std, stderr, seed_values, "
        "n_samples, n_seeds, higher_is_better, is_primary) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [
            (
                r.run_id,
                s.task,
                s.task_version,
                s.split,
                s.metric,
                s.mean,
                s.std,
                s.std / math.sqrt(s.n_seeds),
                json.dumps(list(s.values)),
                s.n_samples,
                s.n_seeds,
                int(s.higher_is_better),
                int(s.is_primary),
            )
            for s in r.scores
        ],
    )


def _insert_aggregates(conn: sqlite3.Connection, r: BenchResult) -> None:
    agg = r.aggregate()
    if agg is not None:
        mean, seed_std, n_seeds = agg
        conn.execute(
            "INSERT INTO aggregates (run_id, suite, name, value, method, n_seeds, seed_std) "
            "VALUES (?,?,?,?,?,?,?)",
            (r.run_id, r.domain, "average", mean, "mean of primary metrics over tasks", n_seeds, seed_std),
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


def query(domain: str | None = None, db_path: Path | None = None) -> list[Row]:
    """Runs (optionally of one domain) best average first within each domain."""
    with connect(db_path) as conn:
        runs = conn.execute(
            "SELECT * FROM runs WHERE (? IS NULL OR domain = ?) ORDER BY domain, created_at", (domain, domain)
        ).fetchall()
        if domain is not None and not runs:
            known = [d for (d,) in conn.execute("SELECT DISTINCT domain FROM runs")]
            if domain not in known and known:
                raise UserError(
                    f"no runs of domain '{domain}' on the leaderboard{did_you_mean(domain, known)}"
                )
        rows = [_row(conn, run) for run in runs]
    return sorted(rows, key=lambda r: (r.domain, -(r.average.mean if r.average else -math.inf)))


def _row(conn: sqlite3.Connection, run: sqlite3.Row) -> Row:
    scores: dict[str, Cell] = {}
    # Primary metric per task; a task scored on several splits shows its test split.
    for s in conn.execute(
        "SELECT * FROM scores WHERE run_id = ? AND is_primary = 1 ORDER BY rowid", (run["run_id"],)
    ):
        if s["task"] not in scores or s["split"] == "test":
            scores[s["task"]] = Cell(s["metric"], s["value"], s["std"], s["n_seeds"])
    agg = conn.execute(
        "SELECT * FROM aggregates WHERE run_id = ? AND name = 'average'", (run["run_id"],)
    ).fetchone()
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
        sections.append(
            f'<h2>{html.escape(domain)}</h2>\n<table class="lb"><thead><tr>{head}</tr></thead>\n'
            f"<tbody>\n" + "\n".join(body) + "\n</tbody></table>"
        )
    content = "\n".join(sections) or "<p>No runs on the leaderboard yet.</p>"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Domain Zoo leaderboard</title>\n<style>{_CSS}</style></head>\n<body>\n"
        "<h1>Domain Zoo leaderboard</h1>\n"
        "<p>Scores ×100 (mean ± std over seeds); click a column to sort.</p>\n"
        f"{content}\n<script>{_JS}</script>\n</body></html>\n"
    )
