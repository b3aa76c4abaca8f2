"""The leaderboard store on SQLAlchemy: SQLite and a real PostgreSQL server, migration of today's schema-2
files in place, concurrent writers, reads that need no write access, and the errors a user can cause."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from run_helpers import subprocess_env

import zoo.leaderboard as lb
from zoo.errors import UserError
from zoo.leaderboard import BenchResult, TaskScore, query, record, render
from zoo.leaderboard_db import SCHEMA_VERSION, database_url

FIXTURE = Path(__file__).parent / "fixtures" / "leaderboard-v2.sqlite"


def result(run_id: str, domain: str = "biomedical", f1: tuple[float, ...] = (0.5, 0.7)) -> BenchResult:
    return BenchResult(
        domain=domain,
        model_id=f"model-{run_id}",
        run_id=run_id,
        seeds=tuple(range(len(f1))),
        method="lora",
        trainable_params=10,
        total_params=100,
        scores=[
            TaskScore.from_values("ncbi_disease", "f1", f1, is_primary=True),
            TaskScore.from_values("ncbi_disease", "precision", [0.4] * len(f1)),
            TaskScore.from_values("pubmedqa", "accuracy", [0.6] * len(f1), is_primary=True),
        ],
    )


def sqlite_rows(db: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


# ------------------------------------------------------------------------------------------ migration


def test_todays_schema_2_file_upgrades_in_place_with_every_row(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite"
    shutil.copy(FIXTURE, db)
    before = {
        t: sqlite_rows(db, f"SELECT * FROM {t} ORDER BY 1, 2, 3") for t in ("runs", "scores", "aggregates")
    }
    assert sqlite_rows(db, "SELECT value FROM meta")[0] == ("2",)
    rows = query(db=db)  # the first open upgrades it
    assert sqlite_rows(db, "SELECT value FROM meta WHERE key='schema_version'") == [(str(SCHEMA_VERSION),)]
    assert [r.run_id for r in rows] == ["v2-bio-dsee", "v2-bio-full", "v2-dna-lora"]
    dsee = rows[0]
    assert dsee.scores["ncbi_disease"].mean == pytest.approx(0.63)  # the test split, not dev
    assert list(dsee.scores) == ["ncbi_disease", "pubmedqa"]
    assert dsee.average is not None and dsee.average.n_seeds == 3
    # Every old row is still there with its old values; the new columns are added (order kept as position).
    after_runs = sqlite_rows(db, "SELECT * FROM runs ORDER BY 1, 2, 3")
    assert [r[: len(before["runs"][0])] for r in after_runs] == before["runs"]
    after_scores = sqlite_rows(db, "SELECT * FROM scores ORDER BY 1, 2, 3")
    assert [r[: len(before["scores"][0])] for r in after_scores] == before["scores"]
    assert sqlite_rows(db, "SELECT * FROM aggregates ORDER BY 1, 2, 3") == before["aggregates"]
    assert sqlite_rows(db, "SELECT COUNT(*) FROM scores WHERE position IS NULL") == [(0,)]
    assert sqlite_rows(db, "PRAGMA integrity_check") == [("ok",)]
    record(result("after-upgrade"), db)  # and it takes new rows
    assert len(query(db=db)) == 4


def test_newer_schema_refused_untouched_on_postgres(postgres_url: str) -> None:
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO meta VALUES ('schema_version', '99')")
    for attempt in (lambda: query(db=postgres_url), lambda: record(result("r"), postgres_url)):
        with pytest.raises(UserError, match=r"written by a newer zoo \(schema 99"):
            attempt()
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT to_regclass('runs')").fetchone() == (None,)


# ------------------------------------------------------------------------------------------ PostgreSQL


def test_postgres_round_trip_renders_like_sqlite(postgres_url: str, tmp_path: Path) -> None:
    sqlite_db = tmp_path / "lb.sqlite"
    for db in (postgres_url, sqlite_db):
        record(result("a", f1=(0.80, 0.82, 0.84)), db)
        record(result("b", domain="genomic", f1=(0.3,)), db)
    pg_rows, sq_rows = query(db=postgres_url), query(db=sqlite_db)
    assert [r.run_id for r in pg_rows] == ["a", "b"]
    assert pg_rows[0].scores["ncbi_disease"].mean == pytest.approx(0.82)
    pg_md = render(pg_rows, "markdown")
    assert pg_md == render(sq_rows, "markdown") and "82.00 ± 2.00" in pg_md
    with pytest.raises(UserError, match="run 'a' is already on the leaderboard"):
        record(result("a"), postgres_url)
    record(result("a", f1=(0.1,)), postgres_url, replace=True)
    assert query(db=postgres_url)[0].scores["ncbi_disease"].mean == pytest.approx(0.1)
    [score] = [s for s in lb.scores_of("a", postgres_url) if s["metric"] == "f1"]
    assert score["value"] == pytest.approx(0.1) and score["n_seeds"] == 1


def test_url_from_environment_and_plain_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ZOO_LEADERBOARD_URL", "postgresql://team@db.example:5432/zoo")
    url = database_url()
    assert (url.drivername, url.host, url.database) == ("postgresql+psycopg", "db.example", "zoo")
    assert database_url(tmp_path / "x.sqlite").database == str(tmp_path / "x.sqlite")  # --db wins
    monkeypatch.delenv("ZOO_LEADERBOARD_URL")
    assert database_url().database == str(lb.default_db_path())


# ------------------------------------------------------------------------------------------ concurrency

WRITER = textwrap.dedent(
    """
    import sys, time
    from zoo.leaderboard import BenchResult, TaskScore, record
    db, proc, n, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    while time.time() < start:
        time.sleep(0.005)
    for k in range(n):
        record(BenchResult("biomedical", f"m{proc}", [
            TaskScore.from_values("ncbi_disease", "f1", [0.5, 0.6], is_primary=True),
            TaskScore.from_values("pubmedqa", "accuracy", [0.7, 0.8], is_primary=True),
        ], run_id=f"p{proc}-{k}", seeds=(0, 1)), db)
    """
)


def _write_concurrently(db: str, procs: int, each: int) -> None:
    start = time.time() + 3.0  # every process imports first, then all write at once
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, db, str(p), str(each), str(start)],
            env=subprocess_env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in range(procs)
    ]
    errors = [w.communicate(timeout=300)[1] for w in workers]
    assert [w.returncode for w in workers] == [0] * procs, errors


def _expect_all(db: str, procs: int, each: int) -> None:
    ids = [r.run_id for r in query(db=db)]
    assert sorted(ids) == sorted(f"p{p}-{k}" for p in range(procs) for k in range(each))
    assert len(set(ids)) == len(ids)
    scores = lb.all_scores(db)
    assert len(scores) == 2 * procs * each
    assert len({(s["run_id"], s["task"]) for s in scores}) == len(scores)


def test_eight_processes_write_one_postgres_leaderboard(postgres_url: str) -> None:
    _write_concurrently(postgres_url, procs=8, each=5)
    _expect_all(postgres_url, 8, 5)


def test_four_processes_write_one_sqlite_leaderboard(tmp_path: Path) -> None:
    db = tmp_path / "shared.sqlite"
    _write_concurrently(str(db), procs=4, each=10)
    _expect_all(str(db), 4, 10)
    assert sqlite_rows(db, "PRAGMA integrity_check") == [("ok",)]
    assert sqlite_rows(db, "PRAGMA foreign_key_check") == []


# ------------------------------------------------------------------------------------------ reading


def test_reading_needs_no_write_access(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    db = folder / "lb.sqlite"
    record(result("a"), db)
    content = db.read_bytes()
    listing = sorted(p.name for p in folder.iterdir())  # the writer checkpointed and removed its WAL
    db.chmod(0o444)
    folder.chmod(0o555)
    try:
        assert [r.run_id for r in query(db=db)] == ["a"]
        assert render(query(db=db), "markdown").count("model-a") == 1
    finally:
        folder.chmod(0o755)
        db.chmod(0o644)
    assert db.read_bytes() == content  # nothing written: at most SQLite's empty shared-memory index beside it
    wal = folder / "lb.sqlite-wal"
    assert listing == ["lb.sqlite"] and (not wal.exists() or wal.stat().st_size == 0)
    # A missing file reads as an empty leaderboard and is not created.
    assert query(db=tmp_path / "none.sqlite") == [] and not (tmp_path / "none.sqlite").exists()


def test_reading_while_a_writer_holds_the_lock(tmp_path: Path) -> None:
    db = tmp_path / "lb.sqlite"
    record(result("a"), db)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("DELETE FROM scores")  # uncommitted: readers still see the committed rows
    try:
        t0 = time.perf_counter()
        rows = query(db=db)
        assert time.perf_counter() - t0 < 5 and rows[0].scores["ncbi_disease"].mean == pytest.approx(0.6)
        with pytest.raises(UserError, match="cannot use the leaderboard database .*locked"):
            record(result("b"), db, timeout=0.5)  # a writer waits its busy timeout, then says so
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    record(result("b"), db)
    assert [r.run_id for r in query(db=db)] == ["a", "b"]


# ------------------------------------------------------------------------------------------ errors


def _zoo(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "zoo", *args],
        env=subprocess_env(**(env or {})),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def _one_clear_line(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def test_bad_databases_exit_2_with_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket is closed
    url = f"postgresql://zoo:s3cret@127.0.0.1:{port}/zoo"
    proc = _zoo("leaderboard", "--db", url)
    _one_clear_line(proc, "cannot reach the leaderboard database", "127.0.0.1", "--db")
    assert "s3cret" not in proc.stderr
    proc = _zoo("leaderboard", env={"ZOO_LEADERBOARD_URL": "mysql://x@y/z"})
    _one_clear_line(proc, "SQLite or PostgreSQL")
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not a database" * 100)
    _one_clear_line(_zoo("leaderboard", "--db", str(garbage)), "not a usable zoo leaderboard database")
    newer = tmp_path / "newer.sqlite"
    with sqlite3.connect(newer) as conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO meta VALUES ('schema_version', '99')")
    _one_clear_line(_zoo("leaderboard", "--db", str(newer)), "newer zoo (schema 99")
    assert sqlite_rows(newer, "SELECT name FROM sqlite_master WHERE name='runs'") == []
