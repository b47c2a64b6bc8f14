"""Half precision on CPU: a trained model loaded with `from_pretrained(dtype=bfloat16 / float16)` against float32.

For each dtype, greedy and beam-4 translations of the held-out split; reports how many sentences get exactly the
float32 tokens, and the BLEU of each. Correctness, not speed (CPU half-precision speed depends on the processor).

    python bench/half_precision.py --model outputs/grammar          # trained with --dataset_name builtin:grammar:
                                                                    # the grammar corpus's test split
    python bench/half_precision.py --model outputs/en-fr --test_file ../shared/data/tatoeba-en-fr/dev.tsv
"""

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer  # noqa: E402

import hf_seq2seq  # noqa: E402,F401
from hf_seq2seq.corpus import generate_corpus  # noqa: E402
from hf_seq2seq.data import load_file  # noqa: E402
from hf_seq2seq.metrics import load_bleu_chrf  # noqa: E402

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@torch.inference_mode()
def generate_ids(model, tokenizer, sources, num_beams, batch_size=32):
    rows = []
    for start in range(0, len(sources), batch_size):
        batch = tokenizer(sources[start : start + batch_size], return_tensors="pt", padding=True)
        out = model.generate(**batch, num_beams=num_beams, max_new_tokens=64)
        rows += [[t for t in row.tolist() if t != tokenizer.pad_token_id] for row in out]
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--test_file", default=None, help="default: the test split of builtin:grammar")
    parser.add_argument("--max_sentences", type=int, default=1000)
    parser.add_argument("--output", default="bench/results/half_precision.json")
    args = parser.parse_args()

    if args.test_file:
        pairs = load_file(args.test_file, "en", "fr")["translation"][: args.max_sentences]
    else:
        pairs = [row["translation"] for row in generate_corpus()["test"]][: args.max_sentences]
    sources, references = [p["en"] for p in pairs], [p["fr"] for p in pairs]
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    bleu = load_bleu_chrf()
    results, reference_ids = {"model": args.model, "sentences": len(sources)}, {}
    for name, dtype in DTYPES.items():
        model = AutoModelForSeq2SeqLM.from_pretrained(args.model, dtype=dtype).eval()
        for num_beams in (1, 4):
            ids = generate_ids(model, tokenizer, sources, num_beams)
            texts = tokenizer.batch_decode(ids, skip_special_tokens=True)
            key = f"{name}_beam{num_beams}"
            reference_ids.setdefault(num_beams, ids)
            same = sum(a == b for a, b in zip(ids, reference_ids[num_beams]))
            results[key] = {"same_tokens_as_float32": same, "bleu": round(bleu.compute(predictions=texts, references=references)["bleu"], 2)}
            print(f"{key:18s} same tokens as float32: {same}/{len(sources)}  BLEU {results[key]['bleu']}", flush=True)
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
