"""Choosing the source-length bound `max_len_a * source_tokens + max_len_b` (fairseq's) by measurement on dev.

1. On the dev references: for each slope a, the smallest b under which every reference translation fits (tokens of
   the reference, </s> included, against tokens of its source, </s> included).
2. For each candidate (a, b): BLEU and time of translating the dev set (beam 4, batch 32) with the bound, against
   the same model with only `max_length` 128; the settings take turns for `--rounds` rounds (order reversed every
   other round) and the median time is reported, so the machine's drift falls on all of them alike.
3. Where the bound matters: sources the model is confused by (the demo model on everyday sentences outside its
   grammar), which it otherwise extends to 128 tokens.

    python bench/length_bound.py --model outputs/tatoeba-small [--confused_model outputs/en-fr] [--rounds 3] \
        [--slopes 1.5] [--bounds 2.0:10]
    -> bench/results/length_bound.json
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer  # noqa: E402

import hf_seq2seq  # noqa: E402,F401
from hf_seq2seq.inference import generate_texts  # noqa: E402
from hf_seq2seq.data import load_file  # noqa: E402
from hf_seq2seq.metrics import load_bleu_chrf  # noqa: E402

DEV = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "tatoeba-en-fr", "dev.tsv")
EVERYDAY = ["The cat sleeps.", "Where is the station?", "I would like a coffee, please.", "It is raining today.",
            "Can you help me?", "What time is it?", "She reads a book in the garden.", "We are going home."]


def timed(translate, texts):
    start = time.perf_counter()
    outputs = translate(texts)
    return outputs, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--confused_model", default=None, help="a model that runs on outside its domain (the demo)")
    parser.add_argument("--slopes", type=float, nargs="+", default=[1.0, 1.2, 1.5, 2.0],
                        help="slopes a, each with the smallest b that fits every dev reference")
    parser.add_argument("--bounds", nargs="*", default=[], metavar="A:B", help="further bounds to measure, as a:b")
    parser.add_argument("--max_sentences", type=int, default=None, help="translate the first N dev sentences")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per setting, interleaved")
    parser.add_argument("--output", default="bench/results/length_bound.json")
    args = parser.parse_args()

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForSeq2SeqLM.from_pretrained(args.model).eval()
    pairs = load_file(DEV, "en", "fr")["translation"]
    # The bound is fitted on every dev reference, the timing done on the first --max_sentences.
    source_lengths = [len(ids) for ids in tokenizer([p["en"] for p in pairs])["input_ids"]]
    reference_lengths = [len(ids) for ids in tokenizer(text_target=[p["fr"] for p in pairs])["input_ids"]]
    needed = {a: max(r - a * s for s, r in zip(source_lengths, reference_lengths)) for a in args.slopes}
    candidates = [(a, float(int(b) + 1)) for a, b in needed.items()]  # the smallest integer b that fits them all
    candidates += [tuple(float(x) for x in bound.split(":")) for bound in args.bounds]
    print("smallest b for every dev reference:", {a: round(b, 1) for a, b in needed.items()}, flush=True)
    pairs = pairs[: args.max_sentences]
    sources, references = [p["en"] for p in pairs], [p["fr"] for p in pairs]

    metric = load_bleu_chrf()
    results = {"model": args.model, "sentences": len(sources), "dev_sentences": len(source_lengths),
               "rounds": args.rounds, "smallest_b": needed, "rows": []}
    bounds = [None, *candidates]
    times, bleus = {b: [] for b in bounds}, {}
    with torch.inference_mode():
        generate_texts(model, tokenizer, sources[:32], num_beams=4)  # warm-up
        for round_ in range(args.rounds):
            for bound in bounds if round_ % 2 == 0 else bounds[::-1]:
                settings = {"max_length": 128, "max_len_a": None if bound is None else bound[0],
                            "max_len_b": None if bound is None else bound[1]}
                outputs, seconds = timed(lambda t: generate_texts(model, tokenizer, t, num_beams=4, batch_size=32, **settings), sources)
                times[bound].append(seconds)
                if bound not in bleus:  # decoding is deterministic: every round gives the same outputs
                    bleus[bound] = metric.compute(predictions=outputs, references=references)["bleu"]
        for bound in bounds:
            row = {"max_len_a": None if bound is None else bound[0], "max_len_b": None if bound is None else bound[1],
                   "seconds": round(statistics.median(times[bound]), 2), "seconds_each_round": [round(t, 2) for t in times[bound]],
                   "seconds_vs_no_bound": round(statistics.median(times[bound]) / statistics.median(times[None]), 3),
                   "bleu": round(bleus[bound], 2)}
            results["rows"].append(row)
            print(json.dumps(row), flush=True)
        if args.confused_model:
            confused = AutoModelForSeq2SeqLM.from_pretrained(args.confused_model).eval()
            confused_tokenizer = AutoTokenizer.from_pretrained(args.confused_model)
            for bound in [None, candidates[len(candidates) // 2]]:
                settings = {"max_length": 128, "max_len_a": None if bound is None else bound[0],
                            "max_len_b": None if bound is None else bound[1]}
                outputs, seconds = timed(lambda t: generate_texts(confused, confused_tokenizer, t, num_beams=4, **settings), EVERYDAY)
                row = {"confused_model": args.confused_model, **settings, "seconds": round(seconds, 2),
                       "mean_output_tokens": round(sum(len(confused_tokenizer(o)["input_ids"]) for o in outputs) / len(outputs), 1),
                       "example": f"{EVERYDAY[0]} -> {outputs[0][:120]}"}
                results["rows"].append(row)
                print(json.dumps(row, ensure_ascii=False), flush=True)
    with open(args.output, "w") as f:
        json.dump(results, f, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
