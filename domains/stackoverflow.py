"""StackOverflow domain: the SOBert recipe (Mukherjee & Hellendoorn 2023, arXiv 2306.03268).

A SentencePiece BPE vocabulary (50,048 for a real run) over prose and code together, with byte fallback
and exact whitespace, a BERT encoder trained with masked LM on Stack Overflow posts (SOBert: a post with
its comments, code included, 2,048-token inputs: `data.seq_len`), benchmarked on StackOverflow NER
(entity-level F1, Tabassum et al. 2020) and question quality (HQ vs LQ, accuracy and macro-F1). The corpus
reader takes a Stack Exchange data dump's Posts.xml (streamed) or JSONL/text. The embedded default is a
4-layer, 256-wide encoder with a 4k vocabulary on a generated Posts.xml.
"""

from pathlib import Path

from zoo.domain import CorpusSpec, Domain, ModelSpec, ObjectiveSpec, TaskSpec

DOMAIN = Domain(
    name="stackoverflow",
    summary="SOBert recipe: SentencePiece BPE with byte fallback over prose + code, BERT encoder, MLM on posts",
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
    tokenizers=("stackoverflow-spm-bpe",),
    # SOBert trains Megatron-BERT MLM on subword pieces (no whole-word masking).
    objective=ObjectiveSpec("mlm", {"mask_prob": 0.15, "whole_word": False}),
    corpus=CorpusSpec("stackexchange"),
    tasks=(
        TaskSpec(
            name="so_ner",
            type="token_classification",
            format="iob",
            metrics=("f1", "precision", "recall"),
            # word, NE tag, word, markdown tag; a handful of stray I- tags read as B- (conlleval's rule).
            options={"columns": 4, "token_column": 0, "tag_column": 1, "repair_iob": True},
            summary="StackOverflow NER (Tabassum et al. 2020): code and software entities, entity-level F1",
        ),
        TaskSpec(
            name="so_question_quality_hqlq",
            type="sequence_classification",
            format="zoo.stackexchange:load_questions",
            metrics=("accuracy", "macro_f1"),
            summary="Question quality HQ vs LQ from title + HTML body (code kept), accuracy",
        ),
    ),
    sample_dir=Path(__file__).parent / "samples" / "stackoverflow",
    pretrain_defaults={
        "tokenizer.vocab_size": 4000,
        "data.seq_len": 128,
        "train.max_steps": 250,
        "train.batch_size": 16,
        "train.lr": 1e-3,
    },
    finetune_defaults={"train.epochs": 3, "train.lr": 3e-4, "train.batch_size": 16, "task.max_length": 128},
)
