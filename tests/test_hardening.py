"""The sweep: malformed inputs and misuses across every family a user meets (config keys and files, method
and objective options, task data, corpora, paths, models and checkpoints, plug-in specs, command-line
usage). Each one must end in exit status 2 with one line on stderr that names the culprit, no traceback,
and no run directory that looks complete. The valid edge cases (BOM, CRLF, trailing blank lines, Unicode
tokens) must be accepted.

The CLI runs in-process (`zoo.cli.main`, stderr captured): every error is raised before any heavy work, so
a case takes a fraction of a second; the Ctrl-C and SIGKILL tests use real processes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from run_helpers import KILL_AFTER_FIRST_CHECKPOINT, subprocess_env

TINY = [
    "model.hidden_size=32",
    "model.num_hidden_layers=1",
    "model.num_attention_heads=2",
    "model.num_key_value_heads=2",
    "model.intermediate_size=64",
    "data.seq_len=32",
    "train.batch_size=4",
]
LONG = "x" * 5000

IOB = "Aspirin\tO\nreduces\tO\nstroke\tB-Disease\nrisk\tO\n\nPain\tB-Disease\nfell\tO\n\n"
CSV = "sequence,label\nACGTACGTAC,0\nTTGGCCAATT,1\nGGGCCCAAAT,0\n"
PUBMEDQA = {
    "1": {"QUESTION": "Does aspirin help?", "CONTEXTS": ["It did."], "final_decision": "yes"},
    "2": {"QUESTION": "Does sugar help?", "CONTEXTS": ["It did not."], "final_decision": "no"},
}


# ------------------------------------------------------------------------------------------- fixtures


def _pretrain(domain: str, out: Path, extra: list[str]) -> Path:
    from zoo.config import PretrainConfig, build_config
    from zoo.pretrain import pretrain
    from zoo.registry import get_domain

    d = get_domain(domain)
    cfg = build_config(
        PretrainConfig,
        d.pretrain_defaults,
        overrides=[*TINY, "train.max_steps=2", "train.save_every=1", "data.max_documents=60", *extra],
    )
    return pretrain(d, cfg, out=out, quiet=True)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real runs to damage: a tiny biomedical (BERT) and genomic (Llama) pretraining with a checkpoint."""
    root = tmp_path_factory.mktemp("made")
    return {
        "bio": _pretrain("biomedical", root / "bio", ["tokenizer.vocab_size=300"]),
        "gen": _pretrain("genomic", root / "gen", []),
    }


@dataclass
class Ctx:
    tmp: Path
    made: dict[str, Path]

    def write(self, name: str, content: str | bytes) -> str:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", newline="")
        return str(path)

    def task(self, name: str, ext: str, train: str | bytes, dev: str | bytes, test: str | bytes) -> str:
        for split, content in (("train", train), ("dev", dev), ("test", test)):
            self.write(f"{name}/{split}.{ext}", content)
        return str(self.tmp / name)

    def copy(self, which: str, name: str) -> Path:
        target = self.tmp / name
        shutil.copytree(self.made[which], target)
        return target

    def unfinished(self, which: str, name: str) -> Path:
        """A copy of a run as a SIGKILL leaves it: status 'running' by a process that is gone, no model/."""
        run = self.copy(which, name)
        shutil.rmtree(run / "model")
        info = json.loads((run / "run.json").read_text())
        info.update(status="running", pid=2**22 + 12345, host=os.uname().nodename)
        (run / "run.json").write_text(json.dumps(info))
        return run

    def model(self, name: str, which: str = "bio") -> Path:
        return self.copy(which, name) / "model"


def ner(c: Ctx, train: str | bytes = IOB, dev: str | bytes = IOB, test: str | bytes = IOB) -> list[str]:
    data = c.task("ner", "tsv", train, dev, test)
    return ["finetune", "biomedical", "--task", "ncbi_disease", "--data", data, "--no-record"]


def gue(c: Ctx, train: str | bytes = CSV, dev: str | bytes = CSV, test: str | bytes = CSV) -> list[str]:
    data = c.task("gue", "csv", train, dev, test)
    return ["finetune", "genomic", "--task", "gue_prom_core_all", "--data", data, "--no-record"]


def _node(i: int, label: str | None, split: str) -> str:
    return json.dumps({"node_id": i, "text": f"paper {i} on agents", "label": label, "split": split}) + "\n"


NODES = "".join(
    _node(i, ("ML", "DB")[i % 2], ("train", "train", "val", "val", "test", "test")[i]) for i in range(6)
)
EDGES = "src_node_id\tdst_node_id\n0\t1\n1\t2\n"


def tag(c: Ctx, nodes: str = NODES, edges: str = EDGES) -> list[str]:
    c.write("tag/nodes.jsonl", nodes)
    c.write("tag/edges.tsv", edges)
    return ["finetune", "graph_text", "--task", "citeseer_tag", "--data", str(c.tmp / "tag"), "--no-record"]


def pqa(c: Ctx, train: object = PUBMEDQA, dev: object = PUBMEDQA, test: object = PUBMEDQA) -> list[str]:
    def text(x: object) -> str | bytes:
        return x if isinstance(x, (str, bytes)) else json.dumps(x)

    data = c.task("pqa", "json", text(train), text(dev), text(test))
    return ["finetune", "biomedical", "--task", "pubmedqa", "--data", data, "--no-record"]


