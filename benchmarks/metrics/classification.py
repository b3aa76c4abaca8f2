"""Accuracy, macro-F1 and Matthews correlation for single-label classification (local `evaluate` module).

Arithmetic by scikit-learn. MCC is the GUE / DNABERT-2 headline metric; accuracy and macro-F1 are the
BLURB / PubMedQA ones. Loaded with `evaluate.load(<path to this file>)`; see
`zoo.benchmarks.metrics.load_metric`.

Labels are strings (class names such as "yes"/"maybe", or ids written as "0"/"1"), as the task loaders
read them. Returns flat floats: `accuracy`, `macro_f1`, `micro_f1`, `mcc`, and `f1`: with the
scikit-learn `average` when one is given ("binary", "macro", "weighted", ...); otherwise binary F1 of
class `pos_label` when one is given (a detection task: "malicious" URL), or of class "1" when every label
is "0" or "1" (promoter, unfair clause); else absent, because a single "F1" of a multi-class task is
ambiguous (use macro_f1 / micro_f1). Multiple choice uses it with choice indices as labels (CaseHOLD
reports micro-F1, which equals accuracy, and macro-F1).
"""

import datasets
import evaluate
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, roc_auc_score

_DESCRIPTION = "Accuracy, macro-F1, micro-F1 and MCC for single-label classification (scikit-learn)."

_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted labels (list[str]).
    references: gold labels (list[str]).
    average: optional scikit-learn average for `f1` ("binary", "macro", ...); default: binary on 0/1 labels.
    pos_label: positive class for average="binary" (default "1"); giving one implies average="binary".
    scores: optional class scores per example (list[list[float]], columns in the order of `classes`).
    classes: the class names of the score columns.
Returns:
    dict of floats: accuracy, macro_f1, micro_f1, mcc (+ f1) (+ roc_auc when scores are given: of the
    positive class (pos_label, or "1") for two classes, else one-vs-rest macro; absent when a class it
    needs is missing from the references, where ROC-AUC is undefined).
"""

_CITATION = """\
@article{scikit-learn, title={Scikit-learn: Machine Learning in Python}, author={Pedregosa, F. and others},
  journal={Journal of Machine Learning Research}, volume={12}, pages={2825--2830}, year={2011}}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Classification(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, average=None, pos_label=None, scores=None, classes=None):
        out = {
            "accuracy": float(accuracy_score(references, predictions)),
            # zero_division=0: a class never predicted contributes F1 0 (the usual, pessimistic convention).
            "macro_f1": float(f1_score(references, predictions, average="macro", zero_division=0)),
            "micro_f1": float(f1_score(references, predictions, average="micro", zero_division=0)),
            "mcc": float(matthews_corrcoef(references, predictions)),
        }
        if average is None and (pos_label is not None or set(references) | set(predictions) <= {"0", "1"}):
            average = "binary"
        if average == "binary":
            # F1 of the one class pos_label, computed as a one-label "macro" so that it also works when
            # the data has more than two classes (sklearn's average="binary" refuses those). Labels are
            # strings here, so a pos_label given as 1 in a TaskSpec means "1".
            positive = "1" if pos_label is None else str(pos_label)
            out["f1"] = float(
                f1_score(references, predictions, labels=[positive], average="macro", zero_division=0)
            )
        elif average is not None:
            out["f1"] = float(f1_score(references, predictions, average=average, zero_division=0))
        if scores is not None:
            auc = _roc_auc(references, scores, [str(c) for c in classes], pos_label)
            if auc is not None:
                out["roc_auc"] = auc
        return out


def _roc_auc(references, scores, classes, pos_label):
    """ROC-AUC from class scores: binary on the positive class's column, else one-vs-rest macro."""
    present = set(references)
    if len(classes) == 2:
        positive = str(pos_label) if pos_label is not None else "1"
        if positive not in classes or len(present & set(classes)) < 2:
            return None
        column = classes.index(positive)
        return float(roc_auc_score([r == positive for r in references], [s[column] for s in scores]))
    if not set(classes) <= present:
        return None
    return float(roc_auc_score(references, scores, multi_class="ovr", average="macro", labels=classes))
