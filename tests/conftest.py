"""Shared test helpers. Tests never touch the network."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# evaluate copies the zoo's metric scripts into its module cache and imports them from there: one cache
# for the whole session (set before evaluate is imported), so no test writes into ~/.cache.
os.environ.setdefault("HF_MODULES_CACHE", tempfile.mkdtemp(prefix="zoo-test-hf-modules-"))


def _import_triton_interpretable() -> None:
    """triton.jit picks the interpreter when a function is decorated, and triton.language's own jit
    helpers are decorated when triton is first imported — which torch may do in any earlier test.
    Import triton once with TRITON_INTERPRET=1 so the CPU kernel tests can interpret it, then restore
    the variable so every other test keeps the plain-torch CPU path."""
    previous = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        import triton.language  # noqa: F401
    except ImportError:
        pass
    finally:
        if previous is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = previous


_import_triton_interpretable()

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("ZOO_DATA_ROOT", ROOT.parent / "shared" / "data"))


def shared_data(*parts: str) -> Path:
    """A folder of the real public data in ../shared/data (or $ZOO_DATA_ROOT).

    Missing: a failure under CI=true (CI always has it), a skip on a developer machine without it.
    """
    path = SHARED_DATA.joinpath(*parts)
    if not path.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"real data folder {path} is missing (set ZOO_DATA_ROOT)")
        pytest.skip(f"real data folder {path} not present")
    return path


@pytest.fixture(autouse=True)
def _private_zoo_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # The leaderboard lives under ZOO_HOME: tests must never write into the user's ~/.zoo.
    monkeypatch.setenv("ZOO_HOME", str(tmp_path_factory.mktemp("zoo_home")))


# ------------------------------------------------------------------ a throwaway PostgreSQL server


def _postgres_bin() -> Path | None:
    """The folder with initdb and pg_ctl: $ZOO_PG_BIN, PATH, or Debian's /usr/lib/postgresql/<v>/bin."""
    import shutil

    found = shutil.which("pg_ctl")
    candidates = [os.environ.get("ZOO_PG_BIN"), found and str(Path(found).resolve().parent)]
    candidates += [str(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)]
    for c in candidates:
        if c and (Path(c) / "initdb").is_file() and (Path(c) / "pg_ctl").is_file():
            return Path(c)
    return None


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server() -> object:
    """A real PostgreSQL server on loopback for the session (initdb in a temp dir, stopped at the end).

    Without PostgreSQL binaries: a failure under CI=true (.ci/run installs Debian's postgresql), a skip
    on a developer machine without them. initdb refuses root, so as root the server runs as the
    `postgres` user (Debian's package creates it) or `nobody`."""
    import pwd
    import shutil
    import subprocess

    bindir = _postgres_bin()
    if bindir is None:
        if os.environ.get("CI") == "true":
            pytest.fail(
                "PostgreSQL binaries (initdb, pg_ctl) not found; .ci/run installs Debian's postgresql"
            )
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found")
    root = Path(tempfile.mkdtemp(prefix="zoo-pg-"))
    user = None
    if os.geteuid() == 0:
        name = "postgres" if any(p.pw_name == "postgres" for p in pwd.getpwall()) else "nobody"
        user = pwd.getpwnam(name)
        root.chmod(0o755)
        os.chown(root, user.pw_uid, user.pw_gid)
    data, port = root / "data", _free_port()
    run_as = {"user": user.pw_uid, "group": user.pw_gid} if user else {}
    env = {**os.environ, "LC_ALL": "C", "HOME": str(root)}

    def pg(*args: str) -> None:
        done = subprocess.run(args, capture_output=True, text=True, cwd=root, env=env, timeout=120, **run_as)
        if done.returncode != 0:
            log = root / "server.log"
            pytest.fail(f"{' '.join(args)} failed: {done.stderr}{log.read_text() if log.is_file() else ''}")

    pg(str(bindir / "initdb"), "-D", str(data), "-U", "zoo", "--auth=trust", "-E", "UTF8")
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=100 -c fsync=off"
    pg(str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "server.log"), "-w", "start")
    try:
        yield f"postgresql://zoo@127.0.0.1:{port}"
    finally:
        subprocess.run(
            [str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            capture_output=True, cwd=root, env=env, timeout=120, **run_as,
        )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A fresh, empty database on the session's server: its URL."""
    import uuid

    import psycopg

    name = "zoo_" + uuid.uuid4().hex[:10]
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{postgres_server}/{name}"
