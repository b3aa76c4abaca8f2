"""Where the leaderboard lives: a database addressed by URL, its schema, and the migrations between versions.

SQLite at `$ZOO_HOME/leaderboard.sqlite` is the default; `ZOO_LEADERBOARD_URL` or `--db` names another
file or a server (`postgresql://user@host/db`, driven by psycopg 3) so a team's machines share one board.
SQLAlchemy speaks both dialects. Writers open one transaction each (SQLite `BEGIN IMMEDIATE`, WAL journal,
a busy timeout; PostgreSQL serialises schema work with an advisory lock). Readers never need write access:
a SQLite file is opened read-only (`mode=ro`), and WAL lets them read while a writer holds its lock.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from zoo.errors import UserError
from zoo.files import zoo_home

SCHEMA_VERSION = 3
BUSY_TIMEOUT_S = 30.0
"""How long a SQLite writer waits for another writer's lock before giving up (ZOO_LEADERBOARD_BUSY_TIMEOUT)."""
_ADVISORY_LOCK = 7_362_001  # PostgreSQL: one key for "the zoo is changing the leaderboard schema"

metadata = sa.MetaData()
meta = sa.Table(
    "meta", metadata, sa.Column("key", sa.Text, primary_key=True), sa.Column("value", sa.Text, nullable=False)
)
runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("created_at", sa.Text, nullable=False),
    sa.Column("zoo_version", sa.Text, nullable=False),
    sa.Column("domain", sa.Text, nullable=False, index=True),
    sa.Column("domain_version", sa.Text),
    sa.Column("suite_version", sa.Text),
    sa.Column("model_id", sa.Text, nullable=False),
    sa.Column("model_path", sa.Text),
    sa.Column("base_model", sa.Text),
    sa.Column("training_mode", sa.Text),
    sa.Column("method", sa.Text, nullable=False),
    sa.Column("trainable_params", sa.BigInteger),
    sa.Column("total_params", sa.BigInteger),
    sa.Column("sparsity", sa.Float),
    sa.Column("precision", sa.Text),
    sa.Column("hardware", sa.Text),
    sa.Column("seeds", sa.Text, nullable=False),
    sa.Column("config_hash", sa.Text),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("results_path", sa.Text),
    sa.Column("world_size", sa.Integer),  # v2
    sa.Column("select_by", sa.Text),  # v2
    sa.Column("model_revision", sa.Text),  # v3: the Hub commit of a model loaded by repo id
)
scores = sa.Table(
    "scores",
    metadata,
    sa.Column("run_id", sa.Text, sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("task", sa.Text, primary_key=True),
    sa.Column("task_version", sa.Text),
    sa.Column("split", sa.Text, primary_key=True),
    sa.Column("metric", sa.Text, primary_key=True),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("std", sa.Float, nullable=False),
    sa.Column("stderr", sa.Float),
    sa.Column("seed_values", sa.Text, nullable=False),
    sa.Column("n_samples", sa.Integer),
    sa.Column("n_seeds", sa.Integer, nullable=False),
    sa.Column("higher_is_better", sa.Integer, nullable=False),
    sa.Column("is_primary", sa.Integer, nullable=False),
    sa.Column("position", sa.Integer),  # v3: recording order (SQLite's rowid has no PostgreSQL twin)
)
aggregates = sa.Table(
    "aggregates",
    metadata,
    sa.Column("run_id", sa.Text, sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("suite", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("method", sa.Text, nullable=False),
    sa.Column("n_seeds", sa.Integer, nullable=False),
    sa.Column("seed_std", sa.Float),
)


def _v1_to_v2(conn: Connection) -> None:
    conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN world_size INTEGER")
    conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN select_by TEXT")


def _v2_to_v3(conn: Connection) -> None:
    conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN model_revision TEXT")
    conn.exec_driver_sql("ALTER TABLE scores ADD COLUMN position INTEGER")
    if conn.dialect.name == "sqlite":  # v1/v2 stores were SQLite only: their order was the rowid
        conn.exec_driver_sql("UPDATE scores SET position = rowid")


# Migration from schema N to N+1; all the steps a database needs run in one transaction.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {1: _v1_to_v2, 2: _v2_to_v3}


# ---------------------------------------------------------------------------------------------- addressing


def default_db_path() -> Path:
    """`$ZOO_HOME/leaderboard.sqlite` (ZOO_HOME defaults to ~/.zoo); one database per zoo home."""
    return zoo_home() / "leaderboard.sqlite"


def database_url(db: str | Path | None = None) -> URL:
    """`db` (a URL or a SQLite file path), else `$ZOO_LEADERBOARD_URL`, else the SQLite file in ZOO_HOME."""
    ref = db if db is not None else os.environ.get("ZOO_LEADERBOARD_URL") or default_db_path()
    text = str(ref)
    if "://" not in text:
        return URL.create("sqlite", database=str(Path(text).expanduser()))
    try:
        url = make_url(text)
    except ArgumentError:
        raise UserError(
            f"leaderboard URL '{text}' is not a database URL (e.g. postgresql://user@host/db or a file path)"
        ) from None
    if url.drivername in (
        "postgresql",
        "postgres",
        "postgresql+psycopg2",
    ):  # psycopg 3 is what the zoo installs
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise UserError(
            f"leaderboard URL '{shown(url)}': the zoo stores its leaderboard in SQLite or PostgreSQL "
            "(sqlite:///FILE or postgresql://user@host/db)"
        )
    return url


def shown(url: URL) -> str:
    """The URL as it may be printed: never its password."""
    return url.render_as_string(hide_password=True)


def sqlite_file(url: URL) -> Path | None:
    return Path(url.database) if url.get_backend_name() == "sqlite" and url.database else None


# ---------------------------------------------------------------------------------------------- engines


def busy_timeout() -> float:
    """Seconds a SQLite writer waits for another's lock: $ZOO_LEADERBOARD_BUSY_TIMEOUT, default 30."""
    value = os.environ.get("ZOO_LEADERBOARD_BUSY_TIMEOUT")
    try:
        return float(value) if value else BUSY_TIMEOUT_S
    except ValueError:
        raise UserError(f"ZOO_LEADERBOARD_BUSY_TIMEOUT='{value}' is not a number of seconds") from None


@functools.lru_cache(maxsize=16)
def _engine(url: URL, write: bool, timeout: float) -> Engine:
    if url.get_backend_name() == "postgresql":
        engine = sa.create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 10})
        if not write:
            sa.event.listen(
                engine, "begin", lambda c: c.exec_driver_sql("SET TRANSACTION READ ONLY"), retval=False
            )
        return engine
    path = sqlite_file(url)
    if path is None:
        raise UserError("an in-memory SQLite leaderboard would vanish with the process; give a file")
    # A reader opens the file read-only; a writer waits `timeout` seconds for another writer's lock.
    target = f"file:{quote(str(path))}" + ("" if write else "?mode=ro")
    engine = sa.create_engine(
        "sqlite://",
        poolclass=NullPool,
        creator=lambda: _sqlite_connect(target, timeout, write),
    )

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:  # writers take the write lock up front: no upgrade deadlock
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _sqlite_connect(target: str, timeout: float, write: bool) -> Any:
    import sqlite3

    conn = sqlite3.connect(target, uri=True, timeout=timeout, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    if write:  # write-ahead log: readers go on reading while a writer holds its lock (kept in the file)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn
    try:
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1")
    except sqlite3.OperationalError:
        # A WAL file in a folder we cannot write (no -shm to share): SQLite reads it as immutable, which
        # is what it is to us (https://sqlite.org/wal.html#readonly).
        conn.close()
        conn = sqlite3.connect(target + "&immutable=1", uri=True, timeout=timeout, isolation_level=None)
    return conn


@contextlib.contextmanager
def transaction(db: str | Path | None = None, *, timeout: float | None = None) -> Iterator[Connection]:
    """One write transaction on the (created and migrated if needed) leaderboard: all or nothing."""
    url = database_url(db)
    timeout = busy_timeout() if timeout is None else timeout
    path = sqlite_file(url)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(
                f"cannot create the leaderboard folder {path.parent} ({e.strerror}); set ZOO_HOME or --db"
            ) from None
    engine = _engine(url, True, timeout)
    with _translated(url):
        with engine.begin() as conn:
            if url.get_backend_name() == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_ADVISORY_LOCK)))
            _prepare(conn, url)
            yield conn


