"""Run train.py's main() with a trainer that records, per process, the world size and the batches it trained on, and
whether a DDP wrapper was still alive when the process left the process group. Used by tests/test_train.py under
`accelerate launch --multi_gpu --num_processes 2`."""

import gc
import json
import os
import sys

from torch.nn.parallel import DistributedDataParallel


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

    def create_accelerator_and_postprocess(self):
        super().create_accelerator_and_postprocess()
        end_training = self.accelerator.end_training

        def recording_end_training():
            # A DDP wrapper still alive here would destroy the process group from its reducer, GIL held: the exit hang
            # that train.leave_process_group prevents by freeing it first.
            alive = sum(isinstance(o, DistributedDataParallel) for o in gc.get_objects())
            with open(os.path.join(self.args.output_dir, f"rank{self.args.process_index}-exit.json"), "w") as f:
                json.dump({"ddp_wrappers_alive": alive}, f)
            end_training()

        self.accelerator.end_training = recording_end_training


if __name__ == "__main__":
    train.main(sys.argv[1:], trainer_class=RecordingTrainer)
