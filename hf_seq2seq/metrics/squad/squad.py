"""SQuAD v1.1 exact match and F1, as an `evaluate` metric for use offline (loaded by path)."""

import collections
import re
import string

import datasets
import evaluate

_CITATION = """\
@inproceedings{rajpurkar-etal-2016-squad,
    title = "{SQ}u{AD}: 100,000+ Questions for Machine Comprehension of Text",
    author = "Rajpurkar, Pranav and Zhang, Jian and Lopyrev, Konstantin and Liang, Percy",
    booktitle = "Proceedings of the 2016 Conference on Empirical Methods in Natural Language Processing",
    year = "2016",
    pages = "2383--2392",
}
"""

_DESCRIPTION = """\
Exact match and token F1 of the official SQuAD v1.1 evaluation script (evaluate-v1.1.py). Answers are normalised
as that script does: lower case, remove punctuation, remove the articles "a", "an" and "the", collapse white space.
Each prediction gets the best score over its reference answers; the scores are averaged over questions, times 100.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of predicted answers (strings).
    references: for each prediction, the list of its reference answers (strings).
Returns:
    exact_match, f1: the scores (0-100).
Examples:
    >>> metric = evaluate.load("path/to/squad")
    >>> metric.compute(predictions=["The Eiffel Tower!"], references=[["eiffel tower"]])
    {'exact_match': 100.0, 'f1': 100.0}
"""

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, remove punctuation, remove articles, collapse white space (in that order, as evaluate-v1.1.py)."""
    text = "".join(char for char in text.lower() if char not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match_score(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


def f1_score(prediction: str, reference: str) -> float:
    prediction_tokens = normalize_answer(prediction).split()
    reference_tokens = normalize_answer(reference).split()
    num_same = sum((collections.Counter(prediction_tokens) & collections.Counter(reference_tokens)).values())
    if num_same == 0:  # also when either side is empty after normalisation, as in v1.1
        return 0.0
    precision = num_same / len(prediction_tokens)
    recall = num_same / len(reference_tokens)
    return 2 * precision * recall / (precision + recall)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Squad(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            homepage="https://rajpurkar.github.io/SQuAD-explorer/",
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
            ),
        )

    def _compute(self, predictions, references):
        if not predictions:
            raise ValueError("SQuAD needs at least one prediction; got none.")
        exact_match = f1 = 0.0
        for index, (prediction, answers) in enumerate(zip(predictions, references)):
            if not answers:
                raise ValueError(f"Prediction {index} has an empty list of reference answers.")
            exact_match += max(exact_match_score(prediction, answer) for answer in answers)
            f1 += max(f1_score(prediction, answer) for answer in answers)
        return {"exact_match": 100 * exact_match / len(predictions), "f1": 100 * f1 / len(predictions)}
