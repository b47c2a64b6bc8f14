"""The picture a user chooses a translator by: BLEU against sentences per second.

Each model folder translates the whole Tatoeba dev set (8,152 sentences, beam 4, batch 32, 2 cores) with the
transformers `generate()` path, and optionally with CTranslate2 (the export cached beside the model); BLEU is
sacreBLEU against the references. Contenders run after a warm-up batch, alone on the machine; with `--rounds n` they
take turns (A B C A B C ...) and each reports its median time, so that a box that slows down mid-run slows all of
them alike; `--reference LABEL` adds each one's speed as a ratio to that contender's.

    python bench/quality_speed.py outputs/tatoeba-small outputs/tatoeba-marian ... [--ctranslate2] \
        [--labels "today's recipe" "MarianMTModel" ...] [--rounds 3 --reference MarianMTModel]
    -> bench/results/quality_speed.json, bench/results/quality_speed.png
    python bench/quality_speed.py --merge A.json B.json ... --output bench/results/quality_speed.json
    -> the rows of several such runs in one file and one picture (nothing is re-measured)
"""

import argparse
import functools
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer  # noqa: E402

import hf_seq2seq  # noqa: E402,F401
from hf_seq2seq.inference import generate_texts  # noqa: E402
from hf_seq2seq.data import load_file  # noqa: E402
from hf_seq2seq.metrics import load_bleu_chrf  # noqa: E402

DEV = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "tatoeba-en-fr", "dev.tsv")


def measure(contenders, sources, references, metric, rounds: int = 1):
    """contenders: (name, translate, extra row fields). Each translates the sources `rounds` times, in turns; BLEU
    from the first round's output (decoding is deterministic), time the median of the rounds."""
    for _, translate, _ in contenders:
        translate(sources[:32])  # warm-up
    outputs, seconds = {}, {name: [] for name, _, _ in contenders}
    for _ in range(rounds):
        for name, translate, _ in contenders:
            start = time.perf_counter()
            outputs.setdefault(name, translate(sources))
            seconds[name].append(time.perf_counter() - start)
            print(name, round(seconds[name][-1], 1), "s", flush=True)
    rows = []
    for name, _, extra in contenders:
        median = statistics.median(seconds[name])
        bleu = metric.compute(predictions=outputs[name], references=references)["bleu"]
        rows.append({"name": name, "bleu": round(bleu, 2), "seconds": round(median, 1),
                     "sentences_per_second": round(len(sources) / median, 1)}
                    | ({"seconds_per_round": [round(t, 1) for t in seconds[name]]} if rounds > 1 else {}) | extra)
        print(json.dumps(rows[-1]), flush=True)
    return rows


