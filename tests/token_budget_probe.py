"""Run train.py's main() as it is, `--max_tokens_per_batch N` included (train.py's own flag, which reaches its
`TokenBudgetSeq2SeqTrainer` through the training arguments), recording per process the world size, the step, the
epoch and the batch it trained on (as tests/ddp_probe.py does). A run given `--resume_from_checkpoint` records to
`rank{N}-resumed.jsonl`, others to `rank{N}.jsonl`. Used by tests/test_batching.py under `accelerate launch`."""

import functools
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import train  # noqa: E402
from hf_seq2seq.batching import TokenBudgetSeq2SeqTrainer  # noqa: E402


class RecordingTrainer(TokenBudgetSeq2SeqTrainer):
    def __init__(self, *args, record_suffix="", **kwargs):
        super().__init__(*args, **kwargs)
        self.record_file = os.path.join(self.args.output_dir, f"rank{self.args.process_index}{record_suffix}.jsonl")

    def training_step(self, model, inputs, *args, **kwargs):
        record = {
            "rank": self.args.process_index, "world_size": self.args.world_size, "step": self.state.global_step + 1,
            "epoch": self.state.epoch, "batch": inputs["input_ids"].tolist(), "labels": list(inputs["labels"].shape),
        }
        with open(self.record_file, "a") as f:
            f.write(json.dumps(record) + "\n")
        return super().training_step(model, inputs, *args, **kwargs)


if __name__ == "__main__":
    argv = sys.argv[1:]
    suffix = "-resumed" if "--resume_from_checkpoint" in argv else ""
    # No max_tokens_per_batch here: the budget the batches keep to comes from train.py's --max_tokens_per_batch.
    trainer_class = functools.partial(RecordingTrainer, record_suffix=suffix)
    train.main(argv, trainer_class=trainer_class)
