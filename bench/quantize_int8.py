"""fp32 against dynamic int8 (`hf-seq2seq translate --quantize int8`): BLEU and speed on the test split of the grammar
corpus (`--dataset_name builtin:grammar`), whose held-out noun–adjective pairs a model of that corpus translates.

    python train.py --dataset_name builtin:grammar --preset small --max_train_minutes 8 --output_dir outputs/grammar
    python bench/quantize_int8.py --model outputs/grammar

Both versions translate the same sentences (beam 4, batch 32) in alternating rounds (fp32, int8, fp32, ...) after
a warm-up, so that a busy machine slows both alike; the ratio of the medians is reported.
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from hf_seq2seq.cli import load, quantize_int8, translate  # noqa: E402
from hf_seq2seq.corpus import generate_corpus  # noqa: E402
from hf_seq2seq.metrics import load_bleu_chrf  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="outputs/grammar")
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results", "quantize_int8.json"))
    args = parser.parse_args()

    model, tokenizer = load(args.model)
    quantized = quantize_int8(load(args.model)[0])
    pairs = [row["translation"] for row in generate_corpus()["test"]][: args.sentences]
    sources, references = [p["en"] for p in pairs], [p["fr"] for p in pairs]

    outputs, times = {}, {"fp32": [], "int8": []}
    translate(model, tokenizer, sources[:64])  # warm-up
    translate(quantized, tokenizer, sources[:64])
    for _ in range(args.rounds):
        for name, m in (("fp32", model), ("int8", quantized)):
            start = time.perf_counter()
            outputs[name] = translate(m, tokenizer, sources, num_beams=4)
            times[name].append(time.perf_counter() - start)

    metric = load_bleu_chrf()
    result = {
        "model": args.model, "sentences": len(sources), "num_beams": 4, "batch_size": 32,
        "threads": torch.get_num_threads(), "rounds": args.rounds,
    }
    for name in ("fp32", "int8"):
        scores = metric.compute(predictions=outputs[name], references=references)
        result[name] = {"bleu": round(scores["bleu"], 2), "chrf": round(scores["chrf"], 2),
                        "median_seconds": round(statistics.median(times[name]), 2), "seconds": [round(t, 2) for t in times[name]]}
    result["speedup_int8_over_fp32"] = round(result["fp32"]["median_seconds"] / result["int8"]["median_seconds"], 2)
    result["bleu_change"] = round(result["int8"]["bleu"] - result["fp32"]["bleu"], 2)
    result["bleu_signature"] = scores["bleu_signature"]

    print(f"| | BLEU | chrF | seconds ({len(sources)} sentences) |\n|---|---|---|---|")
    for name in ("fp32", "int8"):
        r = result[name]
        print(f"| {name} | {r['bleu']} | {r['chrf']} | {r['median_seconds']} |")
    print(f"int8 speed-up {result['speedup_int8_over_fp32']}x, BLEU change {result['bleu_change']:+}")
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
