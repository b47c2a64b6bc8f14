"""Run train.py's main() with a trainer that records, per process, the world size and the batches it trained on.
Used by tests/test_train.py under `accelerate launch --multi_gpu --num_processes 2`."""

import json
import os
import sys


sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import train  # noqa: E402
from hf_seq2seq.batching import TokenBudgetSeq2SeqTrainer  # noqa: E402


class RecordingTrainer(TokenBudgetSeq2SeqTrainer):
    def training_step(self, model, inputs, *args, **kwargs):
        record = {"rank": self.args.process_index, "world_size": self.args.world_size,
                  "batch": inputs["input_ids"].tolist()}
        with open(os.path.join(self.args.output_dir, f"rank{self.args.process_index}.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")
        return super().training_step(model, inputs, *args, **kwargs)


if __name__ == "__main__":
    train.main(sys.argv[1:], trainer_class=RecordingTrainer)
