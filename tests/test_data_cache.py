"""Prepared-data cache (zoo.prepared): blocks tokenized once and memory-mapped, identical whether read from
the cache, built fresh or streamed; a second run reuses the cache without reading the corpus; `zoo data
prepare` + `data.prepared`; streaming resumes exactly; and the ways a cache can be wrong (truncated,
foreign version, a corpus that changes or disappears while it is built, a full disk) each end in one
clear line and exit status 2 with nothing half-written left behind.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from run_helpers import subprocess_env, train_losses
from test_hardening import call_zoo
from test_pretrain import TINY

WORDS = "patients treated with aspirin showed reduced risk of stroke and myocardial infarction".split()

# A third-party domain whose reader counts its calls, and can change or delete corpus files while it
# reads (what another process writing the corpus would do). Loaded as 'zoo_cache_plug:DOMAIN'.
PLUGIN = """
import dataclasses, os
from pathlib import Path
from zoo.domain import CorpusSpec
from zoo.registry import get_domain

def read(path, **options):
    calls = Path(os.environ["ZOO_TEST_READS"])
    calls.write_text(str(int(calls.read_text() or 0) + 1) if calls.exists() else "1")
    for i, line in enumerate(Path(path).read_text().splitlines()):
        if i == 3 and os.environ.get("ZOO_TEST_SABOTAGE") == "append":
            with open(path, "a") as f:
                f.write("a late document\\n")
        if i == 3 and os.environ.get("ZOO_TEST_SABOTAGE") == "delete":
            for other in Path(path).parent.glob("*.txt"):
                if other != Path(path):
                    other.unlink()
        if line.strip():
            yield line.strip()

DOMAIN = dataclasses.replace(get_domain("biomedical"), corpus=CorpusSpec("zoo_cache_plug:read", {}))
"""


def _corpus_text(seed: int, n: int = 300) -> str:
    rng = random.Random(seed)
    return "\n".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 40))) for _ in range(n)) + "\n"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "c.txt"
    path.write_text(_corpus_text(0))
    return path


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The counting plug-in importable in this process; returns the file that counts reader calls."""
    site = tmp_path / "plugins"
    site.mkdir()
    (site / "zoo_cache_plug.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(site))
    reads = tmp_path / "reads"
    monkeypatch.setenv("ZOO_TEST_READS", str(reads))
    return reads


def _reads(counter: Path) -> int:
    return int(counter.read_text()) if counter.exists() else 0


def _cfg(corpus: Path, *extra: str) -> object:
    from zoo.config import PretrainConfig, build_config

    return build_config(PretrainConfig, overrides=[*TINY, f"data.corpus={corpus}", *extra])


# ------------------------------------------------------------------------------------- same blocks


def test_blocks_are_identical_cached_fresh_and_streamed(corpus: Path, tmp_path: Path) -> None:
    from zoo.packing import pack_documents
    from zoo.prepared import encode_texts, prepared, read_documents, stream_blocks
    from zoo.pretrain import corpus_recipe, obtain_tokenizer
    from zoo.registry import get_domain

    domain, cfg = get_domain("biomedical"), _cfg(corpus, "data.eval_fraction=0.1")
    tok = obtain_tokenizer(domain, cfg, None)
    recipe = corpus_recipe(domain, cfg, [corpus], held_out=True)
    built = prepared(recipe, tok, tmp_path / "cache", num_proc=2)
    again = prepared(recipe, tok, tmp_path / "cache")
    assert again.folder == built.folder and len(list((tmp_path / "cache").iterdir())) == 1
    docs = list(read_documents(recipe))
    for split, held_out in (("train", False), ("eval", True)):
        texts = [d["text"] for d in docs if d["eval"] == held_out]
        enc = encode_texts(tok, texts)
        fresh = list(
            pack_documents(
                ({"input_ids": i, "word_starts": w} for i, w in zip(*enc.values())), 32, tok.pad_token_id
            )
        )
        cached = getattr(built, split)[:]
        assert len(cached) == len(fresh) > 0
        assert cached == fresh  # token ids, positions, doc ids, word starts; same order
        assert list(stream_blocks(recipe, tok, split)) == fresh
    assert built.documents == 300 and built.meta["eval_blocks"] == len(built.eval)


# ------------------------------------------------------------------------------- reuse, not re-read


def test_second_pretrain_reuses_the_cache_and_does_not_read_the_corpus(
    tmp_path: Path, plugin: Path, corpus: Path
) -> None:
    from zoo.files import zoo_home
    from zoo.pretrain import pretrain
    from zoo.registry import get_domain

    domain = get_domain("zoo_cache_plug:DOMAIN")
    mine = tmp_path / "corpus.txt"
    shutil.copy(corpus, mine)
    first = pretrain(domain, _cfg(mine, "train.max_steps=4"), out=tmp_path / "a", quiet=True)
    assert _reads(plugin) == 2  # once to train the tokenizer, once to tokenize and pack
    cache = zoo_home() / "cache"
    entries = sorted((cache / "prepared").iterdir())
    assert len(entries) == 1 and (entries[0] / "train").is_dir()
    second = pretrain(domain, _cfg(mine, "train.max_steps=4"), out=tmp_path / "b", quiet=True)
    assert _reads(plugin) == 2, "the second run read the corpus again"
    assert sorted((cache / "prepared").iterdir()) == entries
    assert train_losses(first) == train_losses(second)
    # A changed corpus is never served from the stale cache.
    mine.write_text(_corpus_text(1))
    pretrain(domain, _cfg(mine, "train.max_steps=4"), out=tmp_path / "c", quiet=True)
    assert _reads(plugin) == 4 and len(list((cache / "prepared").iterdir())) == 2


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "zoo", *args],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_data_prepare_then_pretrain_from_it_matches_the_automatic_cache(tmp_path: Path, corpus: Path) -> None:
    prep = _cli(
        "data", "prepare", "biomedical", "--corpus", str(corpus), "--out", str(tmp_path / "p"), *TINY[5:7]
    )
    assert prep.returncode == 0, prep.stderr
    assert "300 documents" in prep.stdout and "tokens/s" in prep.stdout
    meta = json.loads((tmp_path / "p" / "zoo-prepared.json").read_text())
    assert meta["documents"] == 300 and meta["seq_len"] == 32 and meta["train_blocks"] > 0
    common = ["pretrain", "biomedical", "--quiet", *TINY, "train.max_steps=6"]
    auto = _cli(*common, "--corpus", str(corpus), "--out", str(tmp_path / "auto"))
    assert auto.returncode == 0, auto.stderr
    given = _cli(*common, f"data.prepared={tmp_path / 'p'}", "--out", str(tmp_path / "given"))
    assert given.returncode == 0, given.stderr
    assert train_losses(tmp_path / "auto") == train_losses(tmp_path / "given")
    info = json.loads((tmp_path / "given" / "run.json").read_text())
    assert info["train_blocks"] == meta["train_blocks"] and info["documents"] == 300


