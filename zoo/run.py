"""Run directories: where every verb reads and writes.

A run dir holds `config.yaml` (resolved), `run.json` (status and summary), `tokenizer/`,
`checkpoints/step-N/` (each written to a temp dir and renamed, so a checkpoint exists whole or not
at all), `metrics.jsonl`, `loss.png` and, once finished, `model/`. A run counts as complete only when
`run.json` says so and `model/` exists, and both are the last things written. A run whose status says
`running` while the process that wrote it (its pid on this host) is gone was killed: `run_status` calls
it `interrupted`, and so does every message about it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from zoo.errors import UserError
from zoo.files import check_output_dir

RUNS_DIR = Path("runs")
_active: list[Path] = []
"""The run this process is writing (set when its status becomes 'running'), for the interrupt message."""
COMMAND: str | None = None
"""The `zoo …` command line this process runs (set by the CLI); a new run.json records it as `command`."""


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def new_run_dir(domain: str, verb: str, out: str | Path | None) -> Path:
    """`--out DIR` as given, else runs/<domain>-<verb>-<YYYYmmdd-HHMMSS> (suffixed if taken)."""
    if out is not None:
        return check_output_dir(out, resumable=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = RUNS_DIR / f"{domain}-{verb}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = RUNS_DIR / f"{domain}-{verb}-{stamp}-{n}"
    return path


def read_info(run_dir: Path) -> dict[str, Any]:
    p = run_dir / "run.json"
    if not p.is_file():
        return {}
    try:
        info = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"'{p}' is not a zoo run.json ({err}); the run directory is damaged") from None
    if not isinstance(info, dict):
        raise UserError(f"'{p}' is not a zoo run.json (not a JSON object); the run directory is damaged")
    return info


def write_info(run_dir: Path, **fields: Any) -> dict[str, Any]:
    """Merge `fields` into run.json (atomically). Status 'running' also records who runs it (pid, host);
    a new run.json records the command line that made it."""
    if fields.get("status") == "running":
        fields = {**fields, "pid": os.getpid(), "host": socket.gethostname()}
        _active[:] = [run_dir]
    elif fields.get("status") in ("complete", "interrupted"):
        _active.clear()
    old = read_info(run_dir)
    info = {**({"command": COMMAND} if COMMAND and not old else {}), **old, **fields}
    atomic_write_text(run_dir / "run.json", json.dumps(info, indent=2, default=str))
    return info


@contextmanager
def discarded_on_user_error(run_dir: Path, created: bool, is_main: bool = True) -> Iterator[None]:
    """A UserError inside (e.g. a method option that only the built model can refute) leaves nothing
    half-written: a run this call `created` without a checkpoint yet is removed; any other is marked
    'failed' with the message."""
    try:
        yield
    except UserError as err:
        if is_main:
            _active.clear()
            if created and not any(run_dir.rglob("checkpoints/step-*")):
                shutil.rmtree(run_dir, ignore_errors=True)
            else:
                write_info(run_dir, status="failed", error=str(err))
        raise


def active_run() -> Path | None:
    """The run directory this process has marked 'running' and not finished."""
    return _active[0] if _active else None


def run_status(run_dir: Path) -> str:
    """'complete', 'running', 'interrupted' (a 'running' run whose process on this host is gone), or
    '' when there is no run.json."""
    info = read_info(run_dir)
    status = str(info.get("status", ""))
    if status == "complete" and not is_complete(run_dir):
        return "interrupted"
    if status == "running" and info.get("host") == socket.gethostname() and not _alive(info.get("pid")):
        return "interrupted"
    return status


def _running_here(info: dict[str, Any]) -> bool:
    """The run's process is alive on this host (and is not this process)."""
    pid = info.get("pid")
    return info.get("host") == socket.gethostname() and pid != os.getpid() and _alive(pid)


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def resume_command(run_dir: Path) -> str:
    info = read_info(run_dir)
    return f"zoo {info.get('verb', '<verb>')} {info.get('domain', '<domain>')} --resume {run_dir}"


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
        if p.is_dir()
        and not is_complete(p)
        and not _running_here(read_info(p))
        and any(p.rglob("checkpoints/step-*"))
    ]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def resume_dir(domain: str, verb: str, resume: str, out: str | Path | None) -> Path:
    """The unfinished run `--resume` names: with 'auto', `--out` or else the newest unfinished
    runs/<domain>-<verb>-* with a checkpoint; otherwise a run directory (or one of its checkpoints/step-N)."""
    from zoo.files import check_existing_path

    if resume == "auto" and out is None:
        found = find_resumable(domain, verb)
        if found is None:
            raise UserError(
                f"--resume auto: no unfinished {domain} {verb} run with a checkpoint under {RUNS_DIR}/"
            )
        path = found
    else:
        path = check_existing_path(out if resume == "auto" else resume, "--resume run")
    if path.name.startswith("step-") and path.parent.name == "checkpoints":
        path = path.parent.parent
    if not (path / "config.yaml").is_file() or not (path / "run.json").is_file():
        raise UserError(f"--resume: '{path}' is not a zoo {verb} run directory (no config.yaml and run.json)")
    if is_complete(path):
        raise UserError(f"run '{path}' is already complete; nothing to resume")
    info = read_info(path)
    if (info.get("domain"), info.get("verb")) != (domain, verb):
        raise UserError(
            f"--resume: '{path}' is a {info.get('domain')} {info.get('verb')} run, not {domain} {verb}; "
            f"resume it with `{resume_command(path)}`"
        )
    if info.get("status") == "running" and _running_here(info):
        raise UserError(
            f"--resume: run '{path}' is still running (process {info.get('pid')}); wait for it or stop it first"
        )
    check_checkpoints(path)
    return path


