"""Run train.py's main(), appending the number of every step this process trains to `steps.txt` in the output folder,
and with `--kill_after_checkpoint N` (taken off the arguments) kill the process with SIGKILL (no clean-up, as a crash
or a lost machine would) right after the checkpoint of step N is written: the run dies at the same step on any
machine, however slow. Used by tests/test_train.py."""

import os
import signal
import sys

from transformers import TrainerCallback

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import train  # noqa: E402
from hf_seq2seq.batching import TokenBudgetSeq2SeqTrainer  # noqa: E402


class RecordSteps(TrainerCallback):
    def on_step_begin(self, args, state, control, **kwargs):
        with open(os.path.join(args.output_dir, "steps.txt"), "a") as f:
            f.write(f"{state.global_step + 1}\n")


class KillAfterCheckpoint(TrainerCallback):
    def __init__(self, step: int | None):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        # Trainer calls on_save once the checkpoint folder (weights, optimizer, trainer_state.json) is complete.
        if state.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    argv = sys.argv[1:]
    step = None
    if "--kill_after_checkpoint" in argv:
        at = argv.index("--kill_after_checkpoint")
        step = int(argv[at + 1])
        del argv[at : at + 2]

    class ProbeTrainer(TokenBudgetSeq2SeqTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.add_callback(RecordSteps())
            self.add_callback(KillAfterCheckpoint(step))

    train.main(argv, trainer_class=ProbeTrainer)
    if step is not None:
        sys.exit(f"the run finished without reaching the checkpoint of step {step}")
