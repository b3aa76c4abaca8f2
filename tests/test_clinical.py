"""The clinical domain's own pieces: the de-identification placeholders of its tokenizer recipe, the note
readers (text and NOTEEVENTS-style CSV), T5 span corruption, the MTSamples loaders on the real data, and the
bad inputs the issue lists (file:line, exit 2, nothing written). The shared contract (sample corpus, tasks,
fine-tune, embedded pretraining) is tests/test_domains.py; the methods on T5, tests/test_methods.py."""

from __future__ import annotations

import csv
import itertools
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import shared_data
from test_cli import assert_user_error, zoo

from zoo.benchmarks.kinds import get_kind
from zoo.clinical import UMBRELLA_CATEGORIES, check_deid_tags, read_notes
from zoo.corpus import read_corpus
from zoo.domain import CorpusSpec
from zoo.errors import UserError
from zoo.objectives import build_objective
from zoo.objectives_span import corrupt, noise_mask, reconstruct
from zoo.registry import get_domain
from zoo.tokenizer import load_recipe, train_tokenizer

CLINICAL = get_domain("clinical")
NOTES = CorpusSpec("zoo.clinical:read_notes")


@pytest.fixture(scope="module")
def tokenizer():
    docs = list(itertools.islice(read_corpus(CLINICAL.corpus, [CLINICAL.sample_corpus]), 400))
    return train_tokenizer(load_recipe("clinical-spm-unigram"), iter(docs), vocab_size=600)


# ------------------------------------------------------------------------------------- tokenizer recipe


@pytest.mark.parametrize(
    ("tag", "token"),
    [
        ("[**2101-10-20**]", "[DATE]"),
        ("[**10-20**]", "[DATE]"),
        ("[**Month (only) 51**]", "[DATE]"),
        ("[**First Name8 (NamePattern2) 123**]", "[NAME]"),
        ("[**Known lastname 4421**]", "[NAME]"),
        ("[**Doctor First Name **]", "[NAME]"),
        ("[**Hospital1 18**]", "[HOSPITAL]"),
        ("[**Hospital 123**]", "[HOSPITAL]"),
        ("[**Hospital Ward Name 12**]", "[HOSPITAL]"),
        ("[**Location (un) 2**]", "[LOCATION]"),
        ("[**Telephone/Fax (1) 555**]", "[PHONE]"),
        ("[**Medical Record Number 99**]", "[ID]"),
        ("[**Age over 90 **]", "[AGE]"),
        ("[**Something else**]", "[DEID]"),
    ],
)
def test_deid_tags_become_one_placeholder_token(tokenizer, tag: str, token: str) -> None:
    ids = tokenizer(f"Seen by {tag} today.", add_special_tokens=False)["input_ids"]
    pieces = tokenizer.convert_ids_to_tokens(ids)
    assert pieces.count(token) == 1 and not any("*" in p for p in pieces), pieces
    assert len(tokenizer(token, add_special_tokens=False)["input_ids"]) <= 2  # '▁' + the token at most


def test_recipe_is_cased_and_ends_sequences_with_eos_and_has_100_sentinels(tokenizer) -> None:
    recipe = load_recipe("clinical-spm-unigram")
    assert recipe.algorithm == "unigram" and recipe.vocab_size == 32000 and recipe.sentinel_tokens == 100
    ids = tokenizer("MS patient")["input_ids"]
    assert ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == "MS patient"
    sentinels = [tokenizer.convert_tokens_to_ids(f"<extra_id_{i}>") for i in range(100)]
    assert len(set(sentinels)) == 100 and set(sentinels) <= set(tokenizer.all_special_ids)
    assert tokenizer.pad_token_id == 0  # T5's decoder start token


# ------------------------------------------------------------------------------------------- readers


def test_reads_text_notes_and_noteevents_csv_with_multiline_notes(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("First note [**Name**].\n\nSecond note.\n")
    with (tmp_path / "NOTEEVENTS.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ROW_ID", "SUBJECT_ID", "CATEGORY", "TEXT"])
        w.writerow(["1", "7", "Discharge summary", "Admission Date: [**2101-10-20**]\nHistory: chest pain."])
        w.writerow(["2", "8", "Nursing", "Stable overnight."])
    assert list(read_corpus(NOTES, [tmp_path / "notes.txt"])) == ["First note [**Name**].", "Second note."]
    assert list(read_corpus(NOTES, [tmp_path / "NOTEEVENTS.csv"])) == [
        "Admission Date: [**2101-10-20**]\nHistory: chest pain.",
        "Stable overnight.",
    ]
    assert len(list(read_corpus(NOTES, [tmp_path]))) == 4  # a folder: its .csv and .txt files
    other = CorpusSpec("zoo.clinical:read_notes", {"column": "CATEGORY"})
    assert list(read_corpus(other, [tmp_path / "NOTEEVENTS.csv"])) == ["Discharge summary", "Nursing"]


