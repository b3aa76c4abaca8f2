"""Corpus readers (text/JSONL/FASTA/GenBank, gz, directories, errors) and the embedded-default samples."""

from __future__ import annotations

import csv
import gzip
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from conftest import shared_data

from zoo.corpus import count_documents, read_corpus, windows
from zoo.domain import CorpusSpec
from zoo.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "domains" / "samples"
FASTA = CorpusSpec("fasta", {"window": 10})
TEXT = CorpusSpec("text")


# --------------------------------------------------------------------------- text


def test_text_lines_jsonl_and_gz(tmp_path):
    (tmp_path / "a.txt").write_text("first doc\n\n  second doc  \n")
    with gzip.open(tmp_path / "b.jsonl.gz", "wt") as f:
        f.write(json.dumps({"text": "third"}) + "\n\n" + json.dumps({"text": "fourth", "id": 4}) + "\n")
    (tmp_path / "notes.md").write_text("not a corpus file\n")
    assert list(read_corpus(TEXT, [tmp_path])) == ["first doc", "second doc", "third", "fourth"]
    (tmp_path / "c.jsonl").write_text(json.dumps({"body": "fifth"}) + "\n")
    assert list(read_corpus(CorpusSpec("text", {"field": "body"}), [tmp_path / "c.jsonl"])) == ["fifth"]


