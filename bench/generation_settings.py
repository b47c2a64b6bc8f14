"""Which `generate()` settings a task should default to, measured on dev: each setting's score and time.

    python bench/generation_settings.py --model outputs/dialogsum-small --max_samples 250
    python bench/generation_settings.py --model outputs/squad-small --max_samples 1000

The grid is the task's: beam size, length penalty, no-repeat n-gram size, minimum and maximum length. Each row
translates/summarises/answers the same dev examples; `seconds` is the wall time of generating them on this machine
(2 cores), comparable between the rows of one run only.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from hf_seq2seq.cli import load, model_task  # noqa: E402
from hf_seq2seq.data import DataArguments  # noqa: E402
from hf_seq2seq.inference import generate_texts  # noqa: E402
from hf_seq2seq.tasks import get_task  # noqa: E402

DEV = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
GRIDS = {
    "summarization": (f"{DEV}/dialogsum/dev.jsonl", [
        {"num_beams": 1, "max_new_tokens": 96},
        {"num_beams": 4, "max_new_tokens": 96},
        {"num_beams": 4, "max_new_tokens": 96, "no_repeat_ngram_size": 3},
        {"num_beams": 4, "max_new_tokens": 96, "no_repeat_ngram_size": 3, "length_penalty": 0.6},
        {"num_beams": 4, "max_new_tokens": 96, "no_repeat_ngram_size": 3, "length_penalty": 1.5},
        {"num_beams": 4, "max_new_tokens": 96, "no_repeat_ngram_size": 3, "length_penalty": 2.0},
        {"num_beams": 4, "max_new_tokens": 96, "no_repeat_ngram_size": 3, "min_new_tokens": 15},
        {"num_beams": 4, "max_new_tokens": 64, "no_repeat_ngram_size": 3},
    ]),
    "question-answering": (f"{DEV}/squad-v1.1/dev.json", [
        {"num_beams": 1, "max_new_tokens": 32},
        {"num_beams": 4, "max_new_tokens": 32},
        {"num_beams": 4, "max_new_tokens": 16},
        {"num_beams": 4, "max_new_tokens": 32, "length_penalty": 0.6},
        {"num_beams": 4, "max_new_tokens": 32, "length_penalty": 1.5},
        {"num_beams": 4, "max_new_tokens": 32, "no_repeat_ngram_size": 3},
    ]),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--max_samples", type=int, default=None)
    parser.add_argument("--output", default=None, help="default: bench/results/<model folder>-generation.json")
    args = parser.parse_args()
    model, tokenizer = load(args.model)
    task_name = model_task(args.model)
    task = get_task(task_name)
    dev, grid = GRIDS[task_name]
    data_args = DataArguments(task=task_name, test_file=dev, max_predict_samples=args.max_samples)
    task.apply_defaults(data_args)
    sources, references = task.test_set(data_args, model.config)
    metric = task.metric_loader()
    rows = []
    for settings in grid:
        start = time.perf_counter()
        outputs = generate_texts(model, tokenizer, sources, **settings)
        seconds = time.perf_counter() - start
        scores = metric.compute(predictions=outputs, references=references)
        row = {"settings": settings, **{k: round(scores[k], 2) for k, _ in task.card_metrics},
               "mean_words": round(sum(len(o.split()) for o in outputs) / len(outputs), 1), "seconds": round(seconds, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    output = args.output or f"bench/results/{os.path.basename(os.path.abspath(args.model))}-generation.json"
    with open(output, "w") as f:
        json.dump({"model": args.model, "task": task_name, "examples": len(sources), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
