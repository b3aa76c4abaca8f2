"""Stack Exchange data: post bodies (HTML) to text, the data-dump `Posts.xml` streamed, and question CSVs.

A post body in the dump is HTML. `html_to_text` drops the markup and keeps what a reader sees: the text of
paragraphs and list items on lines of their own, and every `<pre>` block (code, program output) verbatim,
newlines and indentation included; entities are unescaped (`&lt;` → `<`).

`read_posts` streams a `Posts.xml` (one `<row …/>` per post) with an incremental XML parser whose tree is
cleared after each row, so memory stays flat for a multi-GB dump. A question becomes `title` + blank line +
body; an answer its body. With `comments=True` each post is followed by its comments from the
`Comments.xml` beside it, which is first streamed into a temporary SQLite index (disk, not memory).
Malformed XML, a post whose body is not HTML, or a question without a title is a `UserError` naming
file:line: the stream never ends early without saying so.
"""

from __future__ import annotations

import re
import sqlite3
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from zoo.errors import UserError

QUESTION, ANSWER = "1", "2"
_BLOCK = {"p", "div", "li", "ul", "ol", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "table", "tr"}
_TAG = re.compile(r"<[A-Za-z][A-Za-z0-9]*[\s/>]")


class _TextExtractor(HTMLParser):
    """Collects text; block elements end lines (prose never makes blank lines); <pre> text is kept verbatim."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.pre = 0
        self.code_last = False  # a post ending in code keeps the code's last newline

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "pre":
            self._newline()
            self.pre += 1
        elif tag == "br" and not self.pre:
            self._newline()
        elif tag in _BLOCK and not self.pre:
            self._newline()

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre":
            self.pre = max(0, self.pre - 1)
            self._newline(trim=False)
        elif tag in _BLOCK and not self.pre:
            self._newline()

    def handle_data(self, data: str) -> None:
        if self.pre:
            self.parts.append(data)
            self.code_last = True
            return
        # Outside code, the HTML source's line breaks and indentation are only layout: prose reflows.
        text = re.sub(r"\s+", " ", data)
        if not self.parts or self.parts[-1].endswith("\n"):
            text = text.lstrip(" ")
        if text:
            self.parts.append(text)
            self.code_last = self.code_last and not text.strip()

    def _newline(self, trim: bool = True) -> None:
        if trim and self.parts:
            self.parts[-1] = self.parts[-1].rstrip(" ")
        if self.parts and not self.parts[-1].endswith("\n"):
            self.parts.append("\n")

    def text(self) -> str:
        text = "".join(self.parts).lstrip("\n")
        return text if self.code_last else text.rstrip("\n")


def is_html(body: str) -> bool:
    """Does `body` contain at least one HTML element (a dump body always does: `<p>`, `<pre>`, …)?"""
    return bool(_TAG.search(body))


def html_to_text(body: str, where: str) -> str:
    """The text of an HTML post body, `<pre>` blocks verbatim; a UserError naming `where` if it is not HTML."""
    if not is_html(body):
        raise UserError(
            f"{where}: the post body is not HTML (no element such as <p> or <pre>); Stack Exchange bodies are "
            f"HTML — pass the body as exported, not as plain text: {body[:60]!r}"
        )
    parser = _TextExtractor()
    parser.feed(body)
    parser.close()
    return parser.text()


def code_blocks(body: str) -> list[str]:
    """The text of each `<pre>` block of an HTML body, as `html_to_text` keeps it (for round-trip tests)."""
    import html

    return [
        html.unescape(m) for m in re.findall(r"<pre[^>]*>(?:<code[^>]*>)?(.*?)(?:</code>)?</pre>", body, re.S)
    ]


# --------------------------------------------------------------------------------------- XML streaming


def _rows(path: Path) -> Iterator[tuple[int, Mapping[str, str]]]:
    """(line, attributes) of each `<row>` element, streamed; the parsed tree is cleared as it goes."""
    parser = ET.XMLPullParser(events=("start", "end"))
    root = None
    lineno = 0
    try:
        with path.open("rb") as handle:
            for lineno, line in enumerate(handle, 1):
                parser.feed(line)
                for event, elem in parser.read_events():
                    if event == "start":
                        root = elem if root is None else root
                    elif elem.tag == "row":
                        yield lineno, elem.attrib
                        if root is not None:
                            root.clear()  # drop finished rows: memory stays flat
            parser.close()
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else lineno
        raise UserError(
            f"{path}:{line}: malformed XML ({exc}); a Stack Exchange dump file holds one "
            "<row .../> element per line inside one root element — fix or re-export the file"
        ) from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc}") from None


def _comment_index(path: Path, db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE comments (post TEXT, id INTEGER, text TEXT)")
    batch: list[tuple[str, int, str]] = []
    for lineno, row in _rows(path):
        if "PostId" not in row or "Text" not in row:
            raise UserError(f"{path}:{lineno}: a comment row needs PostId and Text attributes")
        order = row.get("Id", "")
        batch.append((row["PostId"], int(order) if order.isdigit() else lineno, row["Text"]))
        if len(batch) >= 10_000:
            db.executemany("INSERT INTO comments VALUES (?, ?, ?)", batch)
            batch.clear()
    db.executemany("INSERT INTO comments VALUES (?, ?, ?)", batch)
    db.execute("CREATE INDEX by_post ON comments (post, id)")


def _post_text(path: Path, lineno: int, row: Mapping[str, str]) -> str | None:
    kind = row.get("PostTypeId")
    if kind not in (QUESTION, ANSWER):
        return None  # tag wikis, moderator nominations, …
    where = f"{path}:{lineno}"
    if "Body" not in row:
        raise UserError(f"{where}: post {row.get('Id', '?')} has no Body attribute")
    body = html_to_text(row["Body"], where)
    if kind == ANSWER:
        return body
    title = row.get("Title", "").strip()
    if not title:
        raise UserError(f"{where}: question {row.get('Id', '?')} has no Title attribute")
    return f"{title}\n\n{body}" if body else title


def read_posts(path: Path, comments: bool = False) -> Iterator[str]:
    """One document per question or answer of a `Posts.xml`, optionally followed by its comments."""
    if not comments:
        for lineno, row in _rows(path):
            text = _post_text(path, lineno, row)
            if text:
                yield text
        return
    comments_xml = path.with_name("Comments.xml")
    if not comments_xml.is_file():
        raise UserError(
            f"corpus option comments=true reads {comments_xml}, which does not exist "
            "(put the dump's Comments.xml beside Posts.xml, or set corpus.comments=false)"
        )
    with tempfile.TemporaryDirectory(prefix="zoo-comments-") as tmp:
        db = sqlite3.connect(Path(tmp) / "comments.sqlite")
        try:
            _comment_index(comments_xml, db)
            for lineno, row in _rows(path):
                text = _post_text(path, lineno, row)
                if not text:
                    continue
                found = db.execute(
                    "SELECT text FROM comments WHERE post = ? ORDER BY id", (row.get("Id", ""),)
                ).fetchall()
                yield "\n\n".join([text, *(c.strip() for (c,) in found if c.strip())])
        finally:
            db.close()


# ------------------------------------------------------------------------------------ question CSVs


def load_questions(task: Any, data_dir: Path, split: str) -> list[Any]:
    """Question-quality CSV (the Kaggle 60k layout: Id, Title, Body, Tags, CreationDate, Y): text = the
    title, pair = the HTML body as text with its code kept. Task options: `title_column` ('Title'),
    `body_column` ('Body'), `label_column` ('Y')."""
    from zoo.benchmarks.tasks import TextExample, read_csv_records, split_path

    path = split_path(task, data_dir, split)
    opts = task.options
    header, records = read_csv_records(path, opts)
    columns = {
        k: opts.get(f"{k}_column", d) for k, d in (("title", "Title"), ("body", "Body"), ("label", "Y"))
    }
    for key, name in columns.items():
        if name not in header:
            raise UserError(
                f"{path}: no column '{name}' (header: {', '.join(header)}); set the task option {key}_column"
            )
    at = {k: header.index(v) for k, v in columns.items()}
    examples = []
    for lineno, row in records:
        label = row[at["label"]].strip()
        if not label:
            raise UserError(f"{path}:{lineno}: empty label; every example of a benchmark split needs one")
        body = html_to_text(row[at["body"]], f"{path}:{lineno}")
        examples.append(TextExample(row[at["title"]].strip(), body, label))
    if not examples:
        raise UserError(f"{path}: no examples found; the file holds only a header")
    return examples
