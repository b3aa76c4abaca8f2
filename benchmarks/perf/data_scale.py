"""Pretraining data at scale: the prepared-data cache vs the old in-memory path, on a 1x and a 10x corpus.

    OMP_NUM_THREADS=1 nice python benchmarks/perf/data_scale.py [--mb 3] [--steps 20] [--work /tmp/zoo-data-scale]

The corpus is ../shared/data/biomedical/pretrain_text (PubMedQA abstracts + NCBI-disease sentences), its
lines shuffled and repeated to --mb MB (1x) and 10 × --mb MB (10x), written under --work (never committed).
One tokenizer (the domain recipe, trained once on the 1x corpus) serves every row. Each row is a separate
process, so its peak RSS (ru_maxrss) is its own:

- `prepare`: `zoo.prepared.build` (what `zoo data prepare` and the first `zoo pretrain` run): read →
  `Dataset.map` tokenize (num_proc 1 or 2) → pack → Arrow on disk; time, docs/s, tokens/s, size on disk.
- `reuse`: the same call again (a second `zoo pretrain` on the same corpus and tokenizer): cache hit.
- `train`: `zoo pretrain … data.prepared=DIR` for --steps steps of a tiny BERT (blocks memory-mapped).
- `in-memory (old)`: the pre-cache `prepare_data`, kept here only to compare: every document's token
  lists in Python, then every packed block as Python lists, in the process.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT.parent / "shared" / "data" / "biomedical" / "pretrain_text"
SEQ_LEN = 128
TINY = [
    "model.hidden_size=64",
    "model.num_hidden_layers=2",
    "model.num_attention_heads=2",
    "model.intermediate_size=128",
    f"data.seq_len={SEQ_LEN}",
    "train.batch_size=8",
    "train.eval_every=0",
    "train.save_every=0",
    "train.log_every=5",
]


def make_corpus(path: Path, megabytes: float, seed: int) -> None:
    lines = [x for f in sorted(SOURCE.glob("*.txt")) for x in f.read_text().splitlines() if x.strip()]
    rng = random.Random(seed)
    target, written = int(megabytes * 1e6), 0
    with path.open("w") as out:
        while written < target:
            rng.shuffle(lines)
            for line in lines:
                out.write(line + "\n")
                written += len(line) + 1
                if written >= target:
                    break


def _recipe(corpus: Path):  # noqa: ANN202
    from zoo.domain import CorpusSpec
    from zoo.prepared import Recipe

    return Recipe(CorpusSpec("text", {}), (corpus,), SEQ_LEN, 50, None)


def child(kind: str, corpus: Path, tokenizer: Path, out: Path, num_proc: int, steps: int) -> dict:
    """One measurement in this process; returns its figures and peak RSS."""
    import datasets  # noqa: F401  (imports are not data preparation: keep them out of the timings)

    import zoo.prepared  # noqa: F401
    from zoo.run import load_tokenizer

    tok = load_tokenizer(tokenizer)
    start = time.perf_counter()
    row: dict = {}
    if kind in ("prepare", "reuse"):
        from zoo.prepared import build, load

        if kind == "prepare":
            meta = build(_recipe(corpus), tok, out, num_proc=num_proc)
        else:
            meta = load(out).meta  # what `prepared()` does on a hit: key, then memory-map
            _recipe(corpus).key(tok)
        row.update(documents=meta["documents"], tokens=meta["train_tokens"] + meta["eval_tokens"])
        row["disk_mb"] = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
    elif kind == "old":
        from zoo.packing import pack_documents
        from zoo.prepared import encode_texts, read_documents

        train, held = [], []
        texts = [d for d in read_documents(_recipe(corpus))]
        for i in range(0, len(texts), 256):
            batch = texts[i : i + 256]
            enc = encode_texts(tok, [d["text"] for d in batch])
            for d, ids, ws in zip(batch, enc["input_ids"], enc["word_starts"]):
                (held if d["eval"] else train).append({"input_ids": ids, "word_starts": ws})
        del texts
        blocks = list(pack_documents(train, SEQ_LEN, tok.pad_token_id))
        row.update(documents=len(train) + len(held), tokens=sum(len(d["input_ids"]) for d in train + held))
        row["blocks"] = len(blocks)
    else:  # train from the prepared folder, in this process
        from zoo.config import PretrainConfig, build_config
        from zoo.pretrain import pretrain
        from zoo.registry import get_domain

        d = get_domain("biomedical")
        cfg = build_config(PretrainConfig, d.pretrain_defaults, overrides=[*TINY, f"train.max_steps={steps}",
                                                                              f"data.prepared={out}"])  # fmt: skip
        pretrain(d, cfg, out=out.parent / f"run-{out.name}-{os.getpid()}", quiet=True)
    row["seconds"] = time.perf_counter() - start
    # The largest process: this one, or one of the tokenizing workers it forked (num_proc > 1).
    peak = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    row["peak_rss_mb"] = peak / 1024
    return row


def run_child(*args: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(f"child {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--mb", type=float, default=3.0, help="Size of the 1x corpus in MB (10x is ten times it)."
    )
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--work", type=Path, default=Path("/tmp/zoo-data-scale"))
    ap.add_argument("--child", nargs=6, metavar=("KIND", "CORPUS", "TOK", "OUT", "NPROC", "STEPS"))
    a = ap.parse_args()
    if a.child:
        kind, corpus, tok, out, nproc, steps = a.child
        print(json.dumps(child(kind, Path(corpus), Path(tok), Path(out), int(nproc), int(steps))))
        return
    import shutil

    shutil.rmtree(a.work, ignore_errors=True)
    a.work.mkdir(parents=True)
    os.environ["ZOO_HOME"] = str(a.work / "home")
    corpora = {"1x": a.work / "corpus-1x.txt", "10x": a.work / "corpus-10x.txt"}
    make_corpus(corpora["1x"], a.mb, 0)
    make_corpus(corpora["10x"], 10 * a.mb, 1)
    tok = a.work / "tokenizer"
    subprocess.run([sys.executable, "-m", "zoo", "tokenizer", "train", "biomedical", "--corpus", str(corpora["1x"]),
                    "--out", str(tok)], check=True, capture_output=True)  # fmt: skip
    rows = []

    def measure(label: str, kind: str, size: str, out: str, nproc: int = 1) -> dict:
        r = run_child(kind, str(corpora[size]), str(tok), str(a.work / out), str(nproc), str(a.steps))
        r.update(row=label, size=size, corpus_mb=corpora[size].stat().st_size / 1e6)
        rows.append(r)
        print(json.dumps(r), flush=True)
        return r

    firsts = {"1x": measure("prepare, num_proc=1", "prepare", "1x", "p1", 1)}
    measure("reuse (second run)", "reuse", "1x", "p1")
    measure(f"train {a.steps} steps from cache", "train", "1x", "p1")
    measure("in-memory (old) prepare", "old", "1x", "-")
    p1 = firsts["10x"] = measure("prepare, num_proc=1", "prepare", "10x", "p10-np1", 1)
    p2 = measure("prepare, num_proc=2", "prepare", "10x", "p10", 2)
    measure("reuse (second run)", "reuse", "10x", "p10")
    measure(f"train {a.steps} steps from cache", "train", "10x", "p10")
    measure("in-memory (old) prepare", "old", "10x", "-")
    print()
    print(
        "| corpus | row | MB text | documents | tokens | seconds | docs/s | tokens/s | cache MB | peak RSS MB |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        docs, toks, s = r.get("documents"), r.get("tokens"), r["seconds"]
        rate = (
            f"{docs / s:,.0f} | {toks / s:,.0f}"
            if docs and r["row"].startswith(("prepare", "in-memory"))
            else "– | –"
        )
        disk = f"{r['disk_mb']:.1f}" if "disk_mb" in r and r["row"].startswith("prepare") else "–"
        print(f"| {r['size']} | {r['row']} | {r['corpus_mb']:.1f} | {docs or '–'} | {toks or '–'} | {s:.2f} | {rate} "
              f"| {disk} | {r['peak_rss_mb']:.0f} |")  # fmt: skip
    by = {(r["size"], r["row"]): r for r in rows}

    def peak(size: str) -> float:
        return max(
            r["peak_rss_mb"] for r in rows if r["size"] == size and not r["row"].startswith("in-memory")
        )

    old = [by[(s, "in-memory (old) prepare")]["peak_rss_mb"] for s in ("1x", "10x")]
    prep = [by[(s, "prepare, num_proc=1")]["peak_rss_mb"] for s in ("1x", "10x")]
    print()
    print(f"cache path peak RSS 10x / 1x, prepare + train: {peak('10x') / peak('1x'):.2f}")
    print(f"cache path peak RSS 10x / 1x, prepare alone: {prep[1] / prep[0]:.2f}")
    print(f"in-memory (old) peak RSS 10x / 1x: {old[1] / old[0]:.2f}")
    print(f"preparation throughput num_proc=2 / num_proc=1 (10x): {p1['seconds'] / p2['seconds']:.2f}x")
    for size, first in firsts.items():
        again = by[(size, "reuse (second run)")]["seconds"]
        print(
            f"{size}: second run's data preparation {again:.2f} s = {100 * again / first['seconds']:.1f} % of the first"
        )


if __name__ == "__main__":
    main()
