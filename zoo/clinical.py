"""Clinical notes: the corpus reader and the MTSamples task loaders of the clinical domain.

Corpus (`read_notes`, the domain's corpus format 'zoo.clinical:read_notes'):
- .txt: one note per non-empty line (the layout of `../shared/data/clinical/pretrain_text`);
- .csv: a note export in the MIMIC-III NOTEEVENTS layout, one note per record in the `TEXT` column
  (corpus option `column`; quoted notes span lines), any other columns ignored.
A directory stands for its .txt/.csv files (recursively, sorted; .gz read too). Every note is checked for
MIMIC de-identification tags: an opening "[**" without its "**]" is an error naming file:line, since the
tokenizer turns only whole tags into placeholder tokens ([NAME], [DATE], …; see the recipe
tokenizers/clinical-spm-unigram.yaml).

Tasks (MTSamples, `../shared/data/clinical/mtsamples/SOURCE.md`): the CSV holds one row per (note, listed
specialty), and identical notes share `dup_group`. `load_specialty` keeps the notes left with exactly one
specialty once the 8 umbrella categories are dropped; `load_specialties` gives one example per note with
all its specialties as a label set.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from zoo.benchmarks.tasks import MultiLabelExample, TextExample, read_csv_records, split_path
from zoo.corpus import _expand, _open_text, _read_text_file, _suffix, sniff
from zoo.domain import TaskSpec
from zoo.errors import UserError, did_you_mean

NOTE_SUFFIXES = (".txt", ".csv")
UMBRELLA_CATEGORIES = frozenset(
    {
        "Surgery",
        "Consult - History and Phy.",
        "SOAP / Chart / Progress Notes",
        "Discharge Summary",
        "Office Notes",
        "Letters",
        "Emergency Room Reports",
        "IME-QME-Work Comp etc.",
    }
)
"""The cross-listing categories MTSamples files a note under beside its specialty (SOURCE.md)."""

_TAG = re.compile(r"\[\*\*.*?\*\*\]", re.DOTALL)


def check_deid_tags(text: str, where: str, first_line: int = 1) -> str:
    """`text` unchanged, or a UserError naming the line of an unterminated '[**' (counted from `first_line`)."""
    rest = _TAG.sub(lambda m: " " * len(m.group()), text)  # whole tags out, offsets kept
    start = rest.find("[**")
    if start >= 0:
        line = first_line + text.count("\n", 0, start)
        snippet = text[start : start + 30].split("\n")[0]
        raise UserError(
            f"{where}:{line}: unterminated de-identification tag {snippet!r}: a MIMIC tag runs from '[**' to "
            "'**]' on one note; close it or remove the '[**'"
        )
    return text


def read_notes(path: Path, column: str = "TEXT", **unknown: Any) -> Iterator[str]:
    """The notes in `path` (a .txt/.csv file or a folder of them), de-id tags checked; see the module doc."""
    if unknown:
        key = next(iter(unknown))
        raise UserError(
            f"unknown option '{key}' for the clinical corpus reader{did_you_mean(key, ['column'])}"
        )
    for f in _expand([path], NOTE_SUFFIXES):
        if _suffix(f) == ".csv":
            yield from _csv_notes(f, str(column))
            continue
        sniff(f, "text")
        for line, note in zip(_line_numbers(f), _read_text_file(f, "text")):
            yield check_deid_tags(note, str(f), line)


def _line_numbers(path: Path) -> Iterator[int]:
    """Line numbers of the non-empty lines of `path`, in order (the text reader skips blank lines)."""
    with _open_text(path) as handle:
        for lineno, line in enumerate(handle, 1):
            if line.strip():
                yield lineno


def _csv_notes(path: Path, column: str) -> Iterator[str]:
    csv.field_size_limit(2**31 - 1)  # a discharge summary can exceed csv's default 128 KiB field limit
    try:
        raw = gzip.open(path, "rb") if path.suffix.lower() == ".gz" else open(path, "rb")
        with io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise UserError(
                    f"{path}: empty file; a note export starts with a header row naming its columns"
                )
            if column not in header:
                raise UserError(
                    f"{path}: no column '{column}' (the file has: {', '.join(header)}); a NOTEEVENTS export holds "
                    f"the note in TEXT, or set corpus.column=NAME{did_you_mean(column, header)}"
                )
            index = header.index(column)
            start = reader.line_num + 1
            for row in reader:
                if len(row) > index and row[index].strip():
                    yield check_deid_tags(row[index].strip(), str(path), start)
                start = reader.line_num + 1
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise UserError(f"{path}: malformed CSV ({exc})") from None


# ----------------------------------------------------------------------------------------- MTSamples


def _notes_by_group(task: TaskSpec, data_dir: Path, split: str) -> list[tuple[str, str, list[str]]]:
    """(source, transcription, specialties in file order) per distinct note (`dup_group`), in file order."""
    path = split_path(task, data_dir, split)
    options = task.options
    header, records = read_csv_records(path, options)
    names = {
        "group": options.get("group_column", "dup_group"),
        "text": options.get("text_column", "transcription"),
        "label": options.get("label_column", "medical_specialty"),
    }
    for key, name in names.items():
        if name not in header:
            raise UserError(
                f"{path}: no column '{name}' (the file has: {', '.join(header)}); set the task option "
                f"{key}_column{did_you_mean(name, header)}"
            )
    g, t, lab = (header.index(names[k]) for k in ("group", "text", "label"))
    notes: dict[str, tuple[str, str, list[str]]] = {}
    for line, row in records:
        label = row[lab].strip()
        if not label or not row[t].strip():
            raise UserError(f"{path}:{line}: empty {names['label'] if not label else names['text']}")
        source, text, labels = notes.setdefault(row[g], (f"{path}:{line}", row[t].strip(), []))
        if label not in labels:
            labels.append(label)
    return list(notes.values())


def load_specialty(task: TaskSpec, data_dir: Path, split: str) -> list[TextExample]:
    """Single-label MTSamples: the notes left with exactly one specialty once the umbrella categories go."""
    out = []
    for source, text, labels in _notes_by_group(task, data_dir, split):
        kept = [label for label in labels if label not in UMBRELLA_CATEGORIES]
        if len(kept) == 1:
            out.append(TextExample(text, None, kept[0], source))
    return out


def load_specialties(task: TaskSpec, data_dir: Path, split: str) -> list[MultiLabelExample]:
    """Multi-label MTSamples: one example per distinct note, every specialty it is listed under."""
    return [
        MultiLabelExample(text, None, tuple(labels), source)
        for source, text, labels in _notes_by_group(task, data_dir, split)
    ]
