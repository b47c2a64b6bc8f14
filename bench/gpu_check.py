"""What only a GPU can show, in one command that ends within 10 minutes on one GPU (bench/gpu_check.sh):

    bash bench/gpu_check.sh                      # on a GPU: preset base, writes bench/results/gpu_check.json
    python bench/gpu_check.py --cpu              # the reduced CPU mode (tiny model, a few steps), the one that runs
                                                 # when no GPU is seen: proves the script before a GPU is lent

1. Training under bf16 mixed precision (autocast, float32 weights, AdamW), our model against `MarianMTModel` of the
   same configuration on the same token-budget batches, in alternating rounds (bench/common.py): non-pad source +
   target tokens/s, and the peak GPU memory of a step.
2. generate(), greedy and beam 4, with float16 and bfloat16 weights (float32 and bfloat16 on a CPU), ours against
   Marian: new tokens/s (end of sentence off, so every call makes the same number of tokens).
3. Which scaled-dot-product-attention kernel runs: the attention ops the profiler records in a bf16 training forward
   of each model, and whether our forward runs with SDPA restricted to each backend alone.
4. Token-budget training (hf_seq2seq.batching): the largest budget of a ladder whose biggest batches fit in memory
   (smaller budgets are tried after an out-of-memory error), then `TokenBudgetSeq2SeqTrainer` trains at that budget.

Lengths are real Tatoeba pairs where ../shared/data exists, else bench/common.py's synthetic ones (see "lengths" in the
JSON). The JSON is written after each part, so a run cut short keeps what it measured.
"""

import argparse
import gc
import json
import os
import tempfile
import time
import traceback

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import Seq2SeqTrainingArguments, TrainerCallback

from common import (
    RESULTS, SHARED_DATA, interleaved, machine, marian_model, median, our_model, print_table, tatoeba_lengths,
)
from generation import generation_config
from hf_seq2seq.batching import TokenBudgetBatchSampler, TokenBudgetSeq2SeqTrainer

# Per mode: model size, the training batches' token budget, timing rounds, generation shapes, the budget ladder.
SETTINGS = {
    "gpu": dict(preset="base", budget=16384, rounds=5, steps=4, generate_batch=64, source_length=24, new_tokens=24,
                dtypes=("float16", "bfloat16"), ladder=(524288, 262144, 131072, 65536, 32768, 16384), trainer_steps=40,
                lengths=50_000),
    "cpu": dict(preset="tiny", budget=512, rounds=2, steps=2, generate_batch=2, source_length=8, new_tokens=4,
                dtypes=("float32", "bfloat16"), ladder=(2048, 1024, 512), trainer_steps=3, lengths=2_000),
}


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def reset_peak(device):
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device, since=0):
    """The most GPU memory allocated since `reset_peak`, less `since` bytes (None on a CPU)."""
    return round((torch.cuda.max_memory_allocated() - since) / 2**30, 3) if device.type == "cuda" else None


def allocated(device):
    return torch.cuda.memory_allocated() if device.type == "cuda" else 0


def budget_batches(lengths, max_tokens, seed=0) -> list[list[int]]:
    source, target = zip(*lengths)
    return list(TokenBudgetBatchSampler(source, target, max_tokens, seed=seed))


def to_tensors(lengths, indices, pad_id, device, generator):
    """One batch of random token ids with the given pairs' lengths, padded as DataCollatorForSeq2Seq pads."""
    source, target = max(lengths[i][0] for i in indices), max(lengths[i][1] for i in indices)
    input_ids = torch.full((len(indices), source), pad_id)
    labels = torch.full((len(indices), target), -100)
    for row, i in enumerate(indices):
        input_ids[row, : lengths[i][0]] = torch.randint(4, 8000, (lengths[i][0],), generator=generator)
        labels[row, : lengths[i][1]] = torch.randint(4, 8000, (lengths[i][1],), generator=generator)
    batch = {"input_ids": input_ids, "attention_mask": (input_ids != pad_id).long(), "labels": labels}
    return {name: tensor.to(device) for name, tensor in batch.items()}