def test_csv_without_the_text_column_names_the_file_and_its_columns(tmp_path: Path) -> None:
    (tmp_path / "notes.csv").write_text("ROW_ID,NOTE\n1,hello\n")
    with pytest.raises(UserError, match=r"notes.csv: no column 'TEXT' \(the file has: ROW_ID, NOTE\)"):
        list(read_notes(tmp_path / "notes.csv"))


def test_unterminated_deid_tag_names_file_and_line(tmp_path: Path) -> None:
    assert check_deid_tags("a [**Name**] b [**Date**]", "x") == "a [**Name**] b [**Date**]"
    (tmp_path / "notes.txt").write_text("fine [**Name**]\n\nbroken [**Hospital1 tag\n")
    with pytest.raises(UserError, match=r"notes.txt:3: unterminated de-identification tag '\[\*\*Hospital1"):
        list(read_notes(tmp_path / "notes.txt"))
    with (tmp_path / "n.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["TEXT"], ["ok"], ["line one\nline two [**Name"]])
    with pytest.raises(UserError, match=r"n.csv:4: unterminated"):
        list(read_notes(tmp_path / "n.csv"))


def test_bad_corpus_inputs_exit_2_and_write_nothing(tmp_path: Path) -> None:
    (tmp_path / "notes.csv").write_text("ROW_ID,NOTE\n1,hello\n")
    (tmp_path / "open.txt").write_text("ok\nPatient [**First Name\n")
    args = ("pretrain", "clinical", "train.max_steps=1", "--corpus")
    assert_user_error(zoo(*args, "notes.csv", cwd=tmp_path), "notes.csv: no column 'TEXT'", "ROW_ID, NOTE")
    assert_user_error(zoo(*args, "open.txt", cwd=tmp_path), "open.txt:2: unterminated de-identification tag")
    assert_user_error(zoo(*args, "notes.csv", "corpus.colum=X", cwd=tmp_path), "did you mean 'column'")
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------------------------------- span corruption


def test_noise_mask_has_the_exact_noise_count_and_t5_span_count() -> None:
    g = torch.Generator().manual_seed(0)
    lengths: list[int] = []
    for n in (20, 57, 128, 512):
        for _ in range(50):
            mask = noise_mask(n, 0.15, 3.0, g)
            noise = min(max(round(n * 0.15), 1), n - 1)
            assert int(mask.sum()) == noise
            starts = mask & ~torch.cat([torch.tensor([False]), mask[:-1]])
            assert int(starts.sum()) == max(round(noise / 3.0), 1)
            assert not mask[0]  # non-noise first, as T5
            runs = torch.unique_consecutive(mask, return_counts=True)
            lengths += runs[1][runs[0]].tolist()
    assert abs(sum(lengths) / len(lengths) - 3.0) < 0.15  # mean span length 3


def test_input_and_target_interleave_sentinels_and_reconstruct_the_block() -> None:
    g = torch.Generator().manual_seed(1)
    sentinels, eos = list(range(900, 1000)), 1
    for n in (10, 64, 128, 300):
        tokens = torch.randint(5, 800, (n,), generator=g)
        inp, tgt = corrupt(tokens, noise_mask(n, 0.15, 3.0, g), sentinels, eos)
        used = [t for t in inp if t >= 900]
        assert used == sentinels[: len(used)]  # in order, each once
        assert [t for t in tgt if t >= 900] == used and tgt[0] == sentinels[0]
        assert inp[-1] == eos and tgt[-1] == eos
        assert len(inp) - 1 + len(tgt) - 1 == n + 2 * len(used)  # every token once, each sentinel twice
        assert reconstruct(inp, tgt, sentinels, eos) == tokens.tolist()


def test_span_collate_is_a_function_of_the_seed_and_its_loss_is_finite(tokenizer) -> None:
    from zoo.families import get_family
    from zoo.packing import pack_documents

    docs = [
        tokenizer(t)["input_ids"]
        for t in itertools.islice(read_corpus(CLINICAL.corpus, [CLINICAL.sample_corpus]), 40)
    ]
    blocks = list(pack_documents(({"input_ids": d} for d in docs), 64, tokenizer.pad_token_id))[:4]
    objective = build_objective("span", {}, tokenizer)
    a, b, c = objective.collate(blocks, 3), objective.collate(blocks, 3), objective.collate(blocks, 4)
    assert all(torch.equal(a[k], b[k]) for k in a) and not torch.equal(a["labels"], c["labels"])
    assert a["input_ids"].shape == (4, 64)
    assert int(a["attention_mask"].sum(1).max()) == 64 - round(64 * 0.15) + round(round(64 * 0.15) / 3) + 1
    family = get_family("t5")
    model = objective.build_model(
        family,
        {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64},
        tokenizer,
        0,
    )
    total, count = objective.loss(model, a)
    assert int(count) == int((a["labels"] != -100).sum()) and torch.isfinite(total)


def test_span_refuses_a_tokenizer_without_sentinels() -> None:
    docs = ["some text here"] * 20
    tok = train_tokenizer(load_recipe("biomedical-wordpiece"), iter(docs), vocab_size=100)
    with pytest.raises(UserError, match="sentinel_tokens"):
        build_objective("span", {}, tok)


# ------------------------------------------------------------------------------------------- tasks


def test_mtsamples_subsets_follow_source_md(tmp_path: Path) -> None:
    rows = [
        ("1", "g1", "Neurology", "a"),
        ("2", "g1", "Surgery", "a"),  # umbrella: dropped, Neurology stays the one label
        ("3", "g2", "Urology", "b"),
        ("4", "g2", "Nephrology", "b"),  # two specialties: not single-label
        ("5", "g3", "Letters", "c"),  # only an umbrella: no label left
    ]
    folder = tmp_path / "mts"
    folder.mkdir()
    for split in ("train", "dev", "test"):
        with (folder / f"{split}.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(
                [
                    "note_id",
                    "dup_group",
                    "medical_specialty",
                    "sample_name",
                    "description",
                    "keywords",
                    "transcription",
                ]
            )
            w.writerows([(i, g, lab, "", "", "", t) for i, g, lab, t in rows])
    single = get_kind("sequence_classification").load(CLINICAL.task("mtsamples_specialty"), folder, "train")
    assert [(e.text, e.label) for e in single] == [("a", "Neurology")]
    multi = get_kind("multi_label_classification").load(CLINICAL.task("mtsamples_multilabel"), folder, "dev")
    assert [(e.text, e.labels) for e in multi] == [
        ("a", ("Neurology", "Surgery")),
        ("b", ("Urology", "Nephrology")),
        ("c", ("Letters",)),
    ]


def test_real_mtsamples_and_mts_dialog_have_the_documented_sizes() -> None:
    seq, multi = get_kind("sequence_classification"), get_kind("multi_label_classification")
    mts = shared_data("clinical", "mtsamples")
    single = {s: seq.load(CLINICAL.task("mtsamples_specialty"), mts, s) for s in ("train", "dev", "test")}
    assert {s: len(v) for s, v in single.items()} == {"train": 1194, "dev": 175, "test": 169}
    assert len(seq.label_space(single["train"])) == 32
    assert not UMBRELLA_CATEGORIES & {e.label for v in single.values() for e in v}
    grouped = multi.load(CLINICAL.task("mtsamples_multilabel"), mts, "train")
    assert len(grouped) == 1652 and sum(len(e.labels) > 1 for e in grouped) > 1000
    dialog = seq.load(CLINICAL.task("mts_dialog_section"), shared_data("clinical", "mts_dialog"), "train")
    assert len(dialog) == 1126 and len(seq.label_space(dialog)) == 20
    notes = list(read_corpus(CLINICAL.corpus, [shared_data("clinical", "pretrain_text")]))
    assert len(notes) == 1652  # SOURCE.md is not read: a folder stands for its .txt/.csv files


def test_sample_generator_is_deterministic(tmp_path: Path) -> None:
    samples = Path(__file__).resolve().parent.parent / "domains" / "samples"
    subprocess.run(
        [sys.executable, str(samples / "generate_clinical.py"), "--out", str(tmp_path)],
        check=True,
        timeout=120,
    )
    produced = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert len(produced) == 10
    for rel in produced:
        assert (tmp_path / rel).read_bytes() == (samples / "clinical" / rel).read_bytes(), rel
    assert "[**" in (samples / "clinical" / "corpus.txt").read_text()
