"""sacreBLEU corpus BLEU and chrF as one `evaluate` metric, for use offline (loaded by path)."""

import datasets
import evaluate
import sacrebleu

_CITATION = """\
@inproceedings{post-2018-call,
    title = "A Call for Clarity in Reporting {BLEU} Scores",
    author = "Post, Matt",
    booktitle = "Proceedings of the Third Conference on Machine Translation: Research Papers",
    year = "2018",
    pages = "186--191",
}
"""

_DESCRIPTION = """\
Corpus-level BLEU (Papineni et al., 2002) and chrF (Popović, 2015) computed by sacreBLEU with its default
settings (13a tokenization, exponential smoothing; chrF with character 6-grams, beta 2), so the scores are
comparable with published sacreBLEU figures. The signatures say exactly which settings were used.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of detokenized system outputs.
    references: list of references for each prediction (a string, or a list of strings, one per reference set).
Returns:
    bleu, chrf: the scores (0-100); bleu_signature, chrf_signature; precisions, brevity_penalty, sys_len, ref_len.
Examples:
    >>> metric = evaluate.load("path/to/sacrebleu_bleu_chrf")
    >>> metric.compute(predictions=["le chat est là"], references=[["le chat est là"]])["bleu"]
    100.00000000000004
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SacrebleuBleuChrf(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            homepage="https://github.com/mjpost/sacrebleu",
            features=[
                datasets.Features(
                    {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
                ),
                datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
            ],
        )

    def _compute(self, predictions, references):
        if references and isinstance(references[0], str):
            references = [[reference] for reference in references]
        if len({len(refs) for refs in references}) > 1:
            raise ValueError("Every prediction needs the same number of references.")
        reference_sets = [list(refs) for refs in zip(*references)]  # sacreBLEU takes one list per reference set
        bleu, chrf = sacrebleu.metrics.BLEU(), sacrebleu.metrics.CHRF()
        bleu_score = bleu.corpus_score(predictions, reference_sets)
        chrf_score = chrf.corpus_score(predictions, reference_sets)
        return {
            "bleu": bleu_score.score,
            "chrf": chrf_score.score,
            "bleu_signature": str(bleu.get_signature()),
            "chrf_signature": str(chrf.get_signature()),
            "precisions": bleu_score.precisions,
            "brevity_penalty": bleu_score.bp,
            "sys_len": bleu_score.sys_len,
            "ref_len": bleu_score.ref_len,
        }
