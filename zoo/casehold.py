"""CaseHOLD (Zheng et al., ICAIL 2021): a citing context with its holding masked as `(<HOLDING>)` and 5
candidate holdings, one right. The data is not shipped with the zoo (nor in ../shared/data); get it from
the authors' release (github.com/reglab/casehold → casehold.csv, split it yourself) or from LexGLUE
(Hugging Face dataset `coastalcph/lex_glue`, config `case_hold`, exported with
`load_dataset(...)["train"].to_json("train.jsonl")`, and likewise dev as `validation`, test).

Two layouts, picked by the split file's extension:
- `.csv`: the public CSV, columns `citing_prompt, holding_0 … holding_4, label` (an unnamed index column
  first is ignored);
- `.json` / `.jsonl`: the LexGLUE layout, one object per line `{"context", "endings": [5 texts], "label"}`.

Every row needs exactly 5 non-empty candidates and a label from 0 to 4; anything else is a UserError
naming file:line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo.benchmarks.tasks import CHOICE_FORMATS, MultipleChoiceExample, split_path
from zoo.domain import TaskSpec
from zoo.errors import UserError

CHOICES = 5


def load_casehold(task: TaskSpec, data_dir: Path, split: str) -> list[MultipleChoiceExample]:
    path = split_path(task, Path(data_dir), split)
    if path.suffix == ".csv":
        examples = CHOICE_FORMATS["csv"](path, {"context_column": "citing_prompt", **task.options})
    elif path.suffix in (".json", ".jsonl"):
        options = {
            "context_column": "context",
            "choices_column": "endings",
            "num_choices": CHOICES,
            **task.options,
        }
        examples = CHOICE_FORMATS["jsonl"](path, options)
    else:
        raise UserError(
            f"{path}: CaseHOLD data must be the public CSV (.csv) or the LexGLUE JSON Lines layout (.json, .jsonl)"
        )
    if not examples:
        raise UserError(f"{path}: no examples found; the file is empty or holds only a header")
    for x in examples:
        _check(x)
    return examples


def _check(x: Any) -> None:
    if len(x.choices) != CHOICES:
        raise UserError(
            f"{x.source}: {len(x.choices)} candidate holdings; CaseHOLD has {CHOICES} per question"
        )
    empty = next((i for i, c in enumerate(x.choices) if not c.strip()), None)
    if empty is not None:
        raise UserError(
            f"{x.source}: candidate holding {empty} is empty; every question needs {CHOICES} candidates"
        )
    if not x.context.strip():
        raise UserError(f"{x.source}: the citing prompt is empty")
