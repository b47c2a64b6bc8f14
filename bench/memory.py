"""Peak memory of our model and `MarianMTModel` of the identical configuration, each measured in a fresh process.

    python bench/memory.py

Workloads: one training step (forward + backward + AdamW) on the batches of bench/train_throughput.py (64 random
Tatoeba-length pairs), presets small and base; beam-4 generation of 24 tokens for 32 sources of 24 tokens, preset
small. Reported: the process's peak resident memory (VmHWM) during the workload minus its resident memory just
before it (the model built, nothing else done in that process), i.e. activations, gradients, optimizer state and
cache, not the weights or the Python/torch runtime.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch

from common import VOCAB_SIZE, HFSeq2SeqConfig, marian_model, our_model, print_table, tatoeba_lengths, write_results

WORKLOADS = [("train_step", "small"), ("train_step", "base"), ("generate_beam4", "small")]


def peak_mib() -> float:
    """This process's peak resident memory (VmHWM). Not ru_maxrss: Linux carries the forked parent's resident size
    across exec into the child's ru_maxrss, so a child started by a large parent reported the parent's size."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def current_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(workload: str, preset: str, name: str, lengths_file: str) -> float:
    if name == "ours":
        model = our_model(preset)
    else:
        model = marian_model(HFSeq2SeqConfig.from_preset(preset, vocab_size=VOCAB_SIZE))
    if workload == "train_step":
        from train_throughput import make_batches

        with open(lengths_file) as f:
            lengths = [tuple(pair) for pair in json.load(f)]
        batch = make_batches(lengths, 64, 1, model.config.pad_token_id)[0]
        optimizer = torch.optim.AdamW(model.parameters())
        model.train()
        before = current_mib()
        model(**batch).loss.backward()
        optimizer.step()
    else:
        from generation import generation_config

        sources = torch.randint(4, model.config.vocab_size, (32, 24), generator=torch.Generator().manual_seed(0))
        model.eval()
        before = current_mib()
        with torch.inference_mode():
            model.generate(sources, generation_config=generation_config(model, 4, 24))
    return peak_mib() - before


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        workload, preset = sys.argv[2].split(",")
        print(json.dumps(measure(workload, preset, sys.argv[3], sys.argv[4])))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()
    lengths_file = os.path.join(tempfile.mkdtemp(), "lengths.json")
    with open(lengths_file, "w") as f:
        json.dump(tatoeba_lengths(), f)
    result, rows = {"cells": []}, []
    for workload, preset in WORKLOADS:
        cell = {"workload": workload, "preset": preset}
        for name in ("ours", "marian"):
            child = subprocess.run([sys.executable, __file__, "--child", f"{workload},{preset}", name, lengths_file],
                                   capture_output=True, text=True, check=True)
            cell[name + "_mib"] = round(json.loads(child.stdout.strip().splitlines()[-1]), 1)
        cell["ratio"] = round(cell["ours_mib"] / cell["marian_mib"], 3)
        result["cells"].append(cell)
        rows.append([workload, preset, cell["ours_mib"], cell["marian_mib"], f"{cell['ratio']:.2f}"])
        print(rows[-1], flush=True)
    print_table(["workload", "preset", "ours MiB", "Marian MiB", "ours / Marian"], rows)
    write_results("memory", result)


if __name__ == "__main__":
    main()
