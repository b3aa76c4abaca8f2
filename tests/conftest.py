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