def pqa_entry(**changes: object) -> dict:
    return {**PUBMEDQA, "3": {**PUBMEDQA["1"], **changes}}


def pre(*args: str) -> Callable[[Ctx], list[str]]:
    return lambda c: ["pretrain", "biomedical", *args]


def gen(*args: str) -> Callable[[Ctx], list[str]]:
    return lambda c: ["pretrain", "genomic", *args]


def fin(*args: str) -> Callable[[Ctx], list[str]]:
    return lambda c: ["finetune", "biomedical", "--task", "ncbi_disease", "--no-record", *args]


def plugin(name: str, source: str) -> Callable[[Ctx], list[str]]:
    def args(c: Ctx) -> list[str]:
        c.write(f"plugins/{name}.py", source)
        return ["pretrain", f"{name}:DOMAIN"]

    return args


def config_file(content: str | bytes) -> Callable[[Ctx], list[str]]:
    return lambda c: ["pretrain", "biomedical", "--config", c.write("cfg.yaml", content)]


def damaged_model(damage: Callable[[Path], object]) -> Callable[[Ctx], list[str]]:
    def args(c: Ctx) -> list[str]:
        model = c.model("damaged")
        damage(model)
        return ["finetune", "biomedical", "--task", "ncbi_disease", "--from", str(model), "--no-record"]

    return args


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:200])


def _retype(model: Path, model_type: str | None) -> None:
    config = json.loads((model / "config.json").read_text())
    config.pop("model_type")
    if model_type:
        config["model_type"] = model_type
    (model / "config.json").write_text(json.dumps(config))


def _set_vocab(model: Path, size: int) -> None:
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "vocab_size": size}))


def _set_domain(run: Path, domain: str) -> None:
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "domain": domain}))


def resume(verb_domain: str, prepare: Callable[[Ctx], Path]) -> Callable[[Ctx], list[str]]:
    def args(c: Ctx) -> list[str]:
        return ["pretrain", verb_domain, "--resume", str(prepare(c))]

    return args


def _no_trainer_state(c: Ctx) -> Path:
    run = c.unfinished("bio", "unfinished")
    for state in run.rglob("trainer_state.json"):
        state.unlink()
    return run


def _corrupt_checkpoint(c: Ctx) -> Path:
    run = c.unfinished("bio", "unfinished")
    for weights in (run / "checkpoints").rglob("*.safetensors"):
        weights.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00not json")
    return run


LATIN1 = "Caf\xe9 au lait\n".encode("latin-1")


@dataclass
class Case:
    id: str
    args: Callable[[Ctx], list[str]]
    needle: str


