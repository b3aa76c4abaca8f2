"""Load benchmark task splits from their real file formats into plain examples.

A task's `format` picks the loader: 'iob' (CoNLL-style token<TAB>tag), 'csv' (header row; also TSV),
'jsonl' (one JSON object per line), 'pubmedqa' (the PQA-L JSON object keyed by PMID), or
'pkg.module:func' for a third-party loader called as `func(task, data_dir, split)`.
Every malformed input ends in a `UserError` naming file:line and what was expected.
Pure Python on purpose: no torch/datasets import, so the CLI can validate data cheaply.
"""

from __future__ import annotations

import csv
import importlib
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

from zoo.domain import TaskSpec
from zoo.errors import UserError, did_you_mean


@dataclass(frozen=True)
class TokenExample:
    """One sentence for token classification: parallel tokens and IOB2 tags."""

    tokens: list[str]
    tags: list[str]


@dataclass(frozen=True)
class TextExample:
    """One (text[, text_pair]) → label item. Labels are strings as read from the file."""

    text: str
    text_pair: str | None
    label: str


Example: TypeAlias = TokenExample | TextExample

# Extensions tried for a split stem, per format (first match wins).
_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "iob": (".tsv", ".txt", ".conll", ".iob"),
    "csv": (".csv", ".tsv"),
    "jsonl": (".jsonl", ".json"),
    "pubmedqa": (".json",),
}
_ANY_EXTENSIONS = (".tsv", ".csv", ".json", ".jsonl", ".txt")
_TAG = re.compile(r"^[BI]-\S.*$")
PUBMEDQA_LABELS = ("yes", "no", "maybe")


def split_path(task: TaskSpec, data_dir: Path, split: str) -> Path:
    """The file holding `split` of `task`: `<stem>.<ext>` (or the exact name) in data_dir or data_dir/<task>.

    Accepting data_dir/<task name> lets `--data` point at a domain folder holding one folder per task.
    """
    if split not in task.splits:
        raise UserError(f"task '{task.name}' has no split '{split}'{did_you_mean(split, task.splits)}")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise UserError(
            f"data directory {data_dir} does not exist; --data DIR must be a folder holding the split files "
            f"of task '{task.name}' ({', '.join(task.splits.values())})"
        )
    stem = task.splits[split]
    exts = _EXTENSIONS.get(task.format, _ANY_EXTENSIONS)
    tried: list[Path] = []
    for folder in (data_dir, data_dir / task.name):
        for name in (stem, *(stem + e for e in exts)):
            candidate = folder / name
            if candidate.is_file():
                return candidate
            tried.append(candidate)
    shown = ", ".join(p.name for p in tried[: len(exts) + 1])
    raise UserError(
        f"no file for split '{split}' of task '{task.name}' in {data_dir} (looked for {shown}, also under "
        f"{data_dir / task.name}); --data DIR must contain it"
    )


def load_split(task: TaskSpec, data_dir: Path, split: str) -> list[Example]:
    """Read one split of a task, dispatching on `task.format`."""
    if ":" in task.format:
        return _load_third_party(task, Path(data_dir), split)
    loader = _LOADERS.get(task.format)
    if loader is None:
        raise UserError(
            f"task '{task.name}' has unknown format '{task.format}'"
            f"{did_you_mean(task.format, _LOADERS)} or a 'pkg.module:func' loader"
        )
    path = split_path(task, Path(data_dir), split)
    examples = loader(path, task.options)
    if not examples:
        raise UserError(f"{path}: no examples found; the file is empty or holds only headers/blank lines")
    return examples


def label_list(examples: Sequence[Example]) -> list[str]:
    """The label space of `examples`, in a stable order.

    Token tasks: 'O' first, then B-/I- tags sorted; both B-X and I-X are included for every type X seen,
    so a tag that only appears in dev/test (e.g. an I- never seen in a small train set) still has an id.
    Text tasks: labels sorted, numerically when all of them are integers ('2' before '10').
    """
    if examples and isinstance(examples[0], TokenExample):
        types = {t[2:] for ex in examples for t in ex.tags if t != "O"}  # type: ignore[union-attr]
        return ["O", *sorted(f"{p}-{t}" for t in types for p in ("B", "I"))]
    labels = {str(ex.label) for ex in examples}  # type: ignore[union-attr]
    if all(re.fullmatch(r"-?\d+", x) for x in labels):
        return sorted(labels, key=int)
    return sorted(labels)


