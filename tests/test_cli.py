"""The CLI as a user meets it: help, plugins, and user errors (exit 2, one line, nothing written)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from run_helpers import install_distribution

TINY = [
    "model.hidden_size=32",
    "model.num_hidden_layers=1",
    "model.num_attention_heads=2",
    "model.intermediate_size=64",
    "tokenizer.vocab_size=200",
    "data.seq_len=32",
    "train.batch_size=4",
    "train.max_steps=3",
    "train.save_every=100",
]


def zoo(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "ZOO_HOME": str(cwd / ".zoo"),
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "zoo", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def assert_user_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys, zoo.cli; print(any(m in sys.modules for m in ('torch', 'transformers', 'accelerate')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_finetune_help_lists_every_method_with_its_options(tmp_path: Path) -> None:
    proc = zoo("finetune", "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for name in ("full", "lora", "dsee", "emoe"):
        assert f"{name}: " in proc.stdout
    assert "method.num_sparse=64" in proc.stdout and "method.r=16" in proc.stdout


def test_domains_json_lists_the_builtins(tmp_path: Path) -> None:
    proc = zoo("domains", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    by_name = {d["name"]: d for d in json.loads(proc.stdout)["domains"]}
    assert by_name["biomedical"]["model"] == "bert" and by_name["biomedical"]["objective"] == "mlm"
    assert by_name["genomic"]["model"] == "llama" and "gue_prom_core_all" in by_name["genomic"]["tasks"]


def test_unknown_domain_suggests_the_close_one(tmp_path: Path) -> None:
    assert_user_error(
        zoo("pretrain", "biomedcal", cwd=tmp_path), "unknown domain 'biomedcal' — did you mean 'biomedical'?"
    )
    assert not (tmp_path / "runs").exists()


def test_missing_empty_and_malformed_inputs_leave_nothing_behind(tmp_path: Path) -> None:
    assert_user_error(zoo("pretrain", "biomedical", "--corpus", "nope.txt", *TINY, cwd=tmp_path), "nope.txt")
    (tmp_path / "empty.txt").write_text("\n\n")
    assert_user_error(
        zoo("pretrain", "biomedical", "--corpus", "empty.txt", *TINY, cwd=tmp_path), "empty.txt"
    )
    (tmp_path / "bad.yaml").write_text("train: [oops\n")
    assert_user_error(zoo("pretrain", "biomedical", "--config", "bad.yaml", cwd=tmp_path), "bad.yaml", "YAML")
    assert_user_error(zoo("pretrain", "biomedical", "train.lrr=1", cwd=tmp_path), "did you mean 'train.lr'")
    (tmp_path / "genome.fa").write_text(">chrX test\nACGTACGTQQACGT\n")
    # A 6-mer vocabulary has a fixed size; Llama needs the attention heads divisible by the key/value heads.
    no_vocab = [o for o in TINY if not o.startswith("tokenizer.")] + ["model.num_key_value_heads=2"]
    assert_user_error(zoo("pretrain", "genomic", "--corpus", "genome.fa", *no_vocab, cwd=tmp_path), "chrX")
    assert not (tmp_path / "runs").exists()


def test_task_errors(tmp_path: Path) -> None:
    assert_user_error(
        zoo("finetune", "biomedical", "--task", "ncbi", cwd=tmp_path), "unknown task 'ncbi'", "ncbi_disease"
    )
    data = tmp_path / "ner"
    data.mkdir()
    (data / "train.tsv").write_text("Aspirin\tO\nreduces\tO\tEXTRA\n\n")
    (data / "test.tsv").write_text("Aspirin\tO\n\n")
    proc = zoo(
        "finetune", "biomedical", "--task", "ncbi_disease", "--data", str(data), "--no-record", cwd=tmp_path
    )
    assert_user_error(proc, "train.tsv:2")
    assert_user_error(
        zoo("finetune", "biomedical", "--task", "ncbi_disease", "--data", "missing_dir", cwd=tmp_path),
        "missing_dir",
    )


PLUGIN = """
from pathlib import Path
from zoo.domain import CorpusSpec, Domain, ModelSpec, ObjectiveSpec

DOMAIN = Domain(
    name="toy",
    summary="A throwaway third-party domain",
    model=ModelSpec("bert", {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                             "intermediate_size": 64, "max_position_embeddings": 64}),
    tokenizers=("biomedical-wordpiece",),
    objective=ObjectiveSpec("mlm"),
    corpus=CorpusSpec("text"),
    tasks=(),
    sample_dir=Path(__file__).parent / "sample",
)
"""


def test_third_party_plugin_installs_and_runs_through_the_cli(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "zoo_toy" / "sample").mkdir(parents=True)
    (src / "zoo_toy" / "__init__.py").write_text(PLUGIN)
    words = "the toy domain has its own tiny corpus of short plain sentences".split()
    (src / "zoo_toy" / "sample" / "corpus.txt").write_text(
        "\n".join(" ".join(words[i:] + words[:i]) for i in range(len(words))) * 20
    )
    (src / "zoo_broken.py").write_text("raise RuntimeError('this plugin is broken on purpose')\n")
    (src / "pyproject.toml").write_text(
        textwrap.dedent("""
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "zoo-toy"
        version = "0.0.1"
        [tool.setuptools]
        packages = ["zoo_toy"]
        py-modules = ["zoo_broken"]
        [tool.setuptools.package-data]
        zoo_toy = ["sample/*"]
        [project.entry-points."zoo.domains"]
        toy = "zoo_toy:DOMAIN"
        broken = "zoo_broken:DOMAIN"
    """)
    )
    site = tmp_path / "site"
    install_distribution(src, site)
    env = {"PYTHONPATH": str(site)}
    listing = zoo("domains", "--json", cwd=tmp_path, env=env)
    assert listing.returncode == 0, listing.stderr
    data = json.loads(listing.stdout)
    names = [d["name"] for d in data["domains"]]
    assert {"biomedical", "genomic", "toy"} <= set(names)
    assert [b["name"] for b in data["broken"]] == ["broken"] and "broken on purpose" in data["broken"][0][
        "error"
    ]
    assert_user_error(zoo("pretrain", "broken", cwd=tmp_path, env=env), "broken", "broken on purpose")
    run = zoo("pretrain", "toy", "--out", "toyrun", "--quiet", *TINY, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    assert json.loads((tmp_path / "toyrun" / "run.json").read_text())["status"] == "complete"
