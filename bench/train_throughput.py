"""Training throughput: our model against `MarianMTModel` of the identical configuration.

    python bench/train_throughput.py --ablation      # presets small and base, random batches
    python bench/train_throughput.py --batching grouped

One training step = forward + backward + AdamW step on one batch, dropout on, both models on the *same* batches:
`--batch_size` sentence pairs drawn at random from real Tatoeba token lengths (8,000-token BPE; see
common.tatoeba_lengths), so padding is what random batching gives (`--batching grouped`: batches of similar
lengths, as train.py makes them). Throughput counts non-pad source + target tokens. Model FLOPs are the
multiply-adds the architecture needs for those tokens (padding excluded), 3× the forward for training; MFU is
model FLOP/s over the fp32 matmul peak measured in the same run.
"""

import argparse
import random

import torch

from common import interleaved, machine, marian_model, matmul_peak_gflops, median, our_model, print_table, tatoeba_lengths, write_results


def make_batches(lengths, batch_size: int, count: int, pad_id: int, seed: int = 0, grouped: bool = False) -> list[dict]:
    """`count` batches of random pairs; `grouped`: as train.py's default `group_by_length` sampler does, draw 50
    batches' worth of pairs, sort them by length and cut them into batches of similar lengths."""
    rng = random.Random(seed)
    if grouped:
        pool = sorted(rng.sample(lengths, 50 * batch_size), key=lambda pair: pair[0] + pair[1])
        chunks = [pool[i : i + batch_size] for i in range(0, len(pool), batch_size)]
        groups = iter(rng.sample(chunks, count))
    batches = []
    for _ in range(count):
        pairs = next(groups) if grouped else rng.sample(lengths, batch_size)
        src_len, tgt_len = max(s for s, _ in pairs), max(t for _, t in pairs)
        input_ids = torch.full((batch_size, src_len), pad_id)
        attention_mask = torch.zeros(batch_size, src_len, dtype=torch.long)
        labels = torch.full((batch_size, tgt_len), -100)
        for i, (s, t) in enumerate(pairs):
            input_ids[i, :s] = torch.randint(4, 8000, (s,))
            attention_mask[i, :s] = 1
            labels[i, :t] = torch.randint(4, 8000, (t,))
        batches.append({"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels})
    return batches


def training_flops(config, src_tokens: int, tgt_tokens: int, src_sq: int, cross_pairs: int, tgt_sq: int) -> float:
    """Forward + backward (3× forward) multiply-add FLOPs for the given non-pad token counts.

    `src_sq` = Σ S_i², `tgt_sq` = Σ T_i² (self-attention scores and weighted sums; the decoder's causal half),
    `cross_pairs` = Σ S_i·T_i (cross-attention)."""
    d, ff_e, ff_d, v = config.d_model, config.encoder_ffn_dim, config.decoder_ffn_dim, config.vocab_size
    encoder = config.encoder_layers * (src_tokens * 2 * (4 * d * d + 2 * d * ff_e) + 2 * 2 * src_sq * d)
    decoder = config.decoder_layers * (
        tgt_tokens * 2 * (4 * d * d + 2 * d * d + 2 * d * ff_d)  # self-attention, cross Q and W^O, feed-forward
        + src_tokens * 2 * 2 * d * d  # cross-attention K and V of the encoder output
        + 2 * 2 * tgt_sq / 2 * d + 2 * 2 * cross_pairs * d
    )
    lm_head = tgt_tokens * 2 * d * v
    return 3 * (encoder + decoder + lm_head)


def batch_stats(batch) -> tuple[int, int, int, int, int]:
    s = batch["attention_mask"].sum(1)
    t = (batch["labels"] != -100).sum(1)
    return int(s.sum()), int(t.sum()), int((s * s).sum()), int((s * t).sum()), int((t * t).sum())


def full_logits_loss(model, batch):
    """The loss as transformers' seq2seq models compute it: logits for every position, padding included, then
    cross-entropy over the labelled ones (what our model did before it skipped the padding; the ablation)."""
    decoder_input_ids = model.prepare_decoder_input_ids_from_labels(batch["labels"])
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    logits = model(**inputs, decoder_input_ids=decoder_input_ids).logits
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=-100)


def train_step_fn(model, batches, loss_fn=None):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9)
    model.train()
    state = {"i": 0}

    def step():
        batch = batches[state["i"] % len(batches)]
        state["i"] += 1
        loss = loss_fn(model, batch) if loss_fn else model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["small", "base"])
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--steps_per_round", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--batching", choices=["random", "grouped"], default="random",
                        help="random pairs (the default data order), or grouped by length as train.py does")
    parser.add_argument("--ablation", action="store_true",
                        help="also time our model with logits for every position (what skipping the padding saves)")
    args = parser.parse_args()

    lengths = tatoeba_lengths()
    peak = matmul_peak_gflops()
    print(f"fp32 matmul peak: {peak:.1f} GFLOP/s, {torch.get_num_threads()} threads")
    result = {"machine": machine(), "matmul_peak_gflops": round(peak, 1), "batch_size": args.batch_size,
              "batching": args.batching, "presets": {}}
    rows = []
    for preset in args.presets:
        ours = our_model(preset)
        marian = marian_model(ours.config)
        batches = make_batches(lengths, args.batch_size, args.steps_per_round, ours.config.pad_token_id,
                               grouped=args.batching == "grouped")
        stats = [batch_stats(b) for b in batches]
        tokens = sum(s[0] + s[1] for s in stats)
        flops = sum(training_flops(ours.config, *s) for s in stats)
        padded = sum(b["input_ids"].numel() + b["labels"].numel() for b in batches)
        steps = {"ours": train_step_fn(ours, batches), "marian": train_step_fn(marian, batches)}
        if args.ablation:
            steps["ours, full logits"] = train_step_fn(our_model(preset), batches, full_logits_loss)
        run_round = {name: (lambda fn=fn: [fn() for _ in batches]) for name, fn in steps.items()}
        times = interleaved(run_round, rounds=args.rounds)
        entry = {"non_pad_tokens_per_round": tokens, "padding_fraction": round(1 - tokens / padded, 3),
                 "parameters": sum(p.numel() for p in ours.parameters())}
        for name in steps:
            seconds = median(times[name])
            entry[name] = {"tokens_per_s": round(tokens / seconds), "model_tflops": round(flops / seconds / 1e12, 4),
                           "mfu": round(flops / seconds / 1e9 / peak, 3), "seconds": [round(t, 3) for t in times[name]]}
            rows.append([preset, name, entry[name]["tokens_per_s"], f"{flops / seconds / 1e9:.1f}", f"{entry[name]['mfu']:.0%}"])
        entry["speedup"] = round(entry["ours"]["tokens_per_s"] / entry["marian"]["tokens_per_s"], 3)
        rows.append([preset, "**ours / marian**", f"**{entry['speedup']:.2f}×**", "", ""])
        result["presets"][preset] = entry
    print_table(["preset", "model", "src+tgt tokens/s", "model GFLOP/s", "MFU"], rows)
    write_results("train_throughput" + ("_grouped" if args.batching == "grouped" else ""), result)


if __name__ == "__main__":
    main()
