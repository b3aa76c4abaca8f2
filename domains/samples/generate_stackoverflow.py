#!/usr/bin/env python
"""Write the embedded-default sample data of the stackoverflow domain.

    python domains/samples/generate_stackoverflow.py [--out DIR]   # default: next to this script

Everything is synthetic and deterministic (one seeded random stream per output file). Languages,
libraries, code templates and sentences are written here by hand; nothing is copied from Stack Overflow
or any dataset. The files mimic the real formats so the same readers load both:
- corpus.xml: a Stack Exchange data-dump Posts.xml (one <row/> per post, HTML bodies with <pre><code>);
- so_ner/{train,dev,test}.txt: the 4-column StackOverflow NER layout (word, NE tag, word, markdown tag);
- so_question_quality_hqlq/{train,dev,test}.csv: Id,Title,Body,Tags,CreationDate,Y with Y in HQ/LQ.
This script is not part of the `zoo` package; it only writes data files.
"""

from __future__ import annotations

import argparse
import csv
import html
import random
from collections.abc import Sequence
from pathlib import Path

SEED = 20261130

# language, libraries, a class of each library, a function of each, an error, file type
LANGUAGES = {
    "Python": (
        ["pandas", "numpy", "requests", "flask"],
        ["DataFrame", "ndarray", "Session", "Blueprint"],
        ["read_csv", "reshape", "get", "route"],
        ["KeyError", "TypeError", "ValueError"],
        ".py",
    ),
    "JavaScript": (
        ["React", "jQuery", "Express", "lodash"],
        ["Component", "Deferred", "Router", "Chain"],
        ["useState", "ajax", "listen", "debounce"],
        ["TypeError", "ReferenceError", "SyntaxError"],
        ".js",
    ),
    "Java": (
        ["Spring", "Hibernate", "Guava", "JUnit"],
        ["ApplicationContext", "Session", "ImmutableList", "Assert"],
        ["getBean", "persist", "copyOf", "assertEquals"],
        ["NullPointerException", "ClassCastException"],
        ".java",
    ),
    "C++": (
        ["Boost", "Qt", "OpenCV", "Eigen"],
        ["shared_ptr", "QWidget", "Mat", "MatrixXd"],
        ["make_shared", "show", "imread", "inverse"],
        ["segmentation fault", "std::bad_alloc"],
        ".cpp",
    ),
    "SQL": (
        ["PostgreSQL", "MySQL", "SQLite", "SQLAlchemy"],
        ["Table", "Cursor", "Connection", "Query"],
        ["execute", "fetchall", "commit", "filter"],
        ["IntegrityError", "OperationalError"],
        ".sql",
    ),
}
DATA_STRUCTURES = ["list", "dictionary", "array", "hash map", "linked list", "tuple", "set", "queue"]
APPLICATIONS = ["Visual Studio Code", "Eclipse", "IntelliJ", "Docker", "Git", "Jenkins"]
SYSTEMS = ["Windows 10", "Ubuntu", "macOS", "Debian"]
ACTIONS = ["sort", "filter", "merge", "reverse", "serialize", "iterate over", "copy", "flatten"]
NAMES = ["items", "users", "rows", "values", "result", "config", "data", "records", "total", "count"]


def rng_for(name: str) -> random.Random:
    return random.Random(f"{SEED}/{name}")


