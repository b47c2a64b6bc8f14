"""ONNX Runtime against generate() and CTranslate2 on the same weights: the same translations? how fast? at what BLEU?

    python train.py                                   # the demo translator, outputs/en-fr (or any train.py output)
    python bench/onnx_compare.py --model outputs/en-fr

Every engine runs the user's path end to end (tokenize, decode, detokenize): `generate()` (PyTorch, sdpa attention),
ONNX Runtime float32 and int8 through `hf-seq2seq ... --engine onnxruntime` (generate() over the exported encoder
and merged decoder, hf_seq2seq/export_onnx.py), and CTranslate2 float32 and int8 (`--engine ctranslate2`). Beam 4 in
batches of 32 on the whole Tatoeba dev set, and greedy one sentence at a time on every 16th dev sentence, with the
model's generation config otherwise. The engines take turns chunk by chunk (`--chunk` sentences each, after a
warm-up), so that a slower or faster spell of the machine falls on all of them; each engine's seconds are the sum over
chunks. The dev set is sorted by length, so the first and the last chunk also show how the ratios move with sentence
length. Every engine gets as many threads as torch (ONNX Runtime without spinning, its engine's default:
`hf_seq2seq.export_onnx.default_session_options`; `--ort_spinning` measures ONNX Runtime's own default). BLEU and
chrF by sacreBLEU against the dev references; "same as" compares the output texts sentence by sentence.
"""

import argparse
import os
import time

import sacrebleu
import torch

from common import SHARED_DATA, machine, print_table, write_results
from hf_seq2seq.cli import load
from hf_seq2seq.export_ctranslate2 import ctranslate2_translator, translate_with_ctranslate2
from hf_seq2seq.export_onnx import onnxruntime_model
from hf_seq2seq.inference import generate_texts


def dev_pairs(every: int = 1) -> tuple[list[str], list[str]]:
    """Every `every`-th pair of Tatoeba dev (which is sorted by length)."""
    with open(os.path.join(SHARED_DATA, "tatoeba-en-fr", "dev.tsv"), encoding="utf-8") as f:
        pairs = [line.rstrip("\n").split("\t")[:2] for line in f][::every]
    return [en for en, _ in pairs], [fr for _, fr in pairs]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="outputs/en-fr")
    parser.add_argument("--every", type=int, default=1, help="beam 4, batches of 32: every n-th dev sentence (1: all)")
    parser.add_argument("--every_batch1", type=int, default=16, help="greedy, one at a time: every n-th dev sentence")
    parser.add_argument("--chunk", type=int, default=512, help="sentences an engine translates before the next one's "
                        "turn (a quarter of it at batch 1)")
    parser.add_argument("--ort_spinning", action="store_true", help="ONNX Runtime's workers spin between calls")
    args = parser.parse_args()

    import onnxruntime

    from hf_seq2seq.export_onnx import default_session_options

    threads = torch.get_num_threads()
    options = default_session_options()
    if args.ort_spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    model, tokenizer = load(args.model)
    ort = {"fp32": onnxruntime_model(args.model, session_options=options),
           "int8": onnxruntime_model(args.model, quantized=True, session_options=options)}
    ct2 = {"fp32": ctranslate2_translator(args.model, intra_threads=threads),
           "int8": ctranslate2_translator(args.model, intra_threads=threads, compute_type="int8")}

    def with_generate(engine):
        return lambda texts, beams, batch: generate_texts(engine, tokenizer, texts, num_beams=beams, batch_size=batch)

    def with_ct2(translator):
        return lambda texts, beams, batch: translate_with_ctranslate2(args.model, texts, num_beams=beams,
                                                                      batch_size=batch, translator=translator)

    engines = {"generate()": with_generate(model), "ORT fp32": with_generate(ort["fp32"]),
               "ORT int8": with_generate(ort["int8"]), "CT2 fp32": with_ct2(ct2["fp32"]), "CT2 int8": with_ct2(ct2["int8"])}
    result = {"machine": machine() | {"onnxruntime": onnxruntime.__version__}, "model": args.model, "cells": []}
    rows = []
    for beams, batch, every, chunk_size in ((4, 32, args.every, args.chunk), (1, 1, args.every_batch1, args.chunk // 4)):
        sources, references = dev_pairs(every)
        for translate in engines.values():  # warm-up
            translate(sources[:batch * 2], beams, batch)
        outputs, chunk_seconds = {name: [] for name in engines}, {name: [] for name in engines}
        for start in range(0, len(sources), chunk_size):
            chunk = sources[start : start + chunk_size]
            for name, translate in engines.items():
                began = time.perf_counter()
                outputs[name] += translate(chunk, beams, batch)
                chunk_seconds[name].append(time.perf_counter() - began)
            print(f"beam {beams} batch {batch}: {start + len(chunk)}/{len(sources)}", flush=True)
        same_as = {"ORT fp32": "generate()", "ORT int8": "ORT fp32", "CT2 fp32": "generate()", "CT2 int8": "CT2 fp32"}
        cell = {"num_beams": beams, "batch_size": batch, "sentences": len(sources), "engines": {}}
        seconds = {name: sum(times) for name, times in chunk_seconds.items()}
        for name in engines:
            entry = {"seconds": round(seconds[name], 2), "sentences_per_second": round(len(sources) / seconds[name], 2),
                     "speed_over_generate": round(seconds["generate()"] / seconds[name], 2),
                     "speed_over_generate_first_chunk": round(chunk_seconds["generate()"][0] / chunk_seconds[name][0], 2),
                     "speed_over_generate_last_chunk": round(chunk_seconds["generate()"][-1] / chunk_seconds[name][-1], 2),
                     "bleu": round(sacrebleu.corpus_bleu(outputs[name], [references]).score, 2),
                     "chrf": round(sacrebleu.corpus_chrf(outputs[name], [references]).score, 2)}
            if name in same_as:
                other = outputs[same_as[name]]
                entry[f"same_as_{same_as[name]}"] = round(sum(a == b for a, b in zip(outputs[name], other)) / len(other), 4)
            cell["engines"][name] = entry
            same = f"{entry[f'same_as_{same_as[name]}']:.1%} as {same_as[name]}" if name in same_as else "—"
            rows.append([f"beam {beams}, batch {batch}", len(sources), name, f"{entry['sentences_per_second']:.1f}",
                         f"{entry['speed_over_generate']:.2f}×", f"{entry['speed_over_generate_first_chunk']:.2f}× / "
                         f"{entry['speed_over_generate_last_chunk']:.2f}×", f"{entry['bleu']:.2f}", f"{entry['chrf']:.2f}", same])
        result["cells"].append(cell)
    print_table(["decoding", "sentences", "engine", "sentences/s", "speed / generate()", "shortest / longest chunk",
                 "BLEU", "chrF", "same text"], rows)
    result["ort_spinning"] = args.ort_spinning
    write_results("onnx_compare_spinning" if args.ort_spinning else "onnx_compare", result)


if __name__ == "__main__":
    main()
