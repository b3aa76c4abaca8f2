"""Load benchmark task splits from their real file formats into plain examples.

Each task kind (`zoo.benchmarks.kinds`) reads the formats of its example type; a task's `format` picks one:

    token_classification        TokenExample           'iob' (CoNLL-style token<TAB>tag)
    sequence_classification     TextExample            'csv' (header row; also TSV), 'jsonl', 'pubmedqa'
    multi_label_classification  MultiLabelExample      'csv' (labels joined by `label_separator`), 'jsonl' (a list)
    multiple_choice             MultipleChoiceExample  'csv', 'jsonl' (a context, k choices, label = choice index)

or 'pkg.module:func' for a third-party loader called as `func(task, data_dir, split)`.
Every malformed input ends in a `UserError` naming file:line and what was expected: a file that is not
UTF-8 (a BOM is fine), a token that is empty or holds a control character, a text with a control
character, a text outside the task's `alphabet` option (e.g. DNA), a label whose type differs from the
task's other labels, and (`check_label_splits`) a dev/test label that train never has.
Every example remembers where it was read (`source`, "file:line") for such messages.
Pure Python on purpose: no torch/datasets import, so the CLI can validate data cheaply.
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeAlias

from zoo.domain import TaskSpec
from zoo.errors import UserError, did_you_mean
from zoo.files import decode_error, read_text_file


@dataclass(frozen=True)
class TokenExample:
    """One sentence for token classification: parallel tokens and IOB2 tags."""

    tokens: list[str]
    tags: list[str]
    source: str = field(default="", compare=False, repr=False)
    """Where it was read ("file:line" of its first token); '' when unknown."""


@dataclass(frozen=True)
class TextExample:
    """One (text[, text_pair]) → label item. Labels are strings as read from the file."""

    text: str
    text_pair: str | None
    label: str
    source: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True)
class MultiLabelExample:
    """One (text[, text_pair]) → set of labels item. `labels` may be empty: LexGLUE UNFAIR-ToS and ECtHR have
    examples with no label at all (a fair clause), scored as a class of their own."""

    text: str
    text_pair: str | None
    labels: tuple[str, ...]
    source: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True)
class MultipleChoiceExample:
    """A context and k candidate answers (CaseHOLD: a citing prompt and 5 holdings); `label` is the index of
    the right choice as a string ('0' … 'k-1')."""

    context: str
    choices: tuple[str, ...]
    label: str
    source: str = field(default="", compare=False, repr=False)


Example: TypeAlias = TokenExample | TextExample | MultiLabelExample | MultipleChoiceExample
Loader: TypeAlias = Callable[[Path, Mapping[str, Any]], list[Any]]

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
        found = "is a file" if data_dir.exists() else "does not exist"
        raise UserError(
            f"data directory {data_dir} {found}; --data DIR must be a folder holding the split files "
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


def read_split(
    task: TaskSpec, data_dir: Path, split: str, formats: Mapping[str, Loader], example_type: type, kind: str
) -> list[Any]:
    """One split of `task` read with the loader `formats[task.format]` (or a 'pkg.module:func' loader),
    every example checked to be an `example_type` (what task kind `kind` takes)."""
    if ":" in task.format:
        examples = _load_third_party(task, Path(data_dir), split)
    else:
        loader = formats.get(task.format)
        if loader is None:
            raise UserError(
                f"task '{task.name}' has unknown format '{task.format}'{did_you_mean(task.format, formats)} "
                f"(task kind '{kind}' reads {', '.join(formats)}), or give a 'pkg.module:func' loader"
            )
        path = split_path(task, Path(data_dir), split)
        examples = loader(path, task.options)
        if not examples:
            raise UserError(f"{path}: no examples found; the file is empty or holds only headers/blank lines")
    check_examples(examples, example_type, kind, f"task '{task.name}' (format '{task.format}')")
    alphabet = task.options.get("alphabet")
    if alphabet:
        check_alphabet(examples, str(alphabet), task.name)
    return examples


def example_labels(example: Any) -> tuple[str, ...]:
    """The labels an example shows, for the checks across splits: its class, its label set, its entity
    types; none for multiple choice (a choice index) and example types the zoo does not know."""
    if isinstance(example, TextExample):
        return (example.label,)
    if isinstance(example, MultiLabelExample):
        return example.labels
    if isinstance(example, TokenExample):
        return tuple(dict.fromkeys(t[2:] for t in example.tags if t != "O"))
    return ()


def _where(example: Any, split: str) -> str:
    return getattr(example, "source", "") or f"the {split} split"


def check_label_splits(task: TaskSpec, splits: Mapping[str, Sequence[Any]], allow_unseen: bool) -> None:
    """Labels of one type (all integers, or none), and no dev/test label that train never has (unless
    `allow_unseen`): either is almost always a data mistake that would silently cost the score."""
    first: dict[str, tuple[str, Any]] = {}
    for split, examples in splits.items():
        for x in examples:
            for label in example_labels(x):
                first.setdefault(label, (split, x))
    ints = [label for label in first if re.fullmatch(r"-?\d+", label)]
    if ints and len(ints) < len(first):
        odd = [label for label in first if label not in ints] if len(ints) * 2 >= len(first) else ints
        split, x = first[odd[0]]
        kind = "an integer" if odd[0] not in ints else "a name"
        others = ", ".join(sorted(set(first) - set(odd))[:5])
        raise UserError(
            f"{_where(x, split)}: label {odd[0]!r} is not {kind} like the other labels of task "
            f"'{task.name}' ({others}); fix the label"
        )
    seen = {label for x in splits.get("train", ()) for label in example_labels(x)}
    for split in ("dev", "test"):
        for x in splits.get(split, ()):
            unseen = [label for label in example_labels(x) if label not in seen]
            if unseen and seen and not allow_unseen:
                raise UserError(
                    f"{_where(x, split)}: {split} label {unseen[0]!r} never occurs in the train split of task "
                    f"'{task.name}' (train has: {', '.join(sorted(seen)[:8])}); fix the data, or set "
                    "task.allow_unseen_labels=true if that is meant"
                )


def check_alphabet(examples: Iterable[Any], alphabet: str, task: str) -> None:
    """Every text of every example holds only the characters of the task option `alphabet` (compared
    upper-cased), e.g. the DNA letters of a genomic task."""
    allowed = set(alphabet.upper())
    for x in examples:
        texts = [getattr(x, "text", None), getattr(x, "text_pair", None), *getattr(x, "tokens", ())]
        for text in texts:
            bad = next((c for c in (text or "").upper() if c not in allowed), None)
            if bad is not None:
                raise UserError(
                    f"{_where(x, 'data')}: character {bad!r} at position {text.upper().index(bad) + 1} is not "
                    f"in the alphabet of task '{task}' ({alphabet}); fix or drop the example"
                )


def load_split(task: TaskSpec, data_dir: Path, split: str) -> list[Example]:
    """Read one split of a task through its task kind (`task.type`)."""
    from zoo.benchmarks.kinds import get_kind

    return get_kind(task.type).load(task, data_dir, split)


def check_examples(examples: Iterable[Any], example_type: type, kind: str, source: str) -> None:
    """A UserError when `source` handed task kind `kind` something other than `example_type`s."""
    bad = next((x for x in examples if not isinstance(x, example_type)), None)
    if bad is not None:
        raise UserError(
            f"{source} gave a {type(bad).__name__}, but task kind '{kind}' takes {example_type.__name__}; "
            "give the task the type that matches its data (or fix its loader)"
        )


def sorted_labels(labels: Iterable[str]) -> list[str]:
    """Distinct labels sorted, numerically when all of them are integers ('2' before '10')."""
    distinct = set(labels)
    if all(re.fullmatch(r"-?\d+", x) for x in distinct):
        return sorted(distinct, key=int)
    return sorted(distinct)


def iob_labels(examples: Iterable[TokenExample]) -> list[str]:
    """'O' first, then B-/I- tags sorted; both B-X and I-X for every type X seen, so a tag that only
    appears in dev/test (e.g. an I- never seen in a small train set) still has an id."""
    types = {t[2:] for ex in examples for t in ex.tags if t != "O"}
    return ["O", *sorted(f"{p}-{t}" for t in types for p in ("B", "I"))]


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
    start = 0
    for lineno, line in _lines(path):
        if not line.strip():
            if tokens:
                examples.append(TokenExample(tokens, tags, f"{path}:{start}"))
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
        start = start if tokens else lineno
        tokens.append(_token(path, lineno, parts[tok_col]))
        tags.append(tag)
    if tokens:
        examples.append(TokenExample(tokens, tags, f"{path}:{start}"))
    return examples


def _token(path: Path, lineno: int, token: str) -> str:
    """A word of a token-classification sentence: some visible text, no control character (either
    would give the word no sub-token and shift every later prediction of its sentence)."""
    if not token.strip():
        raise UserError(f"{path}:{lineno}: empty token {token!r}; every line needs a word before its tag")
    bad = next((c for c in token if unicodedata.category(c) == "Cc"), None)
    if bad is not None:
        raise UserError(f"{path}:{lineno}: token {token!r} holds the control character {bad!r}; remove it")
    return token


# ---------------------------------------------------------------- CSV / TSV / JSON Lines: reading records


def _read_csv(path: Path, options: Mapping[str, Any]) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and (start line, fields) per record; quoted fields may span lines.

    Option `delimiter` (',' for .csv, tab for .tsv).
    """
    delimiter = options.get("delimiter", "\t" if path.suffix == ".tsv" else ",")
    records: list[tuple[int, list[str]]] = []
    text = read_text_file(path)
    try:
        with io.StringIO(text, newline="") as f:
            reader = csv.reader(f, delimiter=delimiter)
            header = next(reader, None)
            if header is None:
                raise UserError(f"{path}: empty file; expected a header row naming the columns")
            start = reader.line_num + 1
            for row in reader:
                if row:  # csv yields [] for a blank line
                    if len(row) != len(header):
                        raise UserError(
                            f"{path}:{start}: expected {len(header)} fields ({delimiter.join(header)}), "
                            f"found {len(row)}"
                        )
                    records.append((start, row))
                start = reader.line_num + 1
    except csv.Error as e:
        raise UserError(f"{path}:{reader.line_num}: malformed CSV ({e})") from None
    return header, records


