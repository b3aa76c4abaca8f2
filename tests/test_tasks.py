"""Task split loaders: IOB / CSV / JSONL / PubMedQA, multi-label and multiple-choice parsing, their file:line
errors, and the real data."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from conftest import shared_data

from zoo.benchmarks.kinds import get_kind
from zoo.benchmarks.tasks import (
    MultiLabelExample,
    MultipleChoiceExample,
    TextExample,
    TokenExample,
    load_split,
    split_path,
)
from zoo.domain import TaskSpec
from zoo.errors import UserError

NER = TaskSpec("toy_ner", "token_classification", "iob", ("f1",))
CLS = TaskSpec("toy_cls", "sequence_classification", "csv", ("accuracy",))
QA = TaskSpec("toy_qa", "sequence_classification", "pubmedqa", ("accuracy",))
ML = TaskSpec("toy_ml", "multi_label_classification", "jsonl", ("micro_f1",))
MC = TaskSpec("toy_mc", "multiple_choice", "csv", ("accuracy",))


def label_list(examples: list) -> list[str]:
    """The label space as the examples' task kind orders it."""
    kind = {TokenExample: "token_classification", TextExample: "sequence_classification"}[type(examples[0])]
    return get_kind(kind).label_space(examples)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- IOB


def test_iob_sentences_tags_and_docstart(tmp_path: Path) -> None:
    write(
        tmp_path,
        "train.tsv",
        "-DOCSTART-\tO\n\nBreast\tB-Disease\ncancer\tI-Disease\nis\tO\n\n\t\nAspirin\tB-Chemical\n",
    )
    examples = load_split(NER, tmp_path, "train")
    assert examples == [
        TokenExample(["Breast", "cancer", "is"], ["B-Disease", "I-Disease", "O"]),
        TokenExample(["Aspirin"], ["B-Chemical"]),
    ]
    # O first, then B-/I- for every type seen (I-Chemical never occurs but gets an id).
    assert label_list(examples) == ["O", "B-Chemical", "B-Disease", "I-Chemical", "I-Disease"]


def test_iob_wrong_column_count_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "train.tsv", "a\tO\nb\tO\textra\n")
    with pytest.raises(
        UserError, match=rf"{path}:2: expected 2 tab-separated columns \(token<TAB>tag\), found 3"
    ):
        load_split(NER, tmp_path, "train")


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ("a\tO\nb\tI-Disease\n", 2, "I-Disease follows O"),
        ("a\tB-Chemical\nb\tI-Disease\n", 2, "I-Disease follows B-Chemical"),
        ("x\tO\n\nb\tI-Disease\n", 3, "I-Disease follows O"),  # a new sentence starts outside any entity
        ("a\tB-Disease\nb\tDisease\n", 2, "tag 'Disease' is not IOB2"),
    ],
)
def test_iob_strict_iob2_errors(tmp_path: Path, text: str, line: int, what: str) -> None:
    path = write(tmp_path, "train.tsv", text)
    with pytest.raises(UserError, match=rf"{path}:{line}: {what}"):
        load_split(NER, tmp_path, "train")


def test_iob_options_extra_columns_and_repair(tmp_path: Path) -> None:
    # StackOverflow-NER shape: word, NE tag, word, markdown tag; a stray I- read as B- when asked to repair.
    write(tmp_path, "train.txt", "use\tO\tuse\tO\npandas\tI-Library\tpandas\tO\n")
    task = TaskSpec("so", "token_classification", "iob", ("f1",), options={"columns": 4, "repair_iob": True})
    assert load_split(task, tmp_path, "train") == [TokenExample(["use", "pandas"], ["O", "B-Library"])]


# ---------------------------------------------------------------- CSV / JSONL


def test_csv_default_text_column_and_numeric_label_order(tmp_path: Path) -> None:
    rows = "".join(f"ACGT{i},{label}\n" for i, label in enumerate([2, 10, 2, 1]))
    write(tmp_path, "dev.csv", "sequence,label\n" + rows)
    examples = load_split(CLS, tmp_path, "dev")
    assert examples[1] == TextExample("ACGT1", None, "10")
    assert label_list(examples) == ["1", "2", "10"]  # numeric order, not string order


def test_csv_pair_column_and_quoted_newline(tmp_path: Path) -> None:
    write(tmp_path, "train.csv", 'title,body,y\nQ1,"line one\nline two",HQ\nQ2,short,LQ\n')
    task = TaskSpec(
        "q",
        "sequence_classification",
        "csv",
        ("accuracy",),
        options={"text_column": "title", "pair_column": "body", "label_column": "y"},
    )
    assert load_split(task, tmp_path, "train") == [
        TextExample("Q1", "line one\nline two", "HQ"),
        TextExample("Q2", "short", "LQ"),
    ]