@contextlib.contextmanager
def reading(db: str | Path | None = None) -> Iterator[Connection | None]:
    """A read-only connection, or None when the SQLite file does not exist yet (an empty leaderboard)."""
    url = database_url(db)
    path = sqlite_file(url)
    if path is not None and not path.exists():
        yield None
        return
    with _translated(url):
        with _engine(url, False, BUSY_TIMEOUT_S).connect() as conn:
            version = stored_version(conn)
            if version is not None and version < SCHEMA_VERSION:
                conn.close()
                _upgrade_for_reading(db, url, version)
                with _engine(url, False, BUSY_TIMEOUT_S).connect() as upgraded:
                    yield upgraded
                return
            _check_version(version, url)
            yield conn if version is not None else None


def _upgrade_for_reading(db: str | Path | None, url: URL, version: int) -> None:
    try:
        with transaction(db):
            pass
    except UserError as err:
        raise UserError(
            f"{shown(url)} holds leaderboard schema {version}, this zoo reads {SCHEMA_VERSION}, and it could not "
            f"be upgraded in place ({err}); open it once with write access to upgrade it"
        ) from None


@contextlib.contextmanager
def _translated(url: URL) -> Iterator[None]:
    """Database errors a user can cause (a locked, read-only, foreign or unreachable database) as one line."""
    try:
        yield
    except UserError:
        raise
    except OperationalError as e:
        reason = str(e.orig).strip().splitlines()[0] if e.orig else str(e)
        if url.get_backend_name() == "postgresql":
            raise UserError(
                f"cannot reach the leaderboard database {shown(url)} ({reason}); check ZOO_LEADERBOARD_URL or --db"
            ) from None
        raise UserError(
            f"cannot use the leaderboard database {shown(url)} ({reason}); "
            "if another process is writing, try again, else set ZOO_HOME or --db"
        ) from None
    except DatabaseError as e:
        reason = str(e.orig).strip().splitlines()[0] if e.orig else str(e)
        raise UserError(
            f"{shown(url)} is not a usable zoo leaderboard database ({reason}); move it away or set ZOO_HOME"
        ) from None
    except SQLAlchemyError as e:
        raise UserError(f"leaderboard database {shown(url)}: {e.__class__.__name__}: {e}") from None


# ---------------------------------------------------------------------------------------------- schema


def stored_version(conn: Connection) -> int | None:
    """The schema version the database says it has; None for an empty database."""
    if not sa.inspect(conn).has_table("meta"):
        return None
    value = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
    return int(value) if value is not None else None


def _check_version(version: int | None, url: URL) -> None:
    if version is not None and version > SCHEMA_VERSION:
        raise UserError(
            f"{shown(url)} was written by a newer zoo (schema {version}, this zoo reads {SCHEMA_VERSION}); "
            "upgrade domain-zoo or point ZOO_HOME (or --db) elsewhere"
        )


def _prepare(conn: Connection, url: URL) -> None:
    """Refuse a newer schema before touching anything; migrate an older one; create what is missing."""
    version = stored_version(conn)
    _check_version(version, url)
    if version is not None and version < SCHEMA_VERSION:
        for v in range(version, SCHEMA_VERSION):
            MIGRATIONS[v](conn)
        conn.execute(meta.update().where(meta.c.key == "schema_version").values(value=str(SCHEMA_VERSION)))
    metadata.create_all(conn, checkfirst=True)
    if version is None:
        conn.execute(meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