CASES = [
    # -------------------------------------------------------------------- config keys (pretraining)
    Case("max_steps=0", pre("train.max_steps=0"), "train.max_steps=0"),
    Case("max_steps<0", pre("train.max_steps=-5"), "train.max_steps=-5"),
    Case("seq_len=1", pre("data.seq_len=1"), "data.seq_len=1"),
    Case("seq_len=0", pre("data.seq_len=0"), "data.seq_len=0"),
    Case("replay_ratio=2", pre("data.replay_ratio=2"), "data.replay_ratio=2"),
    Case("replay without corpus", pre("data.replay_ratio=0.5"), "data.replay_corpus"),
    Case("eval_fraction<0", pre("data.eval_fraction=-0.1"), "data.eval_fraction=-0.1"),
    Case("eval_fraction=1", pre("data.eval_fraction=1"), "data.eval_fraction=1"),
    Case("grad_accum=0", pre("train.grad_accum=0"), "train.grad_accum=0"),
    Case("log_every=0", pre("train.log_every=0"), "train.log_every=0"),
    Case("save_every<0", pre("train.save_every=-1"), "train.save_every=-1"),
    Case("lr<0", pre("train.lr=-1e-3"), "train.lr=-0.001"),
    Case("lr=0", pre("train.lr=0"), "train.lr=0"),
    Case("batch_size=0", pre("train.batch_size=0"), "train.batch_size=0 is out of range"),
    Case("seed>2**32", pre("train.seed=4294967296"), "train.seed=4294967296"),
    Case("seed<0", pre("train.seed=-1"), "train.seed=-1"),
    Case("warmup_ratio>1", pre("train.warmup_ratio=1.5"), "train.warmup_ratio=1.5"),
    Case("adam_beta2=1", pre("train.adam_beta2=1"), "train.adam_beta2=1"),
    Case("max_grad_norm=0", pre("train.max_grad_norm=0"), "train.max_grad_norm=0"),
    Case("weight_decay<0", pre("train.weight_decay=-0.1"), "train.weight_decay=-0.1"),
    Case("eval_batches=0", pre("train.eval_batches=0"), "train.eval_batches=0"),
    Case("keep_checkpoints<0", pre("train.keep_checkpoints=-1"), "train.keep_checkpoints=-1"),
    Case("min_lr_ratio>1", pre("train.min_lr_ratio=2"), "train.min_lr_ratio=2"),
    Case(
        "hidden not divisible by heads",
        pre("model.hidden_size=100", "model.num_attention_heads=3"),
        "model.hidden_size=100 is not divisible by model.num_attention_heads=3",
    ),
    Case("hidden_size=0", pre("model.hidden_size=0"), "model.hidden_size=0"),
    Case("layers=0", pre("model.num_hidden_layers=0"), "model.num_hidden_layers=0"),
    Case("dropout=1", pre("model.dropout=1.0"), "model.dropout=1.0"),
    Case(
        "heads not divisible by kv heads",
        gen("model.num_attention_heads=4", "model.num_key_value_heads=3"),
        "model.num_key_value_heads=3",
    ),
    Case("vocab_size=0", pre("tokenizer.vocab_size=0"), "tokenizer.vocab_size=0"),
    Case("max_documents=0", pre("data.max_documents=0"), "data.max_documents=0"),
    Case("max_steps not a number", pre("train.max_steps=ten"), "must be an integer"),
    Case("unknown schedule", pre("train.schedule=exponential"), "must be one of"),
    Case("unknown key", pre("train.lrr=1"), "did you mean 'train.lr'"),
    Case("override without key", pre("=5"), "not of the form key=value"),
    Case("section set as a value", pre("train=3"), "is a section"),
    Case(
        "batch not divisible by accumulation",
        pre(*TINY, "train.batch_size=6", "train.grad_accum=4"),
        "train.batch_size=6 must be a multiple",
    ),
    Case("mask_prob=0", pre("objective.mask_prob=0"), "objective.mask_prob=0"),
    Case("mask_prob>1", pre("objective.mask_prob=1.5"), "objective.mask_prob=1.5"),
    Case("unknown objective option", pre("objective.bogus=1"), "unknown option 'objective.bogus'"),
    Case("option of an objective without any", gen("objective.x=1"), "it has no options"),
    Case("corpus window=0", gen("corpus.window=0"), "window"),
    Case("unknown corpus option", gen("corpus.bogus=1"), "unknown option 'bogus'"),
    # -------------------------------------------------------------------- config keys (fine-tuning)
    Case("epochs=0", fin("train.epochs=0"), "train.epochs=0"),
    Case("epochs<0", fin("train.epochs=-1"), "train.epochs=-1"),
    Case("max_length=0", fin("task.max_length=0"), "task.max_length=0"),
    Case("max_train_examples<0", fin("task.max_train_examples=-1"), "task.max_train_examples=-1"),
    Case("max_eval_examples=0", fin("task.max_eval_examples=0"), "task.max_eval_examples=0"),
    Case("--seeds 0", fin("--seeds", "0"), "--seeds 0"),
    Case("--seeds not a number", fin("--seeds", "abc"), "--seeds"),
    Case("--seed<0", fin("--seed", "-1"), "seeds=-1"),
    Case("--seed>2**32", fin("--seed", "4294967296"), "seeds=4294967296"),
    Case("lora r=0", fin("--method", "lora", "method.r=0"), "method.r=0"),
    Case("lora alpha=0", fin("--method", "lora", "method.alpha=0"), "method.alpha=0"),
    Case("lora dropout=1", fin("--method", "lora", "method.dropout=1"), "method.dropout=1"),
    Case("options for full", fin("method.r=8"), "it has no options"),
    Case("dsee prune_ratio=1", fin("--method", "dsee", "method.prune_ratio=1"), "method.prune_ratio=1"),
    Case(
        "dsee r=0 and num_sparse=0",
        fin("--method", "dsee", "method.r=0", "method.num_sparse=0"),
        "not both 0",
    ),
    Case("emoe top_k=0", fin("--method", "emoe", "method.top_k=0"), "method.top_k=0"),
    Case("emoe top_k>experts", fin("--method", "emoe", "method.top_k=100"), "top_k <= num_experts"),
    Case("unknown method", fin("--method", "nope"), "unknown tuning method 'nope'"),
    Case("unknown select", fin("select=best"), "must be one of"),
    Case("unknown init", fin("--init", "zero"), "must be one of"),
    Case("unknown task", lambda c: ["finetune", "biomedical", "--task", "ncbi"], "unknown task 'ncbi'"),
    Case("--tasks ,", lambda c: ["bench", "biomedical", "--tasks", ","], "names no task"),
    Case("no task", lambda c: ["finetune", "biomedical", "--no-record"], "--task"),
    Case("unknown domain", lambda c: ["pretrain", "biomedcal"], "did you mean 'biomedical'"),
    Case("unknown option", pre("--bogus"), "--bogus"),
    # -------------------------------------------------------------------- config files
    Case("--config a folder", lambda c: ["pretrain", "biomedical", "--config", str(c.tmp)], "is a directory"),
    Case("--config /dev/null", pre("--config", "/dev/null"), "not a regular file"),
    Case("--config missing", pre("--config", "missing.yaml"), "missing.yaml' does not exist"),
    Case("--config bad YAML", config_file("train:\n  lr: [1\n"), "cfg.yaml:3' is not valid YAML"),
    Case("--config a list", config_file("- 1\n- 2\n"), "must hold a mapping"),
    Case("--config unknown key", config_file("train:\n  lrr: 1\n"), "cfg.yaml': unknown config key"),
    Case("--config out of range", config_file("train:\n  lr: -1\n"), "train.lr=-1"),
    Case("--config Latin-1", config_file(b"train:\n  schedule: caf\xe9\n"), "cfg.yaml:2: not UTF-8"),
    # -------------------------------------------------------------------- task data: IOB
    Case("IOB empty token", lambda c: ner(c, train=" \tO\nx\tO\n\n"), "ner/train.tsv:1: empty token"),
    Case("IOB NUL in token", lambda c: ner(c, test="a\x00b\tO\n\n"), "test.tsv:1: token 'a\\x00b'"),
    Case("IOB bell token", lambda c: ner(c, dev="ok\tO\n\x07\tO\n\n"), "dev.tsv:2: token '\\x07'"),
    Case("IOB bad tag", lambda c: ner(c, train=IOB + "x\tX-Disease\n\n"), "is not IOB2"),
    Case("IOB three columns", lambda c: ner(c, train="a\tO\tO\n\n"), "train.tsv:1: expected 2"),
    Case(
        "IOB I- after O", lambda c: ner(c, train="a\tO\nb\tI-Disease\n\n"), "train.tsv:2: I-Disease follows O"
    ),
    Case("IOB Latin-1", lambda c: ner(c, train=b"ok\tO\n" + LATIN1), "train.tsv:2: not UTF-8"),
    Case(
        "IOB type only in test",
        lambda c: ner(c, test="x\tB-Chemical\n\n"),
        "test.tsv:1: test label 'Chemical' never occurs in the train split",
    ),
    Case("IOB empty train", lambda c: ner(c, train="\n\n"), "train.tsv: no examples"),
    Case("IOB missing split", lambda c: _without_test(ner(c), c), "no file for split 'test'"),
    Case("--data missing", fin("--data", "nowhere"), "'nowhere' does not exist"),
    Case("--data /dev/null", fin("--data", "/dev/null"), "not a regular file"),
    Case(
        "--data a file",
        lambda c: fin("--data", c.write("data.tsv", IOB))(c),
        "data.tsv is a file; --data DIR",
    ),
    # -------------------------------------------------------------------- task data: CSV (GUE)
    Case(
        "CSV label not an integer",
        lambda c: gue(c, train=CSV + "ACGTACGTAA,x\n"),
        "label 'x' is not an integer",
    ),
    Case("CSV float label", lambda c: gue(c, dev=CSV + "ACGTACGTAA,1.0\n"), "dev.csv:5: label '1.0'"),
    Case(
        "CSV label only in test", lambda c: gue(c, test=CSV + "ACGTACGTAA,2\n"), "test label '2' never occurs"
    ),
    Case("CSV not DNA", lambda c: gue(c, train=CSV + "ACGZACGTAA,1\n"), "train.csv:5: character 'Z'"),
    Case(
        "CSV escape character", lambda c: gue(c, train=CSV + "AC\x1bGT,1\n"), "train.csv:5: 'sequence' holds"
    ),
    Case("CSV NUL in sequence", lambda c: gue(c, test=CSV + "ACG\x00T,1\n"), "control character '\\x00'"),
    Case("CSV extra field", lambda c: gue(c, train=CSV + "ACGT,1,2\n"), "train.csv:5: expected 2 fields"),
    Case("CSV no label column", lambda c: gue(c, train="sequence,y\nACGT,1\n"), "no column 'label'"),
    Case("CSV empty label", lambda c: gue(c, train=CSV + "ACGT,\n"), "train.csv:5: empty label"),
    Case("CSV Latin-1", lambda c: gue(c, dev=b"sequence,label\nACGT,0\n" + LATIN1), "dev.csv:3: not UTF-8"),
    Case("CSV header only", lambda c: gue(c, test="sequence,label\n"), "test.csv: no examples"),
    # -------------------------------------------------------------------- task data: PubMedQA JSON
    Case(
        "PubMedQA CONTEXTS a string",
        lambda c: pqa(c, train=pqa_entry(CONTEXTS="text")),
        "CONTEXTS must be a list",
    ),
    Case("PubMedQA CONTEXTS numbers", lambda c: pqa(c, dev=pqa_entry(CONTEXTS=[1, 2])), "entry 3: CONTEXTS"),
    Case(
        "PubMedQA null QUESTION",
        lambda c: pqa(c, test=pqa_entry(QUESTION=None)),
        "entry 3: 'QUESTION' must be text",
    ),
    Case("PubMedQA empty QUESTION", lambda c: pqa(c, test=pqa_entry(QUESTION=" ")), "'QUESTION' is empty"),
    Case("PubMedQA Latin-1", lambda c: pqa(c, train=b'{"1": "' + LATIN1 + b'"}'), "train.json:1: not UTF-8"),
    Case(
        "PubMedQA bad decision", lambda c: pqa(c, train=pqa_entry(final_decision="perhaps")), "yes/no/maybe"
    ),
    Case("PubMedQA not JSON", lambda c: pqa(c, dev="{oops"), "dev.json:1: not valid JSON"),
    Case("PubMedQA a list", lambda c: pqa(c, test="[1, 2]"), "expected a JSON object keyed by PMID"),
    Case(
        "PubMedQA missing key", lambda c: pqa(c, train={"1": {"QUESTION": "q"}}), "needs QUESTION, CONTEXTS"
    ),
    Case(
        "PubMedQA answer only in test",
        lambda c: pqa(c, test=pqa_entry(final_decision="maybe")),
        "test label 'maybe' never occurs",
    ),
    # -------------------------------------------------------------------- corpora
    Case(
        "FASTA to a text domain",
        lambda c: pre("--corpus", c.write("g.txt", ">s\nACGT\n"))(c),
        "is a FASTA file",
    ),
    Case(
        "a .fa to a text domain", lambda c: pre("--corpus", c.write("g.fa", "ACGT\n"))(c), "is a FASTA file"
    ),
    Case("GenBank to a text domain", lambda c: pre("--corpus", c.write("g.txt", "LOCUS x\n"))(c), "GenBank"),
    Case("binary corpus", lambda c: pre("--corpus", c.write("b.txt", b"ab\x00\x01cd\n"))(c), "binary data"),
    Case(
        "HTML corpus", lambda c: pre("--corpus", c.write("p.txt", "<!DOCTYPE html>\n<p>x\n"))(c), "HTML page"
    ),
    Case("--corpus /dev/null", pre("--corpus", "/dev/null"), "not a regular file"),
    Case("--corpus missing", pre("--corpus", "nope.txt"), "'nope.txt' does not exist"),
    Case("empty corpus", lambda c: pre("--corpus", c.write("e.txt", "\n\n"))(c), "no documents"),
    Case("Latin-1 corpus", lambda c: pre("--corpus", c.write("l.txt", LATIN1))(c), "not UTF-8"),
    Case("malformed JSONL corpus", lambda c: pre("--corpus", c.write("c.jsonl", "{oops\n"))(c), "c.jsonl:1"),
    Case("fake .gz corpus", lambda c: pre("--corpus", c.write("c.txt.gz", "plain"))(c), "cannot read"),
    Case("missing replay corpus", pre("data.replay_corpus=gone.txt", "data.replay_ratio=0.2"), "'gone.txt'"),
    Case(
        "text to a DNA domain", lambda c: gen("--corpus", c.write("t.fa", "hello\n"))(c), "not a FASTA file"
    ),
    Case("protein to a DNA domain", lambda c: gen("--corpus", c.write("p.fa", ">p\nMLQW\n"))(c), "not DNA"),
    Case(
        "text .gb to a DNA domain",
        lambda c: gen("--corpus", c.write("g.gb", "LOCUS a\nxx\n"))(c),
        "no genbank record",
    ),
    Case(
        "text to a DNA tokenizer",
        lambda c: ["tokenizer", "train", "genomic", "--corpus", c.write("t.txt", "hello\n"), "--out", "tok"],
        "not a FASTA file",
    ),
    Case(
        "protein to a DNA tokenizer",
        lambda c: [
            "tokenizer",
            "train",
            "genomic",
            "--corpus",
            c.write("p.fa", ">p\nMLQW\n"),
            "--out",
            "tok",
        ],
        "not DNA",
    ),
    # -------------------------------------------------------------------- paths
    Case("--out a file", lambda c: pre("--out", c.write("f", "x"))(c), "is a file"),
    Case("--out under a file", lambda c: pre("--out", c.write("f", "x") + "/run")(c), "which is a file"),
    Case(
        "--out not empty", lambda c: pre("--out", str(Path(c.write("full/x", "x")).parent))(c), "is not empty"
    ),
    Case("--out name too long", pre("--out", "x" * 300), "300 bytes long"),
    Case("--corpus 5,000 characters", pre("--corpus", LONG), "5000 bytes long"),
    Case("--data 5,000 characters", fin("--data", LONG), "5000 bytes long"),
    Case("--from 5,000 characters", fin("--from", LONG), "5000 bytes long"),
    Case("--config 5,000 characters", pre("--config", LONG), "5000 bytes long"),
    Case("--resume 5,000 characters", pre("--resume", LONG), "5000 bytes long"),
    Case("finetune --out a file", lambda c: fin("--out", c.write("f", "x"))(c), "is a file"),
    Case(
        "leaderboard --out missing folder",
        lambda c: ["leaderboard", "--out", "no/board.html"],
        "'no' does not exist",
    ),
    Case("leaderboard --out a folder", lambda c: ["leaderboard", "--out", str(c.tmp)], "is a directory"),
    Case("leaderboard unknown format", lambda c: ["leaderboard", "--format", "xml"], "unknown format 'xml'"),
    Case(
        "tokenizer --out a file",
        lambda c: ["tokenizer", "train", "genomic", "--out", c.write("f", "x")],
        "is a file",
    ),
    # -------------------------------------------------------------------- models and checkpoints
    Case("--from missing", fin("--from", "nowhere"), "'nowhere' does not exist"),
    Case(
        "--from garbage config.json",
        damaged_model(lambda m: (m / "config.json").write_text("{oops")),
        "not a model config",
    ),
    Case("--from config without model_type", damaged_model(lambda m: _retype(m, None)), "model_type"),
    Case("--from another family", damaged_model(lambda m: _retype(m, "gpt2")), "'gpt2' model"),
    Case(
        "--from corrupt weights",
        damaged_model(lambda m: (m / "model.safetensors").write_bytes(b"garbage" * 10)),
        "model.safetensors' is corrupt",
    ),
    Case(
        "--from truncated weights",
        damaged_model(lambda m: _truncate(m / "model.safetensors")),
        "is corrupt or truncated",
    ),
    Case("--from no weights", damaged_model(lambda m: (m / "model.safetensors").unlink()), "has no weights"),
    Case(
        "--from no tokenizer",
        damaged_model(lambda m: [p.unlink() for p in m.glob("*token*") if p.is_file()]),
        "has no tokenizer",
    ),
    Case(
        "--from garbage tokenizer",
        damaged_model(lambda m: (m / "tokenizer.json").write_text("{oops")),
        "tokenizer in",
    ),
    Case(
        "--from a tokenizer larger than the vocabulary",
        damaged_model(lambda m: _set_vocab(m, 10)),
        "but the model's vocabulary only 10",
    ),
    Case(
        "finetune --resume a pretraining run",
        lambda c: ["finetune", "biomedical", "--resume", str(c.unfinished("bio", "unfinished"))],
        "is a biomedical pretrain run, not biomedical finetune",
    ),
    Case("--from a genomic model", lambda c: fin("--from", str(c.made["gen"]))(c), "'llama' model"),
    Case("--from another domain's run", lambda c: _foreign(c), "--allow-foreign-model"),
    Case(
        "--from an interrupted run",
        lambda c: fin("--from", str(c.unfinished("bio", "killed")))(c),
        "is interrupted",
    ),
    Case(
        "an option only the built model refutes",
        lambda c: fin("--from", str(c.made["bio"]), "--method", "lora", "method.target_modules=nope")(c),
        "method.target_modules ['nope'] match no linear layer",
    ),
    Case("pretrain --from another family", lambda c: pre("--from", str(c.made["gen"]))(c), "'llama' model"),
    Case(
        "--resume a complete run",
        lambda c: pre("--resume", str(c.copy("bio", "done")))(c),
        "already complete",
    ),
    Case(
        "--resume as another domain",
        resume("genomic", lambda c: c.unfinished("bio", "unfinished")),
        "is a biomedical pretrain run",
    ),
    Case(
        "--resume without trainer state", resume("biomedical", _no_trainer_state), "no readable trainer state"
    ),
    Case("--resume corrupt checkpoint", resume("biomedical", _corrupt_checkpoint), "is corrupt or truncated"),
    Case(
        "--resume not a run", lambda c: pre("--resume", str(c.tmp))(c), "is not a zoo pretrain run directory"
    ),
    Case("--resume auto without runs", pre("--resume", "auto"), "no unfinished biomedical pretrain run"),
    Case(
        "--resume damaged run.json",
        resume("biomedical", lambda c: _damage_info(c.unfinished("bio", "unfinished"))),
        "not a zoo run.json",
    ),
    Case(
        "--resume with a bad key in its config.yaml",
        resume("biomedical", lambda c: _bad_saved_key(c.unfinished("bio", "unfinished"))),
        "config.yaml': unknown config key 'train.lrr'",
    ),
    Case(
        "tokenizer recipe not YAML",
        lambda c: [
            "tokenizer",
            "train",
            "biomedical",
            "--recipe",
            c.write("r.yaml", "a: [b\n"),
            "--out",
            "tok",
        ],
        "r.yaml:2' is not valid YAML",
    ),
    # -------------------------------------------------------------------- plug-in specs
    Case("domain module raises", plugin("zoo_sweep_raises", "raise RuntimeError('boom')\n"), "boom"),
    Case("domain module syntax error", plugin("zoo_sweep_syntax", "def (:\n"), "SyntaxError"),
    Case(
        "domain factory raises",
        plugin("zoo_sweep_factory", "def DOMAIN():\n    raise ValueError('bad')\n"),
        "bad",
    ),
    Case("domain module missing", lambda c: ["pretrain", "zoo_sweep_absent:DOMAIN"], "zoo_sweep_absent"),
    Case("domain attribute missing", plugin("zoo_sweep_empty", "X = 1\n"), "DOMAIN"),
    # -------------------------------------------------------------------- text-attributed graphs
    Case(
        "graph edge to a missing node",
        lambda c: tag(c, edges=EDGES + "2\t9\n"),
        "edges.tsv:4: edge names node '9'",
    ),
    Case(
        "graph duplicate node id",
        lambda c: tag(c, nodes=NODES + _node(5, "DB", "test")),
        "nodes.jsonl:7: duplicate node id '5'",
    ),
    Case(
        "graph label not in the set",
        lambda c: tag(c, nodes=NODES + _node(6, "Physics", "train")),
        "nodes.jsonl:7: label 'Physics' is not in the task's label set",
    ),
    Case("graph empty", lambda c: tag(c, nodes="", edges=""), "empty graph"),
    Case(
        "graph node table without text",
        lambda c: tag(c, nodes=NODES.replace('"text"', '"body"')),
        "nodes.jsonl:1: no column 'text'",
    ),
]


