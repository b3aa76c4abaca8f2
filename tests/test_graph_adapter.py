"""Text-attributed graphs and GraphAdapter: the loader on tiny graphs, GraphAdapter's averaged distribution
against a hand computation, the node-loader path against full-batch, and the method's contract on a graph
(tests/test_methods.py's model rows need a graph-free model; these are the same invariants on a graph)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from torch import nn

from zoo.adapters.base import MethodContext, get_method, method_config, method_label
from zoo.adapters.graph_adapter import (
    Adapter,
    GraphAdapterClassifier,
    NodeCache,
    mixed_log_probs,
    token_weights,
)
from zoo.errors import UserError
from zoo.text_graph import load_graph, to_pyg


def _write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")


def _tiny(folder: Path) -> Path:
    nodes = [
        {"node_id": "a", "text": "agents talk", "label": "Agents", "split": "train"},
        {"node_id": "b", "text": "query plans", "label": "DB", "split": "val"},
        {"node_id": "c", "text": "ranking web", "label": "IR", "split": "test"},
        {"node_id": "d", "text": "no label here", "label": None, "split": "hidden"},
    ]
    _write(folder, "nodes.jsonl", "".join(json.dumps(n) + "\n" for n in nodes))
    _write(folder, "edges.tsv", "src_node_id\tdst_node_id\na\tb\nb\tc\nc\tc\n")
    return folder


# ------------------------------------------------------------------------------------------------ loader


def test_tag_loader_makes_an_undirected_graph_with_self_loops_masks_and_unlabelled_nodes(
    tmp_path: Path,
) -> None:
    graph = load_graph(_tiny(tmp_path), {})
    assert graph.ids == ("a", "b", "c", "d") and graph.texts[3] == "no label here"
    assert graph.labels == ("Agents", "DB", "IR", None) and graph.splits == ("train", "dev", "test", None)
    data = to_pyg(graph)
    edges = set(map(tuple, data.edge_index.t().tolist()))
    assert edges == {(0, 1), (1, 0), (1, 2), (2, 1), (0, 0), (1, 1), (2, 2), (3, 3)}  # c→c kept once
    assert data.y.tolist() == [0, 1, 2, -1]  # classes sorted: Agents, DB, IR; d unlabelled
    assert data.train_mask.tolist() == [True, False, False, False]
    assert data.dev_mask.tolist() == [False, True, False, False]
    assert data.test_mask.tolist() == [False, False, True, False]


def test_csv_layout_with_configurable_columns(tmp_path: Path) -> None:
    _write(
        tmp_path, "papers.csv", "pid,abstract,topic,part\n7,alpha beta,x,train\n9,gamma,y,test\n8,delta,,\n"
    )
    _write(tmp_path, "cites.csv", "citing,cited\n7,9\n8,7\n")
    options = {
        "nodes": "papers.csv",
        "edges": "cites.csv",
        "id_column": "pid",
        "text_column": "abstract",
        "label_column": "topic",
        "split_column": "part",
        "src_column": "cited",
        "dst_column": "citing",
    }
    graph = load_graph(tmp_path, options)
    assert graph.ids == ("7", "9", "8") and graph.labels == ("x", "y", None)
    assert graph.splits == ("train", "test", None)
    assert graph.edges == ((1, 0), (0, 2))  # columns picked by name, in the order src, dst


@pytest.mark.parametrize(
    "nodes, edges, needle",
    [
        (None, "a\tz\n", "edges.tsv:1: edge names node 'z'"),
        (
            '{"node_id": "a", "text": "x", "label": "ML", "split": "train"}\n' * 2,
            "",
            "nodes.jsonl:2: duplicate",
        ),
        ('{"node_id": "a", "text": "x", "label": "Bio", "split": "train"}\n', "", "label 'Bio' is not in"),
        ("", "", "empty graph"),
        (
            '{"node_id": "a", "body": "x", "label": "ML", "split": "train"}\n',
            "",
            "nodes.jsonl:1: no column 'text'",
        ),
    ],
)
def test_bad_graphs_name_file_and_line(tmp_path: Path, nodes: str | None, edges: str, needle: str) -> None:
    folder = _tiny(tmp_path)
    if nodes is not None:
        _write(folder, "nodes.jsonl", nodes)
    _write(folder, "edges.tsv", edges)
    with pytest.raises(UserError, match=needle):
        load_graph(folder, {"labels": ["Agents", "DB", "IR", "ML"]})


# ------------------------------------------------------------------------------------------ GraphAdapter


def test_mixed_distribution_is_the_average_of_the_lm_and_the_adapter_by_hand() -> None:
    lm_head = nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        lm_head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, 1.0]]))
    h, z = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    # By hand: lm logits W·h = (1, 0, -1); adapter logits W·z = (0, 2, 1).
    lm = [math.exp(v) / sum(math.exp(u) for u in (1, 0, -1)) for v in (1, 0, -1)]
    ad = [math.exp(v) / sum(math.exp(u) for u in (0, 2, 1)) for v in (0, 2, 1)]
    expected = torch.tensor([[(a + b) / 2 for a, b in zip(lm, ad, strict=True)]])
    got = mixed_log_probs(lm_head, h, z).exp()
    torch.testing.assert_close(got, expected)
    assert abs(float(got.detach().sum()) - 1.0) < 1e-6


def test_token_weights_are_inverse_counts_normalised_per_node() -> None:
    targets = torch.tensor([[5, 5, 7, 9]])
    valid = torch.tensor([[True, True, True, False]])
    # counts among the valid tokens: 5 twice, 7 once → raw weights 1/2, 1/2, 1, 0 → normalised by 2
    torch.testing.assert_close(token_weights(targets, valid), torch.tensor([[0.25, 0.25, 0.5, 0.0]]))


def _toy_graph(n: int = 12, d: int = 6, seed: int = 0) -> tuple[NodeCache, object]:
    from torch_geometric.data import Data
    from torch_geometric.utils import add_remaining_self_loops, to_undirected

    g = torch.Generator().manual_seed(seed)
    edge_index = to_undirected(torch.randint(0, n, (2, 30), generator=g), num_nodes=n)
    edge_index, _ = add_remaining_self_loops(edge_index, num_nodes=n)
    rng = np.random.default_rng(seed)
    t = 5
    cache = NodeCache(
        ids=rng.integers(0, 10, (n, t)).astype(np.int32),
        lengths=np.full(n, t, np.int32),
        tokens=rng.standard_normal((n, t, d)).astype(np.float16),
        sentence=rng.standard_normal((n, d)).astype(np.float32),
        prompt=rng.standard_normal((n, d)).astype(np.float32),
    )
    return cache, Data(edge_index=edge_index, num_nodes=n)


def test_node_loader_path_gives_the_full_batch_predictions_in_eval_mode() -> None:
    cache, data = _toy_graph()
    torch.manual_seed(0)
    adapter = Adapter(6, 8, "sage")
    full = GraphAdapterClassifier(adapter, 3, cache, data, []).eval()
    sampled = GraphAdapterClassifier(adapter, 3, cache, data, [-1, -1]).eval()
    sampled.head.load_state_dict(full.head.state_dict())
    nodes = torch.tensor([0, 3, 7, 11])
    with torch.no_grad():
        torch.testing.assert_close(sampled(node_index=nodes).logits, full(node_index=nodes).logits)
        few = GraphAdapterClassifier(adapter, 3, cache, data, [1, 1]).eval()
        few.head.load_state_dict(full.head.state_dict())
        assert few(node_index=nodes).logits.shape == (4, 3)


def test_the_graph_changes_the_prediction_and_mlp_ignores_it() -> None:
    cache, data = _toy_graph()
    nodes = torch.arange(12)
    for kind, differs in (("sage", True), ("mlp", False)):
        torch.manual_seed(0)
        model = GraphAdapterClassifier(Adapter(6, 8, kind), 3, cache, data, []).eval()
        with torch.no_grad():
            before = model(node_index=nodes).logits
            model.data = type(data)(edge_index=torch.arange(12).repeat(2, 1), num_nodes=12)  # self-loops only
            after = model(node_index=nodes).logits
        assert (not torch.allclose(before, after)) == differs


# ------------------------------------------------------------------------------- the method, on a graph


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny graph_text pretraining run on the embedded sample (a few steps)."""
    from zoo.config import PretrainConfig, build_config
    from zoo.pretrain import pretrain
    from zoo.registry import get_domain

    domain = get_domain("graph_text")
    cfg = build_config(
        PretrainConfig,
        domain.pretrain_defaults,
        overrides=["model.hidden_size=32", "model.num_hidden_layers=1", "model.num_attention_heads=2",
                   "model.num_key_value_heads=2", "model.intermediate_size=64", "train.max_steps=3",
                   "tokenizer.vocab_size=300"],
    )  # fmt: skip
    return pretrain(domain, cfg, out=tmp_path_factory.mktemp("lm") / "run", quiet=True)


