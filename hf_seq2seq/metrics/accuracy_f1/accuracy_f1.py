"""Accuracy and F1 for classification on integer labels, as an `evaluate` metric for use offline (loaded by path)."""

import datasets
import evaluate

_CITATION = """\
@book{van-rijsbergen-1979,
    title = {Information Retrieval},
    author = {van Rijsbergen, C. J.},
    edition = {2nd},
    publisher = {Butterworths},
    year = {1979},
}
"""

_DESCRIPTION = """\
Accuracy (fraction of predictions equal to their reference) and F1 = 2 TP / (2 TP + FP + FN), both times 100.
With two classes (labels 0 and 1), F1 is that of the positive class, label 1 ("binary"). With more, it is the
unweighted mean of the per-class F1 over the classes that occur in the references or predictions ("macro"), as
scikit-learn's `f1_score(average="macro")`. The number of classes is `num_labels` when given, otherwise inferred:
two when every label is 0 or 1. Pass `num_labels` for a task with more than two classes, so that a batch that happens
to hold only labels 0 and 1 is not scored as binary. A class absent from both references and predictions has F1 0.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of predicted labels (integers from 0).
    references: list of reference labels (integers from 0).
    num_labels: number of classes of the task (optional; see the description).
Returns:
    accuracy, f1: the scores (0-100); f1_average: "binary" or "macro", which F1 was computed.
Examples:
    >>> metric = evaluate.load("path/to/accuracy_f1")
    >>> metric.compute(predictions=[1, 0, 1, 1], references=[1, 0, 0, 1])
    {'accuracy': 75.0, 'f1': 80.0, 'f1_average': 'binary'}
"""


def class_f1(predictions, references, label) -> float:
    """F1 of one class, 2 TP / (2 TP + FP + FN); 0 when the class occurs nowhere (scikit-learn's convention)."""
    true_positives = sum(p == label and r == label for p, r in zip(predictions, references))
    predicted = sum(p == label for p in predictions)  # TP + FP
    actual = sum(r == label for r in references)  # TP + FN
    return 2 * true_positives / (predicted + actual) if predicted + actual else 0.0


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class AccuracyF1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, num_labels=None):
        if not predictions:
            raise ValueError("Accuracy and F1 need at least one prediction; got none.")
        labels = set(predictions) | set(references)
        if min(labels) < 0:
            raise ValueError(f"Labels must be non-negative integers; got {sorted(labels)}.")
        if num_labels is not None and max(labels) >= num_labels:
            raise ValueError(f"Labels must be below num_labels={num_labels}; got {sorted(labels)}.")
        binary = num_labels == 2 if num_labels is not None else labels <= {0, 1}
        if binary:
            f1 = class_f1(predictions, references, 1)
        else:
            f1 = sum(class_f1(predictions, references, label) for label in labels) / len(labels)
        accuracy = sum(p == r for p, r in zip(predictions, references)) / len(predictions)
        return {"accuracy": 100 * accuracy, "f1": 100 * f1, "f1_average": "binary" if binary else "macro"}
