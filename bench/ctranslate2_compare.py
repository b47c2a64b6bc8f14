"""CTranslate2, the ceiling for CPU inference: the *same* weights exported with `hf-seq2seq export-ct2`, then
identical tokens? and how fast, against our generate().

    bash bench/quality.sh tatoeba                                    # a trained model (or any train.py output)
    python bench/ctranslate2_compare.py --model outputs/tatoeba-small

Sources are the first `--sentences` lines of Tatoeba dev (else the built-in corpus's test split). Both engines
translate them with greedy search and with beam 4, in batches of 32 and one by one, maximum 128 new tokens, in
alternating rounds after a warm-up (medians). "Identical" compares the output token ids sentence by sentence.
CTranslate2 runs float32 (the same arithmetic as ours) and int8 (its usual serving setting), with as many threads
as torch uses.
"""

import argparse
import os
import tempfile

import torch

from common import SHARED_DATA, interleaved, machine, median, print_table, write_results
from hf_seq2seq.cli import load
from hf_seq2seq.export_ctranslate2 import export_ctranslate2, translator


def sources(count: int) -> list[str]:
    path = os.path.join(SHARED_DATA, "tatoeba-en-fr", "dev.tsv")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return [line.split("\t")[0] for _, line in zip(range(count), f)]
    from hf_seq2seq.corpus import generate_corpus

    return [row["translation"]["en"] for row in generate_corpus()["test"]][:count]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="outputs/tatoeba-small")
    parser.add_argument("--sentences", type=int, default=256, help="translated in batches of 32")
    parser.add_argument("--sentences_batch1", type=int, default=32, help="translated one by one")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    model, tokenizer = load(args.model)
    threads = torch.get_num_threads()
    workdir = tempfile.mkdtemp()
    engines = {
        "ct2 float32": translator(export_ctranslate2(args.model, os.path.join(workdir, "fp32")), intra_threads=threads),
        "ct2 int8": translator(export_ctranslate2(args.model, os.path.join(workdir, "int8"), "int8"), intra_threads=threads),
    }
    texts = sources(args.sentences)
    special = {tokenizer.pad_token_id, tokenizer.eos_token_id, model.config.decoder_start_token_id}

    def ours(batch: list[str], beams: int) -> list[list[int]]:
        encoded = tokenizer(batch, return_tensors="pt", padding=True)
        with torch.inference_mode():
            output = model.generate(**encoded, num_beams=beams, max_new_tokens=128, do_sample=False, length_penalty=1.0)
        return [[t for t in row.tolist() if t not in special] for row in output]

    def ct2(engine, batch: list[str], beams: int) -> list[list[int]]:
        tokens = [tokenizer.convert_ids_to_tokens(ids) for ids in tokenizer(batch)["input_ids"]]
        results = engine.translate_batch(tokens, beam_size=beams, max_decoding_length=128, length_penalty=1.0)
        return [tokenizer.convert_tokens_to_ids(r.hypotheses[0]) for r in results]

    result = {"machine": machine(), "model": args.model, "cells": []}
    rows = []
    for batch_size, count in ((32, args.sentences), (1, args.sentences_batch1)):
        batches = [texts[i : i + batch_size] for i in range(0, count, batch_size)]
        for beams in (1, 4):
            outputs = {}

            def run(name, beams=beams, batches=batches):
                translate = (lambda b: ours(b, beams)) if name == "ours" else (lambda b: ct2(engines[name], b, beams))
                outputs[name] = [ids for batch in batches for ids in translate(batch)]

            contenders = {name: (lambda name=name: run(name)) for name in ["ours", *engines]}
            times = interleaved(contenders, rounds=args.rounds)
            new_tokens = sum(len(ids) + 1 for ids in outputs["ours"])  # + </s>
            cell = {"batch_size": batch_size, "num_beams": beams, "sentences": count, "new_tokens": new_tokens}
            for name in contenders:
                cell[name] = {"seconds": round(median(times[name]), 3),
                              "identical_to_ours": sum(a == b for a, b in zip(outputs[name], outputs["ours"])) / count}
                cell[name]["speed_over_ours"] = round(median(times["ours"]) / median(times[name]), 2)
            result["cells"].append(cell)
            mode = "greedy" if beams == 1 else f"beam {beams}"
            row = [mode, batch_size, f"{cell['ours']['seconds']:.2f}"]
            for name in engines:
                row += [f"{cell[name]['seconds']:.2f}", f"{cell[name]['speed_over_ours']:.2f}×",
                        f"{cell[name]['identical_to_ours']:.0%}"]
            rows.append(row)
            print(row, flush=True)
    header = ["decoding", "batch", "ours s"]
    for name in engines:
        header += [f"{name} s", f"{name} speed / ours", f"{name} same tokens"]
    print_table(header, rows)
    write_results("ctranslate2_compare", result)


if __name__ == "__main__":
    main()
