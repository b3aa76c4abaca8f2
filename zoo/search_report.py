"""What `zoo search` reports: the Pareto front of (dev score ↑, % trainable ↓), its hypervolume, and the
table, JSON, Markdown, PNG and self-contained HTML written to the search's run directory."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def completed(study: Any) -> list[Any]:
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]


def pareto(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated (score ↑, percent ↓) points, by increasing percent."""
    order = sorted(range(len(points)), key=lambda i: (points[i][1], -points[i][0]))
    front, best = [], -math.inf
    for i in order:
        if points[i][0] > best:
            front.append(i)
            best = points[i][0]
    return front


def hypervolume(points: Sequence[tuple[float, float]], reference: tuple[float, float]) -> float:
    """Area dominated by the (score, percent) points inside the reference box (score above ref[0],
    percent below ref[1]): the union of the rectangles [percent, ref] × [ref, score]."""
    ref_score, ref_pct = reference
    inside = [(s, p) for s, p in points if s > ref_score and p < ref_pct]
    front = [inside[i] for i in pareto(inside)]  # percent ascending, so score ascending
    area = 0.0
    for k, (score, pct) in enumerate(front):
        right = front[k + 1][1] if k + 1 < len(front) else ref_pct
        area += (right - pct) * (score - ref_score)
    return area


def hypervolume_curve(study_trials: Sequence[Any], reference: tuple[float, float]) -> list[float]:
    """Hypervolume after each completed trial, in trial-number order."""
    trials = sorted(study_trials, key=lambda t: t.number)
    return [hypervolume([tuple(t.values) for t in trials[: k + 1]], reference) for k in range(len(trials))]


def dominating(front: Sequence[dict[str, Any]], score: float, percent: float) -> int | None:
    """A front trial with no more trainable parameters and a dev score at least as good (better in one)."""
    for row in front:
        p, s = row["trainable_percent"], row["dev"]
        if p <= percent and s >= score and (p < percent or s > score):
            return int(row["trial"])
    return None


def front_rows(study: Any) -> list[dict[str, Any]]:
    trials = completed(study)
    front = pareto([tuple(t.values) for t in trials])
    return [
        {
            "trial": trials[i].number,
            "config": trials[i].user_attrs.get("config", {}),
            "trainable_percent": trials[i].values[1],
            "trainable_params": trials[i].user_attrs.get("trainable_params"),
            "dev": trials[i].values[0],
        }
        for i in front
    ]


def config_text(config: dict[str, Any]) -> str:
    parts = [f"{k}={v}" for k, v in config.items() if v not in (0, None)]
    return " ".join(parts) or "head only"


def front_table(rows: Sequence[dict[str, Any]], metric: str) -> str:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Pareto front (dev)")
    for col in ("trial", "config", "% trainable", f"dev {metric}"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            str(r["trial"]), config_text(r["config"]), f"{r['trainable_percent']:.3f}", f"{r['dev']:.4f}"
        )
    console = Console(width=120, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(table)
    return console.export_text()


def write_reports(study: Any, out: Path, metric: str, reference: tuple[float, float]) -> dict[str, Path]:
    """front.json, front.md, search.png (trials + front, hypervolume over trials), search.html (self-contained)."""
    import base64
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials = sorted(completed(study), key=lambda t: t.number)
    rows = front_rows(study)
    curve = hypervolume_curve(trials, reference)
    out.mkdir(parents=True, exist_ok=True)
    (out / "front.json").write_text(
        json.dumps({"front": rows, "hypervolume": curve, "reference": reference}, indent=2)
    )
    md = ["| trial | config | % trainable | dev " + metric + " |", "|---|---|---|---|"]
    md += [
        f"| {r['trial']} | {config_text(r['config'])} | {r['trainable_percent']:.3f} | {r['dev']:.4f} |"
        for r in rows
    ]
    (out / "front.md").write_text("\n".join(md) + "\n")

    fig, (ax, hv) = plt.subplots(1, 2, figsize=(11, 4.2))
    xs = [max(t.values[1], 1e-4) for t in trials]
    ax.scatter(xs, [t.values[0] for t in trials], s=14, c="#999", label="trials")
    ax.plot(
        [r["trainable_percent"] for r in rows],
        [r["dev"] for r in rows],
        "o-",
        c="#c0392b",
        label="Pareto front",
    )
    ax.set_xscale("log")
    ax.set_xlabel("% trainable parameters (log)")
    ax.set_ylabel(f"dev {metric}")
    ax.legend()
    hv.plot(range(1, len(curve) + 1), curve, c="#2c3e50")
    hv.set_xlabel("completed trials")
    hv.set_ylabel(f"hypervolume (ref: {metric} {reference[0]}, {reference[1]}%)")
    fig.suptitle(study.study_name)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    (out / "search.png").write_bytes(buf.getvalue())
    img = base64.b64encode(buf.getvalue()).decode()
    table = "".join(
        f"<tr><td>{r['trial']}</td><td>{config_text(r['config'])}</td><td>{r['trainable_percent']:.3f}</td>"
        f"<td>{r['dev']:.4f}</td></tr>"
        for r in rows
    )
    hv_rows = "".join(f"<tr><td>{i + 1}</td><td>{v:.5f}</td></tr>" for i, v in enumerate(curve))
    (out / "search.html").write_text(
        f"<!doctype html><meta charset='utf-8'><title>zoo search {study.study_name}</title>"
        f"<h1>zoo search: {study.study_name}</h1><img alt='trials, front and hypervolume' src='data:image/png;base64,{img}'>"
        f"<h2>Pareto front (dev)</h2><table border=1><tr><th>trial</th><th>config</th><th>% trainable</th>"
        f"<th>dev {metric}</th></tr>{table}</table>"
        f"<h2>Hypervolume over trials</h2><table border=1><tr><th>trials</th><th>hypervolume</th></tr>{hv_rows}</table>"
    )
    return {"json": out / "front.json", "png": out / "search.png", "html": out / "search.html"}


def front_text(rows: Sequence[dict[str, Any]], metric: str) -> str:
    return front_table(rows, metric).rstrip()