def test_malformed_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n{"text": broken\n')
    with pytest.raises(UserError, match=rf"{path}:2: malformed JSON"):
        list(read_corpus(TEXT, [path]))
    path.write_text('{"text": "ok"}\n{"body": "x"}\n')
    with pytest.raises(UserError, match=rf"{path}:2: no field 'text'"):
        list(read_corpus(TEXT, [path]))


def test_missing_file_empty_corpus_and_unknown_format(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_corpus(TEXT, [tmp_path / "nope.txt"])  # checked before reading starts
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(UserError, match="no documents in"):
        list(read_corpus(TEXT, [tmp_path / "empty.txt"]))
    with pytest.raises(UserError, match="did you mean 'fasta'"):
        read_corpus(CorpusSpec("fasat"), [tmp_path / "empty.txt"])
    with pytest.raises(UserError, match="unknown option 'windwo'.*did you mean 'window'"):
        read_corpus(CorpusSpec("fasta", {"windwo": 5}), [tmp_path / "empty.txt"])


def test_third_party_reader(tmp_path, monkeypatch):
    (tmp_path / "zoo_test_reader.py").write_text(
        "def read(path, sep):\n    yield from path.read_text().split(sep)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "x.dat").write_text("a|b|c")
    spec = CorpusSpec("zoo_test_reader:read", {"sep": "|"})
    assert list(read_corpus(spec, [tmp_path / "x.dat"])) == ["a", "b", "c"]
    with pytest.raises(UserError, match="cannot load corpus reader"):
        read_corpus(CorpusSpec("no_such_pkg.mod:f"), [tmp_path / "x.dat"])


# --------------------------------------------------------------------------- fasta / genbank


def test_windows_cover_the_sequence():
    seq = "ACGTACGTACGTACGTACGTACG"  # 23
    assert [len(w) for w in windows(seq, 10, 10)] == [10, 10, 3]
    assert "".join(windows(seq, 10, 10)) == seq
    overlapped = list(windows(seq, 10, 6))
    assert [len(w) for w in overlapped] == [10, 10, 10, 5] and overlapped[1] == seq[6:16]
    assert list(windows("ACG", 10, 10)) == ["ACG"]


def test_fasta_plain_gz_and_genbank(tmp_path):
    from Bio.Seq import Seq
    from Bio.SeqIO import write
    from Bio.SeqRecord import SeqRecord

    (tmp_path / "a.fa").write_text(">r1 first\nACGTACGTAC\ngtacgta\n>r2\nRYACGT\n")
    with gzip.open(tmp_path / "b.fasta.gz", "wt") as f:
        f.write(">r3\nTTTTTCCCCC\n")
    record = SeqRecord(Seq("ggggaaaaccccttttA"), id="GB1", annotations={"molecule_type": "DNA"})
    with open(tmp_path / "c.gbk", "w") as f:
        write(record, f, "genbank")
    docs = list(read_corpus(FASTA, [tmp_path]))
    assert docs == ["ACGTACGTAC", "GTACGTA", "NNACGT", "TTTTTCCCCC", "GGGGAAAACC", "CCTTTTA"]
    keep = CorpusSpec("fasta", {"window": 100, "iupac": "keep"})
    assert list(read_corpus(keep, [tmp_path / "a.fa"])) == ["ACGTACGTACGTACGTA", "RYACGT"]
    assert count_documents(CorpusSpec("fasta", {"window": 4, "stride": 2}), [tmp_path / "b.fasta.gz"]) == 4


def test_invalid_fasta_character_names_record_file_and_position(tmp_path):
    path = tmp_path / "bad.fa"
    path.write_text(">good\nACGT\n>chrX some text\nACGTAC\nGTUA\n")
    with pytest.raises(UserError) as err:
        list(read_corpus(FASTA, [path]))
    message = str(err.value)
    assert "'U'" in message and "position 9" in message and "'chrX'" in message and str(path) in message


def test_not_a_fasta_file_and_n_filter(tmp_path):
    path = tmp_path / "x.fa"
    path.write_text("just some words\n>r\nACGT\n")
    with pytest.raises(UserError, match=r"not a FASTA file.*'>' header"):
        list(read_corpus(FASTA, [path]))
    path.write_text(">gap\n" + "N" * 10 + "ACGTACGTNN\n")
    assert list(read_corpus(FASTA, [path])) == ["ACGTACGTNN"]  # the all-N window is skipped
    with pytest.raises(UserError, match="stride"):
        read_corpus(CorpusSpec("fasta", {"window": 5, "stride": 6}), [path])


# --------------------------------------------------------------------------- embedded-default samples


def test_sample_corpora_read():
    docs = list(read_corpus(TEXT, [SAMPLES / "biomedical" / "corpus.txt"]))
    assert len(docs) >= 2000 and all(len(d.split()) >= 5 for d in docs)
    windows_ = list(read_corpus(CorpusSpec("fasta", {"window": 2048}), [SAMPLES / "genomic" / "corpus.fa"]))
    assert sum(map(len, windows_)) >= 200_000 and set("".join(windows_)) <= set("ACGTN")
    assert max(map(len, windows_)) == 2048


def _iob(path: Path) -> list[list[tuple[str, str]]]:
    sentences, current = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line:
            sentences.append(current)
            current = []
            continue
        token, tag = line.split("\t")
        current.append((token, tag))
    return sentences + ([current] if current else [])


@pytest.mark.parametrize("task,types", [("ncbi_disease", {"Disease"}), ("bc5cdr", {"Chemical", "Disease"})])
def test_sample_ner_tasks_are_iob2(task, types):
    valid = {"O"} | {f"{p}-{t}" for p in "BI" for t in types}
    for split in ("train", "dev", "test"):
        sentences = _iob(SAMPLES / "biomedical" / task / f"{split}.tsv")
        assert 100 <= len(sentences) <= 1000 and all(sentences)
        tags = Counter(tag for s in sentences for _, tag in s)
        assert set(tags) <= valid and all(tags[f"B-{t}"] > 20 for t in types)
        for s in sentences:
            for (_, prev), (_, tag) in zip([("", "O")] + s, s):
                assert not tag.startswith("I-") or prev[2:] == tag[2:]


def test_sample_pubmedqa_shape_and_learnable_labels():
    for split in ("train", "dev", "test"):
        data = json.loads((SAMPLES / "biomedical" / "pubmedqa" / f"{split}.json").read_text(encoding="utf-8"))
        assert 30 <= len(data) <= 300
        for item in data.values():
            assert {"QUESTION", "CONTEXTS", "LABELS", "final_decision", "LONG_ANSWER"} <= set(item)
            assert len(item["CONTEXTS"]) == len(item["LABELS"]) and item["QUESTION"].endswith("?")
        assert {item["final_decision"] for item in data.values()} == {"yes", "no", "maybe"}
    # the label is carried by the RESULTS context: significance wording separates yes from no
    train = json.loads(
        (SAMPLES / "biomedical" / "pubmedqa" / "train.json").read_text(encoding="utf-8")
    ).values()

    def results(item: dict) -> str:
        return " ".join(c for c, lab in zip(item["CONTEXTS"], item["LABELS"]) if lab == "RESULTS")

    yes_neg = sum(
        "did not" in results(i) or "No " in results(i) for i in train if i["final_decision"] == "yes"
    )
    no_neg = sum(
        "did not" in results(i) or "No " in results(i) or "similar" in results(i)
        for i in train
        if i["final_decision"] == "no"
    )
    n_yes = sum(i["final_decision"] == "yes" for i in train)
    n_no = sum(i["final_decision"] == "no" for i in train)
    assert no_neg / n_no > 0.9 and yes_neg / n_yes < 0.5


@pytest.mark.parametrize(
    "task,length,labels",
    [("gue_prom_core_all", 70, {"0", "1"}), ("gue_splice_reconstructed", 400, {"0", "1", "2"})],
)
def test_sample_gue_tasks(task, length, labels):
    rows = {}
    for split in ("train", "dev", "test"):
        with (SAMPLES / "genomic" / task / f"{split}.csv").open(newline="") as f:
            reader = csv.reader(f)
            assert next(reader) == ["sequence", "label"]
            rows[split] = list(reader)
        assert all(len(s) == length and set(s) <= set("ACGT") and y in labels for s, y in rows[split])
        assert {y for _, y in rows[split]} == labels
    assert not {s for s, _ in rows["train"]} & {s for s, _ in rows["test"]}
    if (
        task == "gue_splice_reconstructed"
    ):  # as in the real GUE files: 1 = donor (GT at 200), 0 = acceptor (AG at 198)
        donors = [s for s, y in rows["train"] if y == "1"]
        acceptors = [s for s, y in rows["train"] if y == "0"]
        assert all(s[200:202] == "GT" for s in donors) and all(s[198:200] == "AG" for s in acceptors)
    else:  # promoters carry a TATA box or a GC-rich upstream far more often than background
        pos = [s for s, y in rows["train"] if y == "1"]
        neg = [s for s, y in rows["train"] if y == "0"]

        def gc(s: str) -> float:
            return (s[:25].count("G") + s[:25].count("C")) / 25

        assert sum(map(gc, pos)) / len(pos) > sum(map(gc, neg)) / len(neg) + 0.15


def test_generator_is_deterministic(tmp_path):
    """Re-running the generator reproduces the committed files byte for byte."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, str(SAMPLES / "generate.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        env=env,
        timeout=120,
    )
    produced = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert len(produced) == 17
    for rel in produced:
        assert (tmp_path / rel).read_bytes() == (SAMPLES / rel).read_bytes(), rel


# --------------------------------------------------------------------------- real data (shared/data)


def test_real_genome_streams_first_record():
    folder = shared_data("genomic", "korflab_genomes_pretrain")
    first = next(iter(read_corpus(CorpusSpec("fasta", {"window": 2048}), [folder])))
    assert len(first) == 2048 and set(first) <= set("ACGTN")


def test_real_biomedical_text_reads():
    folder = shared_data("biomedical", "pretrain_text")
    docs = read_corpus(TEXT, [folder])
    head = [next(docs) for _ in range(5)]
    assert all(isinstance(d, str) and len(d) > 0 for d in head)