def _context(run: Path) -> tuple[nn.Module, MethodContext]:
    import transformers

    from zoo.registry import get_domain
    from zoo.run import load_tokenizer

    domain = get_domain("graph_text")
    task = domain.task("citeseer_tag")
    folder = domain.sample_dir / task.name
    graph = load_graph(folder, task.options)
    labels = sorted({x for x in graph.labels if x is not None})
    model = transformers.LlamaForSequenceClassification.from_pretrained(str(run / "model"), num_labels=6)
    ctx = MethodContext(
        task=task, kind=None, tokenizer=load_tokenizer(run / "model"), labels=labels, splits={}, rows={},
        seed=0, train=lambda m, phase="train": m, evaluate=lambda m, split="dev": {"accuracy": 0.0},
        extra={"graph": graph, "data": to_pyg(graph, labels), "model_path": run / "model"},
    )  # fmt: skip
    return model, ctx


def test_graph_adapter_contract_on_a_graph(
    lm_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    method = get_method("graph_adapter")
    cfg = method_config(method, {"hidden": 16, "pretrain_epochs": 1, "max_tokens": 16, "fanouts": [4, 4]})
    with pytest.raises(UserError, match="needs a graph"):
        method.apply(nn.Linear(2, 2), cfg, None)
    model, ctx = _context(lm_run)
    lm_params = sum(p.numel() for p in model.base_model.parameters())
    ga = method.apply(model, cfg, ctx)
    caches = list((tmp_path / "home" / "cache" / "graph_adapter").iterdir())
    assert len(caches) == 1 and {p.name for p in caches[0].glob("*.npy")} >= {"tokens.npy", "sentence.npy"}
    assert isinstance(np.load(caches[0] / "tokens.npy", mmap_mode="r"), np.memmap)  # read from disk, not held

    summary = method.describe(ga)
    assert summary["trainable_params"] == sum(p.numel() for p in ga.parameters())
    assert summary["total_params"] > summary["trainable_params"] + lm_params * 0.9  # the frozen LM counts
    assert math.isfinite(summary["pretrain_nll_mixed"]) and math.isfinite(summary["pretrain_nll_lm"])

    nodes, labels = (
        torch.arange(0, 40),
        torch.randint(0, 6, (40,), generator=torch.Generator().manual_seed(1)),
    )
    ga.fanouts = []  # full batch: the loss is a deterministic function of the weights
    ga.eval()
    loss = lambda: nn.functional.cross_entropy(ga(node_index=nodes).logits, labels)  # noqa: E731
    opt = torch.optim.Adam(ga.parameters(), lr=1e-3)
    before = float(loss())
    loss().backward()
    opt.step()
    assert float(loss()) < before

    method.save(ga, tmp_path / "saved")
    fresh = method.apply(_context(lm_run)[0], cfg, ctx)  # second apply: caches reused, not rebuilt
    fresh.fanouts = []
    fresh = method.after_training(method.load(fresh.eval(), tmp_path / "saved"), cfg, ctx)
    with torch.no_grad():
        torch.testing.assert_close(fresh(node_index=nodes).logits, ga(node_index=nodes).logits)


# ------------------------------------------------------------------------------- leaderboard rows


def test_baselines_record_one_leaderboard_run_each_with_the_seeds_they_printed(
    lm_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from zoo.benchmarks.graph_baselines import main
    from zoo.leaderboard import query, scores_of
    from zoo.registry import get_domain

    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    db = tmp_path / "board.sqlite"
    task = get_domain("graph_text").task("citeseer_tag")
    folder = get_domain("graph_text").sample_dir / task.name
    ids = main(
        ["--model", str(lm_run), "--data", str(folder), "--seeds", "3", "5", "--epochs", "4", "--db", str(db)]
    )
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    rows = {r.run_id: r for r in query("graph_text", db)}
    assert set(rows) == set(ids) and len(ids) == 3
    assert {rows[i].method for i in ids} == {"lm_logreg", "sage_bow", "sage_lm"}
    n_test = load_graph(folder, task.options).splits.count("test")
    for run_id in ids:
        row, scores = rows[run_id], scores_of(run_id, db)
        assert (
            row.model_id == str(lm_run) and row.trainable_params and row.scores["citeseer_tag"].n_seeds == 2
        )
        test = {s["metric"]: s for s in scores if s["split"] == "test"}
        assert set(test) == {"accuracy", "macro_f1"} and {s["split"] for s in scores} == {"test", "dev"}
        assert [m for m, s in test.items() if s["is_primary"]] == ["accuracy"]
        for metric, s in test.items():
            values = json.loads(s["seed_values"])
            assert values == [
                p[metric] for p in printed if p["baseline"] == row.method
            ]  # seeds 3, 5 in order
            assert s["value"] == pytest.approx(sum(values) / 2) and s["n_samples"] == n_test
            assert json.loads(s["seeds"]) == [3, 5] and 0.0 <= s["value"] <= 1.0
    lm_based = [rows[i] for i in ids if rows[i].method != "sage_bow"]
    assert all(r.total_params > r.trainable_params for r in lm_based)  # the frozen LM counts in the total


def test_graph_adapter_with_and_without_pretraining_are_distinct_leaderboard_rows(
    lm_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zoo.config import FinetuneConfig, build_config
    from zoo.finetune import finetune
    from zoo.leaderboard import query
    from zoo.registry import get_domain

    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    domain = get_domain("graph_text")
    common = [f"model={lm_run}", "method.name=graph_adapter", "method.hidden=16", "method.max_tokens=16",
              "train.epochs=1", "seeds=[0]"]  # fmt: skip
    for epochs in (1, 0):
        cfg = build_config(
            FinetuneConfig, domain.finetune_defaults, overrides=[*common, f"method.pretrain_epochs={epochs}"]
        )
        finetune(domain, cfg, verb="bench", out=tmp_path / f"ga{epochs}", quiet=True)
    rows = query("graph_text", tmp_path / "home" / "leaderboard.sqlite")
    method = get_method("graph_adapter")
    assert method_label(method, method_config(method, {})) == "graph_adapter"  # the default: the bare name
    assert sorted(r.method for r in rows) == [
        "graph_adapter (pretrain_epochs=0)",
        "graph_adapter (pretrain_epochs=1)",
    ]
