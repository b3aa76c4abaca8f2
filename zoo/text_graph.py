"""Text-attributed graphs (TAGs): a node table (id, text, label, split) and an edge list, read into a
`TextGraph` (pure Python, checked line by line) and turned into a `torch_geometric.data.Data` by `to_pyg`.

Layouts read (task options; every column name configurable):
- node table: `nodes.jsonl` (one JSON object per line) or `nodes.csv` / `nodes.tsv` (header row); columns
  `id_column` (default node_id), `text_column` (text), `label_column` (label), `split_column` (split).
  A null/empty label leaves the node unlabelled: it stays in the graph (transductive), in no split.
  Split values: train, dev (also val, valid, validation), test; anything else (e.g. 'hidden') = no split.
  Without a split column every labelled node gets a deterministic 60/20/20 split by a hash of its id.
- edge list: `edges.tsv` / `edges.csv`, one edge per line `src dst` (columns `src_column`, `dst_column`
  when the file has a header naming them, else the first two columns; a first line naming no node at
  all is taken for a header of other names and skipped).
Bad input ends in a UserError naming file:line: an edge naming a node that does not exist, a duplicate
node id, a label outside the task's `labels` option, a node table without the text column, an empty graph.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import UserError, did_you_mean
from zoo.files import read_text_file

if TYPE_CHECKING:
    from torch_geometric.data import Data

SPLIT_NAMES = {
    "train": "train",
    "dev": "dev",
    "val": "dev",
    "valid": "dev",
    "validation": "dev",
    "test": "test",
}
NODE_FILES = ("nodes.jsonl", "nodes.json", "nodes.csv", "nodes.tsv")
EDGE_FILES = ("edges.tsv", "edges.csv", "edges.txt")
OPTION_KEYS = (
    "nodes",
    "edges",
    "id_column",
    "text_column",
    "label_column",
    "split_column",
    "src_column",
    "dst_column",
    "labels",
)


@dataclass(frozen=True)
class TextGraph:
    """Nodes in file order (index = position), their texts, labels (None = unlabelled) and splits (None =
    in no split), the source line of each node, and the edges as (src index, dst index) pairs as read."""

    ids: tuple[str, ...]
    texts: tuple[str, ...]
    labels: tuple[str | None, ...]
    splits: tuple[str | None, ...]
    sources: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    path: str

    @property
    def num_nodes(self) -> int:
        return len(self.ids)

    def split_nodes(self, split: str) -> list[int]:
        return [i for i, s in enumerate(self.splits) if s == split]

    def fingerprint(self) -> str:
        """A short hash of texts and edges: what a cache of node embeddings is keyed by."""
        h = hashlib.sha256()
        for text in self.texts:
            h.update(text.encode() + b"\0")
        h.update(repr(self.edges).encode())
        return h.hexdigest()[:16]


def _pick(folder: Path, name: str | None, candidates: Sequence[str], what: str) -> Path:
    if name:
        path = Path(name) if Path(name).is_absolute() else folder / name
        if not path.is_file():
            raise UserError(f"{what} file {path} does not exist; set the task option to an existing file")
        return path
    for candidate in candidates:
        if (folder / candidate).is_file():
            return folder / candidate
    raise UserError(
        f"no {what} file in {folder} (looked for {', '.join(candidates)}); --data DIR must hold one"
    )


def _rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, record) of a JSONL or CSV/TSV node table."""
    if path.suffix in (".jsonl", ".json"):
        from zoo.benchmarks.tasks import _read_jsonl

        return _read_jsonl(path)
    text = read_text_file(path)
    reader = csv.DictReader(io.StringIO(text), delimiter="\t" if path.suffix == ".tsv" else ",")
    return [(i + 2, row) for i, row in enumerate(reader) if any((v or "").strip() for v in row.values())]


def _node_id(value: Any) -> str:
    return str(value).strip()


