"""User files in and out: text that is not UTF-8 named by line and byte offset, output paths checked
before any work. Pure Python (no torch), so the CLI can check them cheaply."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

from zoo.errors import UserError

NAME_MAX = 255
"""Bytes in one path component on the usual file systems (ext4, xfs, btrfs, APFS, tmpfs)."""


def decode_error(path: Path | str, raw: bytes, err: UnicodeDecodeError, start: int = 0) -> UserError:
    """A UserError for a UTF-8 decode failure at byte `start + err.start` of `path` (`raw` = the bytes
    decoded from offset `start`), naming the line, the byte offset and the byte."""
    offset = start + err.start
    line = raw[: err.start].count(b"\n") + 1 if start == 0 else None
    where = f"{path}:{line}" if line else str(path)
    bad = raw[err.start : err.start + 1]
    return UserError(
        f"{where}: not UTF-8 (byte {bad!r} at offset {offset}: {err.reason}); re-encode the file as UTF-8"
    )


def zoo_home() -> Path:
    """`$ZOO_HOME`, default `~/.zoo`: the leaderboard database and caches (`cache/`) live here."""
    return Path(os.environ.get("ZOO_HOME") or "~/.zoo").expanduser()


def read_text_file(path: Path | str) -> str:
    """The whole file as text: UTF-8 with or without a BOM; anything else names line and byte offset."""
    raw = Path(path).read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise decode_error(path, raw, err) from None


def read_yaml(path: Path, what: str) -> Any:
    """A YAML file's data; a syntax error is one line naming `what`, the file, the line and the problem."""
    import yaml

    try:
        return yaml.safe_load(read_text_file(path))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise UserError(f"{what} '{path}{where}' is not valid YAML: {getattr(err, 'problem', err)}") from None


def check_existing_path(path: Path | str, what: str) -> Path:
    """`path` as given when it names an existing file or folder; a UserError saying what is wrong else
    (missing, a device or pipe such as /dev/null, a name too long to exist)."""
    p = Path(path)
    _check_name_lengths(p, what)
    if not p.exists():
        raise UserError(f"{what} '{p}' does not exist")
    if not (p.is_file() or p.is_dir()):
        raise UserError(f"{what} '{p}' is not a regular file or folder (a device, pipe or socket)")
    return p


def check_output_dir(path: Path | str, what: str = "output directory", resumable: bool = False) -> Path:
    """A folder to create and fill: absent or empty, its parents folders, writable, names not too long.
    `resumable`: a non-empty one may be a run to continue with --resume (the message says so)."""
    p = Path(path)
    hint = "choose another --out"
    _check_name_lengths(p, what)
    if p.exists() and not p.is_dir():
        raise UserError(f"{what} '{p}' is a file; {hint}")
    if p.is_dir() and any(p.iterdir()):
        more = f" or resume it with --resume {p}" if resumable else ""
        raise UserError(f"{what} '{p}' is not empty; {hint}{more}")
    _check_writable_parent(p, what, hint)
    return p


def check_output_file(path: Path | str, what: str = "output file") -> Path:
    """A file to (over)write: not a folder, its folder exists and is writable, name not too long."""
    p = Path(path)
    _check_name_lengths(p, what)
    if p.is_dir():
        raise UserError(f"{what} '{p}' is a directory; give a file name inside it, e.g. {p / 'board.html'}")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.exists():
        raise UserError(f"{what} '{p}': folder '{parent}' does not exist; create it first")
    _check_writable_parent(p, what, "choose another path")
    return p


def _check_name_lengths(p: Path, what: str) -> None:
    long = next((part for part in p.parts if len(os.fsencode(part)) > NAME_MAX), None)
    if long is not None:
        raise UserError(
            f"{what} name '{long[:40]}…' is {len(os.fsencode(long))} bytes long; file systems allow {NAME_MAX}"
        )
    if len(os.fsencode(str(p))) >= 4096:
        raise UserError(f"{what} path '{str(p)[:40]}…' is longer than the 4,096 bytes a path may have")


def _check_writable_parent(p: Path, what: str, hint: str) -> None:
    """The nearest existing ancestor must be a writable folder (a file there means 'under a file')."""
    ancestor = p if p.exists() else p.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if str(ancestor) == "":
        ancestor = Path(".")
    if ancestor.exists() and not ancestor.is_dir():
        raise UserError(f"{what} '{p}' lies under '{ancestor}', which is a file; {hint}")
    effective = os.access in os.supports_effective_ids  # the ids this process writes with
    if not os.access(ancestor, os.W_OK | os.X_OK, effective_ids=effective):
        raise UserError(f"{what} '{p}': folder '{ancestor}' is not writable; {hint}")


def os_error_message(err: OSError) -> str | None:
    """One line for an OSError a user's path or machine caused (a name too long, no permission, no
    space, read-only), or None for any other (a bug: let it show)."""
    known = {
        errno.ENAMETOOLONG: "the path name is too long",
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
        errno.ENOSPC: "no space left on the device",
        errno.EROFS: "the file system is read-only",
        errno.ENOTDIR: "a part of the path is a file, not a folder",
        errno.EISDIR: "it is a folder, not a file",
    }
    if err.errno not in known:
        return None
    name = str(err.filename) if err.filename is not None else ""
    shown = name if len(name) <= 120 else name[:60] + "…" + name[-40:]
    return f"cannot use '{shown}': {known[err.errno]}" if shown else known[err.errno]