def code_snippet(rng: random.Random, lang: str) -> str:
    """A few lines of plausible code in `lang`, indentation and blank lines included."""
    libs, classes, funcs, _, _ = LANGUAGES[lang]
    i = rng.randrange(len(libs))
    a, b = rng.sample(NAMES, 2)
    if lang == "Python":
        return (
            f"import {libs[i]}\n\n\ndef load_{a}(path):\n    {a} = {libs[i]}.{funcs[i]}(path)\n"
            f"    for {b} in {a}:\n        if {b} is None:\n            continue\n        print({b})\n    return {a}\n"
        )
    if lang == "JavaScript":
        return (
            f"const {a} = require('{libs[i]}');\n\nfunction update({b}) {{\n  return {a}.{funcs[i]}({b}, () => {{\n"
            f"    console.log({b}.length);\n  }});\n}}\n"
        )
    if lang == "Java":
        return (
            f"public class {classes[i]}Demo {{\n    public static void main(String[] args) {{\n"
            f"        {classes[i]} {a} = new {classes[i]}();\n        {a}.{funcs[i]}({b});\n    }}\n}}\n"
        )
    if lang == "C++":
        return (
            f"#include <vector>\n\nint main() {{\n\tstd::vector<int> {a};\n\tauto {b} = {funcs[i]}({a});\n"
            f"\tif ({a}.empty()) {{\n\t\treturn 1;\n\t}}\n\treturn 0;\n}}\n"
        )
    return f"SELECT {a}, COUNT(*) AS {b}\nFROM {a}_table\nWHERE {b} > 10\nGROUP BY {a};\n"


def question(rng: random.Random, lang: str, good: bool) -> tuple[str, str]:
    """(title, HTML body). A good question is specific, shows code and the error; a poor one is vague."""
    libs, classes, funcs, errors, ftype = LANGUAGES[lang]
    i = rng.randrange(len(libs))
    ds, act, err = rng.choice(DATA_STRUCTURES), rng.choice(ACTIONS), rng.choice(errors)
    code = html.escape(code_snippet(rng, lang), quote=False)
    if not good:
        title = rng.choice(
            [f"{lang} not working plz help", f"{err} help", f"how to {act} {ds}??", "urgent code problem"]
        )
        body = rng.choice(
            [
                f"<p>my code dont work. i get {err}. how to fix it? thanks</p>",
                f"<p>I need to {act} a {ds} in {lang} give me the code</p>",
                f"<p>{code.splitlines()[0]} this line error what do i do</p>",
            ]
        )
        return title, body
    title = rng.choice(
        [
            f"How do I {act} a {ds} with {libs[i]} in {lang}?",
            f"{err} when calling {funcs[i]} on a {classes[i]}",
            f"Why does {libs[i]}.{funcs[i]} return an empty {ds}?",
        ]
    )
    body = (
        f"<p>I am using {libs[i]} on {rng.choice(SYSTEMS)} and want to {act} a {ds} of {rng.choice(NAMES)}. "
        f"This is what I tried:</p>\n\n<pre><code>{code}</code></pre>\n\n"
        f"<p>Running it in {rng.choice(APPLICATIONS)} raises <code>{err}</code> at the call to "
        f"<code>{funcs[i]}</code>. I read the documentation of <code>{classes[i]}</code> but could not find why. "
        f"What am I doing wrong?</p>\n"
    )
    return title, body


def answer(rng: random.Random, lang: str) -> str:
    libs, classes, funcs, _, _ = LANGUAGES[lang]
    i = rng.randrange(len(libs))
    code = html.escape(code_snippet(rng, lang), quote=False)
    return (
        f"<p>You need to call <code>{funcs[i]}</code> on the <code>{classes[i]}</code> first; {libs[i]} "
        f"does not do it for you:</p>\n\n<pre><code>{code}</code></pre>\n\n<p>This works with any {rng.choice(DATA_STRUCTURES)}.</p>\n"
    )


def _attr(value: str) -> str:
    """An XML attribute value as the dump writes it: entities, and newlines/tabs as character references."""
    return html.escape(value, quote=True).replace("\n", "&#xA;").replace("\t", "&#x9;").replace("\r", "&#xD;")


def write_posts(path: Path, n_questions: int) -> None:
    rng = rng_for("corpus")
    lines = ['<?xml version="1.0" encoding="utf-8"?>', "<posts>"]
    post_id = 0
    for _ in range(n_questions):
        lang = rng.choice(list(LANGUAGES))
        title, body = question(rng, lang, good=rng.random() < 0.8)
        post_id += 1
        qid = post_id
        tags = f"<{lang.lower()}><{rng.choice(LANGUAGES[lang][0]).lower()}>"
        lines.append(
            f'  <row Id="{qid}" PostTypeId="1" CreationDate="2016-0{1 + qid % 9}-11T10:00:00.000" Score="{rng.randrange(-3, 40)}" '
            f'Body="{_attr(body)}" Title="{_attr(title)}" Tags="{_attr(tags)}" AnswerCount="1" />'
        )
        for _ in range(rng.choice((0, 1, 1, 2))):
            post_id += 1
            lines.append(
                f'  <row Id="{post_id}" PostTypeId="2" ParentId="{qid}" Score="{rng.randrange(0, 20)}" '
                f'Body="{_attr(answer(rng, lang))}" />'
            )
    lines.append("</posts>")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ------------------------------------------------------------------------------------------------ NER


