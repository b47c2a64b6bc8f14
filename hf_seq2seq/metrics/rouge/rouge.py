"""ROUGE-1, ROUGE-2, ROUGE-L and ROUGE-Lsum through Google's `rouge_score`, as an `evaluate` metric for use offline."""

import re

import datasets
import evaluate
from rouge_score import rouge_scorer

_CITATION = """\
@inproceedings{lin-2004-rouge,
    title = "{ROUGE}: A Package for Automatic Evaluation of Summaries",
    author = "Lin, Chin-Yew",
    booktitle = "Text Summarization Branches Out",
    year = "2004",
    pages = "74--81",
}
"""

_DESCRIPTION = """\
ROUGE (Lin, 2004) computed by Google's `rouge_score` package (the implementation `evaluate`'s own "rouge" wraps)
with `use_stemmer=True` (Porter stemmer) and its default tokenizer (lower case, non-alphanumeric characters
removed). Each score is the mean over predictions of the F-measure, times 100, as `run_summarization.py` reports it.

ROUGE-Lsum scores summaries sentence by sentence, so it needs one sentence per line. `run_summarization.py` splits
them with nltk's punkt, whose data cannot be downloaded offline; instead, a text without newlines is split after
every ".", "!" or "?" that is followed by white space (so "Dr. Smith" becomes two sentences). A text that already
contains newlines is taken as split. The split is applied to predictions and references; it changes ROUGE-Lsum only.

With several references for a prediction, each ROUGE type takes the reference with the best F-measure for that type
(`RougeScorer.score_multi`, as `evaluate`'s "rouge" does).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of generated summaries.
    references: for each prediction, its reference summary (a string) or its reference summaries (a list of strings).
Returns:
    rouge1, rouge2, rougeL, rougeLsum: mean F-measure (0-100).
Examples:
    >>> metric = evaluate.load("path/to/rouge")
    >>> metric.compute(predictions=["the cat sat on the mat"], references=["the cat sat on the mat"])["rouge1"]
    100.0
"""

ROUGE_TYPES = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def split_sentences(text: str) -> str:
    """One sentence per line, for ROUGE-Lsum: split after . ! ? followed by white space, unless `text` has newlines."""
    if "\n" in text:
        return text
    return "\n".join(_SENTENCE_END.split(text.strip()))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Rouge(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            homepage="https://github.com/google-research/google-research/tree/master/rouge",
            features=[
                datasets.Features(
                    {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
                ),
                datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
            ],
        )

    def _compute(self, predictions, references):
        if not predictions:
            raise ValueError("ROUGE needs at least one prediction; got none.")
        scorer = rouge_scorer.RougeScorer(ROUGE_TYPES, use_stemmer=True)
        totals = dict.fromkeys(ROUGE_TYPES, 0.0)
        for index, (prediction, reference) in enumerate(zip(predictions, references)):
            prediction = split_sentences(prediction)
            if isinstance(reference, str):
                scores = scorer.score(split_sentences(reference), prediction)
            elif reference:
                scores = scorer.score_multi([split_sentences(text) for text in reference], prediction)
            else:
                raise ValueError(f"Prediction {index} has an empty list of references.")
            for rouge_type in ROUGE_TYPES:
                totals[rouge_type] += scores[rouge_type].fmeasure
        return {rouge_type: 100 * total / len(predictions) for rouge_type, total in totals.items()}
