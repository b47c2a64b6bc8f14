"""Peak memory of training in bfloat16 on the CPU when batch lengths vary, with oneDNN's kernel caches as PyTorch
leaves them and as `--bf16` sets them, against float32.

    python bench/bf16_memory.py [--steps 60]

Each setting runs in its own process (peak resident memory is a process's): the `small` preset, denoising steps of
8 passages (forward + backward + AdamW, the pretraining recipe's forward pass) whose source and target lengths vary
from batch to batch as the collator's do. bf16 matmuls run in oneDNN, which compiles and caches a kernel per input
shape (PyTorch's cache: LRU_CACHE_CAPACITY, oneDNN's: ONEDNN_PRIMITIVE_CACHE_CAPACITY, 1,024 each by default);
float32 matmuls do not use them.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

from common import machine, print_table, write_results

SETTINGS = {
    "float32": {"bf16": False, "env": {}},
    "bf16, default caches (1,024 + 1,024)": {"bf16": True, "env": {"LRU_CACHE_CAPACITY": "1024",
                                                                    "ONEDNN_PRIMITIVE_CACHE_CAPACITY": "1024"}},
    "bf16, as --bf16 sets them": {"bf16": True, "env": {}},
}


def child(bf16: bool, steps: int) -> dict:
    import torch

    from hf_seq2seq import HFSeq2SeqConfig, HFSeq2SeqForConditionalGeneration
    from hf_seq2seq.training import TrainingArguments

    TrainingArguments(output_dir="/tmp/bf16_memory", report_to="none", bf16=bf16)  # what train.py does to the caches
    torch.manual_seed(0)
    model = HFSeq2SeqForConditionalGeneration(HFSeq2SeqConfig.from_preset("small", vocab_size=8000, dropout=0.0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    start = time.perf_counter()
    for _ in range(steps):
        source, target = int(torch.randint(150, 257, ())), int(torch.randint(200, 257, ()))
        ids, labels = torch.randint(4, 8000, (8, source)), torch.randint(4, 8000, (8, target))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return {"s_per_step": (time.perf_counter() - start) / steps,
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "caches": {name: os.environ.get(name) for name in ("LRU_CACHE_CAPACITY", "ONEDNN_PRIMITIVE_CACHE_CAPACITY")}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(SETTINGS[args.child]["bf16"], args.steps)))
        return
    result, rows = {"machine": machine(), "steps": args.steps}, []
    for name, setting in SETTINGS.items():
        env = {key: value for key, value in os.environ.items()
               if key not in ("LRU_CACHE_CAPACITY", "ONEDNN_PRIMITIVE_CACHE_CAPACITY")}
        out = subprocess.run([sys.executable, __file__, "--steps", str(args.steps), "--child", name],
                             env={**env, **setting["env"]}, capture_output=True, text=True, check=True).stdout
        result[name] = json.loads(out.strip().splitlines()[-1])
    fp32 = result["float32"]
    for name in SETTINGS:
        measured = result[name]
        rows.append([name, f"{measured['peak_rss_gib']:.2f}", f"{measured['peak_rss_gib'] / fp32['peak_rss_gib']:.2f}x",
                     f"{measured['s_per_step']:.2f}"])
    print_table(["setting", "peak RSS (GiB)", "against float32", "s per step"], rows)
    write_results("bf16_memory", result)


if __name__ == "__main__":
    main()