def _foreign(c: Ctx) -> list[str]:
    run = c.copy("bio", "clinical")
    _set_domain(run, "clinical")
    return fin("--from", str(run))(c)


def _without_test(args: list[str], c: Ctx) -> list[str]:
    (c.tmp / "ner" / "test.tsv").unlink()
    return args


def _bad_saved_key(run: Path) -> Path:
    with (run / "config.yaml").open("a") as f:
        f.write("train:\n  lrr: 1\n")
    return run


def _damage_info(run: Path) -> Path:
    (run / "run.json").write_text("{oops")
    return run


def _run_jsons(root: Path) -> dict[Path, str]:
    return {p: p.read_text() for p in root.rglob("run.json")}


def call_zoo(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """The CLI in this process: (exit status, stdout, stderr). A traceback would fail the test itself."""
    from zoo.cli import main

    try:
        main(args)
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_sweep_has_at_least_100_cases() -> None:
    assert len(CASES) >= 100 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_input_is_one_line_exit_2_and_nothing_complete(
    case: Case,
    made: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path / "plugins"))
    ctx = Ctx(tmp_path, made)
    args = case.args(ctx)
    capsys.readouterr()
    before = _run_jsons(tmp_path)
    code, _, err = call_zoo(args, capsys)
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert case.needle in lines[0], lines[0]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    assert _run_jsons(tmp_path) == before  # no run written, none changed (status included)
    assert not (tmp_path / "tok").exists()