def check_checkpoints(run_dir: Path) -> None:
    """The newest checkpoint of each fit in `run_dir` is whole: its trainer state reads and its
    safetensors files open (a UserError naming the file otherwise), so a resume fails before it starts."""
    folders = {p.parent for p in run_dir.rglob("checkpoints/step-*")}
    for folder in sorted(folders):
        newest = checkpoints(folder.parent)
        if not newest:
            continue
        last = newest[-1]
        state = last / "trainer_state.json"
        try:
            saved = json.loads(state.read_text())
            int(saved["step"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise UserError(
                f"checkpoint '{last}' has no readable trainer state ({state.name}: {err}); "
                f"delete {last} to resume from the one before it"
            ) from None
        for weights in sorted(last.glob("*.safetensors")):
            check_safetensors(weights, f"delete {last} to resume from the one before it")


def check_safetensors(path: Path, fix: str) -> None:
    """A UserError naming `path` when it is not a whole safetensors file."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            f.keys()
    except Exception as err:  # safetensors raises its own error types for a bad header or a short file
        raise UserError(f"weights file '{path}' is corrupt or truncated ({err}); {fix}") from None


def resolve_model(ref: str | Path, domain: Any = None, allow_foreign: bool = False) -> Path:
    """A complete run dir (→ its model/), a model dir with config.json, or a Hub model
    (`hf://OWNER/NAME[@REV]`, or a plain OWNER/NAME that is no local path) through the Hub cache; checked
    for `domain` (see `check_model_dir`). Anything else is a user error."""
    from zoo import hub
    from zoo.files import check_existing_path

    if hub.is_hub_ref(str(ref)):
        try:
            path = _model_folder(hub.download(str(ref)), str(ref))
        except UserError as err:
            if str(ref).startswith(hub.PREFIX):
                raise
            raise UserError(
                f"'{ref}' is no local run or model directory, and as a Hub model: {err}"
            ) from None
    else:
        path = _model_folder(check_existing_path(ref, "model or run"), str(ref))
    if domain is not None:
        check_model_dir(path, domain, allow_foreign)
    return path


def _model_folder(path: Path, ref: str) -> Path:
    if not path.exists():
        raise UserError(
            f"model or run '{ref}' does not exist (give a run directory or a saved model directory)"
        )
    if (path / "run.json").is_file() and not is_complete(path):
        status = run_status(path) or "unfinished"
        raise UserError(
            f"run '{ref}' is {status} and has no finished model (resume it with `{resume_command(path)}`)"
        )
    if (path / "model" / "config.json").is_file():
        return path / "model"
    if not (path / "config.json").is_file():
        raise UserError(f"'{ref}' is neither a zoo run directory nor a model directory with config.json")
    return path


def check_model_dir(path: Path, domain: Any, allow_foreign: bool = False) -> None:
    """A saved model `domain` can use: config.json readable and of the domain's model family, whole
    weights, a tokenizer, and (unless `allow_foreign`) pretrained by this domain when a zoo run says so."""
    from zoo.families import get_family

    config_file = path / "config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise UserError(f"'{config_file}' is not a model config (not JSON: {err})") from None
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise UserError(f"'{config_file}' is not a transformers model config (no \"model_type\")")
    family = get_family(domain.model.family)
    expected = family.model_type()
    if config["model_type"] != expected:
        raise UserError(
            f"model '{path}' is a '{config['model_type']}' model, but domain '{domain.name}' uses the "
            f"'{family.name}' family ('{expected}' models); give a {domain.name} model or run"
        )
    weights = sorted(path.glob("*.safetensors"))
    if not weights and not any(
        (path / n).is_file() for n in ("pytorch_model.bin", "model.safetensors.index.json")
    ):
        raise UserError(f"model '{path}' has no weights (model.safetensors); save it with save_pretrained")
    for w in weights:
        check_safetensors(w, f"the model in '{path}' cannot be loaded; save it again")
    if not any((path / n).is_file() for n in ("tokenizer.json", "tokenizer_config.json", "vocab.txt")):
        raise UserError(
            f"model '{path}' has no tokenizer (tokenizer.json); save the tokenizer it was trained with "
            "next to it (a zoo run's model/ holds one)"
        )
    run = next((d for d in (path, path.parent) if (d / "run.json").is_file()), None)
    origin = read_info(run).get("domain") if run is not None else None
    if origin and origin != domain.name and not allow_foreign:
        raise UserError(
            f"model '{path}' was pretrained by domain '{origin}', not '{domain.name}'; give a {domain.name} "
            "model, or pass --allow-foreign-model to use it anyway"
        )


def load_tokenizer(path: Path) -> Any:
    """The tokenizer saved in `path` (a model or tokenizer folder); one that does not load, or has more
    entries than the vocabulary of the model saved with it, is a UserError naming the folder."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception as err:  # transformers raises many types for a damaged tokenizer file
        raise UserError(f"the tokenizer in '{path}' does not load ({type(err).__name__}: {err})") from None
    config = path / "config.json"
    vocab = json.loads(config.read_text()).get("vocab_size") if config.is_file() else None
    if isinstance(vocab, int) and len(tokenizer) > vocab:
        raise UserError(
            f"the tokenizer in '{path}' has {len(tokenizer):,} entries but the model's vocabulary only "
            f"{vocab:,}; they do not belong together"
        )
    return tokenizer
