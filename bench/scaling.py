"""How cost grows with source length (8 → 512 tokens) and with batch size, for our model and `MarianMTModel` of
the identical configuration (preset small, random weights).

    python bench/scaling.py

Two workloads, each timed in alternating rounds (ours, Marian) after a warm-up, medians:
- training step: forward + backward of a batch whose target is as long as its source (no padding);
- greedy generation of 16 new tokens (end-of-sentence switched off).
Lengths 8, 32, 128, 512 at batch 8; batch sizes 1, 8, 32, 128 at length 32.
"""

import argparse

import torch

from common import interleaved, machine, marian_model, median, our_model, print_table, write_results
from generation import generation_config


def training_step(model, input_ids):
    def step():
        model(input_ids=input_ids, labels=input_ids).loss.backward()
        model.zero_grad(set_to_none=True)

    return step


def greedy(model, input_ids, new_tokens=16):
    config = generation_config(model, 1, new_tokens)

    def run():
        with torch.inference_mode():
            model.generate(input_ids, generation_config=config)

    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    ours = our_model(args.preset, dropout=0.0)
    marian = marian_model(ours.config)
    shapes = [(8, length) for length in (8, 32, 128, 512)] + [(batch, 32) for batch in (1, 32, 128)]
    result = {"machine": machine(), "preset": args.preset, "cells": []}
    rows = []
    for batch, length in shapes:
        # The last position holds </s>; the rest are ordinary tokens. The same ids for both models.
        input_ids = torch.randint(4, ours.config.vocab_size, (batch, length), generator=torch.Generator().manual_seed(0))
        input_ids[:, -1] = ours.config.eos_token_id
        cell = {"batch_size": batch, "source_length": length}
        for workload, make in (("train_step", training_step), ("greedy_16", greedy)):
            for model in (ours, marian):
                model.train(workload == "train_step")
            times = interleaved({"ours": make(ours, input_ids), "marian": make(marian, input_ids)}, rounds=args.rounds)
            cell[workload] = {name: round(median(t), 4) for name, t in times.items()}
            cell[workload]["speedup"] = round(cell[workload]["marian"] / cell[workload]["ours"], 3)
            rows.append([workload, batch, length, f"{cell[workload]['ours'] * 1000:.0f}",
                         f"{cell[workload]['marian'] * 1000:.0f}", f"{cell[workload]['speedup']:.2f}×"])
            print(rows[-1], flush=True)
        result["cells"].append(cell)
    print_table(["workload", "batch", "source length", "ours ms", "Marian ms", "ours / Marian"], rows)
    write_results("scaling", result)


if __name__ == "__main__":
    main()