# ------------------------------------------------------------------------------ valid edge cases accepted


@pytest.mark.parametrize(
    "name, content",
    [
        ("BOM", "\ufeffAspirin\tO\nstroke\tB-Disease\n\n"),
        ("CRLF", "Aspirin\tO\r\nstroke\tB-Disease\r\n\r\n"),
        ("trailing blank lines", "Aspirin\tO\nstroke\tB-Disease\n\n\n\n  \n"),
        ("no final newline", "Aspirin\tO\nstroke\tB-Disease"),
        (
            "Unicode tokens",
            "Aspirin\tO\nstroke\tB-Disease\n\nß-Thalassämie\tB-Disease\n日本\tO\n\u200c\tO\n\n",
        ),
    ],
)
def test_valid_iob_edge_cases_are_read(tmp_path: Path, name: str, content: str) -> None:
    from zoo.benchmarks.tasks import load_split
    from zoo.registry import get_domain

    (tmp_path / "train.tsv").write_text(content, encoding="utf-8", newline="")
    examples = load_split(get_domain("biomedical").task("ncbi_disease"), tmp_path, "train")
    assert examples[0].tokens == ["Aspirin", "stroke"] and examples[0].tags == ["O", "B-Disease"]
    assert all("\r" not in t and "\ufeff" not in t for x in examples for t in x.tokens)
    if name == "Unicode tokens":
        assert examples[1].tokens == ["ß-Thalassämie", "日本", "\u200c"]


