"""The task-kind contract: one table row per registered kind runs it end to end on tiny generated data.

A new kind joins by registration (`zoo.task_kinds`) plus one entry in CASES: a function writing tiny
train/dev/test files and returning its TaskSpec, its example type, and how to read gold predictions off
encoded rows. Each row: load → label_space → encode → collate → loss (= HF's mean) → predict → score
(gold scores 1.0) → a few Adam steps lower the loss. Then kind-specific, hand-checked behaviour.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before evaluate/huggingface_hub read it at import

import pytest
import torch
import transformers

from zoo.benchmarks.kinds import TASK_KINDS, TaskKind, check_task, get_kind
from zoo.benchmarks.kinds.node import NodeExample
from zoo.benchmarks.metrics import load_metric
from zoo.benchmarks.tasks import (
    MultiLabelExample,
    MultipleChoiceExample,
    TextExample,
    TokenExample,
    load_split,
)
from zoo.domain import IGNORE, CorpusSpec, Domain, ModelSpec, ObjectiveSpec, TaskSpec
from zoo.errors import UserError
from zoo.registry import DOMAINS, get_domain

SPLITS = ("train", "dev", "test")
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
HEADS: dict[str, type[transformers.PreTrainedModel]] = {
    "token_classification": transformers.BertForTokenClassification,
    "sequence_classification": transformers.BertForSequenceClassification,
    "multiple_choice": transformers.BertForMultipleChoice,
}


@pytest.fixture(scope="module", autouse=True)
def isolated_caches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Evaluate's scratch data goes to a temp ZOO_HOME (its module copies: see conftest)."""
    home = tmp_path_factory.mktemp("zoo_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOO_HOME", str(home))
        load_metric.cache_clear()
        yield
    load_metric.cache_clear()


# ---------------------------------------------------------------- tiny generated data, one writer per kind