def make_batches(lengths, max_tokens, count, pad_id, device, seed=0):
    """The first `count` batches of an epoch of the token-budget sampler over `lengths`."""
    generator = torch.Generator().manual_seed(seed)
    chosen = budget_batches(lengths, max_tokens, seed)[:count]
    return [to_tensors(lengths, indices, pad_id, device, generator) for indices in chosen]


def real_tokens(batch):
    return int(batch["attention_mask"].sum() + (batch["labels"] != -100).sum())


def train_step(model, optimizer, batch, device, dtype=torch.bfloat16):
    with torch.autocast(device.type, dtype=dtype):
        loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss


def check_training(models, batches, device, settings):
    optimizers = {name: torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.98))
                  for name, model in models.items()}
    for model in models.values():
        model.train()

    def run(name):
        for batch in batches:
            train_step(models[name], optimizers[name], batch, device)
        synchronize(device)

    times = interleaved({name: (lambda name=name: run(name)) for name in models}, rounds=settings["rounds"])
    tokens = sum(real_tokens(batch) for batch in batches)
    padded = sum(batch["input_ids"].numel() + batch["labels"].numel() for batch in batches)
    result = {"budget": settings["budget"], "batches": len(batches), "padding_fraction": round(1 - tokens / padded, 3)}
    for name in models:
        reset_peak(device)
        before = allocated(device)  # both models' weights and optimizer states
        run(name)
        result[name] = {"tokens_per_s": round(tokens / median(times[name])),
                        "step_peak_gib": peak_gib(device, since=before),  # activations and gradients
                        "seconds": [round(t, 4) for t in times[name]]}
    result["speedup"] = round(result["ours"]["tokens_per_s"] / result["marian"]["tokens_per_s"], 3)
    return result


def check_generation(models, device, settings):
    sources = torch.randint(4, 8000, (settings["generate_batch"], settings["source_length"]),
                            generator=torch.Generator().manual_seed(0)).to(device)
    cells = []
    for dtype_name in settings["dtypes"]:
        dtype = getattr(torch, dtype_name)
        half = {name: model.to(dtype).eval() for name, model in models.items()}
        for beams in (1, 4):
            outputs = {}

            def run(name, beams=beams):
                with torch.inference_mode():
                    config = generation_config(half[name], beams, settings["new_tokens"])
                    outputs[name] = half[name].generate(sources, generation_config=config)
                synchronize(device)

            times = interleaved({name: (lambda name=name: run(name)) for name in half}, rounds=settings["rounds"])
            new_tokens = sources.shape[0] * settings["new_tokens"]
            cell = {"dtype": dtype_name, "num_beams": beams, "batch_size": sources.shape[0]}
            for name in half:
                assert outputs[name].shape == (sources.shape[0], settings["new_tokens"] + 1), outputs[name].shape
                cell[name] = {"tokens_per_s": round(new_tokens / median(times[name]), 1),
                              "latency_s": round(median(times[name]), 4)}
            cell["speedup"] = round(cell["ours"]["tokens_per_s"] / cell["marian"]["tokens_per_s"], 3)
            cells.append(cell)
    for model in models.values():
        model.float()
    return cells


ATTENTION_OPS = ("scaled_dot_product", "flash", "efficient_attention", "cudnn_attention", "fmha")