@pytest.mark.parametrize("bom, newline", [("", "\n"), ("\ufeff", "\n"), ("", "\r\n"), ("\ufeff", "\r\n")])
def test_valid_csv_and_pubmedqa_with_bom_and_crlf_are_read(tmp_path: Path, bom: str, newline: str) -> None:
    from zoo.benchmarks.tasks import load_split
    from zoo.registry import get_domain

    csv_text = bom + newline.join(["sequence,label", "acgtnRYK,0", "ACGT,1", "", ""])
    (tmp_path / "gue").mkdir()
    (tmp_path / "gue" / "train.csv").write_text(csv_text, encoding="utf-8", newline="")
    rows = load_split(get_domain("genomic").task("gue_prom_core_all"), tmp_path / "gue", "train")
    assert [(x.text, x.label) for x in rows] == [("acgtnRYK", "0"), ("ACGT", "1")]
    (tmp_path / "pqa").mkdir()
    pqa_text = bom + json.dumps(PUBMEDQA, indent=1, ensure_ascii=False).replace("\n", newline)
    (tmp_path / "pqa" / "train.json").write_text(pqa_text, encoding="utf-8", newline="")
    rows = load_split(get_domain("biomedical").task("pubmedqa"), tmp_path / "pqa", "train")
    assert [x.label for x in rows] == ["yes", "no"] and rows[0].text_pair == "It did."


