"""Metrics as local `evaluate` modules (loaded by path: `evaluate.load("sacrebleu")` and the like need the Hub)."""

import os

import evaluate

METRICS_DIR = os.path.dirname(__file__)
BLEU_CHRF_PATH = os.path.join(METRICS_DIR, "sacrebleu_bleu_chrf")
ROUGE_PATH = os.path.join(METRICS_DIR, "rouge")
SQUAD_PATH = os.path.join(METRICS_DIR, "squad")
ACCURACY_F1_PATH = os.path.join(METRICS_DIR, "accuracy_f1")


def load_bleu_chrf() -> evaluate.EvaluationModule:
    """sacreBLEU's corpus BLEU and chrF, with their signatures, as an `evaluate` module."""
    return evaluate.load(BLEU_CHRF_PATH)


def load_rouge() -> evaluate.EvaluationModule:
    """ROUGE-1/2/L/Lsum mean F-measure (`rouge_score`, stemmed), as an `evaluate` module."""
    return evaluate.load(ROUGE_PATH)


def load_squad() -> evaluate.EvaluationModule:
    """SQuAD v1.1 exact match and F1, as an `evaluate` module."""
    return evaluate.load(SQUAD_PATH)


def load_accuracy_f1() -> evaluate.EvaluationModule:
    """Classification accuracy and F1 (binary for two classes, macro for more), as an `evaluate` module."""
    return evaluate.load(ACCURACY_F1_PATH)
