"""Where generation time goes: our model's generate() (preset small, random weights, the settings of
bench/generation.py), split by the torch profiler into what the model computes and what generate() adds.

    python bench/profile_generation.py

Categories (self CPU time of the operators): matrix products (the projections, feed-forward and LM head),
attention kernels, KV-cache traffic (concatenation, beam reordering copies), search bookkeeping (log-softmax,
top-k, argmax and the rest of the decoding loop's tensor work), everything else (layer norms, adds, views...).
The model's share is the time spent inside its forward calls; the rest is generate()'s own loop.
"""

import time
from collections import defaultdict

import torch

from common import machine, our_model, print_table, write_results
from generation import generation_config

CATEGORIES = {
    "matmul": ("aten::addmm", "aten::mm", "aten::bmm", "aten::matmul", "aten::linear"),
    "attention": ("aten::_scaled_dot_product_flash_attention_for_cpu", "aten::_softmax"),
    "kv cache": ("aten::cat", "aten::index_select", "aten::copy_", "aten::index_copy_"),
    "search": ("aten::_log_softmax", "aten::topk", "aten::argmax", "aten::gather", "aten::isin", "aten::where",
               "aten::sort", "aten::remainder", "aten::div", "aten::floor_divide"),
}


def category(op: str) -> str:
    for name, ops in CATEGORIES.items():
        if op in ops:
            return name
    return "other"


def main():
    model = our_model("small").eval()
    result = {"machine": machine(), "cells": []}
    rows = []
    for batch_size, beams in ((1, 1), (1, 4), (32, 1), (32, 4)):
        sources = torch.randint(4, model.config.vocab_size, (batch_size, 24), generator=torch.Generator().manual_seed(0))
        config = generation_config(model, beams, 24)
        forward_seconds = [0.0]
        original = type(model).forward

        def timed_forward(self, *args, **kwargs):
            start = time.perf_counter()
            output = original(self, *args, **kwargs)
            forward_seconds[0] += time.perf_counter() - start
            return output

        with torch.inference_mode():
            model.generate(sources, generation_config=config)
            type(model).forward = timed_forward
            start = time.perf_counter()
            model.generate(sources, generation_config=config)
            total = time.perf_counter() - start
            type(model).forward = original
            with torch.profiler.profile() as profile:
                model.generate(sources, generation_config=config)
        shares = defaultdict(float)
        for event in profile.key_averages():
            shares[category(event.key)] += event.self_cpu_time_total
        profiled = sum(shares.values())
        cell = {"batch_size": batch_size, "num_beams": beams, "seconds": round(total, 4),
                "model_forward_share": round(forward_seconds[0] / total, 3),
                "operator_shares": {k: round(v / profiled, 3) for k, v in sorted(shares.items())}}
        result["cells"].append(cell)
        mode = "greedy" if beams == 1 else f"beam {beams}"
        rows.append([mode, batch_size, f"{total * 1000:.0f}", f"{cell['model_forward_share']:.0%}",
                     *(f"{cell['operator_shares'].get(k, 0):.0%}" for k in (*CATEGORIES, "other"))])
    print_table(["decoding", "batch", "ms", "in model forward", *CATEGORIES, "other"], rows)
    write_results("profile_generation", result)


if __name__ == "__main__":
    main()
