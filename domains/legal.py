"""Legal domain: the Custom Legal-BERT tokenizer (Zheng et al. 2021) and BudgetLongformer (Niklaus &
Giofré 2022, arXiv 2211.17135).

A cased SentencePiece unigram vocabulary fit on legal text (32,000 for a real run), a Longformer encoder
(sliding-window attention, `model.attention_window`, global attention on the first token, up to 4,096
positions) pretrained from scratch with ELECTRA replaced-token detection (`rtd`: a small MLM generator
and the discriminator sharing embeddings; `mlm` is the control), benchmarked on CLAUDETTE unfair
Terms-of-Service clauses (8-type multi-label, LexGLUE UNFAIR-ToS scoring; binary unfair-vs-fair F1, the
CaseHOLD paper's ToS task) and CaseHOLD (5-way multiple choice; data from the authors or LexGLUE, see
`zoo.casehold`). The embedded default is a 2-layer, 128-wide Longformer with 256-token windows of
generated opinions and ToS documents.
"""

from pathlib import Path

from zoo.domain import CorpusSpec, Domain, ModelSpec, ObjectiveSpec, TaskSpec

DOMAIN = Domain(
    name="legal",
    summary="BudgetLongformer recipe: legal SentencePiece unigram, Longformer encoder, ELECTRA replaced-token detection",
    model=ModelSpec(
        family="longformer",
        config={
            "hidden_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 512,
            "attention_window": 64,
            # 4,096 positions after RoBERTa's offset of pad_token_id + 1 (see zoo.longformer).
            "max_position_embeddings": 4098,
            "type_vocab_size": 1,
            # Longformer's own sliding-window attention (transformers has no sdpa path for it).
            "attn_implementation": "eager",
        },
    ),
    tokenizers=("legal-spm-unigram",),
    objective=ObjectiveSpec("rtd", {"mask_prob": 0.15, "generator_size": 0.25, "discriminator_weight": 50.0}),
    corpus=CorpusSpec("text"),
    tasks=(
        TaskSpec(
            name="unfair_tos",
            type="multi_label_classification",
            format="jsonl",
            metrics=("macro_f1", "micro_f1", "any_label_f1"),
            options={
                "labels_column": "labels",
                "label_names": [
                    "Arbitration",
                    "Choice of law",
                    "Content removal",
                    "Contract by using",
                    "Jurisdiction",
                    "Limitation of liability",
                    "Unilateral change",
                    "Unilateral termination",
                ],
            },
            summary="CLAUDETTE ToS sentences → 8 unfair-clause types (LexGLUE UNFAIR-ToS: macro/micro-F1 with 'no label')",
        ),
        TaskSpec(
            name="unfair_tos_binary",
            type="sequence_classification",
            format="jsonl",
            metrics=("f1", "accuracy", "macro_f1"),
            options={"label_column": "unfair"},
            metric_options={"pos_label": "1"},
            summary="CLAUDETTE ToS sentences: unfair vs fair, F1 of the unfair class (CaseHOLD paper's ToS task)",
        ),
        TaskSpec(
            name="casehold",
            type="multiple_choice",
            format="zoo.casehold:load_casehold",
            metrics=("accuracy", "macro_f1"),
            summary="CaseHOLD: citing prompt → the right holding of 5 (public CSV or LexGLUE JSON layout)",
        ),
    ),
    sample_dir=Path(__file__).parent / "samples" / "legal",
    pretrain_defaults={
        "tokenizer.vocab_size": 1000,
        "data.seq_len": 256,
        "train.max_steps": 200,
        "train.batch_size": 8,
        "train.lr": 1e-3,
    },
    finetune_defaults={"train.epochs": 3, "train.lr": 3e-4, "train.batch_size": 16, "task.max_length": 128},
)