# ---------------------------------------------------------------- IOB


def _load_iob(path: Path, options: Mapping[str, Any]) -> list[Example]:
    """token<TAB>tag lines, blank line between sentences, `-DOCSTART-` lines skipped.

    Options: `columns` (expected column count, default 2), `token_column` (0), `tag_column` (1),
    `delimiter` ("\\t"; null = any whitespace), `repair_iob` (false): turn a stray I-X into B-X,
    as conlleval does, instead of failing (StackOverflow NER has a handful of these).
    """
    n_cols = int(options.get("columns", 2))
    tok_col, tag_col = int(options.get("token_column", 0)), int(options.get("tag_column", 1))
    delimiter = options.get("delimiter", "\t")
    repair = bool(options.get("repair_iob", False))
    sep = "tab" if delimiter == "\t" else "whitespace" if delimiter is None else repr(delimiter)
    shape = f"{n_cols} {sep}-separated columns" + (" (token<TAB>tag)" if (n_cols, sep) == (2, "tab") else "")

    examples: list[Example] = []
    tokens: list[str] = []
    tags: list[str] = []
    for lineno, line in _lines(path):
        if not line.strip():
            if tokens:
                examples.append(TokenExample(tokens, tags))
                tokens, tags = [], []
            continue
        parts = line.split(delimiter)
        if parts[0] == "-DOCSTART-":
            continue
        if len(parts) != n_cols:
            raise UserError(f"{path}:{lineno}: expected {shape}, found {len(parts)}: {line[:80]!r}")
        tag = parts[tag_col].strip()
        if tag != "O" and not _TAG.match(tag):
            raise UserError(f"{path}:{lineno}: tag {tag!r} is not IOB2 (expected O, B-TYPE or I-TYPE)")
        if tag.startswith("I-"):
            prev = tags[-1] if tags else "O"
            if prev == "O" or prev[2:] != tag[2:]:
                if not repair:
                    raise UserError(
                        f"{path}:{lineno}: {tag} follows {prev}; strict IOB2 starts an entity with "
                        f"B-{tag[2:]} "
                        f"(fix the file, or set the task option repair_iob: true to read it as B-{tag[2:]})"
                    )
                tag = "B-" + tag[2:]
        tokens.append(parts[tok_col])
        tags.append(tag)
    if tokens:
        examples.append(TokenExample(tokens, tags))
    return examples


# ---------------------------------------------------------------- CSV / TSV


def _load_csv(path: Path, options: Mapping[str, Any]) -> list[Example]:
    """Header row, then one example per record (quoted fields may span lines).

    Options: `text_column` (default: 'text' or 'sequence', whichever the header has), `pair_column`,
    `label_column` ('label'), `delimiter` (',' for .csv, tab for .tsv).
    """
    delimiter = options.get("delimiter", "\t" if path.suffix == ".tsv" else ",")
    examples: list[Example] = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, delimiter=delimiter)
            header = next(reader, None)
            if header is None:
                raise UserError(f"{path}: empty file; expected a header row naming the columns")
            text_i, pair_i, label_i = _columns(path, header, options, default_text=("text", "sequence"))
            start = reader.line_num + 1
            for row in reader:
                if row:  # csv yields [] for a blank line
                    if len(row) != len(header):
                        raise UserError(
                            f"{path}:{start}: expected {len(header)} fields ({delimiter.join(header)}), "
                            f"found {len(row)}"
                        )
                    examples.append(_text_example(path, start, row, text_i, pair_i, label_i))
                start = reader.line_num + 1
    except csv.Error as e:
        raise UserError(f"{path}:{reader.line_num}: malformed CSV ({e})") from None
    except UnicodeDecodeError as e:
        raise UserError(
            f"{path}: not valid UTF-8 ({e.reason} at byte {e.start}); re-encode the file"
        ) from None
    return examples


