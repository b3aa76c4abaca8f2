"""Biomedical domain: the PubMedBERT recipe (Gu et al. 2021).

In-domain uncased WordPiece (30,522 for a real run), a BERT encoder trained from scratch with
masked LM and 15% whole-word masking (80/10/10), benchmarked on BLURB-style NER (entity-level F1)
and PubMedQA (accuracy). The embedded default is a 4-layer, 256-wide encoder with a 4k vocabulary.
"""

from pathlib import Path

from zoo.domain import CorpusSpec, Domain, ModelSpec, ObjectiveSpec, TaskSpec

DOMAIN = Domain(
    name="biomedical",
    summary="PubMedBERT recipe: uncased in-domain WordPiece, BERT encoder, MLM with whole-word masking",
    model=ModelSpec(
        family="bert",
        config={
            "hidden_size": 256,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "intermediate_size": 1024,
            "max_position_embeddings": 512,
        },
    ),
    tokenizers=("biomedical-wordpiece",),
    objective=ObjectiveSpec("mlm", {"mask_prob": 0.15, "whole_word": True}),
    corpus=CorpusSpec("text"),
    tasks=(
        TaskSpec(
            name="ncbi_disease",
            type="token_classification",
            format="iob",
            metrics=("f1", "precision", "recall"),
            summary="NCBI-disease: disease mention NER, IOB2, entity-level F1",
        ),
        TaskSpec(
            name="bc5cdr",
            type="token_classification",
            format="iob",
            metrics=("f1", "precision", "recall"),
            summary="BC5CDR: chemical and disease NER, IOB2, entity-level F1",
        ),
        TaskSpec(
            name="pubmedqa",
            type="sequence_classification",
            format="pubmedqa",
            metrics=("accuracy", "macro_f1"),
            summary="PubMedQA (PQA-L): question + abstract → yes/no/maybe, accuracy",
        ),
    ),
    sample_dir=Path(__file__).parent / "samples" / "biomedical",
    pretrain_defaults={
        "tokenizer.vocab_size": 2000,
        "data.seq_len": 128,
        "train.max_steps": 300,
        "train.batch_size": 16,
        "train.lr": 1e-3,
    },
    finetune_defaults={"train.epochs": 3, "train.lr": 2e-4, "train.batch_size": 16, "task.max_length": 128},
)
