"""Translation metrics as local `evaluate` modules (loaded by path: `evaluate.load("sacrebleu")` needs the Hub)."""

import os

import evaluate

BLEU_CHRF_PATH = os.path.join(os.path.dirname(__file__), "sacrebleu_bleu_chrf")


def load_bleu_chrf() -> evaluate.EvaluationModule:
    """sacreBLEU's corpus BLEU and chrF, with their signatures, as an `evaluate` module."""
    return evaluate.load(BLEU_CHRF_PATH)