def test_unseen_labels_are_accepted_when_allowed(tmp_path: Path) -> None:
    from zoo.config import FinetuneConfig, build_config
    from zoo.finetune import read_task
    from zoo.registry import get_domain

    genomic = get_domain("genomic")
    for split, content in (("train", CSV), ("dev", CSV), ("test", CSV + "ACGTACGTAA,2\n")):
        (tmp_path / f"{split}.csv").write_text(content)
    cfg = build_config(FinetuneConfig, overrides=[f"data={tmp_path}", "task.allow_unseen_labels=true"])
    data = read_task(genomic, genomic.task("gue_prom_core_all"), cfg)
    assert data.labels == ["0", "1", "2"]


def test_a_foreign_model_of_the_same_family_is_accepted_when_allowed(
    made: dict[str, Path], tmp_path: Path
) -> None:
    from zoo.errors import UserError
    from zoo.registry import get_domain
    from zoo.run import resolve_model

    run = tmp_path / "clinical"
    shutil.copytree(made["bio"], run)
    _set_domain(run, "clinical")
    bio = get_domain("biomedical")
    with pytest.raises(UserError, match="pretrained by domain 'clinical'"):
        resolve_model(run, bio)
    assert resolve_model(run, bio, allow_foreign=True) == run / "model"
    assert resolve_model(made["bio"], bio) == made["bio"] / "model"


