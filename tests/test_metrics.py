"""The local ROUGE, SQuAD and accuracy/F1 metrics: hand-computed scores, agreement with `rouge_score`, clear errors."""

import pytest
from rouge_score import rouge_scorer

from hf_seq2seq.metrics import load_accuracy_f1, load_rouge, load_squad

ROUGE_TYPES = ["rouge1", "rouge2", "rougeL", "rougeLsum"]


@pytest.fixture(scope="module")
def rouge():
    return load_rouge()


@pytest.fixture(scope="module")
def squad():
    return load_squad()


@pytest.fixture(scope="module")
def accuracy_f1():
    return load_accuracy_f1()


def test_rouge_equals_rouge_score_mean_f_measure(rouge):
    """Mean F-measure x100 of `RougeScorer(use_stemmer=True)`; ROUGE-Lsum on the texts split after . ! ? by hand."""
    predictions = [
        "The cats were running in the park. They looked happy!",
        "A storm hit the coast on Monday.",
        "Prices rose sharply. Analysts expect more increases? Markets fell.",
    ]
    references = [
        "A cat runs through the park. The cats seemed happy.",
        "On Monday a violent storm hit the northern coast.",
        "Markets fell as prices rose sharply.\nAnalysts expect further increases.",  # already split: kept as is
    ]
    split_predictions = [
        "The cats were running in the park.\nThey looked happy!",
        "A storm hit the coast on Monday.",
        "Prices rose sharply.\nAnalysts expect more increases?\nMarkets fell.",
    ]
    split_references = ["A cat runs through the park.\nThe cats seemed happy.", references[1], references[2]]
    scorer = rouge_scorer.RougeScorer(ROUGE_TYPES, use_stemmer=True)
    expected = dict.fromkeys(ROUGE_TYPES, 0.0)
    for prediction, reference, split_prediction, split_reference in zip(
        predictions, references, split_predictions, split_references
    ):
        for rouge_type in ("rouge1", "rouge2", "rougeL"):
            expected[rouge_type] += scorer.score(reference, prediction)[rouge_type].fmeasure * 100 / 3
        expected["rougeLsum"] += scorer.score(split_reference, split_prediction)["rougeLsum"].fmeasure * 100 / 3
    scores = rouge.compute(predictions=predictions, references=references)
    assert scores == pytest.approx(expected)
    assert scores["rougeLsum"] != pytest.approx(scores["rougeL"])  # the split changed ROUGE-Lsum


def test_rouge_hand_checked_scores(rouge):
    """Identical -> 100, disjoint -> 0, stemming, a ROUGE-1 F by hand, and ROUGE-Lsum scoring sentence by sentence."""
    assert set(rouge.compute(predictions=["the cat sat"], references=["the cat sat"]).values()) == {100.0}
    assert set(rouge.compute(predictions=["alpha beta"], references=["gamma delta"]).values()) == {0.0}
    # Porter stemmer: cats -> cat, running and runs -> run.
    assert rouge.compute(predictions=["cats running"], references=["cat runs"])["rouge1"] == pytest.approx(100)
    # 3 unigrams in common; precision 3/3, recall 3/6: F = 2 * 1 * 0.5 / 1.5 = 2/3.
    scores = rouge.compute(predictions=["the cat sat"], references=["the cat sat on the mat"])
    assert scores["rouge1"] == pytest.approx(200 / 3)
    # Same sentences in the other order: the longest common subsequence over the whole text is "the cat sat" (3 of 6
    # tokens: F 0.5), but sentence by sentence every reference sentence is matched (F 1).
    scores = rouge.compute(predictions=["The cat sat. The dog ran."], references=["The dog ran. The cat sat."])
    assert scores["rougeL"] == pytest.approx(50) and scores["rougeLsum"] == pytest.approx(100)


def test_rouge_takes_the_best_reference_per_rouge_type(rouge):
    """Several references: per prediction and ROUGE type, the best F-measure (`RougeScorer.score_multi`)."""
    predictions = ["the cat sat on the mat", "the cat sat"]
    references = [["a dog barked", "the cat sat on the mat"], ["the cat", "a cat sat down on a mat"]]
    scorer = rouge_scorer.RougeScorer(ROUGE_TYPES, use_stemmer=True)
    scores = rouge.compute(predictions=predictions, references=references)
    for rouge_type in ROUGE_TYPES:
        best = [
            max(scorer.score(ref, pred)[rouge_type].fmeasure for ref in refs)
            for pred, refs in zip(predictions, references)
        ]
        assert scores[rouge_type] == pytest.approx(50 * sum(best)), rouge_type
    # Second prediction, ROUGE-1: "the cat" gives F = 2 * (2/3 * 1) / (2/3 + 1) = 0.8 (the other 2 * (2/3 * 2/7) /
    # (2/3 + 2/7) = 0.4): mean (1 + 0.8) / 2.
    assert scores["rouge1"] == pytest.approx(90)


