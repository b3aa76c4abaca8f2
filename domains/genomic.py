"""Genomic domain: GENERator / METAGENE-1 style DNA language models.

A Llama-style decoder trained with causal LM on FASTA / GenBank genomes, cut into windows. Two
tokenizer recipes: non-overlapping 6-mers (GENERator, Nucleotide Transformer) — the default — and a
DNA BPE (METAGENE-1, DNABERT-2). Benchmarked on GUE core-promoter and splice-site classification
(MCC, as in the GUE paper).
"""

from pathlib import Path

from zoo.domain import CorpusSpec, Domain, ModelSpec, ObjectiveSpec, TaskSpec

_CLASSIFICATION_METRICS = ("mcc", "accuracy", "macro_f1")
DNA_ALPHABET = "ACGTNRYKMSWBDHV"
"""Bases, N and the IUPAC ambiguity codes: what a task sequence may hold (checked when it loads)."""

DOMAIN = Domain(
    name="genomic",
    summary="GENERator/METAGENE-1 recipe: 6-mer or DNA-BPE tokens, Llama-style decoder, causal LM on FASTA",
    model=ModelSpec(
        family="llama",
        config={
            "hidden_size": 256,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "intermediate_size": 688,
            "max_position_embeddings": 1024,
            "tie_word_embeddings": True,
        },
    ),
    tokenizers=("genomic-kmer6", "genomic-bpe"),
    objective=ObjectiveSpec("clm"),
    corpus=CorpusSpec("fasta", {"window": 1536}),
    tasks=(
        TaskSpec(
            name="gue_prom_core_all",
            type="sequence_classification",
            format="csv",
            metrics=_CLASSIFICATION_METRICS,
            options={"text_column": "sequence", "label_column": "label", "alphabet": DNA_ALPHABET},
            summary="GUE core promoter detection (70 bp, human), MCC",
        ),
        TaskSpec(
            name="gue_splice_reconstructed",
            type="sequence_classification",
            format="csv",
            metrics=_CLASSIFICATION_METRICS,
            options={"text_column": "sequence", "label_column": "label", "alphabet": DNA_ALPHABET},
            summary="GUE splice-site prediction (400 bp, 3 classes), MCC",
        ),
    ),
    sample_dir=Path(__file__).parent / "samples" / "genomic",
    pretrain_defaults={
        "data.seq_len": 256,
        "train.max_steps": 300,
        "train.batch_size": 16,
        "train.lr": 1e-3,
    },
    finetune_defaults={"train.epochs": 3, "train.lr": 3e-4, "train.batch_size": 32, "task.max_length": 128},
)
