"""Clinical domain: the Clinical-T5 recipe (Lehman et al., CHIL 2023, arXiv 2302.08091; xyla/Clinical-T5).

A cased SentencePiece unigram vocabulary (32,000 for a real run) with MIMIC de-identification tags kept
atomic ([**Name**] → [NAME], [**2101-10-20**] → [DATE], …; the mapping is in the recipe), a T5
encoder-decoder pretrained with span corruption (noise density 0.15, mean span 3, sentinels) on packed
notes, read from plain text (one note per line) or a MIMIC NOTEEVENTS-style CSV (`TEXT` column; option
`corpus.column`). Benchmarked on public data (MIMIC-derived tasks need credentials): MTSamples specialty
(single-label subset: accuracy, macro-F1; and multi-label per unique note: micro/macro-F1) and MTS-Dialog
section header from the dialogue (20 classes, accuracy; MEDIQA-Chat 2023 Task A). Fine-tuning puts a
classification head on the T5 encoder (`zoo.families_t5`). The embedded default is a 2+2-layer, 128-wide
T5 with a 384-piece vocabulary on generated notes.
"""

from pathlib import Path

from zoo.domain import CorpusSpec, Domain, ModelSpec, ObjectiveSpec, TaskSpec

_MTSAMPLES = {
    "text_column": "transcription",
    "label_column": "medical_specialty",
    "group_column": "dup_group",
}

DOMAIN = Domain(
    name="clinical",
    summary="Clinical-T5 recipe: cased SentencePiece unigram with de-id tokens, T5, span corruption on notes",
    model=ModelSpec(
        family="t5",
        config={
            "hidden_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 512,
            "dropout": 0.1,
        },
    ),
    tokenizers=("clinical-spm-unigram",),
    objective=ObjectiveSpec("span", {"noise_density": 0.15, "mean_span_length": 3.0}),
    corpus=CorpusSpec("zoo.clinical:read_notes", {"column": "TEXT"}),
    tasks=(
        TaskSpec(
            name="mtsamples_specialty",
            type="sequence_classification",
            format="zoo.clinical:load_specialty",
            metrics=("accuracy", "macro_f1"),
            options=_MTSAMPLES,
            summary="MTSamples specialty, single-label subset (umbrella categories dropped): accuracy, macro-F1",
        ),
        TaskSpec(
            name="mtsamples_multilabel",
            type="multi_label_classification",
            format="zoo.clinical:load_specialties",
            metrics=("micro_f1", "macro_f1"),
            options=_MTSAMPLES,
            summary="MTSamples, one example per unique note, all its specialties: micro- and macro-F1",
        ),
        TaskSpec(
            name="mts_dialog_section",
            type="sequence_classification",
            format="csv",
            metrics=("accuracy",),
            options={"text_column": "dialogue", "label_column": "section_header"},
            summary="MTS-Dialog: doctor-patient dialogue → note section header (20 classes), accuracy",
        ),
    ),
    sample_dir=Path(__file__).parent / "samples" / "clinical",
    pretrain_defaults={
        # The generated sample corpus holds about 400 distinct pieces (+ 100 sentinels, 8 placeholders).
        "tokenizer.vocab_size": 384,
        "data.seq_len": 128,
        "train.max_steps": 300,
        "train.batch_size": 16,
        "train.lr": 1e-3,
    },
    finetune_defaults={"train.epochs": 3, "train.lr": 5e-4, "train.batch_size": 16, "task.max_length": 256},
)