def _column(path: Path, header: Sequence[str], name: str, option: str) -> int:
    if name not in header:
        raise UserError(
            f"{path}: no column '{name}' (header: {', '.join(header)}); set the task option "
            f"{option} to one of them{did_you_mean(name, header)}"
        )
    return list(header).index(name)


def _read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) per non-blank line."""
    records: list[tuple[int, dict[str, Any]]] = []
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(
                f"{path}:{lineno}: not valid JSON ({e.msg}); expected one object per line"
            ) from None
        if not isinstance(obj, dict):
            raise UserError(f"{path}:{lineno}: expected a JSON object, found {type(obj).__name__}")
        records.append((lineno, obj))
    return records


def _require(path: Path, lineno: int, obj: Mapping[str, Any], keys: Mapping[str, str]) -> None:
    """`keys` maps each needed key to the task option that names it."""
    missing = [k for k in keys if k not in obj]
    if missing:
        options = sorted({keys[k] for k in missing})
        raise UserError(
            f"{path}:{lineno}: missing key(s) {', '.join(missing)} (has: {', '.join(obj)}); set the task "
            f"option(s) {', '.join(options)}"
        )


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
"""C0 control characters other than tab and line breaks: never text (a NUL, a bell, an escape)."""


def _text(path: Path, lineno: int, value: Any, column: str) -> str:
    """A text field of record `lineno` (see `_checked_text`)."""
    return _checked_text(f"{path}:{lineno}", value, column)


def _checked_text(where: str, value: Any, column: str, required: bool = False) -> str:
    """A text field; JSON null, lists and objects are input mistakes, not text, and so are control
    characters; an empty text is one too where `required` (real corpora have a few empty descriptions,
    which a model can still be scored on)."""
    if value is None or isinstance(value, (list, dict, bool)):
        raise UserError(f"{where}: '{column}' must be text, found {json.dumps(value)[:60]}")
    text = str(value)
    bad = _CONTROL.search(text)
    if bad is not None:
        raise UserError(
            f"{where}: '{column}' holds the control character {bad.group()!r} at position "
            f"{bad.start() + 1}; remove it"
        )
    if required and not text.strip():
        raise UserError(f"{where}: '{column}' is empty; every example needs its text")
    return text


# ---------------------------------------------------------------- single-label text (CSV / JSONL)


def _load_csv(path: Path, options: Mapping[str, Any]) -> list[Example]:
    """Header row, then one example per record.

    Options: `text_column` (default: 'text' or 'sequence', whichever the header has), `pair_column`,
    `label_column` ('label'), `delimiter`.
    """
    header, records = _read_csv(path, options)
    text = options.get("text_column") or next((c for c in ("text", "sequence") if c in header), "text")
    text_i = _column(path, header, text, "text_column")
    pair = options.get("pair_column")
    pair_i = _column(path, header, pair, "pair_column") if pair else None
    label_i = _column(path, header, options.get("label_column", "label"), "label_column")
    return [_text_example(path, line, row, text_i, pair_i, label_i, header) for line, row in records]


def _text_example(
    path: Path, lineno: int, record: Any, text: Any, pair: Any, label: Any, header: Sequence[str] = ()
) -> TextExample:
    """Build one example from a CSV row (int keys, column names in `header`) or a JSON object (str keys)."""

    def name(key: Any) -> str:
        return header[key] if isinstance(key, int) and header else str(key)

    value = record[label]
    if value is None or str(value).strip() == "":
        raise UserError(f"{path}:{lineno}: empty label; every example of a benchmark split needs one")
    if isinstance(value, (list, dict, float)) and not (isinstance(value, float) and value.is_integer()):
        raise UserError(
            f"{path}:{lineno}: label must be a class name or integer, found {json.dumps(value)[:60]}"
        )
    label = str(int(value)) if isinstance(value, float) else str(value).strip()
    return TextExample(
        _text(path, lineno, record[text], name(text)),
        None if pair is None else _text(path, lineno, record[pair], name(pair)),
        label,
        f"{path}:{lineno}",
    )


def _load_jsonl(path: Path, options: Mapping[str, Any]) -> list[Example]:
    """One JSON object per line; the same column options as CSV (default text column 'text')."""
    text = options.get("text_column", "text")
    pair = options.get("pair_column")
    label = options.get("label_column", "label")
    keys = {text: "text_column", label: "label_column", **({pair: "pair_column"} if pair else {})}
    examples: list[Example] = []
    for lineno, obj in _read_jsonl(path):
        _require(path, lineno, obj, keys)
        examples.append(_text_example(path, lineno, obj, text, pair, label))
    return examples


# ---------------------------------------------------------------- multi-label text (CSV / JSONL)


def _load_multi_label_csv(path: Path, options: Mapping[str, Any]) -> list[Example]:
    """Header row, then one example per record; the labels column holds the labels joined by
    `label_separator` (default ';'), an empty field meaning no label.

    Options: `text_column` ('text'), `pair_column`, `labels_column` ('labels'), `label_separator`,
    `delimiter`, `label_names` (the valid labels; any other is an error naming its line).
    """
    header, records = _read_csv(path, options)
    text_i = _column(path, header, options.get("text_column", "text"), "text_column")
    pair = options.get("pair_column")
    pair_i = _column(path, header, pair, "pair_column") if pair else None
    labels_i = _column(path, header, options.get("labels_column", "labels"), "labels_column")
    separator = str(options.get("label_separator", ";"))
    return [
        MultiLabelExample(
            _text(path, line, row[text_i], header[text_i]),
            None if pair_i is None else _text(path, line, row[pair_i], header[pair_i]),
            _label_set(path, line, row[labels_i], separator, options.get("label_names")),
            f"{path}:{line}",
        )
        for line, row in records
    ]


def _load_multi_label_jsonl(path: Path, options: Mapping[str, Any]) -> list[Example]:
    """One JSON object per line with a list of labels (`[]` = no label); the CLAUDETTE / LexGLUE layout.

    Options: `text_column` ('text'), `pair_column`, `labels_column` ('labels'), `label_names`.
    """
    text = options.get("text_column", "text")
    pair = options.get("pair_column")
    labels = options.get("labels_column", "labels")
    keys = {text: "text_column", labels: "labels_column", **({pair: "pair_column"} if pair else {})}
    examples: list[Example] = []
    for lineno, obj in _read_jsonl(path):
        _require(path, lineno, obj, keys)
        examples.append(
            MultiLabelExample(
                _text(path, lineno, obj[text], text),
                None if pair is None else _text(path, lineno, obj[pair], pair),
                _label_set(path, lineno, obj[labels], None, options.get("label_names")),
                f"{path}:{lineno}",
            )
        )
    return examples


def _label_set(
    path: Path, lineno: int, value: Any, separator: str | None, known: Sequence[str] | None = None
) -> tuple[str, ...]:
    """Distinct labels in file order, from a CSV field joined by `separator` or a JSON list; each one of
    `known` when the task lists its labels (option `label_names`)."""
    if separator is not None and isinstance(value, str):
        pieces = [p.strip() for p in value.split(separator)] if value.strip() else []
        fix = f"separate labels with {separator!r} (task option label_separator) and leave the field empty for none"
    elif isinstance(value, list) and all(
        isinstance(v, (str, int)) and not isinstance(v, bool) for v in value
    ):
        pieces = [str(v).strip() for v in value]
        fix = "list label names"
    else:
        raise UserError(
            f"{path}:{lineno}: labels must be a JSON list of label names ([] for none), "
            f"found {json.dumps(value)[:60]}"
        )
    if any(p == "" for p in pieces):
        raise UserError(f"{path}:{lineno}: empty label in {value!r}; {fix}")
    unknown = [p for p in pieces if known is not None and p not in known]
    if unknown:
        raise UserError(
            f"{path}:{lineno}: unknown label {unknown[0]!r}{did_you_mean(unknown[0], known or ())}; fix the "
            "label, or the task option label_names"
        )
    return tuple(dict.fromkeys(pieces))


# ---------------------------------------------------------------- multiple choice (CSV / JSONL)

_CHOICE_COLUMN = re.compile(r"^(?:ending|holding|choice)_?(\d+)$")


def _load_choice_csv(path: Path, options: Mapping[str, Any]) -> list[Example]:
    """Header row, then one example per record: a context, k choice columns and the right choice's index.

    Options: `context_column` ('context'), `choice_columns` (default: the columns named ending_<i>,
    holding_<i> or choice_<i>, by i: the SWAG / CaseHOLD CSV layouts), `label_column` ('label'), `delimiter`.
    """
    header, records = _read_csv(path, options)
    context_i = _column(path, header, options.get("context_column", "context"), "context_column")
    names = _choice_names(path, options.get("choice_columns"))
    if names is None:
        numbered = sorted((int(m[1]), c) for c in header if (m := _CHOICE_COLUMN.match(c)))
        names = [c for _, c in numbered]
        if len(names) < 2:
            raise UserError(
                f"{path}: no choice columns found (header: {', '.join(header)}); set the task option "
                "choice_columns to the list of columns holding the candidate answers"
            )
    choice_is = [_column(path, header, c, "choice_columns") for c in names]
    label_i = _column(path, header, options.get("label_column", "label"), "label_column")
    return [
        MultipleChoiceExample(
            _text(path, line, row[context_i], header[context_i]),
            tuple(_text(path, line, row[i], header[i]) for i in choice_is),
            _choice_label(path, line, row[label_i], len(names)),
            f"{path}:{line}",
        )
        for line, row in records
    ]


def _load_choice_jsonl(path: Path, options: Mapping[str, Any]) -> list[Example]:
    """One JSON object per line: a context, its choices and the right choice's index.

    Options: `context_column` ('context'), either `choices_column` (one key holding the list of choices,
    default 'endings': the LexGLUE CaseHOLD layout) or `choice_columns` (one key per choice), `label_column`,
    `num_choices` (the number every line must have; default: the first line's).
    """
    context = options.get("context_column", "context")
    label = options.get("label_column", "label")
    names = _choice_names(path, options.get("choice_columns"))
    listed = options.get("choices_column", "endings")
    keys = {context: "context_column", label: "label_column"}
    keys.update({c: "choice_columns" for c in names} if names else {listed: "choices_column"})
    examples: list[Example] = []
    k = len(names) if names else options.get("num_choices")
    for lineno, obj in _read_jsonl(path):
        _require(path, lineno, obj, keys)
        raw = [obj[c] for c in names] if names else obj[listed]
        if not isinstance(raw, list) or len(raw) < 2:
            raise UserError(
                f"{path}:{lineno}: '{listed}' must be a list of at least 2 choices, found {json.dumps(raw)[:60]}"
            )
        if k is not None and len(raw) != k:
            raise UserError(
                f"{path}:{lineno}: {len(raw)} choices where "
                + (
                    f"the task has {k}"
                    if lineno == 1 or "num_choices" in options
                    else f"earlier lines have {k}"
                )
                + "; every example of a task needs the same number of choices"
            )
        k = len(raw)
        choices = tuple(_text(path, lineno, c, listed if names is None else "choice_columns") for c in raw)
        examples.append(
            MultipleChoiceExample(
                _text(path, lineno, obj[context], context),
                choices,
                _choice_label(path, lineno, obj[label], k),
                f"{path}:{lineno}",
            )
        )
    return examples


def _choice_names(path: Path, value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or len(value) < 2 or not all(isinstance(c, str) for c in value):
        raise UserError(
            f"{path}: the task option choice_columns must be a list of at least 2 column names, got {value!r}"
        )
    return list(value)


def _choice_label(path: Path, lineno: int, value: Any, k: int) -> str:
    """The 0-based index of the right choice, as a string."""
    text = str(value).strip()
    if isinstance(value, bool) or not re.fullmatch(r"\d+", text) or int(text) >= k:
        raise UserError(
            f"{path}:{lineno}: label {value!r} is not the index of a choice (an integer from 0 to {k - 1})"
        )
    return str(int(text))


# ---------------------------------------------------------------- PubMedQA


def _load_pubmedqa(path: Path, options: Mapping[str, Any]) -> list[Example]:
    """PQA-L: {pmid: {QUESTION, CONTEXTS, final_decision, ...}}; text=question, pair=joined contexts."""
    text = read_text_file(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object keyed by PMID (the PubMedQA ori_pqal.json layout)")
    examples: list[Example] = []
    for pmid, item in data.items():
        where = f"{path}: entry {pmid}"
        try:
            question, contexts, label = item["QUESTION"], item["CONTEXTS"], item["final_decision"]
        except (KeyError, TypeError):
            raise UserError(f"{where}: needs QUESTION, CONTEXTS and final_decision") from None
        if not isinstance(contexts, list) or not all(isinstance(c, str) for c in contexts):
            raise UserError(
                f"{where}: CONTEXTS must be a list of strings (the abstract's sections), "
                f"found {json.dumps(contexts)[:60]}"
            )
        if label not in PUBMEDQA_LABELS:
            raise UserError(f"{where}: final_decision {label!r} is not one of yes/no/maybe")
        question = _checked_text(where, question, "QUESTION", required=True)
        context = _checked_text(where, " ".join(contexts), "CONTEXTS")
        examples.append(TextExample(question, context, label, where))
    return examples


# ---------------------------------------------------------------- helpers


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its newline); a bad encoding is a UserError naming the line."""
    offset = 0
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                yield lineno, raw.decode("utf-8-sig" if lineno == 1 else "utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:
                err = decode_error(f"{path}:{lineno}", raw, e, offset)
                raise err from None
            offset += len(raw)


def _load_third_party(task: TaskSpec, data_dir: Path, split: str) -> list[Example]:
    module_name, _, func_name = task.format.partition(":")
    try:
        func: Callable[..., Any] = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as e:
        raise UserError(
            f"task '{task.name}': cannot load its loader '{task.format}' ({e}); install the plugin package "
            "that provides it or fix the 'module:function' path"
        ) from None
    return [_stringify(x) for x in func(task, data_dir, split)]


def _stringify(x: Any) -> Any:
    """Plugins may hand back int labels (and list choices); the rest of the zoo works with strings/tuples."""
    if isinstance(x, TextExample):
        return replace(x, label=str(x.label))
    if isinstance(x, MultiLabelExample):
        return replace(x, labels=tuple(str(label) for label in x.labels))
    if isinstance(x, MultipleChoiceExample):
        return replace(x, choices=tuple(x.choices), label=str(x.label))
    return x


TOKEN_FORMATS: dict[str, Loader] = {"iob": _load_iob}
TEXT_FORMATS: dict[str, Loader] = {"csv": _load_csv, "jsonl": _load_jsonl, "pubmedqa": _load_pubmedqa}
MULTI_LABEL_FORMATS: dict[str, Loader] = {"csv": _load_multi_label_csv, "jsonl": _load_multi_label_jsonl}
CHOICE_FORMATS: dict[str, Loader] = {"csv": _load_choice_csv, "jsonl": _load_choice_jsonl}

read_csv_records = _read_csv
"""Public name of the CSV reader for domain loaders (`pkg.module:func`): (header, [(line, fields)])."""
