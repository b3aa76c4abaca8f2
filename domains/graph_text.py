"""Graph-text domain: text-attributed graphs (papers with their text, linked by citations), the GraphAdapter
setting (Huang et al., WWW 2024, arXiv 2402.12984; hxttkl/GraphAdapter).

A Llama-style decoder pretrained with CLM on node texts, then node classification on the graph: with a
text-only method (full, lora) the node text alone is classified; `graph_adapter` keeps the LM frozen and
adds a GNN over its node embeddings. Task `citeseer_tag`: CiteSeer (3,186 papers, 6 classes) in the layout of
../shared/data/graph_text/citeseer_tag (`nodes.jsonl` + `edges.tsv`); the embedded default is a generated
300-node graph in the same layout (`domains/samples/generate_graph_text.py`).

Which texts the LM sees: `zoo pretrain graph_text --corpus DIR/nodes.jsonl` reads the texts of the
*training* nodes only (corpus option `splits`, default train), so the LM never saw the val/test nodes'
texts. GraphAdapter's own pretraining then reads every node's text without labels, as in the paper's
transductive setting (`method.pretrain_nodes=train` restricts it).
"""

from pathlib import Path

from zoo.domain import CorpusSpec, Domain, ModelSpec, ObjectiveSpec, TaskSpec

DOMAIN = Domain(
    name="graph_text",
    summary="text-attributed graphs: byte-level BPE, Llama decoder (CLM) on node texts, node classification",
    model=ModelSpec(
        family="llama",
        config={
            "hidden_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "intermediate_size": 344,
            "max_position_embeddings": 512,
            "tie_word_embeddings": True,
        },
    ),
    tokenizers=("graph-text-bpe",),
    objective=ObjectiveSpec("clm"),
    corpus=CorpusSpec("zoo.text_graph:read_node_texts", {"splits": "train"}),
    tasks=(
        TaskSpec(
            name="citeseer_tag",
            type="node_classification",
            format="tag",
            metrics=("accuracy", "macro_f1"),
            splits={"train": "nodes", "dev": "nodes", "test": "nodes"},
            options={"labels": ["Agents", "AI", "DB", "IR", "ML", "HCI"]},
            summary="CiteSeer TAG: 6-class paper topic from title + abstract and citations, accuracy, macro-F1",
        ),
    ),
    sample_dir=Path(__file__).parent / "samples" / "graph_text",
    pretrain_defaults={
        "tokenizer.vocab_size": 600,
        "data.seq_len": 128,
        "train.max_steps": 200,
        "train.batch_size": 16,
        "train.lr": 2e-3,
    },
    finetune_defaults={
        "train.epochs": 10,
        "train.lr": 1e-3,
        "train.batch_size": 64,
        "task.max_length": 128,
        "select": "dev",
    },
)