# -------------------------------------------------------------------------------------- streaming


def test_stream_batches_are_a_function_of_the_step(corpus: Path) -> None:
    from zoo.prepared import BlockStream
    from zoo.pretrain import corpus_recipe, obtain_tokenizer
    from zoo.registry import get_domain

    domain, cfg = get_domain("biomedical"), _cfg(corpus)
    tok = obtain_tokenizer(domain, cfg, None)
    recipe = corpus_recipe(domain, cfg, [corpus], held_out=True)
    stream = BlockStream(recipe, tok, batch_size=4, seed=3, buffer=8)
    in_order = [stream.batch(s) for s in range(6)]
    jumped = BlockStream(recipe, tok, batch_size=4, seed=3, buffer=8)
    assert jumped.batch(4) == in_order[4] and jumped.batch(5) == in_order[5]
    assert jumped.batch(1) == in_order[1]  # going back restarts and skips
    assert in_order[0] != BlockStream(recipe, tok, batch_size=4, seed=4, buffer=8).batch(0)


# ----------------------------------------------------------------------------------------- errors


@dataclass
class Case:
    id: str
    args: Callable[[Path, Path], list[str]]
    """(tmp folder, a prepared folder to damage) → zoo arguments."""
    needle: str
    sabotage: str = ""


def _damaged(folder: Path, tmp: Path, damage: Callable[[Path], None]) -> Path:
    target = tmp / "damaged"
    shutil.copytree(folder, target)
    damage(target)
    return target


