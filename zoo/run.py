"""Run directories: where every verb reads and writes.

A run dir holds `config.yaml` (resolved), `run.json` (status and summary), `tokenizer/`,
`checkpoints/step-N/` (each written to a temp dir and renamed, so a checkpoint exists whole or not
at all), `metrics.jsonl`, `loss.png` and, once finished, `model/`. A run counts as complete only when
`run.json` says so and `model/` exists, and both are the last things written.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from zoo.errors import UserError

RUNS_DIR = Path("runs")
COMMAND: str | None = None
"""The `zoo …` command line this process runs (set by the CLI); a new run.json records it as `command`."""


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def new_run_dir(domain: str, verb: str, out: str | Path | None) -> Path:
    """`--out DIR` as given, else runs/<domain>-<verb>-<YYYYmmdd-HHMMSS> (suffixed if taken)."""
    if out is not None:
        path = Path(out)
        if path.exists() and any(path.iterdir()):
            raise UserError(
                f"output directory '{path}' is not empty; choose another --out or resume it with --resume {path}"
            )
        return path
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = RUNS_DIR / f"{domain}-{verb}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = RUNS_DIR / f"{domain}-{verb}-{stamp}-{n}"
    return path


def read_info(run_dir: Path) -> dict[str, Any]:
    p = run_dir / "run.json"
    return json.loads(p.read_text()) if p.is_file() else {}


def write_info(run_dir: Path, **fields: Any) -> dict[str, Any]:
    old = read_info(run_dir)
    info = {**({"command": COMMAND} if COMMAND and not old else {}), **old, **fields}
    atomic_write_text(run_dir / "run.json", json.dumps(info, indent=2, default=str))
    return info


def is_complete(run_dir: Path) -> bool:
    """run.json says complete (written last); a pretraining run also has its model/."""
    info = read_info(run_dir)
    if info.get("status") != "complete":
        return False
    return info.get("verb") != "pretrain" or (run_dir / "model").is_dir()


def checkpoints(run_dir: Path) -> list[Path]:
    found = [p for p in (run_dir / "checkpoints").glob("step-*") if p.is_dir() and p.name[5:].isdigit()]
    return sorted(found, key=lambda p: int(p.name[5:]))


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    for old in checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)


def find_resumable(domain: str, verb: str) -> Path | None:
    """The newest runs/<domain>-<verb>-* that has a checkpoint (anywhere inside) and is not complete."""
    candidates = [
        p
        for p in RUNS_DIR.glob(f"{domain}-{verb}-*")
        if p.is_dir() and not is_complete(p) and any(p.rglob("checkpoints/step-*"))
    ]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def resume_dir(domain: str, verb: str, resume: str, out: str | Path | None) -> Path:
    """The unfinished run `--resume` names: with 'auto', `--out` or else the newest unfinished
    runs/<domain>-<verb>-* with a checkpoint; otherwise a run directory (or one of its checkpoints/step-N)."""
    if resume == "auto" and out is None:
        found = find_resumable(domain, verb)
        if found is None:
            raise UserError(
                f"--resume auto: no unfinished {domain} {verb} run with a checkpoint under {RUNS_DIR}/"
            )
        return found
    path = Path(out if resume == "auto" else resume)
    if path.name.startswith("step-") and path.parent.name == "checkpoints":
        path = path.parent.parent
    if not (path / "config.yaml").is_file() or not (path / "run.json").is_file():
        raise UserError(f"--resume: '{path}' is not a zoo {verb} run directory (no config.yaml and run.json)")
    if is_complete(path):
        raise UserError(f"run '{path}' is already complete; nothing to resume")
    return path


def resolve_model(ref: str | Path) -> Path:
    """A run dir (→ its model/), a model dir with config.json, or a Hub model (`hf://OWNER/NAME[@REV]`, or
    a plain OWNER/NAME that is no local path) through the Hub cache; anything else is a user error."""
    from zoo import hub

    if hub.is_hub_ref(str(ref)):
        try:
            return _model_folder(hub.download(str(ref)), str(ref))
        except UserError as err:
            if str(ref).startswith(hub.PREFIX):
                raise
            raise UserError(
                f"'{ref}' is no local run or model directory, and as a Hub model: {err}"
            ) from None
    return _model_folder(Path(ref), str(ref))


def _model_folder(path: Path, ref: str) -> Path:
    if not path.exists():
        raise UserError(
            f"model or run '{ref}' does not exist (give a run directory or a saved model directory)"
        )
    if (path / "model" / "config.json").is_file():
        return path / "model"
    if (path / "config.json").is_file():
        return path
    if (path / "run.json").is_file():
        raise UserError(f"run '{ref}' has no finished model yet (resume it with --resume {ref})")
    raise UserError(f"'{ref}' is neither a zoo run directory nor a model directory with config.json")