def test_csv_wrong_field_count_reports_record_start_line(tmp_path: Path) -> None:
    # The quoted newline makes record 2 span lines 2-3, so the bad record starts on line 4.
    path = write(tmp_path, "train.csv", 'text,label\n"a\nb",0\nc,1,extra\n')
    with pytest.raises(UserError, match=rf"{path}:4: expected 2 fields \(text,label\), found 3"):
        load_split(CLS, tmp_path, "train")


def test_csv_missing_column_suggests_option(tmp_path: Path) -> None:
    write(tmp_path, "train.csv", "url,label\nhttp://x,legit\n")
    with pytest.raises(
        UserError, match=r"no column 'text' \(header: url, label\); set the task option text_column"
    ):
        load_split(CLS, tmp_path, "train")


def test_jsonl_label_column_and_bad_line(tmp_path: Path) -> None:
    task = TaskSpec("tos", "sequence_classification", "jsonl", ("f1",), options={"label_column": "unfair"})
    write(
        tmp_path, "train.jsonl", '{"text": "We may terminate.", "unfair": 1}\n{"text": "Hi", "unfair": 0}\n'
    )
    assert [e.label for e in load_split(task, tmp_path, "train")] == ["1", "0"]
    path = write(tmp_path, "dev.jsonl", '{"text": "a", "unfair": 0}\n{"text": \n')
    with pytest.raises(UserError, match=rf"{path}:2: not valid JSON"):
        load_split(task, tmp_path, "dev")


# ---------------------------------------------------------------- multi-label


def test_multi_label_jsonl_lists_and_empty(tmp_path: Path) -> None:
    write(
        tmp_path,
        "train.jsonl",
        '{"text": "We may end it.", "labels": ["ter", "ch", "ter"]}\n\n{"text": "Hello", "labels": []}\n'
        '{"text": "x", "labels": [3]}\n',
    )
    assert load_split(ML, tmp_path, "train") == [
        MultiLabelExample("We may end it.", None, ("ter", "ch")),  # duplicates dropped, file order kept
        MultiLabelExample("Hello", None, ()),
        MultiLabelExample("x", None, ("3",)),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            '{"text": "a", "labels": "ter"}',
            r":2: labels must be a JSON list of label names \(\[\] for none\)",
        ),
        ('{"text": "a", "labels": [null]}', r":2: labels must be a JSON list"),
        ('{"text": "a", "labels": [""]}', r":2: empty label"),
        (
            '{"text": "a"}',
            r":2: missing key\(s\) labels \(has: text\); set the task option\(s\) labels_column",
        ),
        ('{"text": null, "labels": []}', r":2: 'text' must be text, found null"),
        ("[1, 2]", r":2: expected a JSON object, found list"),
    ],
)
def test_multi_label_jsonl_errors(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path, "dev.jsonl", '{"text": "ok", "labels": []}\n' + line + "\n")
    with pytest.raises(UserError, match=rf"{path}{message}"):
        load_split(ML, tmp_path, "dev")


def test_multi_label_csv_separator_and_no_label(tmp_path: Path) -> None:
    write(tmp_path, "train.csv", 'sentence,tags\n"We may, at any time, end it.",ter | ch\nHello,\n')
    task = TaskSpec(
        "ml",
        "multi_label_classification",
        "csv",
        ("micro_f1",),
        options={"text_column": "sentence", "labels_column": "tags", "label_separator": "|"},
    )
    assert load_split(task, tmp_path, "train") == [
        MultiLabelExample("We may, at any time, end it.", None, ("ter", "ch")),
        MultiLabelExample("Hello", None, ()),
    ]
    path = write(tmp_path, "dev.csv", "sentence,tags\na,ter||ch\n")
    with pytest.raises(UserError, match=rf"{path}:2: empty label in 'ter\|\|ch'; separate labels with '\|'"):
        load_split(task, tmp_path, "dev")


# ---------------------------------------------------------------- multiple choice


def test_multiple_choice_csv_casehold_columns(tmp_path: Path) -> None:
    write(
        tmp_path,
        "train.csv",
        ",citing_prompt,holding_0,holding_1,holding_10,holding_2,label\n0,The court (<HOLDING>),a,b,k,c,2\n",
    )
    task = TaskSpec("h", "multiple_choice", "csv", ("accuracy",), options={"context_column": "citing_prompt"})
    # Choice columns found by name and ordered by number (holding_10 after holding_2), not header order.
    assert load_split(task, tmp_path, "train") == [
        MultipleChoiceExample("The court (<HOLDING>)", ("a", "b", "c", "k"), "2")
    ]
    path = write(
        tmp_path, "dev.csv", ",citing_prompt,holding_0,holding_1,holding_10,holding_2,label\n0,p,a,b,k,c,4\n"
    )
    with pytest.raises(
        UserError, match=rf"{path}:2: label '4' is not the index of a choice \(an integer from 0 to 3\)"
    ):
        load_split(task, tmp_path, "dev")