def _columns(
    path: Path, header: Sequence[str], options: Mapping[str, Any], default_text: tuple[str, ...]
) -> tuple[int, int | None, int]:
    """Indices of the text, optional pair and label columns in `header`."""

    def index(name: str, option: str) -> int:
        if name not in header:
            raise UserError(
                f"{path}: no column '{name}' (header: {', '.join(header)}); set the task option "
                f"{option} to one of them{did_you_mean(name, header)}"
            )
        return list(header).index(name)

    text = options.get("text_column") or next((c for c in default_text if c in header), default_text[0])
    pair = options.get("pair_column")
    return (
        index(text, "text_column"),
        index(pair, "pair_column") if pair else None,
        index(options.get("label_column", "label"), "label_column"),
    )


def _text_example(path: Path, lineno: int, record: Any, text: Any, pair: Any, label: Any) -> TextExample:
    """Build one example from a CSV row (int keys) or a JSON object (str keys)."""
    value = record[label]
    if value is None or str(value).strip() == "":
        raise UserError(f"{path}:{lineno}: empty label; every example of a benchmark split needs one")
    return TextExample(str(record[text]), None if pair is None else str(record[pair]), str(value).strip())


# ---------------------------------------------------------------- JSON Lines / PubMedQA


def _load_jsonl(path: Path, options: Mapping[str, Any]) -> list[Example]:
    """One JSON object per line; the same column options as CSV (default text column 'text')."""
    text = options.get("text_column", "text")
    pair = options.get("pair_column")
    label = options.get("label_column", "label")
    examples: list[Example] = []
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(
                f"{path}:{lineno}: not valid JSON ({e.msg}); expected one object per line"
            ) from None
        missing = [k for k in (text, pair, label) if k and (not isinstance(obj, dict) or k not in obj)]
        if missing:
            raise UserError(
                f"{path}:{lineno}: missing key(s) {', '.join(missing)}; set text_column/label_column"
            )
        examples.append(_text_example(path, lineno, obj, text, pair, label))
    return examples


def _load_pubmedqa(path: Path, options: Mapping[str, Any]) -> list[Example]:
    """PQA-L: {pmid: {QUESTION, CONTEXTS, final_decision, ...}}; text=question, pair=joined contexts."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object keyed by PMID (the PubMedQA ori_pqal.json layout)")
    examples: list[Example] = []
    for pmid, item in data.items():
        try:
            question, contexts, label = item["QUESTION"], item["CONTEXTS"], item["final_decision"]
        except (KeyError, TypeError):
            raise UserError(f"{path}: entry {pmid}: needs QUESTION, CONTEXTS and final_decision") from None
        if label not in PUBMEDQA_LABELS:
            raise UserError(f"{path}: entry {pmid}: final_decision {label!r} is not one of yes/no/maybe")
        examples.append(TextExample(question, " ".join(contexts), label))
    return examples


# ---------------------------------------------------------------- helpers


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its newline); a bad encoding is a UserError naming the line."""
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                yield lineno, raw.decode("utf-8-sig" if lineno == 1 else "utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:
                raise UserError(
                    f"{path}:{lineno}: not valid UTF-8 ({e.reason}); re-encode the file"
                ) from None


def _load_third_party(task: TaskSpec, data_dir: Path, split: str) -> list[Example]:
    module_name, _, func_name = task.format.partition(":")
    try:
        func: Callable[..., Any] = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as e:
        raise UserError(
            f"task '{task.name}': cannot load its loader '{task.format}' ({e}); install the plugin package "
            "that provides it or fix the 'module:function' path"
        ) from None
    examples = list(func(task, data_dir, split))
    bad = next((x for x in examples if not isinstance(x, (TokenExample, TextExample))), None)
    if bad is not None:  # a plugin bug, not a user error: fail loudly with the culprit
        raise TypeError(
            f"loader {task.format} returned {type(bad).__name__}, expected TokenExample or TextExample"
        )
    # Plugins may hand back int labels; the rest of the zoo works with strings.
    return [
        TextExample(x.text, x.text_pair, str(x.label)) if isinstance(x, TextExample) else x for x in examples
    ]


_LOADERS: dict[str, Callable[[Path, Mapping[str, Any]], list[Example]]] = {
    "iob": _load_iob,
    "csv": _load_csv,
    "jsonl": _load_jsonl,
    "pubmedqa": _load_pubmedqa,
}
