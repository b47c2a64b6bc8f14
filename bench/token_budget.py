"""Token-budget batching against sentence batches on Tatoeba, interleaved in one run.

    python bench/token_budget.py                      # budget 8192 padded source + target tokens, a few minutes
    python bench/token_budget.py --max_tokens 4096
    python bench/token_budget.py --quick              # smoke test: 3,000 pairs, budget 1024, one round

The whole Tatoeba train split (150,535 pairs; token counts with an 8,000-token BPE, see common.tatoeba_lengths) cut
into one epoch of batches three ways: (a) `TokenBudgetBatchSampler` at `--max_tokens` padded source + target tokens;
(b) train.py's default `group_by_length`: transformers' `LengthGroupedSampler` on the source lengths (the main
input, as the Trainer gives it) with as many pairs per batch as (a) averages, so both make about as many batches;
(c) random batches of that size (transformers' `RandomSampler`).

- Padding: of the padded tokens (pairs × (longest source + longest target), what `DataCollatorForSeq2Seq` builds),
  the share that is padding; the number of batches, pairs and padded tokens per batch.
- Training tokens/s, (a) against (b): the `small` preset, one forward + backward + AdamW step per batch, on
  `--steps_per_round` batches of each epoch (those at evenly spaced quantiles of the batches' non-pad token counts,
  random token ids), `--rounds` interleaved rounds after a warm-up round, medians. Tokens/s counts non-pad source
  + target tokens.
- Peak memory: one training step on a batch made only of the 10% shortest pairs (by source + target length), and one
  of the 10% longest, each cut (a) by the budget and (b) into batches of (a)'s average number of pairs; of each
  cut, the batch of median padded size. Each of the four in a fresh process, as bench/memory.py does: growth of
  the process's peak resident memory over the step, here after a warm-up step on one tiny pair, so that it counts
  activations and gradients, not AdamW's state nor what the first step loads.

Floors, printed yes/no: (a) pads less than (b); under (a) long-only memory is within 10% of short-only, while under
(b) it grows by more than 10%.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

from common import RESULTS, ROOT, interleaved, machine, median, our_model, print_table, tatoeba_lengths
from memory import current_mib
from train_throughput import train_step_fn

EXTREMES = 0.1  # share of the pairs in the short-only and long-only sets


def epochs(src, tgt, max_tokens: int, seed: int = 0) -> tuple[dict[str, list[np.ndarray]], int]:
    """One epoch of batches (arrays of pair indices) per strategy, and the pairs per sentence batch."""
    # Imported here, not at the top: the memory children need neither the Trainer nor the samplers.
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from hf_seq2seq.batching import TokenBudgetBatchSampler

    budget = [np.array(b) for b in TokenBudgetBatchSampler(src, tgt, max_tokens, seed=seed)]
    size = round(len(src) / len(budget))
    grouped = list(LengthGroupedSampler(size, lengths=src.tolist(), generator=torch.Generator().manual_seed(seed)))
    shuffled = np.random.default_rng(seed).permutation(len(src))

    def cut(order):  # what the DataLoader does with a sampler's indices and batch_size=size
        return [np.array(order[i : i + size]) for i in range(0, len(order), size)]

    return {"token budget": budget, "group_by_length": cut(grouped), "random": cut(shuffled)}, size


def sizes(batches, src, tgt) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs, padded tokens and non-pad tokens of each batch."""
    pairs = np.array([len(b) for b in batches])
    padded = np.array([len(b) * (src[b].max() + tgt[b].max()) for b in batches])
    real = np.array([src[b].sum() + tgt[b].sum() for b in batches])
    return pairs, padded, real


def to_batch(lengths: list[tuple[int, int]], pad_id: int, seed: int = 0) -> dict:
    """A padded training batch of pairs with these (source, target) lengths and random token ids."""
    generator = torch.Generator().manual_seed(seed)
    n, src_len, tgt_len = len(lengths), max(s for s, _ in lengths), max(t for _, t in lengths)
    input_ids = torch.full((n, src_len), pad_id)
    attention_mask = torch.zeros(n, src_len, dtype=torch.long)
    labels = torch.full((n, tgt_len), -100)
    for i, (s, t) in enumerate(lengths):
        input_ids[i, :s] = torch.randint(4, 8000, (s,), generator=generator)
        attention_mask[i, :s] = 1
        labels[i, :t] = torch.randint(4, 8000, (t,), generator=generator)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def quantile_batches(batches, real, count: int) -> list[np.ndarray]:
    """`count` batches at evenly spaced quantiles of their non-pad token counts: a small sample that spans the epoch."""
    order = np.argsort(real, kind="stable")
    return [batches[order[int((i + 0.5) * len(order) / count)]] for i in range(count)]


