"""Entity-level precision / recall / F1 for IOB2 token classification (local `evaluate` module).

Strict mode (seqeval `mode="strict"`, `scheme=IOB2`): an entity counts only when its type and both
boundaries match exactly, and an I-X that does not continue a B-X/I-X is no entity at all. This is the
conlleval / BLURB convention for NER. Loaded with `evaluate.load(<path to this file>)`; see
`zoo.benchmarks.metrics.load_metric`.

Returns flat floats: `precision`, `recall`, `f1` (micro over entities), `accuracy` (token level),
and per entity type `precision/TYPE`, `recall/TYPE`, `f1/TYPE`, `support/TYPE` (gold entity count).
"""

import datasets
import evaluate
from seqeval.metrics import accuracy_score, classification_report
from seqeval.scheme import IOB2

_CITATION = """\
@misc{seqeval, title={seqeval: A Python framework for sequence labeling evaluation},
  author={Hiroki Nakayama}, year={2018}}
"""

_DESCRIPTION = (
    "Entity-level exact-match precision, recall and F1 (seqeval strict mode, IOB2), overall and per type."
)

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of tag sequences (list[list[str]]), one per sentence.
    references: list of gold tag sequences, same lengths.
Returns:
    dict of floats: precision, recall, f1, accuracy, and precision/TYPE, recall/TYPE, f1/TYPE, support/TYPE.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SeqevalF1(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("string")),
                    "references": datasets.Sequence(datasets.Value("string")),
                }
            ),
        )

    def _compute(self, predictions, references):
        for i, (p, r) in enumerate(zip(predictions, references, strict=True)):
            if len(p) != len(r):
                raise ValueError(f"sentence {i}: {len(p)} predicted tags for {len(r)} gold tags")
        # zero_division=0: no predicted (or gold) entity scores 0 instead of warning and returning nan.
        report = classification_report(
            references, predictions, mode="strict", scheme=IOB2, output_dict=True, zero_division=0
        )
        micro = report["micro avg"]
        out = {
            "precision": float(micro["precision"]),
            "recall": float(micro["recall"]),
            "f1": float(micro["f1-score"]),
            "accuracy": float(accuracy_score(references, predictions)),
        }
        for name, row in report.items():
            if not name.endswith(" avg"):
                out[f"precision/{name}"] = float(row["precision"])
                out[f"recall/{name}"] = float(row["recall"])
                out[f"f1/{name}"] = float(row["f1-score"])
                out[f"support/{name}"] = float(row["support"])
        return out
