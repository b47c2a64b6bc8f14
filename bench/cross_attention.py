"""Where a span reader's decoder looks in the encoder: the cross-attention of each decoder layer on SQuAD dev windows.

    python bench/cross_attention.py --model outputs/squad-span-small [--model ...] [--questions 64]

The span head scores position i from the decoder's state there, and the decoder reads the input shifted right (BART's
design): its own input at i is token i-1, so the token being scored reaches it only through cross-attention to the
encoder's position i. The table gives, per decoder layer (mean over heads and real positions), the attention weight
on the encoder's own position i and on i-1, the mean largest weight, and the entropy against a uniform spread's.
"""

import argparse
import json
import os

import torch
from transformers import AutoTokenizer

from common import print_table, write_results
from hf_seq2seq import HFSeq2SeqForQuestionAnswering

DEV = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "squad-v1.1", "dev.json")


def first_questions(path: str, count: int) -> tuple[list[str], list[str]]:
    questions, contexts = [], []
    for article in json.load(open(path, encoding="utf-8"))["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"][:1]:  # one question a paragraph: more contexts
                questions.append(qa["question"])
                contexts.append(paragraph["context"])
    return questions[:count], contexts[:count]


@torch.no_grad()
def cross_attention_profile(model_path: str, questions: list[str], contexts: list[str], max_length: int = 256):
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = HFSeq2SeqForQuestionAnswering.from_pretrained(model_path, attn_implementation="eager").eval()
    batch = tokenizer(questions, contexts, truncation="only_second", max_length=max_length, padding=True,
                      return_tensors="pt")
    attentions = model(**batch, output_attentions=True).cross_attentions  # per layer: (batch, heads, T, T)
    real = batch["attention_mask"].bool()
    length = batch["input_ids"].shape[1]
    own = torch.eye(length, dtype=torch.bool)
    previous = torch.diag(torch.ones(length - 1, dtype=torch.bool), -1)
    lengths = real.sum(1).float()
    uniform = {"uniform_entropy": lengths.log().mean().item(), "uniform_weight": (1 / lengths).mean().item()}
    rows = []
    for layer, attention in enumerate(attentions):  # padded keys already weigh 0 (the attention mask)
        where = real[:, None, :].expand(-1, attention.shape[1], -1)  # real decoder positions of every head
        entropy = -(attention * attention.clamp_min(1e-12).log()).sum(-1)
        rows.append({"layer": layer, "own_position": (attention * own).sum(-1)[where].mean().item(),
                     "previous_position": (attention * previous).sum(-1)[where].mean().item(),
                     "largest_weight": attention.max(-1).values[where].mean().item(),
                     "entropy": entropy[where].mean().item(), **uniform})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True, help="a span reader's directory (repeatable)")
    parser.add_argument("--questions", type=int, default=64)
    parser.add_argument("--dev_file", default=DEV)
    args = parser.parse_args()
    questions, contexts = first_questions(args.dev_file, args.questions)
    table, result = [], {}
    for path in args.model:
        result[path] = cross_attention_profile(path, questions, contexts)
        for row in result[path]:
            table.append([os.path.basename(path.rstrip("/")), row["layer"], f"{row['own_position']:.3f}",
                          f"{row['previous_position']:.3f}", f"{row['uniform_weight']:.4f}", f"{row['largest_weight']:.3f}",
                          f"{row['entropy']:.2f} / {row['uniform_entropy']:.2f}"])
    print_table(["model", "decoder layer", "on own position", "on previous", "uniform", "largest weight",
                 "entropy / uniform (nats)"], table)
    write_results("cross_attention", {"questions": len(questions), "models": result})


if __name__ == "__main__":
    main()