def memory_batches(src, tgt, max_tokens: int, size: int) -> dict[str, np.ndarray]:
    """The batch of median padded size of each cut (budget, fixed sentences) of the shortest and longest pairs."""
    from hf_seq2seq.batching import TokenBudgetBatchSampler

    order = np.argsort(src + tgt, kind="stable")
    count = max(1, int(EXTREMES * len(order)))
    cells = {}
    for extreme, subset in (("short", order[:count]), ("long", order[-count:])):
        s, t = src[subset], tgt[subset]
        budget = list(TokenBudgetBatchSampler(s, t, max_tokens, shuffle=False))
        by_length = np.lexsort((t, s))  # as the budget sampler sorts, cut every `size` pairs (no partial batch)
        fixed = [by_length[i : i + size] for i in range(0, max(len(subset) - size, 0) + 1, size)]
        for cut, batches in (("budget", budget), ("fixed", fixed)):
            padded = [len(b) * (s[b].max() + t[b].max()) for b in batches]
            cells[f"{extreme},{cut}"] = subset[batches[np.argsort(padded, kind="stable")[len(padded) // 2]]]
    return cells


def peak_mib() -> float:
    """Peak resident memory of this process (VmHWM). Not ru_maxrss as in bench/memory.py: Linux starts a child's
    ru_maxrss at its parent's peak (fork + exec), which here, with two models in the parent, hides the child's own."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def measure(lengths: list[tuple[int, int]]) -> float:
    """Child process: MiB of peak resident memory one training step of the small preset adds, after a warm-up step
    on one pair of 3 + 3 tokens (which makes AdamW's state and pages in what the first step loads lazily, about 100
    MiB that would otherwise hide the difference between batches)."""
    model = our_model("small")
    optimizer = torch.optim.AdamW(model.parameters())
    model.train()
    for batch in (to_batch([(3, 3)], model.config.pad_token_id), to_batch(lengths, model.config.pad_token_id)):
        before = current_mib()
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return peak_mib() - before


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        with open(sys.argv[2]) as f:
            print(json.dumps(measure([tuple(pair) for pair in json.load(f)[sys.argv[3]]])))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max_tokens", type=int, default=8192, help="budget: padded source + target tokens a batch")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps_per_round", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="smoke test: 3,000 pairs, budget 1024, 1 round of 2 steps")
    parser.add_argument("--output", default=os.path.join(RESULTS, "token_budget.json"))
    args = parser.parse_args()
    if args.quick:
        args.max_tokens, args.rounds, args.steps_per_round = 1024, 1, 2

    # --quick: every 50th line of train.tsv, which is sorted by length, so that short and long pairs are both there
    lengths = np.array(tatoeba_lengths(limit=3000, every=50) if args.quick else tatoeba_lengths(limit=None))
    src, tgt = lengths[:, 0], lengths[:, 1]
    strategies, size = epochs(src, tgt, args.max_tokens)
    print(f"{len(src):,} pairs, budget {args.max_tokens} padded tokens: {len(strategies['token budget'])} batches, "
          f"{size} pairs on average", flush=True)
    result = {"machine": machine(), "pairs": len(src), "max_tokens": args.max_tokens, "pairs_per_batch": size,
              "padding": {}, "throughput": {}, "memory": {}}

    rows, real_tokens = [], {}
    for name, batches in strategies.items():
        pairs, padded, real = sizes(batches, src, tgt)
        real_tokens[name] = real
        entry = {"padding_fraction": round(1 - real.sum() / padded.sum(), 4), "batches": len(batches),
                 "mean_pairs": round(pairs.mean(), 1), "max_pairs": int(pairs.max()),
                 "mean_padded_tokens": round(padded.mean()), "max_padded_tokens": int(padded.max())}
        result["padding"][name] = entry
        rows.append([name, f"{entry['padding_fraction']:.1%}", entry["batches"], entry["mean_pairs"],
                     entry["max_pairs"], f"{entry['mean_padded_tokens']:,}", f"{entry['max_padded_tokens']:,}"])
    print_table(["batches", "padding", "batches / epoch", "mean pairs", "max pairs", "mean padded tokens",
                 "max padded tokens"], rows)

    steps, tokens = {}, {}
    for name in ("token budget", "group_by_length"):
        model = our_model("small")
        chosen = quantile_batches(strategies[name], real_tokens[name], args.steps_per_round)
        batches = [to_batch(lengths[b].tolist(), model.config.pad_token_id, seed=i) for i, b in enumerate(chosen)]
        tokens[name] = int(sum(src[b].sum() + tgt[b].sum() for b in chosen))
        steps[name] = train_step_fn(model, batches)
    run_round = {name: (lambda fn=fn: [fn() for _ in range(args.steps_per_round)]) for name, fn in steps.items()}
    times = interleaved(run_round, rounds=args.rounds)
    rows = []
    for name in steps:
        seconds = median(times[name])
        entry = {"tokens_per_s": round(tokens[name] / seconds), "non_pad_tokens_per_round": tokens[name],
                 "ms_per_step": round(1000 * seconds / args.steps_per_round), "seconds": [round(t, 3) for t in times[name]]}
        result["throughput"][name] = entry
        rows.append([name, f"{entry['tokens_per_s']:,}", entry["ms_per_step"], f"{tokens[name] / args.steps_per_round:,.0f}"])
    speedup = result["throughput"]["token budget"]["tokens_per_s"] / result["throughput"]["group_by_length"]["tokens_per_s"]
    result["throughput"]["speedup"] = round(speedup, 3)
    rows.append(["**budget / group_by_length**", f"**{speedup:.2f}×**", "", ""])
    print_table(["batches", "src+tgt tokens/s", "ms / step", "non-pad tokens / step"], rows)

    cells = memory_batches(src, tgt, args.max_tokens, size)
    cells_file = os.path.join(tempfile.mkdtemp(), "cells.json")
    with open(cells_file, "w") as f:
        json.dump({name: lengths[b].tolist() for name, b in cells.items()}, f)
    for name, b in cells.items():
        child = subprocess.run([sys.executable, __file__, "--child", cells_file, name],
                               capture_output=True, text=True, check=True)
        mib = round(json.loads(child.stdout.strip().splitlines()[-1]), 1)
        result["memory"][name] = {"mib": mib, "pairs": len(b),
                                  "padded_tokens": int(len(b) * (src[b].max() + tgt[b].max()))}
        print(name, result["memory"][name], flush=True)
    memory = result["memory"]
    growth = {cut: memory[f"long,{cut}"]["mib"] / memory[f"short,{cut}"]["mib"] for cut in ("budget", "fixed")}
    result["memory"]["long_over_short"] = {cut: round(g, 3) for cut, g in growth.items()}
    rows = [[f"{extreme}-only"] + [f"{memory[f'{extreme},{cut}'][key]:,}" for cut in ("budget", "fixed")
                                   for key in ("pairs", "padded_tokens", "mib")] for extreme in ("short", "long")]
    rows.append(["**long / short**", "", "", f"**{growth['budget']:.2f}×**", "", "", f"**{growth['fixed']:.2f}×**"])
    print_table(["batch of", "budget: pairs", "padded tokens", "MiB", f"{size} sentences: pairs", "padded tokens", "MiB"], rows)

    padding = result["padding"]
    result["floors"] = {
        "less padding than group_by_length":
            bool(padding["token budget"]["padding_fraction"] < padding["group_by_length"]["padding_fraction"]),
        "budget memory flat (long within 10% of short)": bool(abs(growth["budget"] - 1) <= 0.10),
        "fixed-sentence memory grows (long > 1.1 × short)": bool(growth["fixed"] > 1.10),
    }
    print_table(["floor", "met"], [[floor, "yes" if met else "no"] for floor, met in result["floors"].items()])

    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(result, f, indent=2)
    print(f"\nwritten: {os.path.relpath(args.output, ROOT)}")


if __name__ == "__main__":
    main()