def test_multiple_choice_csv_explicit_columns_and_missing(tmp_path: Path) -> None:
    write(tmp_path, "train.csv", "q,x,y,label\nwhich?,yes,no,1\n")
    task = TaskSpec(
        "c",
        "multiple_choice",
        "csv",
        ("accuracy",),
        options={"context_column": "q", "choice_columns": ["x", "y"]},
    )
    assert load_split(task, tmp_path, "train") == [MultipleChoiceExample("which?", ("yes", "no"), "1")]
    path = write(tmp_path, "dev.csv", "context,x,label\nwhich?,yes,0\n")
    with pytest.raises(
        UserError, match=rf"{path}: no choice columns found .*set the task option choice_columns"
    ):
        load_split(MC, tmp_path, "dev")


def test_multiple_choice_jsonl_lexglue_layout(tmp_path: Path) -> None:
    task = TaskSpec("h", "multiple_choice", "jsonl", ("accuracy",))
    write(
        tmp_path,
        "train.jsonl",
        '{"context": "c1", "endings": ["a", "b", "c"], "label": 0}\n{"context": "c2", "endings": ["d", "e", "f"], "label": "2"}\n',
    )
    assert load_split(task, tmp_path, "train") == [
        MultipleChoiceExample("c1", ("a", "b", "c"), "0"),
        MultipleChoiceExample("c2", ("d", "e", "f"), "2"),
    ]
    path = write(
        tmp_path,
        "dev.jsonl",
        '{"context": "c1", "endings": ["a", "b", "c"], "label": 0}\n{"context": "c2", "endings": ["d", "e"], "label": 1}\n',
    )
    with pytest.raises(UserError, match=rf"{path}:2: 2 choices where earlier lines have 3"):
        load_split(task, tmp_path, "dev")
    path = write(tmp_path, "test.jsonl", '{"context": "c", "endings": ["a", "b"], "label": true}\n')
    with pytest.raises(UserError, match=rf"{path}:1: label True is not the index of a choice"):
        load_split(task, tmp_path, "test")


def test_kind_rejects_examples_of_another_kind(tmp_path: Path) -> None:
    task = TaskSpec("plug", "multiple_choice", f"{__name__}:third_party_loader", ("accuracy",))
    with pytest.raises(
        UserError,
        match=r"task 'plug' \(format '.*third_party_loader'\) gave a TextExample, but task kind 'multiple_choice' "
        r"takes MultipleChoiceExample",
    ):
        load_split(task, tmp_path, "train")


# ---------------------------------------------------------------- PubMedQA


def test_pubmedqa_question_contexts_label(tmp_path: Path) -> None:
    data = {
        "1": {"QUESTION": "Does X help?", "CONTEXTS": ["Background.", "Results."], "final_decision": "yes"},
        "2": {"QUESTION": "Is Y bad?", "CONTEXTS": ["Only one."], "final_decision": "maybe"},
    }
    write(tmp_path, "test.json", json.dumps(data))
    examples = load_split(QA, tmp_path, "test")
    assert examples[0] == TextExample("Does X help?", "Background. Results.", "yes")
    assert label_list(examples) == ["maybe", "yes"]


def test_pubmedqa_bad_label_names_entry(tmp_path: Path) -> None:
    write(
        tmp_path,
        "test.json",
        json.dumps({"77": {"QUESTION": "q", "CONTEXTS": [], "final_decision": "perhaps"}}),
    )
    with pytest.raises(UserError, match=r"entry 77: final_decision 'perhaps' is not one of yes/no/maybe"):
        load_split(QA, tmp_path, "test")


# ---------------------------------------------------------------- split files and third-party loaders


def test_missing_dir_and_file_mention_data_option(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"does-not-exist does not exist; --data DIR must be a folder"):
        load_split(NER, tmp_path / "does-not-exist", "train")
    write(tmp_path, "train.tsv", "a\tO\n")
    with pytest.raises(
        UserError, match=r"no file for split 'dev' of task 'toy_ner'.*dev\.tsv.*--data DIR must contain it"
    ):
        load_split(NER, tmp_path, "dev")
    with pytest.raises(UserError, match=r"has no split 'valid'"):
        load_split(NER, tmp_path, "valid")


