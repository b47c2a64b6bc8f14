#!/usr/bin/env python
"""Peak memory and time of data preparation at WMT scale, before and after the loaders became Arrow builders.

    python bench/data_memory.py                 # 5 million pairs: needs the machine to itself for a long while
    python bench/data_memory.py --pairs 20000   # a quick check that the benchmark works

It writes a TSV of `--pairs` distinct pairs into --work (Tatoeba's training pairs repeated, a counter appended to both
sides), then runs each step of train.py's data preparation in a fresh process, for the code of commit `--commit`
("before", from a git worktree in --before_dir) and for this checkout ("after"):

- load: `task.load(args)`, from an empty datasets cache (a first run);
- tokenizer: training the BPE vocabulary on `task.corpus` (after: its first --tokenizer_train_samples examples);
- tokenize: `task.tokenize`, the cut to length and the counts included;
- whole: the three in one process, from an empty cache: the figure to hold against the floor (after: at most 2 GiB,
  and at most a quarter of before).

A step's peak is the high-water mark of its process's resident memory (VmHWM), reset once the data it starts from is
loaded (`/proc/self/clear_refs`), so it includes what that data holds but not the peak of loading it. Results go to
bench/results/data_memory.json.
"""

import argparse
import inspect
import json
import os
import platform
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TATOEBA = os.path.join(ROOT, "..", "shared", "data", "tatoeba-en-fr", "train.tsv")
STEPS = ("load", "tokenizer", "tokenize", "whole")
GIB = 1024**3


# --- in the measured process ------------------------------------------------------------------------------------------


def vm_hwm() -> int:
    """Peak resident memory of this process so far, in bytes."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))


def vm_rss() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def reset_peak() -> bool:
    """Start the high-water mark again from the current resident memory (Linux 4.0+)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def worker(step: str, tsv: str, state: str, code: str) -> dict:
    import hf_seq2seq
    from hf_seq2seq.data import DataArguments
    from hf_seq2seq.tasks import get_task
    from hf_seq2seq.vocabulary import train_tokenizer
    from hf_seq2seq.training import ModelArguments

    assert os.path.realpath(hf_seq2seq.__file__).startswith(os.path.realpath(code) + os.sep), hf_seq2seq.__file__
    task, model_args = get_task("translation"), ModelArguments()
    args = DataArguments(train_file=tsv)
    task.apply_defaults(args)
    sample = getattr(model_args, "tokenizer_train_samples", None)  # None: the code before reads every example

    def corpus(splits):
        if "max_examples" in inspect.signature(task.corpus).parameters:
            return task.corpus(splits["train"], max_examples=sample)
        return task.corpus(splits["train"])

    saved, reset = os.path.join(state, "tokenizer"), False
    if step in ("tokenizer", "tokenize"):
        splits = task.load(args)  # what the step starts from (after: the datasets cache of the load step)
        if step == "tokenize":
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(saved)
        reset = reset_peak()
    rss_at_start, start = vm_rss(), time.perf_counter()
    if step in ("load", "whole"):
        splits = task.load(args)
    if step in ("tokenizer", "whole"):
        tokenizer = train_tokenizer(corpus(splits), vocab_size=model_args.vocab_size)
        if step == "tokenizer":
            tokenizer.save_pretrained(saved)
    if step in ("tokenize", "whole"):
        tokenized = task.tokenize(splits, tokenizer, args)
        assert len(tokenized["train"]) > 0
    return {"seconds": round(time.perf_counter() - start, 1), "peak_rss_mib": round(vm_hwm() / 2**20),
            "rss_at_start_mib": round(rss_at_start / 2**20), "peak_reset": reset,
            "train_examples": len(splits["train"]), "tokenizer_train_samples": sample}


# --- the driver -------------------------------------------------------------------------------------------------------


def build_tsv(pairs: int, work: str) -> str:
    """`pairs` distinct pairs: Tatoeba's, over and over, each side ending with the pair's number."""
    path = os.path.join(work, f"train-{pairs}.tsv")
    if os.path.isfile(path):
        return path
    with open(TATOEBA, encoding="utf-8") as f:
        source = [line.rstrip("\n").split("\t")[:2] for line in f if "\t" in line]
    with open(path + ".part", "w", encoding="utf-8") as out:
        for n in range(pairs):
            en, fr = source[n % len(source)]
            out.write(f"{en} {n}\t{fr} {n}\n")
    os.replace(path + ".part", path)
    return path


