"""Training in bfloat16 on the CPU (`--bf16`: autocast) against float32, one step of the span reader and one of
denoising, on the same random batches.

    python bench/bf16_training.py [--rounds 6]

A step = forward + backward + AdamW step, the `small` preset, 32 windows of 256 tokens (the `squad-span` and
`squad-selfpretrain` recipes of bench/quality.sh). Only CPUs with bfloat16 matrix units (AMX, AVX512-BF16) gain;
elsewhere bfloat16 is emulated and slower, which this script shows too: run it before adding `--bf16` to a recipe.
"""

import argparse

import torch

from common import interleaved, machine, median, print_table, write_results
from hf_seq2seq import HFSeq2SeqConfig, HFSeq2SeqForConditionalGeneration, HFSeq2SeqForQuestionAnswering


def cpu_flags() -> list[str]:
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return []
    return sorted(flag for flag in flags if flag in {"amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx2"})


def training_step(model, batch: dict, bf16: bool):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)  # a fresh one: the step's cost, not the model's drift

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--length", type=int, default=256)
    args = parser.parse_args()
    torch.manual_seed(0)
    config = HFSeq2SeqConfig.from_preset("small", vocab_size=8000)
    ids = torch.randint(4, 8000, (args.batch_size, args.length))
    positions = torch.randint(0, args.length, (args.batch_size,))
    models = {
        "span reader": (HFSeq2SeqForQuestionAnswering(config).train(),
                        dict(input_ids=ids, attention_mask=torch.ones_like(ids), start_positions=positions,
                             end_positions=positions)),
        "denoising": (HFSeq2SeqForConditionalGeneration(config).train(),
                      dict(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids)),
    }
    rows, result = [], {"machine": {**machine(), "cpu_flags": cpu_flags()}, "batch": [args.batch_size, args.length]}
    for name, (model, batch) in models.items():
        times = interleaved({precision: training_step(model, batch, precision == "bf16") for precision in ("fp32", "bf16")},
                            rounds=args.rounds)
        fp32, bf16 = median(times["fp32"]), median(times["bf16"])
        rows.append([name, f"{fp32:.2f}", f"{bf16:.2f}", f"{fp32 / bf16:.2f}x"])
        result[name] = {"fp32_s_per_step": fp32, "bf16_s_per_step": bf16, "speedup": fp32 / bf16, "times": times}
    print(f"CPU flags: {' '.join(result['machine']['cpu_flags']) or 'unknown'}; {result['machine']['threads']} threads")
    print_table(["step", "fp32 s", "bf16 s", "bf16 speed-up"], rows)
    write_results("bf16_training", result)


if __name__ == "__main__":
    main()
