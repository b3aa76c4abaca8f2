#!/usr/bin/env python
"""Write the embedded-default sample data of the graph_text domain.

    python domains/samples/generate_graph_text.py [--out DIR]   # default: next to this script

Everything is synthetic and deterministic (one seeded random stream): a citation graph of 300 "papers" in
6 topics (the CiteSeer classes' names), each paper a title and abstract built from topic word lists written
here mixed with shared filler; edges are citations, mostly within a topic (homophily ~0.8, as in real
citation graphs). Nothing is copied from any dataset. The files mimic the real layout of
../shared/data/graph_text/citeseer_tag:
- citeseer_tag/nodes.jsonl: `{node_id, text, label, split}` (55/20/15 train/val/test, 10% 'hidden' with
  a null label: in the graph, in no split);
- citeseer_tag/edges.tsv: `src_node_id<TAB>dst_node_id` with a header;
- corpus.txt: the training nodes' texts, one per line (what `zoo pretrain graph_text` reads by default).
This script is not part of the `zoo` package; it only writes data files.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

SEED = 20261130
N_NODES = 300
TOPICS = {
    "Agents": "agent agents negotiation multi-agent autonomous cooperation protocol belief desire intention",
    "AI": "reasoning logic planning knowledge inference search heuristic constraint theorem ontology",
    "DB": "database query relational transaction index schema sql storage join optimization",
    "IR": "retrieval search ranking documents web query relevance index text engine",
    "ML": "learning classifier training neural features regression boosting kernel clustering supervised",
    "HCI": "user interface interaction usability design users display visualization study mobile",
}
FILLER = (
    "we propose a novel approach method system framework for the problem and show results experiments "
    "on several tasks this paper presents an evaluation analysis model that improves performance over "
    "previous work in terms of efficiency accuracy and scalability"
).split()


def _text(rng: random.Random, topic: str) -> str:
    words = TOPICS[topic].split()
    title = " ".join(rng.choice(words).capitalize() for _ in range(rng.randint(3, 6)))
    body = [
        rng.choice(words) if rng.random() < 0.35 else rng.choice(FILLER) for _ in range(rng.randint(30, 60))
    ]
    return f"{title} . {' '.join(body)} ."


def _split(rng: random.Random) -> str:
    r = rng.random()
    return "train" if r < 0.55 else "val" if r < 0.75 else "test" if r < 0.9 else "hidden"


def generate(out: Path) -> None:
    rng = random.Random(SEED)
    names = list(TOPICS)
    topics = [names[i % len(names)] for i in range(N_NODES)]
    rng.shuffle(topics)
    nodes = []
    for i, topic in enumerate(topics):
        split = _split(rng)
        label = None if split == "hidden" else topic
        nodes.append({"node_id": i, "text": _text(rng, topic), "label": label, "split": split})
    by_topic = {t: [i for i, x in enumerate(topics) if x == t] for t in names}
    edges = set()
    for i, topic in enumerate(topics):
        for _ in range(rng.randint(1, 3)):
            pool = by_topic[topic] if rng.random() < 0.8 else range(N_NODES)
            j = rng.choice(list(pool))
            if j != i:
                edges.add((i, j))
    folder = out / "citeseer_tag"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nodes.jsonl").write_text("".join(json.dumps(n) + "\n" for n in nodes), encoding="utf-8")
    lines = ["src_node_id\tdst_node_id", *(f"{a}\t{b}" for a, b in sorted(edges))]
    (folder / "edges.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    corpus = [n["text"] for n in nodes if n["split"] == "train"]
    (out / "corpus.txt").write_text("\n".join(corpus) + "\n", encoding="utf-8")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "graph_text")
    generate(parser.parse_args().out)
