"""URLs as data: the checks every URL passes, the URL corpus reader, and the URL-classification CSV loader.

A URL is one line of text. Surrounding whitespace is dropped (real lists carry stray tabs); what is left
must be non-empty and free of ASCII control characters (U+0000–U+001F, U+007F): a tab or line break
inside a URL means two records ran together or a file was mangled, and the message names file:line.
Spaces inside are kept: they occur in crawled URLs (an unencoded query), and the tokenizer has a piece
for them. C1 code points (U+0080–U+009F) are kept too: they are the mojibake of crawled non-ASCII
paths, not line structure.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from zoo.errors import UserError

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_url(raw: str, where: str) -> str:
    """`raw` stripped; a UserError naming `where` (file:line) for an empty URL or a control character."""
    url = raw.strip()
    if not url:
        raise UserError(f"{where}: empty URL; every record needs one (drop the record or fill it in)")
    bad = _CONTROL.search(url)
    if bad:
        raise UserError(
            f"{where}: control character {bad.group()!r} at position {bad.start() + 1} of the URL "
            f"{url[:60]!r}; a URL holds no tabs, line breaks or other control characters — fix the line"
        )
    return url


def _csv_urls(path: Path, column: str) -> Iterator[str]:
    from zoo.benchmarks.tasks import read_csv_records

    header, records = read_csv_records(path, {})
    if column not in header:
        raise UserError(
            f"{path}: no column '{column}' (header: {', '.join(header)}); set the corpus option column=NAME"
        )
    at = header.index(column)
    for lineno, row in records:
        yield check_url(row[at], f"{path}:{lineno}")


def read_urls(path: Path, column: str = "url") -> Iterator[str]:
    """The URLs of a `.txt` file (one per line; blank lines skipped) or of the `column` of a `.csv` (a
    labelled benchmark file: its URL strings only, never its labels)."""
    if path.suffix.lower() == ".csv":
        yield from _csv_urls(path, column)
        return
    try:
        with path.open(encoding="utf-8") as handle:
            for lineno, line in enumerate(handle, 1):
                if line.strip():
                    yield check_url(line, f"{path}:{lineno}")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def load_url_csv(task: Any, data_dir: Path, split: str) -> list[Any]:
    """A URL-classification CSV (`url,label`): each URL checked as above, an empty label an error.

    Task options: `text_column` ('url'), `label_column` ('label'), `delimiter`."""
    from zoo.benchmarks.tasks import TextExample, read_csv_records, split_path

    path = split_path(task, data_dir, split)
    header, records = read_csv_records(path, task.options)
    names = {
        "text_column": task.options.get("text_column", "url"),
        "label_column": task.options.get("label_column", "label"),
    }
    for option, name in names.items():
        if name not in header:
            raise UserError(
                f"{path}: no column '{name}' (header: {', '.join(header)}); set the task option {option}"
            )
    url_at, label_at = header.index(names["text_column"]), header.index(names["label_column"])
    examples = []
    for lineno, row in records:
        label = row[label_at].strip()
        if not label:
            raise UserError(f"{path}:{lineno}: empty label; every example of a benchmark split needs one")
        examples.append(TextExample(check_url(row[url_at], f"{path}:{lineno}"), None, label))
    if not examples:
        raise UserError(f"{path}: no examples found; the file holds only a header")
    return examples