def ner_sentence(rng: random.Random) -> list[tuple[str, str]]:
    """(word, tag) pairs of one sentence, IOB2 over the NER types of the real corpus."""
    lang = rng.choice(list(LANGUAGES))
    libs, classes, funcs, errors, ftype = LANGUAGES[lang]
    i = rng.randrange(len(libs))
    slots = {
        "LANG": (lang, "Language"),
        "LIB": (libs[i], "Library"),
        "CLASS": (classes[i], "Library_Class"),
        "FUNC": (funcs[i] + "()", "Library_Function"),
        "DS": (rng.choice(DATA_STRUCTURES), "Data_Structure"),
        "APP": (rng.choice(APPLICATIONS), "Application"),
        "OS": (rng.choice(SYSTEMS), "Operating_System"),
        "ERR": (rng.choice(errors), "Error_Name"),
        "VAR": (rng.choice(NAMES), "Variable_Name"),
        "FILE": (rng.choice(NAMES) + ftype, "File_Name"),
        "VER": (f"{rng.randrange(1, 5)}.{rng.randrange(0, 12)}", "Version"),
    }
    template = rng.choice(
        [
            "I use LIB VER with LANG on OS .",
            "Calling FUNC on the CLASS raises ERR .",
            "How do I convert the DS VAR to a CLASS ?",
            "Open FILE in APP and run it .",
            "The FUNC method of LIB returns a DS .",
            "After upgrading LIB to VER I get ERR in FILE .",
            "In LANG you can store VAR in a DS instead .",
            "APP on OS cannot find LIB .",
        ]
    )
    out: list[tuple[str, str]] = []
    for word in template.split():
        if word in slots:
            text, kind = slots[word]
            for j, piece in enumerate(text.split()):
                out.append((piece, ("B-" if j == 0 else "I-") + kind))
        else:
            out.append((word, "O"))
    return out


def write_ner(path: Path, n: int, name: str) -> None:
    rng = rng_for(f"ner/{name}")
    blocks = []
    for _ in range(n):
        rows = ner_sentence(rng)
        # Column 4 is the markdown (code) tag: inline-code spans are marked like the real corpus's Code_Block.
        blocks.append(
            "\n".join(f"{w}\t{t}\t{w}\t{'B-Code_Block' if w.endswith('()') else 'O'}" for w, t in rows)
        )
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------------- question quality


def write_questions(path: Path, n: int, name: str, first_id: int) -> None:
    rng = rng_for(f"quality/{name}")
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["Id", "Title", "Body", "Tags", "CreationDate", "Y"])
        for k in range(n):
            lang = rng.choice(list(LANGUAGES))
            good = k % 2 == 0
            title, body = question(rng, lang, good)
            tags = f"<{lang.lower()}>"
            writer.writerow([first_id + k, title, body, tags, "2016-02-01 10:00:00", "HQ" if good else "LQ"])


def write_all(out: Path) -> None:
    base = out / "stackoverflow"
    (base / "so_ner").mkdir(parents=True, exist_ok=True)
    (base / "so_question_quality_hqlq").mkdir(parents=True, exist_ok=True)
    write_posts(base / "corpus.xml", 700)
    for split, n in (("train", 400), ("dev", 80), ("test", 80)):
        write_ner(base / "so_ner" / f"{split}.txt", n, split)
    for split, n, first in (("train", 240, 1000), ("dev", 60, 2000), ("test", 60, 3000)):
        write_questions(base / "so_question_quality_hqlq" / f"{split}.csv", n, split, first)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = parser.parse_args(argv)
    write_all(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