def _label(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _auto_split(node_id: str) -> str:
    bucket = int(hashlib.sha256(node_id.encode()).hexdigest(), 16) % 100
    return "train" if bucket < 60 else "dev" if bucket < 80 else "test"


def read_nodes(path: Path, opts: Mapping[str, Any]) -> dict[str, Any]:
    id_col, text_col = str(opts.get("id_column", "node_id")), str(opts.get("text_column", "text"))
    label_col, split_col = str(opts.get("label_column", "label")), str(opts.get("split_column", "split"))
    allowed = opts.get("labels")
    allowed_set = {str(x) for x in allowed} if allowed else None
    rows = _rows(path)
    if not rows:
        raise UserError(f"{path}: empty graph (no nodes); the node table needs one row per node")
    index: dict[str, int] = {}
    cols: dict[str, list[Any]] = {"ids": [], "texts": [], "labels": [], "splits": [], "sources": []}
    for lineno, row in rows:
        where = f"{path}:{lineno}"
        for col in (id_col, text_col):
            if col not in row:
                raise UserError(
                    f"{where}: no column '{col}' (found: {', '.join(row)}); set the task option "
                    f"{'id_column' if col == id_col else 'text_column'}=NAME{did_you_mean(col, row)}"
                )
        node = _node_id(row[id_col])
        if node in index:
            first = cols["sources"][index[node]]
            raise UserError(
                f"{where}: duplicate node id {node!r} (first at {first}); node ids must be unique"
            )
        text = row[text_col]
        if not isinstance(text, str):
            raise UserError(f"{where}: column '{text_col}' must be text, got {type(text).__name__}")
        label = _label(row.get(label_col))
        if label is not None and allowed_set is not None and label not in allowed_set:
            raise UserError(
                f"{where}: label {label!r} is not in the task's label set ({', '.join(sorted(allowed_set))}); "
                "fix the label or the task option labels"
            )
        split_value = row.get(split_col)
        split = SPLIT_NAMES.get(str(split_value).strip().lower()) if split_col in row else _auto_split(node)
        index[node] = len(cols["ids"])
        cols["ids"].append(node)
        cols["texts"].append(text)
        cols["labels"].append(label)
        cols["splits"].append(split if label is not None else None)
        cols["sources"].append(where)
    return {"index": index, **cols}


def read_edges(path: Path, opts: Mapping[str, Any], index: Mapping[str, int]) -> list[tuple[int, int]]:
    src_col, dst_col = str(opts.get("src_column", "src_node_id")), str(opts.get("dst_column", "dst_node_id"))
    text = read_text_file(path)
    delimiter = "," if path.suffix == ".csv" else None
    edges: list[tuple[int, int]] = []
    columns = (0, 1)
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = [f.strip() for f in (line.split(delimiter) if delimiter else line.split())]
        if len(fields) < 2:
            raise UserError(f"{path}:{lineno}: expected two node ids (src dst), found {len(fields)} field(s)")
        if lineno == 1 and fields[0] not in index and fields[1] not in index:
            if src_col in fields and dst_col in fields:
                columns = (fields.index(src_col), fields.index(dst_col))
            continue  # a header line
        pair = []
        for col in columns:
            node = fields[col]
            if node not in index:
                raise UserError(
                    f"{path}:{lineno}: edge names node {node!r}, which the node table does not have; "
                    "fix the edge or add the node"
                )
            pair.append(index[node])
        edges.append((pair[0], pair[1]))
    return edges


def load_graph(folder: Path, options: Mapping[str, Any]) -> TextGraph:
    """The graph in `folder` (cached per folder, options and file modification times)."""
    unknown = [k for k in options if k not in OPTION_KEYS and k != "alphabet"]
    if unknown:
        raise UserError(f"unknown graph task option '{unknown[0]}'{did_you_mean(unknown[0], OPTION_KEYS)}")
    nodes = _pick(Path(folder), options.get("nodes"), NODE_FILES, "node table")
    edges = _pick(Path(folder), options.get("edges"), EDGE_FILES, "edge list")
    key = json.dumps(dict(options), sort_keys=True, default=str)
    return _load(str(nodes), str(edges), key, nodes.stat().st_mtime_ns, edges.stat().st_mtime_ns)


@lru_cache(maxsize=4)
def _load(nodes: str, edges: str, options_key: str, *_mtimes: int) -> TextGraph:
    opts = json.loads(options_key)
    table = read_nodes(Path(nodes), opts)
    pairs = read_edges(Path(edges), opts, table["index"])
    return TextGraph(
        tuple(table["ids"]),
        tuple(table["texts"]),
        tuple(table["labels"]),
        tuple(table["splits"]),
        tuple(table["sources"]),
        tuple(pairs),
        nodes,
    )


def to_pyg(graph: TextGraph, labels: Sequence[str] | None = None) -> Data:
    """The graph as PyG `Data`: edges made undirected with one self-loop per node (as GraphAdapter does),
    `y` the class id (-1 unlabelled), boolean `train_mask`/`dev_mask`/`test_mask`. Texts stay in `graph`."""
    import torch
    from torch_geometric.data import Data
    from torch_geometric.utils import add_remaining_self_loops, to_undirected

    n = graph.num_nodes
    edge_index = torch.tensor(graph.edges, dtype=torch.long).t().reshape(2, -1)
    edge_index = to_undirected(edge_index, num_nodes=n)
    edge_index, _ = add_remaining_self_loops(edge_index, num_nodes=n)
    classes = list(labels) if labels is not None else sorted({x for x in graph.labels if x is not None})
    ids = {c: i for i, c in enumerate(classes)}
    y = torch.tensor([ids.get(x, -1) if x is not None else -1 for x in graph.labels], dtype=torch.long)
    data = Data(edge_index=edge_index, y=y, num_nodes=n)
    for split in ("train", "dev", "test"):
        data[f"{split}_mask"] = torch.tensor([s == split for s in graph.splits], dtype=torch.bool)
    return data


def read_node_texts(path: Path, splits: str = "train", text_column: str = "text") -> Any:
    """Corpus reader ('zoo.text_graph:read_node_texts') for pretraining on a graph's node texts: a node
    table yields the texts of the nodes in `splits` (comma-separated; 'all' = every node, labels unused);
    a .txt file yields one text per non-empty line."""
    path = Path(path)
    if path.is_dir():
        path = _pick(path, None, NODE_FILES, "node table")
    if path.suffix == ".txt":
        yield from (line.strip() for line in read_text_file(path).splitlines() if line.strip())
        return
    wanted = None if splits == "all" else {SPLIT_NAMES.get(s.strip(), s.strip()) for s in splits.split(",")}
    table = read_nodes(path, {"text_column": text_column})
    for text, split in zip(table["texts"], table["splits"], strict=True):
        if text.strip() and (wanted is None or split in wanted):
            yield text.strip()