def check_attention_kernels(models, batch, device):
    """The attention ops a bf16 training forward records, per model; then our forward under each SDPA backend alone."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    result = {"recorded": {}, "ours_restricted_to": {}}
    for name, model in models.items():
        model.train()
        with torch.profiler.profile(activities=activities) as profile:
            with torch.autocast(device.type, dtype=torch.bfloat16):
                loss = model(**batch).loss
            loss.backward()
            synchronize(device)
        result["recorded"][name] = {
            event.key: event.count for event in profile.key_averages()
            if any(op in event.key.lower() for op in ATTENTION_OPS)
        }
    backends = (SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.MATH)
    for backend in backends:
        try:
            with sdpa_kernel(backend), torch.autocast(device.type, dtype=torch.bfloat16):
                models["ours"](**batch).loss.backward()
            synchronize(device)
            result["ours_restricted_to"][backend.name] = "runs"
        except RuntimeError as error:
            result["ours_restricted_to"][backend.name] = str(error).strip().splitlines()[0][:300]
    models["ours"].zero_grad(set_to_none=True)
    return result


def largest_budget_that_fits(ladder, try_budget):
    """The first budget of `ladder` (largest first) for which `try_budget(budget)` runs without running out of
    memory, and the budgets that did not fit."""
    too_big = []
    for budget in ladder:
        try:
            try_budget(budget)
            return budget, too_big
        except torch.OutOfMemoryError:
            too_big.append(budget)
        # Out of the except block, the error's traceback no longer holds the failed step's tensors.
        gc.collect()
        torch.cuda.empty_cache()
    return None, too_big


def check_token_budget(lengths, device, settings, output_dir):
    config = our_model(settings["preset"]).config

    def try_budget(budget):
        # The batches that cost most memory: the most padded tokens, and the longest pairs (attention is quadratic).
        candidates = budget_batches(lengths, budget)
        longest = [(max(lengths[i][0] for i in b), max(lengths[i][1] for i in b)) for b in candidates]
        by_padded = sorted(range(len(candidates)), key=lambda k: len(candidates[k]) * sum(longest[k]))
        batches = [candidates[k] for k in by_padded[-2:]]
        batches.append(candidates[max(range(len(candidates)), key=lambda k: sum(longest[k]))])
        model = our_model(settings["preset"]).to(device)
        optimizer = torch.optim.AdamW(model.parameters())
        generator = torch.Generator().manual_seed(0)
        try:
            for indices in batches:
                batch = to_tensors(lengths, indices, config.pad_token_id, device, generator)
                train_step(model, optimizer, batch, device)
            synchronize(device)
        finally:
            del model, optimizer

    budget, too_big = largest_budget_that_fits(settings["ladder"], try_budget)
    result = {"ladder": list(settings["ladder"]), "out_of_memory": too_big, "budget": budget}
    if budget is None:
        return result

    # A real Trainer run at that budget: the sampler, the collator's padding, bf16 autocast by the Trainer.
    source, target = zip(*lengths)
    generator = torch.Generator().manual_seed(0)
    dataset = [{"input_ids": torch.randint(4, 8000, (s,), generator=generator).tolist(),
                "labels": torch.randint(4, 8000, (t,), generator=generator).tolist()} for s, t in zip(source, target)]
    counts = {"tokens": 0, "padded": 0, "steps": 0}

    class Count(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            reset_peak(device)
            synchronize(device)
            counts["start"] = time.perf_counter()

        def on_train_end(self, args, state, control, **kwargs):
            synchronize(device)
            counts["seconds"] = time.perf_counter() - counts["start"]

    class CountingTrainer(TokenBudgetSeq2SeqTrainer):
        def training_step(self, model, inputs, *args, **kwargs):
            counts["tokens"] += real_tokens(inputs)
            counts["padded"] += inputs["input_ids"].numel() + inputs["labels"].numel()
            counts["steps"] += 1
            return super().training_step(model, inputs, *args, **kwargs)

    args = Seq2SeqTrainingArguments(
        output_dir=output_dir, max_steps=settings["trainer_steps"], learning_rate=5e-4, warmup_steps=0,
        bf16=True, use_cpu=device.type == "cpu",
        dataloader_pin_memory=device.type == "cuda", report_to="none", save_strategy="no", disable_tqdm=True,
        logging_steps=max(1, settings["trainer_steps"] // 4), seed=0,
    )
    trainer = CountingTrainer(model=our_model(settings["preset"]), args=args, train_dataset=dataset,
                              data_collator=lambda rows: collate(rows, config.pad_token_id),
                              max_tokens_per_batch=budget, callbacks=[Count()])
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    result["trainer"] = {
        "steps": counts["steps"], "bf16": args.bf16, "tokens_per_s": round(counts["tokens"] / counts["seconds"]),
        "padding_fraction": round(1 - counts["tokens"] / counts["padded"], 4), "peak_gib": peak_gib(device),
        "losses": losses,
    }
    return result


def collate(rows, pad_id):
    """What DataCollatorForSeq2Seq makes (without needing a tokenizer): padded sources with their mask, labels
    padded with -100."""
    source, target = max(len(r["input_ids"]) for r in rows), max(len(r["labels"]) for r in rows)
    input_ids = torch.tensor([r["input_ids"] + [pad_id] * (source - len(r["input_ids"])) for r in rows])
    labels = torch.tensor([r["labels"] + [-100] * (target - len(r["labels"])) for r in rows])
    return {"input_ids": input_ids, "attention_mask": (input_ids != pad_id).long(), "labels": labels}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu", action="store_true", help="the reduced CPU mode, even where a GPU is seen")
    parser.add_argument("--output", help="the JSON file (default: bench/results/gpu_check.json, or gpu_check_cpu.json)")
    args = parser.parse_args()
    mode = "cpu" if args.cpu or not torch.cuda.is_available() else "gpu"
    settings, device = SETTINGS[mode], torch.device("cuda" if mode == "gpu" else "cpu")
    output = args.output or os.path.join(RESULTS, "gpu_check.json" if mode == "gpu" else "gpu_check_cpu.json")
    real = os.path.exists(os.path.join(SHARED_DATA, "tatoeba-en-fr", "train.tsv"))  # else common's synthetic lengths
    result = {"mode": mode, "machine": machine(), "settings": settings, "lengths": "tatoeba" if real else "synthetic"}
    if device.type == "cuda":
        memory = torch.cuda.get_device_properties(0).total_memory
        result["gpu"] = {"name": torch.cuda.get_device_name(), "capability": torch.cuda.get_device_capability(),
                         "cuda": torch.version.cuda, "memory_gib": round(memory / 2**30, 1)}
    where = result.get("gpu", {}).get("name", "the CPU")
    print(f"gpu_check, {mode} mode: preset {settings['preset']} on {where}", flush=True)

    lengths = tatoeba_lengths(limit=settings["lengths"])
    ours = our_model(settings["preset"], dropout=0.0).to(device)
    models = {"ours": ours, "marian": marian_model(ours.config).to(device)}
    batches = make_batches(lengths, settings["budget"], settings["steps"], ours.config.pad_token_id, device)
    parts = {
        "training_bf16": lambda: check_training(models, batches, device, settings),
        "generation": lambda: check_generation(models, device, settings),
        "attention_kernels": lambda: check_attention_kernels(models, batches[0], device),
        "token_budget": lambda: check_token_budget(lengths, device, settings, tempfile.mkdtemp()),
    }
    for name, part in parts.items():
        start = time.perf_counter()
        try:
            result[name] = part()
        except Exception as error:  # keep the other parts' measurements; the JSON says what failed and where
            result[name] = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()[-2000:]}
        result[name + "_seconds"] = round(time.perf_counter() - start, 1)
        write_json(output, result)
        print(f"{name}: {time.perf_counter() - start:.1f} s", flush=True)
    summarize(result)
    print(f"written: {output}")
    failed = [name for name in parts if "error" in result[name]]
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)} (see {output})")


def write_json(path, result):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=2)


def summarize(result):
    rows = []
    training = result["training_bf16"]
    if "error" not in training:
        rows += [[f"train bf16, {name} (the step's peak)", training[name]["tokens_per_s"],
                  training[name]["step_peak_gib"]] for name in ("ours", "marian")]
    for cell in result["generation"] if isinstance(result["generation"], list) else []:
        rows += [[f"generate {cell['dtype']} beam {cell['num_beams']}, {name}", cell[name]["tokens_per_s"], ""]
                 for name in ("ours", "marian")]
    budget = result["token_budget"]
    if "trainer" in budget:
        trained = budget["trainer"]
        rows.append([f"Trainer, {budget['budget']} tokens a batch", trained["tokens_per_s"], trained["peak_gib"]])
    print_table(["workload", "tokens/s", "peak GiB"], rows)
    if "recorded" in result["attention_kernels"]:
        print("attention ops:", result["attention_kernels"]["recorded"])
        print("ours with one SDPA backend:", result["attention_kernels"]["ours_restricted_to"])


if __name__ == "__main__":
    main()
