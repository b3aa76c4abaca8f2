"""Leaderboard store: record/query round trip, all-or-nothing writes, schema version, renderings."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

import zoo.leaderboard as lb
from zoo.errors import UserError
from zoo.leaderboard import BenchResult, TaskScore, query, record, render


def bio_result(run_id: str = "bio-dsee") -> BenchResult:
    return BenchResult(
        domain="biomedical",
        model_id="tiny-pubmedbert",
        method="dsee",
        trainable_params=300_000,
        total_params=110_000_000,
        sparsity=0.5,
        seeds=(0, 1, 2),
        run_id=run_id,
        scores=[
            TaskScore.from_values("ncbi_disease", "f1", [0.80, 0.82, 0.84], is_primary=True, n_samples=940),
            TaskScore.from_values("ncbi_disease", "precision", [0.70, 0.75, 0.80]),
            TaskScore.from_values("pubmedqa", "accuracy", [0.50, 0.55, 0.60], is_primary=True),
        ],
    )


def dna_result() -> BenchResult:
    return BenchResult(
        "genomic",
        "dna-llama",
        [TaskScore("gue_prom_core_all", "mcc", 0.4, is_primary=True)],
        run_id="dna-full",
        total_params=5_000_000,
        trainable_params=5_000_000,
    )


def test_the_average_is_over_test_scores_only() -> None:
    result = bio_result()
    result.scores.append(
        TaskScore.from_values("ncbi_disease", "f1", [0.99, 0.99, 0.99], is_primary=True, split="dev")
    )
    mean, seed_std, n = result.aggregate()
    assert mean == pytest.approx((0.82 + 0.55) / 2) and n == 3
    assert seed_std == pytest.approx(0.035, abs=1e-9)  # per-seed averages 0.65, 0.685, 0.72


def count(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_default_db_path_follows_zoo_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    assert lb.default_db_path() == tmp_path / "home" / "leaderboard.sqlite"
    monkeypatch.delenv("ZOO_HOME")
    assert lb.default_db_path() == Path("~/.zoo/leaderboard.sqlite").expanduser()


def test_record_query_round_trip(tmp_path: Path) -> None:
    db = tmp_path / "lb.sqlite"
    assert record(bio_result(), db) == "bio-dsee"
    record(dna_result(), db)

    (row,) = query("biomedical", db)
    assert (row.model_id, row.method, row.trainable_params, row.sparsity) == (
        "tiny-pubmedbert",
        "dsee",
        300_000,
        0.5,
    )
    assert list(row.scores) == ["ncbi_disease", "pubmedqa"]  # primary metrics only, in recorded order
    f1 = row.scores["ncbi_disease"]
    assert (f1.metric, f1.n_seeds) == ("f1", 3)
    assert f1.mean == pytest.approx(0.82) and f1.std == pytest.approx(0.02)
    # Average of primaries 0.685; per-seed averages 0.65, 0.685, 0.72 have std 0.035.
    assert row.average is not None
    assert row.average.mean == pytest.approx(0.685) and row.average.std == pytest.approx(0.035)
    assert [r.domain for r in query(db=db)] == ["biomedical", "genomic"]

    with sqlite3.connect(db) as conn:
        stderr, seeds = conn.execute(
            "SELECT stderr, seed_values FROM scores WHERE run_id='bio-dsee' AND metric='precision'"
        ).fetchone()
        assert stderr == pytest.approx(0.05 / 3**0.5) and json.loads(seeds) == [0.70, 0.75, 0.80]
        assert conn.execute("SELECT seeds, zoo_version FROM runs WHERE run_id='bio-dsee'").fetchone() == (
            "[0, 1, 2]",
            "0.1.0",
        )
        assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == (
            str(lb.SCHEMA_VERSION),
        )


def test_failing_write_leaves_no_partial_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "lb.sqlite"
    record(dna_result(), db)

    def broken(conn: sqlite3.Connection, result: BenchResult) -> None:
        raise RuntimeError("disk full while writing aggregates")

    monkeypatch.setattr(lb, "_insert_aggregates", broken)  # runs and scores rows are already inserted by now
    with pytest.raises(RuntimeError, match="disk full"):
        record(bio_result(), db)
    assert (count(db, "runs"), count(db, "scores"), count(db, "aggregates")) == (1, 1, 1)  # only dna-full


def test_duplicate_run_id_refused_unless_replaced(tmp_path: Path) -> None:
    db = tmp_path / "lb.sqlite"
    record(bio_result(), db)
    with pytest.raises(UserError, match="run 'bio-dsee' is already on the leaderboard"):
        record(bio_result(), db)
    assert count(db, "scores") == 3
    again = bio_result()
    again.scores = again.scores[:1]
    record(again, db, replace=True)
    assert (count(db, "runs"), count(db, "scores")) == (1, 1)  # old scores cascaded away


def test_invalid_scores_rejected_before_writing(tmp_path: Path) -> None:
    db = tmp_path / "lb.sqlite"
    bad = bio_result()
    bad.scores.append(TaskScore("pubmedqa", "accuracy", 0.9))
    with pytest.raises(ValueError, match="duplicate score for task pubmedqa"):
        record(bad, db)
    with pytest.raises(ValueError, match="non-finite"):
        record(BenchResult("genomic", "m", [TaskScore("t", "mcc", float("nan"))]), db)
    with pytest.raises(ValueError, match="n_seeds=2 but 3 per-seed values"):
        TaskScore("t", "mcc", 0.1, values=(0.1, 0.1, 0.1), n_seeds=2)
    assert not db.exists()  # validated before the database was even opened


def test_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    db = tmp_path / "lb.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO meta VALUES ('schema_version', '99')")
    with pytest.raises(UserError, match=r"written by a newer zoo \(schema 99"):
        query(db=db)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT name FROM sqlite_master WHERE name='runs'").fetchone() is None


def test_query_unknown_domain_and_format(tmp_path: Path) -> None:
    db = tmp_path / "lb.sqlite"
    record(bio_result(), db)
    with pytest.raises(
        UserError, match="no runs of domain 'biomedicl' on the leaderboard — did you mean 'biomedical'"
    ):
        query("biomedicl", db)
    with pytest.raises(UserError, match="unknown leaderboard format 'md'"):
        render(query(db=db), "md")


@pytest.fixture
def rows(tmp_path: Path) -> list[lb.Row]:
    db = tmp_path / "lb.sqlite"
    record(bio_result(), db)
    record(dna_result(), db)
    return query(db=db)


def test_markdown_is_lexglue_style(rows: list[lb.Row]) -> None:
    md = render(rows, "markdown")
    assert "### biomedical" in md and "### genomic" in md
    assert "| Model | Method | Params | ncbi_disease (f1) | pubmedqa (accuracy) | Average |" in md
    assert (
        "| tiny-pubmedbert | dsee (50% sparse) | 300.0K / 110.0M (0.27%) "
        "| 82.00 ± 2.00 | 55.00 ± 5.00 | 68.50 ± 3.50 |" in md
    )
    assert "| dna-llama | full | 5.0M | 40.00 | 40.00 |" in md  # one seed: no ± part


def test_json_round_trips_values(rows: list[lb.Row]) -> None:
    data = json.loads(render(rows, "json"))
    assert [d["run_id"] for d in data] == ["bio-dsee", "dna-full"]
    assert data[0]["scores"]["pubmedqa"]["mean"] == pytest.approx(0.55)
    assert data[0]["average"]["std"] == pytest.approx(0.035)


def test_html_is_one_self_contained_sortable_page(rows: list[lb.Row]) -> None:
    page = render(rows, "html")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not re.search(r"https?://", page)  # no external CSS, fonts or scripts
    assert "<link" not in page and "src=" not in page
    assert "<style>" in page and 'addEventListener("click"' in page and "cellIndex" in page
    assert '<td class="num" data-v="0.82">82.00 ± 2.00</td>' in page
    assert page.count('<table class="lb">') == 2


def test_rich_table_text(rows: list[lb.Row]) -> None:
    text = render(rows, "table")
    assert "biomedical leaderboard" in text and "tiny-pubmedbert" in text
    assert "68.50 ± 3.50" in text and "40.00" in text