def translate_with_generate(model, tokenizer, texts):
    with torch.inference_mode():
        return generate_texts(model, tokenizer, texts, num_beams=4, batch_size=32)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*")
    parser.add_argument("--labels", nargs="*", default=None)
    parser.add_argument("--ctranslate2", action="store_true", help="also time each model with CTranslate2")
    parser.add_argument("--test_file", default=DEV)
    parser.add_argument("--max_sentences", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=1, help="times each contender translates the set, in turns")
    parser.add_argument("--reference", default=None, help="label of the contender the others' speed is divided by")
    parser.add_argument("--output", default="bench/results/quality_speed.json")
    parser.add_argument("--merge", nargs="+", default=None, metavar="JSON", help="results of earlier runs to combine")
    args = parser.parse_args()
    if args.merge:
        runs = [json.load(open(path)) for path in args.merge]
        rows = [row for run in runs for row in run["rows"]]
        with open(args.output, "w") as f:
            json.dump({"test_file": runs[0]["test_file"], "sentences": runs[0]["sentences"], "merged": args.merge,
                       "rows": rows}, f, indent=1)
        return plot(rows, args.output.replace(".json", ".png"))
    if not args.models:
        parser.error("give model folders to measure, or --merge result files")
    labels = args.labels or [os.path.basename(os.path.normpath(m)) for m in args.models]
    names = (labels + [f"{label} + CTranslate2" for label in labels]) if args.ctranslate2 else labels
    if args.reference is not None and args.reference not in names:
        parser.error(f"--reference {args.reference!r} is none of the contenders' labels: {names}")
    pairs = load_file(args.test_file, "en", "fr")["translation"][: args.max_sentences]
    sources, references = [p["en"] for p in pairs], [p["fr"] for p in pairs]
    metric = load_bleu_chrf()
    torch.set_num_threads(os.cpu_count() or 1)
    contenders, not_converted = [], {}
    for folder, label in zip(args.models, labels):
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
        contenders.append((label, functools.partial(translate_with_generate, model, tokenizer),
                           {"model": folder, "engine": "transformers"}))
        if args.ctranslate2:
            from hf_seq2seq.export_ctranslate2 import ctranslate2_translator, translate_with_ctranslate2

            try:
                translator = ctranslate2_translator(folder)
            except ValueError as error:
                # e.g. CTranslate2's MarianMTLoader assumes Opus-MT's vocabulary (<pad> last, dropped on export),
                # which a Marian model trained on our tokenizer does not have: time it with generate() only.
                not_converted[label] = str(error)
                print(f"CTranslate2 cannot convert {folder} ({error}); timed with generate() only", flush=True)
                continue
            contenders.append((f"{label} + CTranslate2", functools.partial(
                translate_with_ctranslate2, folder, num_beams=4, batch_size=32, translator=translator),
                {"model": folder, "engine": "ctranslate2"}))
    if args.reference is not None and args.reference not in [name for name, _, _ in contenders]:
        parser.error(f"--reference {args.reference!r} could not be converted: {not_converted}")
    rows = measure(contenders, sources, references, metric, args.rounds)
    if args.reference:
        reference = next(row for row in rows if row["name"] == args.reference)
        for row in rows:
            row["speed_vs_reference"] = round(row["sentences_per_second"] / reference["sentences_per_second"], 2)
            print(f"{row['name']}: BLEU {row['bleu']}, {row['speed_vs_reference']}x {args.reference}'s speed")
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"test_file": args.test_file, "sentences": len(sources), "rounds": args.rounds,
                   "reference": args.reference, "rows": rows}
                  | ({"ctranslate2_not_converted": not_converted} if not_converted else {}), f, indent=1)
    plot(rows, args.output.replace(".json", ".png"))


def plot(rows, path):
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    speeds = [row["sentences_per_second"] for row in rows]
    right_half = (min(speeds) + max(speeds)) / 2
    for row in rows:
        marker = "s" if row["engine"] == "ctranslate2" else "o"
        # transformers' MarianMTModel in red, ours in blue, the short ablations in grey
        color = ("tab:red" if "marian" in row["model"].lower() else
                 "tab:gray" if "ablation" in row["model"] else "tab:blue")
        ax.scatter(row["sentences_per_second"], row["bleu"], marker=marker, color=color)
        # labels of the right half go left and below their point, so that long names stay inside the figure and
        # clear of a label at the same BLEU on the left (a model and its CTranslate2 export)
        left = row["sentences_per_second"] > right_half
        ax.annotate(row["name"], (row["sentences_per_second"], row["bleu"]), textcoords="offset points",
                    xytext=(-5, -6) if left else (5, 4), ha="right" if left else "left",
                    va="top" if left else "baseline", fontsize=8)
    ax.margins(x=0.15, y=0.08)
    ax.set_xlabel("sentences per second (whole Tatoeba dev, beam 4, batch 32, 2 CPU cores)")
    ax.set_ylabel("sacreBLEU (Tatoeba dev)")
    ax.set_title("circles: transformers generate(); squares: CTranslate2", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(path)


if __name__ == "__main__":
    main()
