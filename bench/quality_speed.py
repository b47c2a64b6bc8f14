"""The picture a user chooses a translator by: BLEU against sentences per second.

Each model folder translates the whole Tatoeba dev set (8,152 sentences, beam 4, batch 32, 2 cores) with the
transformers `generate()` path, and optionally with CTranslate2 (the export cached beside the model); BLEU is
sacreBLEU against the references. Contenders run one after the other after a warm-up batch, alone on the machine.

    python bench/quality_speed.py outputs/tatoeba-small outputs/tatoeba-marian ... [--ctranslate2] \
        [--labels "today's recipe" "MarianMTModel" ...]
    -> bench/results/quality_speed.json, bench/results/quality_speed.png
    python bench/quality_speed.py --merge A.json B.json ... --output bench/results/quality_speed.json
    -> the rows of several such runs in one file and one picture (nothing is re-measured)
"""

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer  # noqa: E402

import hf_seq2seq  # noqa: E402,F401
from hf_seq2seq.cli import generate_texts  # noqa: E402
from hf_seq2seq.data import load_file  # noqa: E402
from hf_seq2seq.metrics import load_bleu_chrf  # noqa: E402

DEV = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "tatoeba-en-fr", "dev.tsv")


def measure(name, translate, sources, references, metric):
    translate(sources[:32])  # warm-up
    start = time.perf_counter()
    outputs = translate(sources)
    seconds = time.perf_counter() - start
    bleu = metric.compute(predictions=outputs, references=references)["bleu"]
    row = {"name": name, "bleu": round(bleu, 2), "seconds": round(seconds, 1),
           "sentences_per_second": round(len(sources) / seconds, 1)}
    print(json.dumps(row), flush=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*")
    parser.add_argument("--labels", nargs="*", default=None)
    parser.add_argument("--ctranslate2", action="store_true", help="also time each model with CTranslate2")
    parser.add_argument("--test_file", default=DEV)
    parser.add_argument("--max_sentences", type=int, default=None)
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
    pairs = load_file(args.test_file, "en", "fr")["translation"][: args.max_sentences]
    sources, references = [p["en"] for p in pairs], [p["fr"] for p in pairs]
    metric = load_bleu_chrf()
    torch.set_num_threads(os.cpu_count() or 1)
    rows = []
    for folder, label in zip(args.models, labels):
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
        with torch.inference_mode():
            rows.append(measure(label, lambda texts: generate_texts(model, tokenizer, texts, num_beams=4, batch_size=32),
                                sources, references, metric) | {"model": folder, "engine": "transformers"})
        if args.ctranslate2:
            from hf_seq2seq.export_ctranslate2 import ctranslate2_translator, translate_with_ctranslate2

            translator = ctranslate2_translator(folder)
            rows.append(measure(f"{label} + CTranslate2", lambda texts: translate_with_ctranslate2(
                folder, texts, num_beams=4, batch_size=32, translator=translator), sources, references, metric)
                | {"model": folder, "engine": "ctranslate2"})
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"test_file": args.test_file, "sentences": len(sources), "rows": rows}, f, indent=1)
    plot(rows, args.output.replace(".json", ".png"))


def plot(rows, path):
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for row in rows:
        marker = "s" if row["engine"] == "ctranslate2" else "o"
        # transformers' MarianMTModel in red, ours in blue, the ten-minute ablations in grey
        color = ("tab:red" if "marian" in row["model"].lower() else
                 "tab:gray" if "10 min" in row["name"] else "tab:blue")
        ax.scatter(row["sentences_per_second"], row["bleu"], marker=marker, color=color)
        ax.annotate(row["name"], (row["sentences_per_second"], row["bleu"]), textcoords="offset points",
                    xytext=(5, 4), fontsize=8)
    ax.margins(x=0.35, y=0.08)  # room for the labels of the right-most points
    ax.set_xlabel("sentences per second (whole Tatoeba dev, beam 4, batch 32, 2 CPU cores)")
    ax.set_ylabel("sacreBLEU (Tatoeba dev)")
    ax.set_title("circles: transformers generate(); squares: CTranslate2", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(path)


if __name__ == "__main__":
    main()
