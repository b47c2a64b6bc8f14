"""DialogSum's extractive LONGEST-3 baseline (Chen et al., 2021), computed here on the same dev set with the same
ROUGE module that scores our models, so that the comparison is like for like.

LONGEST-3 takes the three longest utterances of a dialogue (by words, speaker tag included, ties to the earlier
one), in the order they were said, as its summary.

    python bench/dialogsum_baseline.py      # -> bench/results/dialogsum-longest3-dev.json
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from hf_seq2seq.metrics import load_rouge  # noqa: E402

DEV = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "dialogsum", "dev.jsonl")


def longest_3(dialogue: str) -> str:
    utterances = [u.strip() for u in dialogue.split("\n") if u.strip()]
    longest = sorted(range(len(utterances)), key=lambda i: (-len(utterances[i].split()), i))[:3]
    return "\n".join(utterances[i] for i in sorted(longest))


def main():
    records = [json.loads(line) for line in open(DEV, encoding="utf-8")]
    scores = load_rouge().compute(predictions=[longest_3(r["dialogue"]) for r in records],
                                  references=[r["summary"] for r in records])
    result = {"baseline": "LONGEST-3", "dialogues": len(records), **{k: round(v, 2) for k, v in scores.items()}}
    print(json.dumps(result, indent=1))
    os.makedirs("bench/results", exist_ok=True)
    with open("bench/results/dialogsum-longest3-dev.json", "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