def test_split_found_in_task_subfolder(tmp_path: Path) -> None:
    (tmp_path / "toy_ner").mkdir()
    expected = write(tmp_path / "toy_ner", "train.tsv", "a\tO\n")
    assert split_path(NER, tmp_path, "train") == expected


def third_party_loader(task: TaskSpec, data_dir: Path, split: str) -> list[TextExample]:
    return [TextExample(f"{task.name}:{split}", None, 3)]  # type: ignore[arg-type]  # int label on purpose


def test_third_party_loader_and_unknown_format(tmp_path: Path) -> None:
    task = TaskSpec("plug", "sequence_classification", f"{__name__}:third_party_loader", ("accuracy",))
    assert load_split(task, tmp_path, "dev") == [TextExample("plug:dev", None, "3")]  # label made a string
    broken = TaskSpec("plug", "sequence_classification", "no_such_pkg.mod:load", ("accuracy",))
    with pytest.raises(UserError, match=r"cannot load its loader 'no_such_pkg.mod:load'"):
        load_split(broken, tmp_path, "dev")
    with pytest.raises(UserError, match=r"unknown format 'iobb' — did you mean 'iob'"):
        load_split(TaskSpec("t", "token_classification", "iobb", ("f1",)), tmp_path, "dev")


# ---------------------------------------------------------------- real public data


@pytest.fixture(scope="module")
def data_root() -> Path:
    """The shared real data; under CI=true its absence is a failure, not a skip."""
    return shared_data("biomedical").parent


def test_real_ncbi_disease(data_root: Path) -> None:
    examples = load_split(NER, data_root / "biomedical" / "ncbi_disease", "train")
    assert len(examples) == 5424
    assert Counter(t for e in examples for t in e.tags)["B-Disease"] == 5134
    assert sum(len(e.tokens) for e in examples) == 135_701
    assert label_list(examples) == ["O", "B-Disease", "I-Disease"]


@pytest.mark.parametrize(
    ("split", "sentences", "tokens", "chemical", "disease"),
    [
        ("train", 4560, 118_170, 5203, 4182),
        ("dev", 4581, 117_453, 5347, 4246),
        ("test", 2395, 62_985, 2575, 2243),
    ],
)
def test_real_bc5cdr(
    data_root: Path, split: str, sentences: int, tokens: int, chemical: int, disease: int
) -> None:
    examples = load_split(NER, data_root / "biomedical" / "bc5cdr", split)
    tags = Counter(t for e in examples for t in e.tags)
    assert (len(examples), sum(len(e.tokens) for e in examples)) == (sentences, tokens)
    assert (tags["B-Chemical"], tags["B-Disease"]) == (chemical, disease)


@pytest.mark.parametrize(
    ("split", "counts"),
    [("train", (248, 152, 49)), ("dev", (28, 17, 6)), ("test", (276, 169, 55))],
)
def test_real_pubmedqa(data_root: Path, split: str, counts: tuple[int, int, int]) -> None:
    examples = load_split(QA, data_root / "biomedical" / "pubmedqa", split)
    labels = Counter(e.label for e in examples)
    assert (labels["yes"], labels["no"], labels["maybe"]) == counts
    assert all(e.text_pair for e in examples)  # every question has its abstract contexts


def test_real_gue_prom_core_all(data_root: Path) -> None:
    task = TaskSpec(
        "gue_prom_core_all",
        "sequence_classification",
        "csv",
        ("mcc",),
        options={"text_column": "sequence", "label_column": "label"},
    )
    examples = load_split(task, data_root / "genomic" / "gue_prom_core_all", "train")
    assert len(examples) == 47_356
    assert Counter(e.label for e in examples) == {"0": 23_705, "1": 23_651}
    assert {len(e.text) for e in examples} == {70}


@pytest.mark.parametrize(
    ("split", "sentences", "unfair"), [("train", 8997, 694), ("dev", 1532, 140), ("test", 3038, 223)]
)
def test_real_claudette_multi_label(data_root: Path, split: str, sentences: int, unfair: int) -> None:
    """The CLAUDETTE ToS JSONL reads with the multi-label loader's defaults (text, labels)."""
    path = shared_data("legal", "claudette_tos")
    task = TaskSpec("claudette_tos", "multi_label_classification", "jsonl", ("micro_f1",))
    examples = load_split(task, path, split)
    assert (len(examples), sum(bool(e.labels) for e in examples)) == (sentences, unfair)
    if split == "train":
        counts = Counter(label for e in examples for label in e.labels)
        assert (counts["Limitation of liability"], counts["Arbitration"]) == (274, 25)
        assert len(get_kind("multi_label_classification").label_space(examples)) == 8
