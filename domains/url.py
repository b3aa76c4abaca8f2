"""URL domain: the URLBERT recipe (Li et al. 2024, arXiv 2402.11495; Davidup1/URLBERT).

A 5,000-entry BPE over URLs with a URL-aware pre-tokenizer (delimiters kept as tokens, percent-escapes
and punycode prefixes whole), a BERT encoder pretrained with the `urlbert` objective (MLM + sentence-level
contrastive learning + token-level virtual adversarial training, each term weighted and switchable off),
benchmarked on phishing-URL detection: PhishCrawl (F1 of the malicious class, accuracy, ROC-AUC) and
PhiUSIIL (a sanity task: its legitimate URLs are all bare homepages). The embedded default is a 4-layer,
128-wide encoder with a 2k vocabulary on generated URLs (URLs are short: 64-token blocks).
"""

from pathlib import Path

from zoo.domain import CorpusSpec, Domain, ModelSpec, ObjectiveSpec, TaskSpec

_DETECTION_METRICS = ("f1", "accuracy", "roc_auc")

DOMAIN = Domain(
    name="url",
    summary="URLBERT recipe: URL-aware BPE, BERT encoder, MLM + contrastive + virtual adversarial training",
    model=ModelSpec(
        family="bert",
        config={
            "hidden_size": 128,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "intermediate_size": 512,
            "max_position_embeddings": 512,
        },
    ),
    tokenizers=("url-bpe",),
    objective=ObjectiveSpec(
        "urlbert", {"mask_prob": 0.15, "mlm_weight": 1.0, "contrastive_weight": 1.0, "vat_weight": 1.0}
    ),
    corpus=CorpusSpec("urls"),
    tasks=(
        TaskSpec(
            name="phishcrawl",
            type="sequence_classification",
            format="zoo.urls:load_url_csv",
            metrics=_DETECTION_METRICS,
            metric_options={"pos_label": "malicious"},
            summary="PhishCrawl: legit vs malicious URL, F1 of the malicious class, accuracy, ROC-AUC",
        ),
        TaskSpec(
            name="phiusiil",
            type="sequence_classification",
            format="zoo.urls:load_url_csv",
            metrics=_DETECTION_METRICS,
            metric_options={"pos_label": "phishing"},
            summary="PhiUSIIL (sanity task, URL form nearly separates it): F1 of phishing, accuracy, ROC-AUC",
        ),
    ),
    sample_dir=Path(__file__).parent / "samples" / "url",
    pretrain_defaults={
        "tokenizer.vocab_size": 2000,
        "data.seq_len": 64,
        "train.max_steps": 300,
        "train.batch_size": 16,
        "train.lr": 1e-3,
    },
    finetune_defaults={"train.epochs": 3, "train.lr": 3e-4, "train.batch_size": 32, "task.max_length": 64},
)
