"""Generation speed: our model's `generate()` against `MarianMTModel.generate()` of the identical configuration.

    python bench/generation.py                       # preset small: greedy and beam 4, batch 1 and 32
    python bench/generation.py --presets small base --rounds 7

Random weights (the same seed for both models), sources of `--source_length` random tokens, exactly
`--new_tokens` new tokens per sentence: the end-of-sentence token is switched off (`eos_token_id=None`), so every
call does the same amount of work. Tokens/s counts generated tokens of the returned sequences (batch × new
tokens); latency is the seconds of one generate() call. Rounds alternate ours / Marian after a warm-up; medians.
"""

import argparse

import torch
from transformers import CompileConfig, GenerationConfig

from common import interleaved, machine, marian_model, median, our_model, print_table, write_results


def generation_config(model, num_beams: int, new_tokens: int, compiled: bool = False) -> GenerationConfig:
    config = GenerationConfig(
        max_new_tokens=new_tokens,
        num_beams=num_beams,
        do_sample=False,
        eos_token_id=None,  # fixed output length
        pad_token_id=model.config.pad_token_id,
        bos_token_id=model.config.bos_token_id,
        decoder_start_token_id=model.config.decoder_start_token_id,
    )
    if compiled:
        # A static cache (fixed shapes) lets generate() compile the decoder step with torch.compile. generate()
        # compiles by itself on GPUs; on CPU it has to be asked (the flag transformers' own tests use).
        config.cache_implementation = "static"
        config.compile_config = CompileConfig(mode="default", fullgraph=True, dynamic=False)
        config.compile_config._compile_all_devices = True
    return config


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["small"])
    parser.add_argument("--batch_sizes", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--beams", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--source_length", type=int, default=24)
    parser.add_argument("--new_tokens", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no_compile", action="store_true", help="leave out our static-cache + torch.compile path")
    args = parser.parse_args()

    result = {"machine": machine(), "source_length": args.source_length, "new_tokens": args.new_tokens, "cells": []}
    rows = []
    for preset in args.presets:
        models = {"ours": our_model(preset).eval()}
        models["marian"] = marian_model(models["ours"].config).eval()
        if not args.no_compile:
            # The same weights, generate() with a static cache + torch.compile. transformers compiles greedy search
            # and sampling only; beam search runs uncompiled whatever the settings, so it is not timed there.
            models["ours compiled"] = models["ours"]
        for batch_size in args.batch_sizes:
            sources = torch.randint(4, models["ours"].config.vocab_size, (batch_size, args.source_length),
                                    generator=torch.Generator().manual_seed(batch_size))
            for beams in args.beams:
                outputs = {}

                def run(name, beams=beams, sources=sources):
                    with torch.inference_mode():
                        config = generation_config(models[name], beams, args.new_tokens, name == "ours compiled")
                        outputs[name] = models[name].generate(sources, generation_config=config)

                names = [name for name in models if beams == 1 or name != "ours compiled"]
                times = interleaved({name: (lambda name=name: run(name)) for name in names}, rounds=args.rounds)
                new_tokens = batch_size * args.new_tokens
                assert all(o.shape == (batch_size, args.new_tokens + 1) for o in outputs.values())
                cell = {"preset": preset, "batch_size": batch_size, "num_beams": beams}
                for name in names:
                    seconds = median(times[name])
                    cell[name] = {"latency_s": round(seconds, 4), "tokens_per_s": round(new_tokens / seconds, 1),
                                  "seconds": [round(t, 4) for t in times[name]]}
                    cell[name]["speedup_over_marian"] = round(median(times["marian"]) / seconds, 3)
                if "ours compiled" in outputs:
                    cell["compiled_tokens_identical"] = torch.equal(outputs["ours compiled"], outputs["ours"])
                result["cells"].append(cell)
                mode = "greedy" if beams == 1 else f"beam {beams}"
                row = [preset, mode, batch_size]
                for name in models:
                    row += [f"{cell[name]['tokens_per_s']:.0f}", f"{cell[name]['latency_s'] * 1000:.0f}"] if name in cell else ["–", "–"]
                row += [f"**{cell['ours']['speedup_over_marian']:.2f}×**"]
                if "ours compiled" in models:
                    compiled = "ours compiled" in cell
                    row += [f"**{cell['ours compiled']['speedup_over_marian']:.2f}×**" if compiled else "–",
                            cell["compiled_tokens_identical"] if compiled else "–"]
                rows.append(row)
                print(row, flush=True)
    header = ["preset", "decoding", "batch"]
    for name in models:
        header += [f"{name} tok/s", f"{name} ms"]
    header += ["ours / Marian"] + (["compiled / Marian", "compiled = ours"] if "ours compiled" in models else [])
    print_table(header, rows)
    write_results("generation", result)


if __name__ == "__main__":
    main()