def test_a_word_without_sub_tokens_does_not_shift_the_predictions(made: dict[str, Path]) -> None:
    from transformers import AutoTokenizer

    from zoo.benchmarks.kinds import get_kind
    from zoo.benchmarks.tasks import TokenExample

    tok = AutoTokenizer.from_pretrained(made["bio"] / "model")
    kind = get_kind("token_classification")
    (row,) = kind.encode(
        tok, [TokenExample(["aspirin", "\u200c", "stroke"], ["O", "O", "B-X"])], ["O", "B-X"], 32
    )
    scored = [label for label in row["labels"] if label != -100]
    assert scored == [0, 0, 1]  # one scored position per word: the lone ZWNJ reads as [UNK]


# ------------------------------------------------------------------------------ interrupts and kills


def _wait_for_status(run_json: Path, status: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if run_json.is_file() and json.loads(run_json.read_text()).get("status") == status:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    raise AssertionError(f"{run_json} never said {status}")


def test_ctrl_c_says_how_to_resume_and_marks_the_run_interrupted(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "zoo", "pretrain", "biomedical", *TINY, "tokenizer.vocab_size=300",
         "train.max_steps=100000", "train.save_every=1", "--quiet", "--out", str(out)],
        cwd=tmp_path, env=subprocess_env(ZOO_HOME=str(tmp_path / ".zoo")),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _wait_for_status(out / "run.json", "running", proc)
    deadline = time.time() + 120
    while not list(out.glob("checkpoints/step-*")) and time.time() < deadline:  # inside the training loop
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert (
        err.strip().splitlines()[-1] == f"interrupted — resume with `zoo pretrain biomedical --resume {out}`"
    )
    assert "Traceback" not in err
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    assert not (out / "model").exists()


def test_a_killed_run_never_looks_complete_and_is_shown_as_interrupted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-c", KILL_AFTER_FIRST_CHECKPOINT, "pretrain", "biomedical", *TINY,
         "tokenizer.vocab_size=300", "train.max_steps=6", "train.save_every=2", "--quiet", "--out", str(out)],
        cwd=tmp_path, env=subprocess_env(ZOO_HOME=str(tmp_path / ".zoo")),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    from zoo.run import is_complete, run_status

    assert json.loads((out / "run.json").read_text())["status"] == "running"
    assert not is_complete(out) and not (out / "model").exists()
    assert run_status(out) == "interrupted"
    monkeypatch.chdir(tmp_path)
    code, _, err = call_zoo(["finetune", "biomedical", "--task", "ncbi_disease", "--from", str(out)], capsys)
    assert code == 2 and f"run '{out}' is interrupted" in err and f"--resume {out}" in err


# ------------------------------------------------------------------------------ ranges are declared


def _numeric_fields(cls: type, prefix: str = "") -> list[tuple[str, object]]:
    """(dotted name, dataclass field) of every int/float (or list of them) option of `cls` and its sections."""
    import dataclasses
    import typing

    found = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            found += _numeric_fields(hint, f"{prefix}{f.name}.")
            continue
        args = {a for a in typing.get_args(hint)} | {hint}
        items = {b for a in args for b in typing.get_args(a)} if typing.get_origin(hint) is list else args
        if {int, float} & (args | items) and bool not in args:
            found.append((f"{prefix}{f.name}", f))
    return found


def test_every_numeric_option_declares_its_valid_range() -> None:
    from zoo.adapters.base import METHODS
    from zoo.config import FinetuneConfig, PretrainConfig
    from zoo.objectives import OBJECTIVES

    unbounded_on_purpose = {"layers"}  # EMoE layer indices: negative ones count from the end
    classes = [PretrainConfig, FinetuneConfig]
    classes += [m.config_cls for m in METHODS.all()[0].values()]
    classes += [OBJECTIVES.get(n).options_cls for n in ("mlm", "clm")]
    missing = [
        f"{cls.__name__}.{name}"
        for cls in classes
        for name, f in _numeric_fields(cls)
        if "range" not in f.metadata and name not in unbounded_on_purpose
    ]
    assert not missing, missing
    assert len(_numeric_fields(PretrainConfig)) > 25


def test_an_unwritable_output_folder_is_refused_before_any_work() -> None:
    """Checked with the ids the process writes with; as root, as user nobody for the duration of the check."""
    import tempfile

    from zoo.errors import UserError
    from zoo.files import check_output_dir

    base = Path(tempfile.mkdtemp(prefix="zoo-locked-"))
    base.chmod(0o755)
    locked = base / "locked"
    locked.mkdir(mode=0o555)
    root = os.geteuid() == 0
    try:
        if root:
            os.setegid(65534)
            os.seteuid(65534)
        with pytest.raises(UserError, match=f"folder '{locked}' is not writable"):
            check_output_dir(locked / "run")
    finally:
        if root:
            os.seteuid(0)
            os.setegid(0)
    check_output_dir(base / "free")  # the folder's owner may: nothing wrong with it
    locked.chmod(0o700)
    shutil.rmtree(base)


def test_a_latin1_byte_is_named_by_line_and_offset(tmp_path: Path) -> None:
    from zoo.benchmarks.tasks import load_split
    from zoo.errors import UserError
    from zoo.registry import get_domain

    (tmp_path / "train.tsv").write_bytes(b"Aspirin\tO\n\nCaf\xe9\tO\n")
    with pytest.raises(UserError) as err:
        load_split(get_domain("biomedical").task("ncbi_disease"), tmp_path, "train")
    assert "train.tsv:3: not UTF-8 (byte b'\\xe9' at offset 14" in str(err.value)