def run_step(step: str, version: str, code: str, tsv: str, work: str) -> dict:
    state = os.path.join(work, version)
    cache = os.path.join(state, "cache-whole" if step == "whole" else "cache")
    if step in ("load", "whole"):  # a first run: nothing in the datasets cache
        shutil.rmtree(cache, ignore_errors=True)
    os.makedirs(state, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": code, "HF_DATASETS_CACHE": cache, "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "true"}
    command = [sys.executable, os.path.abspath(__file__), "--worker", step, "--tsv", tsv, "--state", state,
               "--code", code]
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=work)
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.returncode}",
                "stderr_tail": result.stderr[-2000:]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def prepare_before(commit: str, folder: str) -> None:
    if not os.path.isdir(folder):
        subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", folder, commit], check=True,
                       capture_output=True)


def table(results: dict) -> str:
    lines = [f"{'step':<10} {'before: peak RSS':>17} {'time':>9}   {'after: peak RSS':>16} {'time':>9}   {'RSS after/before':>16}"]
    for step in STEPS:
        cells = []
        for version in ("before", "after"):
            r = results[version].get(step, {})
            cells.append((r.get("error", "-")[:16], "") if "peak_rss_mib" not in r else
                         (f"{r['peak_rss_mib']:,} MiB", f"{r['seconds']:,.1f} s"))
        b, a = results["before"].get(step, {}), results["after"].get(step, {})
        ratio = f"{a['peak_rss_mib'] / b['peak_rss_mib']:.2f}" if "peak_rss_mib" in a and "peak_rss_mib" in b else "-"
        lines.append(f"{step:<10} {cells[0][0]:>17} {cells[0][1]:>9}   {cells[1][0]:>16} {cells[1][1]:>9}   {ratio:>16}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=5_000_000, help="Training pairs in the TSV file.")
    parser.add_argument("--work", default="/tmp/data_memory", help="Where the TSV file and the datasets caches go.")
    parser.add_argument("--commit", default="fc70a22", help="The code before the change.")
    parser.add_argument("--before_dir", default="/tmp/before", help="Its git worktree.")
    parser.add_argument("--steps", default=",".join(STEPS), help="Comma-separated steps to measure.")
    parser.add_argument("--versions", default="before,after", help="Comma-separated versions to measure.")
    parser.add_argument("--keep", action="store_true", help="Keep the caches, the TSV file and the worktree.")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "data_memory.json"))
    parser.add_argument("--worker", choices=STEPS, help=argparse.SUPPRESS)
    parser.add_argument("--tsv", help=argparse.SUPPRESS)
    parser.add_argument("--state", help=argparse.SUPPRESS)
    parser.add_argument("--code", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        print(json.dumps(worker(options.worker, options.tsv, options.state, options.code)))
        return

    os.makedirs(options.work, exist_ok=True)
    started = time.perf_counter()
    tsv = build_tsv(options.pairs, options.work)
    print(f"{tsv}: {options.pairs:,} pairs, {os.path.getsize(tsv) / 2**20:,.0f} MiB", flush=True)
    code = {version: {"before": options.before_dir, "after": ROOT}[version] for version in options.versions.split(",")}
    created = "before" in code and not os.path.isdir(options.before_dir)
    if "before" in code:
        prepare_before(options.commit, options.before_dir)
    results = {version: {} for version in ("before", "after")}
    # Steps in order: tokenize reads the tokenizer the tokenizer step saved, and both the cache the load step made.
    for step in options.steps.split(","):
        for version in code:
            results[version][step] = result = run_step(step, version, code[version], tsv, options.work)
            shown = result.get("error") or f"{result['peak_rss_mib']:,} MiB, {result['seconds']:,.1f} s"
            print(f"  {version:<6} {step:<9} {shown}", flush=True)

    whole = {version: results[version].get("whole", {}).get("peak_rss_mib") for version in results}
    floor = None
    if whole["before"] and whole["after"]:
        floor = {"after_at_most_2_gib": whole["after"] * 2**20 <= 2 * GIB,
                 "after_at_most_a_quarter_of_before": whole["after"] <= whole["before"] / 4}
    report = {
        "pairs": options.pairs, "tsv_mib": round(os.path.getsize(tsv) / 2**20), "before_commit": options.commit,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "measure": "VmHWM of a fresh process per step, reset after the step's input data is loaded",
        "results": results, "floor": floor, "minutes": round((time.perf_counter() - started) / 60, 1),
    }
    os.makedirs(os.path.dirname(options.output), exist_ok=True)
    with open(options.output, "w") as f:
        json.dump(report, f, indent=1)
    print()
    print(table(results))
    if floor:
        print("\nfloor (whole preparation):", ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in floor.items()))
    print(f"\nwritten to {options.output}")
    if not options.keep:
        for version in code:
            shutil.rmtree(os.path.join(options.work, version), ignore_errors=True)
        os.remove(tsv)
        if created:
            subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", options.before_dir], check=False)


if __name__ == "__main__":
    main()