def _truncate(folder: Path) -> None:
    arrow = next((folder / "train").glob("*.arrow"))
    arrow.write_bytes(arrow.read_bytes()[: arrow.stat().st_size // 2])


def _meta(**changes: object) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        meta = json.loads((folder / "zoo-prepared.json").read_text())
        (folder / "zoo-prepared.json").write_text(json.dumps({**meta, **changes}))

    return edit


def _train_from(damage: Callable[[Path], None], *extra: str) -> Callable[[Path, Path], list[str]]:
    return lambda tmp, p: [
        "pretrain",
        "biomedical",
        *TINY,
        f"data.prepared={_damaged(p, tmp, damage)}",
        *extra,
    ]


def _two_files(tmp: Path) -> list[str]:
    for i in (1, 2):
        (tmp / "two").mkdir(exist_ok=True)
        (tmp / "two" / f"part{i}.txt").write_text(_corpus_text(i, 20))
    return ["--corpus", str(tmp / "two" / "part1.txt"), "--corpus", str(tmp / "two" / "part2.txt")]


def _prepare_plug(tmp: Path, ready: Path) -> list[str]:
    tok = ["--tokenizer", str(ready / "tokenizer")]
    return [
        "data",
        "prepare",
        "zoo_cache_plug:DOMAIN",
        *_two_files(tmp),
        *tok,
        "--out",
        str(tmp / "out"),
        *TINY[5:7],
    ]


CASES = [
    Case("truncated arrow file", _train_from(_truncate), "is truncated (train/data-00000-of-00001.arrow"),
    Case(
        "foreign cache format", _train_from(_meta(format=99, zoo_version="9.9")), "cache format 99 (zoo 9.9)"
    ),
    Case(
        "no meta file", _train_from(lambda f: (f / "zoo-prepared.json").unlink()), "not a zoo prepared-data"
    ),
    Case("damaged meta file", _train_from(lambda f: (f / "zoo-prepared.json").write_text("{")), "is damaged"),
    Case(
        "missing folder",
        lambda tmp, p: ["pretrain", "biomedical", f"data.prepared={tmp}/nope"],
        "does not exist",
    ),
    Case("seq_len differs", _train_from(lambda f: None, "data.seq_len=64"), "holds blocks of 32 tokens"),
    Case(
        "prepared and corpus",
        lambda tmp, p: ["pretrain", "biomedical", f"data.prepared={p}", "--corpus", str(p)],
        "data.prepared already holds",
    ),
    Case(
        "streaming and prepared",
        lambda tmp, p: ["pretrain", "biomedical", f"data.prepared={p}", "data.streaming=true"],
        "cannot be combined with data.prepared",
    ),
    Case("corpus changes while built", _prepare_plug, "part1.txt changed while", "append"),
    Case("corpus file disappears while built", _prepare_plug, "part2.txt disappeared while", "delete"),
    Case(
        "prepare into a non-empty folder",
        lambda tmp, p: ["data", "prepare", "biomedical", "--out", str(p)],
        "is not empty",
    ),
]


@pytest.fixture(scope="module")
def ready(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Path:
    """One prepared folder (seq_len 32) built by `zoo data prepare`, copied by each case before damage."""
    from zoo.cli import main

    out = tmp_path_factory.mktemp("ready") / "p"
    main(["data", "prepare", "biomedical", "--corpus", str(corpus), "--out", str(out), *TINY[5:7]])
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_wrong_cache_is_one_line_exit_2_and_nothing_half_written(
    case: Case,
    ready: Path,
    plugin: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ZOO_TEST_SABOTAGE", case.sabotage)
    args = case.args(tmp_path, ready)
    capsys.readouterr()
    code, _, err = call_zoo([*args, "train.max_steps=2"] if args[0] == "pretrain" else args, capsys)
    lines = [x for x in err.splitlines() if x.strip() and "examples" not in x]  # no progress bars
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert case.needle in lines[0], lines[0]
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.tmp-*"))
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_full_disk_while_preparing_is_one_line_exit_2_and_nothing_kept(
    tmp_path: Path, corpus: Path
) -> None:
    """A real write failure: the process may write files of at most 64 KiB (RLIMIT_FSIZE), so the Arrow
    files of the cache fail with EFBIG as on a full disk."""
    big = tmp_path / "big.txt"
    big.write_text(_corpus_text(2, 3000))
    tok = tmp_path / "tok"
    made = _cli(
        "tokenizer", "train", "biomedical", "--corpus", str(corpus), "--out", str(tok), "--vocab-size", "300"
    )
    assert made.returncode == 0, made.stderr
    limited = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))\n"
        "from zoo.cli import main\n"
        "main(sys.argv[1:])\n"
    )
    out = tmp_path / "prep" / "p"
    done = subprocess.run(
        [sys.executable, "-c", limited, "data", "prepare", "biomedical", "--corpus", str(big)]
        + ["--tokenizer", str(tok), "--out", str(out), "data.seq_len=32"],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr[-3000:]
    assert lines[-1].startswith("error: no space left to write the prepared data"), lines[-1]
    assert "Traceback" not in done.stderr
    assert not out.exists() and list((tmp_path / "prep").iterdir()) == []


# ------------------------------------------------------------------------------------ FASTA at scale


def _write_fa_gz(path: Path, records: dict[str, str], width: int = 60) -> None:
    import gzip

    with gzip.open(path, "wt") as f:
        for name, seq in records.items():
            f.write(f">{name} generated\n")
            for i in range(0, len(seq), width):
                f.write(seq[i : i + width] + "\n")


def test_a_multi_record_fa_gz_streams_into_the_windows_of_each_normalised_record(tmp_path: Path) -> None:
    from zoo.corpus import read_corpus, windows
    from zoo.domain import CorpusSpec

    rng = random.Random(0)
    records = {f"chr{i}": "".join(rng.choices("ACGTacgtNRY", k=rng.randint(5000, 20000))) for i in range(5)}
    records["gap"] = "N" * 3000 + "ACGT" * 100
    path = tmp_path / "genome.fa.gz"
    _write_fa_gz(path, records)
    docs = list(read_corpus(CorpusSpec("fasta", {"window": 1000, "stride": 800}), [path]))
    expected = []
    for seq in records.values():
        norm = seq.upper().replace("R", "N").replace("Y", "N")
        expected += [w for w in windows(norm, 1000, 800) if w.count("N") <= 0.5 * len(w)]
    assert docs == expected and len(docs) > 60


def test_reading_a_chromosome_holds_it_once_not_in_several_copies(tmp_path: Path) -> None:
    """Peak Python memory while reading one 4 Mb record, in bytes per base: the parser's lines and the
    one joined string (about 3); before, a Seq, its str, an uppercased and a translated copy (about 7.4)."""
    import tracemalloc

    from zoo.corpus import read_corpus
    from zoo.domain import CorpusSpec

    n = 4_000_000
    path = tmp_path / "chr.fa.gz"
    _write_fa_gz(path, {"chr1": "".join(random.Random(1).choices("ACGTacgt", k=n))})
    tracemalloc.start()
    try:
        windows = sum(1 for _ in read_corpus(CorpusSpec("fasta", {"window": 2048}), [path]))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert windows == -(-n // 2048)
    assert peak < 4 * n, f"{peak / n:.1f} bytes per base"


# ------------------------------------------------------------------------------------ fine-tuning data


def test_fine_tuning_rows_are_tokenized_once_and_read_back_identical(monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo.config import FinetuneConfig, build_config
    from zoo.files import zoo_home
    from zoo.finetune import encode_task, load_backbone, read_task
    from zoo.registry import domain_names, get_domain

    for name in domain_names():
        domain = get_domain(name)
        cfg = build_config(FinetuneConfig, overrides=["task.max_length=32"])
        tok = load_backbone(domain, cfg).tokenizer
        for task in domain.tasks:
            data = read_task(domain, task, cfg)
            fresh = {k: data.kind.encode(tok, xs, data.labels, 32) for k, xs in data.splits.items()}
            assert encode_task(data, cfg, tok).rows == fresh  # builds the cache
            with monkeypatch.context() as m:  # a second time: read back, never re-tokenized
                m.setattr(type(data.kind), "encode", lambda *a, **k: pytest.fail("tokenized again"))
                assert encode_task(data, cfg, tok).rows == fresh, (name, task.name)
    cache = zoo_home() / "cache" / "finetune"
    before = len(list(cache.iterdir()))
    longer = build_config(FinetuneConfig, overrides=["task.max_length=48"])
    domain = get_domain("biomedical")
    data = read_task(domain, domain.tasks[0], longer)
    tok = load_backbone(domain, longer).tokenizer
    first = encode_task(data, longer, tok).rows
    assert len(list(cache.iterdir())) == before + len(data.splits)  # another max_length: new entries
    for arrow in cache.glob("*/rows/*.arrow"):
        arrow.write_bytes(arrow.read_bytes()[:100])  # damaged entries are rebuilt, not trusted
    assert encode_task(data, longer, tok).rows == first