def _write(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(text, encoding="utf-8")


# Token task: drugs are B-Chem, "breast cancer" is B-Dis I-Dis; "ibuprofen"/"acetaminophen" split into pieces.
_NER = [
    [("aspirin", "B-Chem"), ("treats", "O"), ("pain", "O")],
    [("breast", "B-Dis"), ("cancer", "I-Dis"), ("is", "O"), ("bad", "O")],
    [("ibuprofen", "B-Chem"), ("and", "O"), ("acetaminophen", "B-Chem")],
    [("we", "O"), ("study", "O"), ("breast", "B-Dis"), ("cancer", "I-Dis")],
]


def _token_task(folder: Path) -> TaskSpec:
    for split, sentences in zip(SPLITS, (_NER * 2, _NER[:2], _NER[1:])):
        _write(
            folder,
            f"{split}.tsv",
            "\n\n".join("\n".join(f"{w}\t{t}" for w, t in s) for s in sentences) + "\n",
        )
    return TaskSpec("toy_ner", "token_classification", "iob", ("f1", "precision", "f1/Chem"))


# Sequence task (text pairs): the first word of the text decides the label; numeric labels sort as numbers.
_PAIRS = [
    ("good movie", "we liked it", "1"),
    ("bad movie", "we left early", "0"),
    ("maybe movie", "unsure", "10"),
]


def _sequence_task(folder: Path) -> TaskSpec:
    for split, rows in zip(SPLITS, (_PAIRS * 3, _PAIRS, _PAIRS[::-1])):
        _write(folder, f"{split}.csv", "text,pair,label\n" + "".join(f"{t},{p},{y}\n" for t, p, y in rows))
    return TaskSpec(
        "toy_pairs",
        "sequence_classification",
        "csv",
        ("accuracy", "macro_f1"),
        options={"pair_column": "pair"},
    )


# Multi-label task (CLAUDETTE-style JSONL): a word per label, and fair sentences with no label at all.
_CLAUSES = [
    ("we may terminate your account", ["termination"]),
    ("disputes go to arbitration", ["arbitration"]),
    ("we may terminate and use arbitration", ["termination", "arbitration"]),
    ("welcome to our service", []),
]


def _multi_label_task(folder: Path) -> TaskSpec:
    for split, rows in zip(SPLITS, (_CLAUSES * 2, _CLAUSES, _CLAUSES[::-1])):
        _write(
            folder, f"{split}.jsonl", "".join(json.dumps({"text": t, "labels": y}) + "\n" for t, y in rows)
        )
    return TaskSpec(
        "toy_unfair", "multi_label_classification", "jsonl", ("micro_f1", "macro_f1", "any_label_f1")
    )


# Multiple-choice task (CaseHOLD-style CSV): the right ending repeats the context's topic word.
_CHOICES = [
    ("the court held on contract", ("contract breach", "tort damages", "patent scope"), "0"),
    ("the court held on tort", ("contract breach", "tort damages", "patent scope"), "1"),
    ("the court held on patent", ("contract breach", "tort damages", "patent scope"), "2"),
]


def _choice_task(folder: Path) -> TaskSpec:
    header = "id,citing_prompt,holding_0,holding_1,holding_2,label\n"
    for split, rows in zip(SPLITS, (_CHOICES * 3, _CHOICES, _CHOICES[::-1])):
        body = "".join(f"{i},{c},{','.join(ch)},{y}\n" for i, (c, ch, y) in enumerate(rows))
        _write(folder, f"{split}.csv", header + body)
    return TaskSpec(
        "toy_holdings",
        "multiple_choice",
        "csv",
        ("accuracy", "macro_f1"),
        options={"context_column": "citing_prompt"},
    )


# Node task (a text-attributed graph): the _PAIRS texts as nodes of each split, a ring of citations, and one
# unlabelled node that stays in the graph but in no split.
def _node_task(folder: Path) -> TaskSpec:
    nodes = [
        {"node_id": f"{split}{i}", "text": t, "label": y, "split": "val" if split == "dev" else split}
        for split in SPLITS
        for i, (t, _, y) in enumerate(_PAIRS)
    ]
    nodes.append({"node_id": "u", "text": "unsure", "label": None, "split": "hidden"})
    _write(folder, "nodes.jsonl", "".join(json.dumps(n) + "\n" for n in nodes))
    ids = [n["node_id"] for n in nodes]
    _write(folder, "edges.tsv", "".join(f"{a}\t{b}\n" for a, b in zip(ids, ids[1:] + ids[:1], strict=True)))
    return TaskSpec("toy_graph", "node_classification", "tag", ("accuracy", "macro_f1"))


@dataclass(frozen=True)
class Case:
    write: Callable[[Path], TaskSpec]
    example_type: type
    gold: Callable[[dict[str, Any]], Any]
    """The prediction that equals the gold label of an encoded row."""


CASES: dict[str, Case] = {
    "token_classification": Case(
        _token_task, TokenExample, lambda r: [x for x in r["labels"] if x != IGNORE]
    ),
    "sequence_classification": Case(_sequence_task, TextExample, lambda r: r["labels"]),
    "multi_label_classification": Case(
        _multi_label_task, MultiLabelExample, lambda r: tuple(i for i, v in enumerate(r["labels"]) if v)
    ),
    "multiple_choice": Case(_choice_task, MultipleChoiceExample, lambda r: r["labels"]),
    "node_classification": Case(_node_task, NodeExample, lambda r: r["labels"]),
}

_CORPUS = [
    " ".join(w for s in _NER for w, _ in s),
    *(f"{t} {p}" for t, p, _ in _PAIRS),
    *(t for t, _ in _CLAUSES),
    *(f"{c} {' '.join(ch)}" for c, ch, _ in _CHOICES),
]


# Words that the tokenizer splits into pieces (so the first-sub-token rule is exercised); the others stay whole.
_PIECES = {"ibuprofen": ["ibu", "##pro", "##fen"], "acetaminophen": ["acet", "##amino", "##phen"]}


@pytest.fixture(scope="module")
def tokenizer() -> transformers.PreTrainedTokenizerFast:
    """A WordPiece tokenizer over the fixture words, its vocabulary written out (not trained) so that the
    ids, and with them every training run below, are the same on every machine."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    words = sorted({w for line in _CORPUS for w in line.split()} - set(_PIECES))
    pieces = sorted({p for split in _PIECES.values() for p in split})
    vocab = {token: i for i, token in enumerate([*SPECIALS, *words, *pieces])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]",
    )  # fmt: skip


def tiny_bert(
    kind: TaskKind, labels: Sequence[str], vocab: int, seed: int = 0
) -> transformers.PreTrainedModel:
    config = transformers.BertConfig(
        vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        **kind.head_config(labels),
    )  # fmt: skip
    torch.manual_seed(seed)
    return HEADS[kind.head](config).eval()


def load_all(kind: TaskKind, task: TaskSpec, folder: Path) -> dict[str, list[Any]]:
    return {split: kind.load(task, folder, split) for split in SPLITS}


# ---------------------------------------------------------------- the contract table


def test_every_registered_kind_has_a_case() -> None:
    names = TASK_KINDS.names()
    assert {
        "token_classification",
        "sequence_classification",
        "multi_label_classification",
        "multiple_choice",
    } <= set(names)
    assert set(names) <= set(CASES), f"add a CASES entry for {sorted(set(names) - set(CASES))}"


@pytest.mark.parametrize("name", TASK_KINDS.names())
def test_kind_declares_itself(name: str) -> None:
    kind = get_kind(name)
    assert isinstance(kind, TaskKind)
    assert kind.name == name
    assert kind.head in HEADS
    assert kind.metrics and all(isinstance(m, str) for m in kind.metrics)


@pytest.mark.parametrize("name", TASK_KINDS.names())
def test_kind_end_to_end(name: str, tmp_path: Path, tokenizer: transformers.PreTrainedTokenizerFast) -> None:
    kind, case = get_kind(name), CASES[name]
    task = case.write(tmp_path)
    check_task(task)
    splits = load_all(kind, task, tmp_path)
    assert all(splits[s] and all(isinstance(x, case.example_type) for x in splits[s]) for s in SPLITS)
    everything = [x for s in SPLITS for x in splits[s]]
    labels = kind.label_space(everything)
    assert len(labels) >= 2
    assert kind.label_space(everything[::-1]) == labels  # a stable order, not the order seen

    model = tiny_bert(kind, labels, len(tokenizer))
    rows = kind.encode(tokenizer, splits["train"], labels, 32)
    assert len(rows) == len(splits["train"])
    batch = kind.collate(rows, tokenizer.pad_token_id)
    assert batch["input_ids"].shape[0] == len(rows) == batch["labels"].shape[0]
    assert batch["attention_mask"].shape == batch["input_ids"].shape
    assert (batch["input_ids"][batch["attention_mask"] == 0] == tokenizer.pad_token_id).all()

    total, count = kind.loss(model, batch)
    assert total.dtype == torch.float32 and total.dim() == 0 and torch.isfinite(total)
    assert int(count) > 0
    hf_mean = model(**batch).loss  # HF's own loss for this head: the mean the engine must reproduce
    torch.testing.assert_close(total / count, hf_mean.float())
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the engine may run the model in bf16
        low, _ = kind.loss(model, batch)
    assert low.dtype == torch.float32 and torch.isfinite(low)

    test_rows = kind.encode(tokenizer, splits["test"], labels, 32)
    test_batch = kind.collate(test_rows, tokenizer.pad_token_id)
    predictions = kind.predict(model, test_batch)
    assert len(predictions) == len(test_rows)
    scores = kind.score(task, splits["test"], predictions, labels)
    assert list(scores) == list(task.metrics) and all(0.0 <= v <= 1.0 for v in scores.values())
    gold = kind.score(task, splits["test"], [case.gold(r) for r in test_rows], labels)
    assert gold[task.primary_metric] == 1.0

    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        total, count = kind.loss(model, batch)
        (total / count).backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(total.detach() / count))
    assert losses[-1] < 0.8 * losses[0], losses  # deterministic: about 0.06-0.55 of the first loss


@pytest.mark.parametrize("name", TASK_KINDS.names())
def test_kind_rejects_wrong_examples(name: str, tmp_path: Path, tokenizer: Any) -> None:
    kind, case = get_kind(name), CASES[name]
    task = case.write(tmp_path)
    wrong = (
        TokenExample(["a"], ["O"]) if case.example_type is not TokenExample else TextExample("a", None, "1")
    )
    with pytest.raises(UserError, match=rf"gave a {type(wrong).__name__}, but task kind '{name}' takes"):
        kind.encode(tokenizer, [wrong], ["0", "1"], 16)
    with pytest.raises(UserError, match=rf"gave a {type(wrong).__name__}, but task kind '{name}' takes"):
        kind.label_space([wrong])
    plugin = TaskSpec(task.name, name, f"{__name__}:{type(wrong).__name__.lower()}_loader", task.metrics)
    with pytest.raises(UserError, match=rf"task '{task.name}' \(format '{__name__}:.*'\) gave a"):
        kind.load(plugin, tmp_path, "train")


def tokenexample_loader(task: TaskSpec, data_dir: Path, split: str) -> list[TokenExample]:
    return [TokenExample(["a"], ["O"])]


def textexample_loader(task: TaskSpec, data_dir: Path, split: str) -> list[TextExample]:
    return [TextExample("a", None, "1")]


def test_format_belongs_to_the_kind(tmp_path: Path) -> None:
    _write(tmp_path, "train.json", "{}")
    task = TaskSpec("t", "multi_label_classification", "pubmedqa", ("micro_f1",))
    with pytest.raises(
        UserError, match=r"unknown format 'pubmedqa'.*task kind 'multi_label_classification' reads csv, jsonl"
    ):
        load_split(task, tmp_path, "train")


# ---------------------------------------------------------------- token classification


def test_token_labels_first_piece_and_truncated_words_count_as_o(tokenizer: Any) -> None:
    kind = get_kind("token_classification")
    example = TokenExample(["ibuprofen", "and", "breast", "cancer"], ["B-Chem", "O", "B-Dis", "I-Dis"])
    labels = kind.label_space([example])
    assert labels == ["O", "B-Chem", "B-Dis", "I-Chem", "I-Dis"]
    pieces = tokenizer.tokenize("ibuprofen")
    assert pieces == ["ibu", "##pro", "##fen"]
    (row,) = kind.encode(tokenizer, [example], labels, 32)
    # [CLS] ibuprofen-pieces and breast cancer [SEP]: only the first piece of each word is labelled.
    expected = [IGNORE, 1, *[IGNORE] * (len(pieces) - 1)]
    assert row["labels"][: len(expected)] == expected
    assert [x for x in row["labels"] if x != IGNORE] == [1, 0, 2, 4]
    (cut,) = kind.encode(tokenizer, [example], labels, len(pieces) + 3)  # room for ibuprofen and 'and' only
    assert [x for x in cut["labels"] if x != IGNORE] == [1, 0]

    task = TaskSpec("ner", "token_classification", "iob", ("f1", "precision", "recall", "f1/Dis"))
    # Gold ids for the words that survived; the cut 'breast cancer' is scored as predicted O: a missed entity.
    scores = kind.score(task, [example], [[1, 0]], labels)
    assert scores == {"f1": pytest.approx(2 / 3), "precision": 1.0, "recall": 0.5, "f1/Dis": 0.0}
    with pytest.raises(UserError, match=r"f1/Disease cannot be computed.*e\.g\. f1/Disease for B-Disease"):
        kind.score(
            TaskSpec("ner", "token_classification", "iob", ("f1/Disease",)), [example], [[1, 0]], labels
        )


# ---------------------------------------------------------------- sequence classification


def test_sequence_pairs_numeric_labels_and_pos_label(tokenizer: Any) -> None:
    kind = get_kind("sequence_classification")
    examples = [TextExample("good movie", "we liked it", "10"), TextExample("bad movie", None, "2")]
    assert kind.label_space(examples) == ["2", "10"]  # numeric order, not string order
    rows = kind.encode(tokenizer, examples, ["2", "10"], 32)
    sep = tokenizer.sep_token_id
    assert [r["input_ids"].count(sep) for r in rows] == [2, 2]  # a missing pair still reads as a (empty) pair
    assert [r["labels"] for r in rows] == [1, 0]

    legit, bad = "legit", "malicious"
    urls = [TextExample(f"u{i}", None, y) for i, y in enumerate([bad, bad, legit, legit])]
    task = TaskSpec(
        "url", "sequence_classification", "csv", ("f1", "accuracy"), metric_options={"pos_label": bad}
    )
    labels = kind.label_space(urls)  # ["legit", "malicious"]
    # Predicted: malicious, legit, malicious, legit → for class malicious TP=1, FP=1, FN=1: F1 = 1/2.
    assert kind.score(task, urls, [1, 0, 1, 0], labels) == {"f1": 0.5, "accuracy": 0.5}
    no_option = TaskSpec("url", "sequence_classification", "csv", ("f1",))
    with pytest.raises(UserError, match=r"'f1' of labels other than 0/1 needs the metric option pos_label"):
        kind.score(no_option, urls, [1, 0, 1, 0], labels)


# ---------------------------------------------------------------- multi-label classification


def test_multi_label_encoding_and_lexglue_scores(tokenizer: Any) -> None:
    kind = get_kind("multi_label_classification")
    examples = [
        MultiLabelExample("a", None, ("A",)),
        MultiLabelExample("b", None, ("A", "B")),
        MultiLabelExample("c", None, ()),
        MultiLabelExample("d", None, ()),
    ]
    labels = ["A", "B", "C"]
    assert kind.label_space(examples) == ["A", "B"]
    assert kind.head_config(labels)["problem_type"] == "multi_label_classification"
    assert [r["labels"] for r in kind.encode(tokenizer, examples, labels, 16)][:3] == [
        [1.0, 0.0, 0.0],
        [1.0, 1.0, 0.0],
        [0.0, 0.0, 0.0],
    ]
    predictions = [(0,), (1,), (2,), ()]  # {A}, {B}, {C}, {} against {A}, {A,B}, {}, {}
    # With the 'none' column (LexGLUE): per-column F1 A 2/3, B 1, C 0, none 2/3 → macro 7/12;
    # micro: TP 3 (A, B, none of d), FP 1 (C), FN 2 (A of b, none of c) → 6/9. Any label: TP 2, FP 1 → 4/5.
    task = TaskSpec("t", "multi_label_classification", "jsonl", ("macro_f1", "micro_f1", "any_label_f1"))
    assert kind.score(task, examples, predictions, labels) == {
        "macro_f1": pytest.approx(7 / 12),
        "micro_f1": pytest.approx(2 / 3),
        "any_label_f1": pytest.approx(0.8),
    }
    plain = TaskSpec(
        "t", "multi_label_classification", "jsonl", ("macro_f1",), metric_options={"none_class": False}
    )
    assert kind.score(plain, examples, predictions, labels) == {
        "macro_f1": pytest.approx(5 / 9)
    }  # (2/3 + 1 + 0)/3
    with pytest.raises(UserError, match="no example of this multi-label task has a label"):
        kind.label_space([MultiLabelExample("x", None, ())])


# ---------------------------------------------------------------- multiple choice


def test_multiple_choice_rows_and_casehold_scores(tokenizer: Any) -> None:
    kind = get_kind("multiple_choice")
    examples = [MultipleChoiceExample("ctx", ("a", "b", "c"), y) for y in ("0", "1", "2", "2")]
    labels = kind.label_space(examples)
    assert labels == ["0", "1", "2"]
    rows = kind.encode(tokenizer, examples, labels, 16)
    assert [len(r["input_ids"]) for r in rows] == [3] * 4 and [r["labels"] for r in rows] == [0, 1, 2, 2]
    assert kind.collate(rows, tokenizer.pad_token_id)["input_ids"].shape[:2] == (4, 3)
    # Predicted 0, 1, 1, 2: accuracy 3/4; per-choice F1 1, 2/3, 2/3 → macro 7/9 (CaseHOLD's two numbers).
    task = TaskSpec("h", "multiple_choice", "csv", ("accuracy", "macro_f1", "micro_f1"))
    assert kind.score(task, examples, [0, 1, 1, 2], labels) == {
        "accuracy": 0.75,
        "macro_f1": pytest.approx(7 / 9),
        "micro_f1": 0.75,
    }
    with pytest.raises(UserError, match="have 2 and 3 choices"):
        kind.label_space([*examples, MultipleChoiceExample("ctx", ("a", "b"), "0")])


# ---------------------------------------------------------------- metrics checked when a domain loads


def _domain(name: str, task: TaskSpec, folder: Path) -> Domain:
    return Domain(
        name=name,
        summary="test domain",
        model=ModelSpec("bert"),
        tokenizers=("wordpiece.yaml",),
        objective=ObjectiveSpec("mlm"),
        corpus=CorpusSpec("text"),
        tasks=(task,),
        sample_dir=folder,
    )


@pytest.mark.parametrize(
    ("task", "message"),
    [
        (
            TaskSpec("unfair", "multi_label_classification", "jsonl", ("micro_f1", "macro_f")),
            (
                r"task 'unfair' lists metric 'macro_f' that task kind 'multi_label_classification' does not "
                r"compute — did you mean 'macro_f1'"
            ),
        ),
        (
            TaskSpec("url", "sequence_classification", "csv", ("f1",), metric_options={"pos_lable": "bad"}),
            (
                r"task 'url': unknown metric option 'pos_lable' for task kind 'sequence_classification' — did you "
                r"mean 'pos_label'"
            ),
        ),
        (
            TaskSpec("ner", "token_classification", "iob", ("f1",), metric_options={"average": "macro"}),
            r"unknown metric option 'average' for task kind 'token_classification' \(it takes none\)",
        ),
        (TaskSpec("ner", "token_classification", "iob", ("mcc",)), r"lists metric 'mcc'"),
        (TaskSpec("q", "node_clasification", "csv", ("accuracy",)), r"task 'q': unknown task kind"),
    ],
)
def test_domain_load_rejects_bad_metrics(
    task: TaskSpec, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(DOMAINS, "_added", dict(DOMAINS._added))  # undo the registration afterwards
    DOMAINS.add("toy_checked", _domain("toy_checked", task, tmp_path))
    with pytest.raises(UserError, match=message):
        get_domain("toy_checked")


def test_domain_load_accepts_per_type_and_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(DOMAINS, "_added", dict(DOMAINS._added))
    ner = TaskSpec("ner", "token_classification", "iob", ("f1", "f1/Chemical", "support/Disease"))
    DOMAINS.add("toy_ok", _domain("toy_ok", ner, tmp_path))
    assert get_domain("toy_ok").tasks == (ner,)
    check_task(
        TaskSpec(
            "u",
            "multi_label_classification",
            "jsonl",
            ("any_label_f1",),
            metric_options={"none_class": False},
        )
    )
    check_task(TaskSpec("h", "multiple_choice", "jsonl", ("accuracy", "macro_f1")))
