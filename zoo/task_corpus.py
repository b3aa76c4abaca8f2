"""A pretraining corpus from the texts of a domain's benchmark tasks, one split only (never dev/test).

    python -m zoo.task_corpus stackoverflow --data ../shared/data/stackoverflow --out so-train.jsonl

writes one JSON line `{"text": …}` per example of the `train` split of every task of the domain (or of
`--task` ones), read through the tasks' own loaders: a token task's words joined by spaces, a text task's
text and its pair on lines of their own. The labels are never written. The result reads with the corpus
format 'text' (`.jsonl`) and with every reader that takes JSONL ('stackexchange' too).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from zoo.errors import UserError


def example_text(example: Any) -> str:
    """The unlabelled text of one example of any built-in example type."""
    from zoo.benchmarks.tasks import MultipleChoiceExample, TokenExample

    if isinstance(example, TokenExample):
        return " ".join(example.tokens)
    if isinstance(example, MultipleChoiceExample):
        return "\n".join([example.context, *example.choices])
    return "\n".join(t for t in (example.text, example.text_pair) if t)


def task_texts(domain: str, data: Path, tasks: Sequence[str], split: str) -> Iterator[str]:
    from zoo.benchmarks.kinds import get_kind
    from zoo.finetune import task_data_dir
    from zoo.registry import get_domain

    d = get_domain(domain)
    for task in [d.task(t) for t in tasks] or list(d.tasks):
        for example in get_kind(task.type).load(task, task_data_dir(d, task, str(data)), split):
            text = example_text(example).strip()
            if text:
                yield text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zoo.task_corpus", description=__doc__.splitlines()[0])
    parser.add_argument("domain")
    parser.add_argument("--data", type=Path, required=True, help="folder with one folder per task")
    parser.add_argument("--out", type=Path, required=True, help="the .jsonl file to write")
    parser.add_argument("--task", action="append", default=[], help="only these tasks (repeatable)")
    parser.add_argument("--split", default="train")
    args = parser.parse_args(argv)
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    try:
        count = 0
        with tmp.open("w", encoding="utf-8") as f:
            for text in task_texts(args.domain, args.data, args.task, args.split):
                f.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
                count += 1
        os.replace(tmp, args.out)
    except UserError as err:
        tmp.unlink(missing_ok=True)
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{count} documents from the {args.split} split → {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
