"""Micro-F1, macro-F1 and 'any label' F1 for multi-label classification (local `evaluate` module).

LexGLUE's convention (coastalcph/lex-glue, `compute_metrics` of UNFAIR-ToS and ECtHR): binarise the label
sets over the task's label space, then, with `none_class` (default), add one more column that is 1 when an
example has no label, so a correctly predicted empty set counts as a hit (most UNFAIR-ToS sentences are
fair: without it a model predicting nothing would score 0, not near-perfect micro-F1). Micro- and macro-F1
are scikit-learn's `f1_score` over that matrix with `zero_division=0`; macro averages over every column, so
a label never gold nor predicted scores 0, as in LexGLUE. `any_label_f1` is the binary F1 of "has at
least one label" (detection: is the clause unfair at all).

Loaded with `evaluate.load(<path to this file>)`; see `zoo.benchmarks.metrics.load_metric`.
"""

import datasets
import evaluate
import numpy as np
from sklearn.metrics import f1_score
from sklearn.preprocessing import MultiLabelBinarizer

_DESCRIPTION = (
    "Micro-F1, macro-F1 (LexGLUE, with a 'no label' column) and any-label F1 for multi-label tasks."
)

_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted label sets (list[list[str]]), [] for none.
    references: gold label sets (list[list[str]]).
    labels: the label space (list[str]); default: every label seen in predictions or references.
    none_class: add the 'no label' column (default True, as LexGLUE does).
Returns:
    dict of floats: micro_f1, macro_f1, any_label_f1.
"""

_CITATION = """\
@inproceedings{chalkidis-etal-2022-lexglue, title={LexGLUE: A Benchmark Dataset for Legal Language
  Understanding in English}, author={Chalkidis, Ilias and others}, booktitle={ACL}, year={2022}}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MultiLabel(evaluate.Metric):
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

    def _compute(self, predictions, references, labels=None, none_class=True):
        space = (
            list(labels)
            if labels is not None
            else sorted({x for s in (*predictions, *references) for x in s})
        )
        unknown = {x for s in (*predictions, *references) for x in s} - set(space)
        if unknown:
            raise ValueError(f"labels {sorted(unknown)} are not in the label space {space}")
        binarizer = MultiLabelBinarizer(classes=space).fit([space])
        y_true, y_pred = binarizer.transform(references), binarizer.transform(predictions)
        true_any, pred_any = y_true.any(axis=1), y_pred.any(axis=1)
        if none_class:
            y_true = np.column_stack([y_true, ~true_any])
            y_pred = np.column_stack([y_pred, ~pred_any])
        return {
            "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
            "any_label_f1": float(f1_score(true_any, pred_any, zero_division=0)),
        }