def test_rouge_rejects_bad_input(rouge):
    """An empty reference list and predictions and references of different lengths are named."""
    with pytest.raises(ValueError, match="Prediction 1 has an empty list of references"):
        rouge.compute(predictions=["a b", "c d"], references=[["a b"], []])
    with pytest.raises(ValueError, match=r"Mismatch in the number of predictions \(2\) and references \(1\)"):
        rouge.compute(predictions=["a b", "c d"], references=["a b"])


def test_squad_normalisation(squad):
    """Case, punctuation, articles and white space are ignored; "the" inside a word is not an article."""
    perfect, zero = {"exact_match": 100.0, "f1": 100.0}, {"exact_match": 0.0, "f1": 0.0}
    assert squad.compute(predictions=["The Eiffel Tower!"], references=[["eiffel tower"]]) == perfect
    assert squad.compute(predictions=["  an   apple, "], references=[["Apple"]]) == perfect
    assert squad.compute(predictions=["theatre"], references=[["atre"]]) == zero


def test_squad_partial_overlap_best_reference_and_average(squad):
    """F1 of a partial overlap by hand, the best of several references, and the mean over questions."""
    # "big red barn" vs "red barn in ohio": 2 tokens in common, precision 2/3, recall 2/4: F1 = 4/7.
    partial = squad.compute(predictions=["the big red barn"], references=[["a red barn in Ohio"]])
    assert partial == {"exact_match": 0.0, "f1": pytest.approx(400 / 7)}
    # "in paris france" vs "paris": F1 2 * (1/3 * 1) / (1/3 + 1) = 0.5;
    # vs "france europe": 2 * (1/3 * 1/2) / (1/3 + 1/2) = 0.4.
    best = squad.compute(predictions=["in Paris, France"], references=[["France, Europe", "Paris"]])
    assert best == {"exact_match": 0.0, "f1": pytest.approx(50)}
    exact = squad.compute(predictions=["Denver Broncos"], references=[["Broncos", "the Denver Broncos", "Carolina"]])
    assert exact == {"exact_match": 100.0, "f1": 100.0}
    everything = squad.compute(
        predictions=["Denver Broncos", "the big red barn", "in Paris, France"],
        references=[
            ["Broncos", "the Denver Broncos", "Carolina"], ["a red barn in Ohio"], ["France, Europe", "Paris"]
        ],
    )
    assert everything == {"exact_match": pytest.approx(100 / 3), "f1": pytest.approx((100 + 400 / 7 + 50) / 3)}


def test_squad_rejects_an_empty_answer_list(squad):
    """A question without reference answers is named."""
    with pytest.raises(ValueError, match="Prediction 0 has an empty list of reference answers"):
        squad.compute(predictions=["Paris"], references=[[]])


def test_accuracy_binary_f1(accuracy_f1):
    """Two classes: F1 of label 1 from a hand-made confusion matrix."""
    # TP 2 (positions 0, 1), FP 2 (2, 3), FN 1 (4), TN 3: accuracy 5/8, F1 = 2*2 / (2*2 + 2 + 1) = 4/7.
    predictions = [1, 1, 1, 1, 0, 0, 0, 0]
    references = [1, 1, 0, 0, 1, 0, 0, 0]
    scores = accuracy_f1.compute(predictions=predictions, references=references)
    assert scores == {"accuracy": 62.5, "f1": pytest.approx(400 / 7), "f1_average": "binary"}
    # The same labels as a 3-class task: macro F1 over labels 0 (2*3 / (2*3 + 1 + 2) = 2/3) and 1 (4/7).
    scores = accuracy_f1.compute(predictions=predictions, references=references, num_labels=3)
    assert scores == {"accuracy": 62.5, "f1": pytest.approx(50 * (2 / 3 + 4 / 7)), "f1_average": "macro"}


def test_accuracy_macro_f1_for_three_classes(accuracy_f1):
    """Three classes: macro F1 from a hand-made confusion matrix."""
    # Confusion matrix (rows: reference, columns: prediction):
    #   0: [3, 1, 0]   F1 = 2*3 / (4 predicted + 4 actual) = 0.75
    #   1: [1, 2, 0]   F1 = 2*2 / (5 predicted + 3 actual) = 0.5
    #   2: [0, 2, 1]   F1 = 2*1 / (1 predicted + 3 actual) = 0.5
    # Accuracy 6/10; macro F1 (0.75 + 0.5 + 0.5) / 3.
    predictions = [0, 0, 0, 1, 1, 1, 0, 2, 1, 1]
    references = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    scores = accuracy_f1.compute(predictions=predictions, references=references)
    assert scores == {"accuracy": 60.0, "f1": pytest.approx(175 / 3), "f1_average": "macro"}


def test_accuracy_f1_rejects_bad_labels(accuracy_f1):
    """Negative labels, labels beyond num_labels and no predictions at all are named."""
    with pytest.raises(ValueError, match="non-negative"):
        accuracy_f1.compute(predictions=[-1, 0], references=[0, 0])
    with pytest.raises(ValueError, match="below num_labels=2"):
        accuracy_f1.compute(predictions=[2, 0], references=[0, 1], num_labels=2)
    with pytest.raises(ValueError, match="at least one prediction"):
        accuracy_f1.compute(predictions=[], references=[])
