"""Run train.py's main() and record, per process and step: the world size, Accelerate's distributed type, how many
parameter elements the process holds (the local shards under FSDP), the loss and the batch. Used by
tests/test_scaling.py under `accelerate launch`.

With `--probe_fsdp2`, the model is sharded by transformers' own FSDP2 before training: what `from_pretrained(...,
distributed_config=DistributedConfig(fsdp_size=N))` does with the model's FSDP plan, applied here to train.py's newly
built model. After training, the processes generate together from the sharded model, save it with
`Trainer.save_model` (which gathers the shards), and reload it unsharded: the rest of train.py (saving the bundle,
sample translations) runs on process 0 alone and cannot take part in FSDP's collectives.
"""

import json
import os
import sys

import torch
from torch.distributed.fsdp import FSDPModule, register_fsdp_forward_method
from transformers import Seq2SeqTrainer
from transformers.distributed import DistributedConfig

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import train  # noqa: E402

PROBE_SENTENCE = "The doctor bought the ten strange dresses."


def local_numel(model) -> int:
    return sum((p.to_local() if hasattr(p, "to_local") else p).numel() for p in model.parameters())


class ProbeTrainer(Seq2SeqTrainer):
    fsdp2 = False

    def __init__(self, model=None, **kwargs):
        if self.fsdp2:
            cls = type(model)
            fsdp = DistributedConfig(fsdp_size=int(os.environ["WORLD_SIZE"]))
            distributed_config, _, mesh = cls.prepare_distribute_model(fsdp)
            model = cls.maybe_distribute_model(model, distributed_config, mesh)
        super().__init__(model=model, **kwargs)

    def record(self, **values):
        path = os.path.join(self.args.output_dir, f"rank{self.args.process_index}.jsonl")
        with open(path, "a") as f:
            f.write(json.dumps({"rank": self.args.process_index, "world_size": self.args.world_size, **values}) + "\n")

    def training_step(self, model, inputs, *args, **kwargs):
        loss = super().training_step(model, inputs, *args, **kwargs)
        self.record(
            step=self.state.global_step + 1, loss=loss.item(), batch=inputs["input_ids"].tolist(),
            distributed_type=str(self.accelerator.distributed_type), local_numel=local_numel(self.model),
            numel=sum(p.numel() for p in self.model.parameters()),
            fsdp_modules=[name for name, module in self.model.named_modules() if isinstance(module, FSDPModule)],
        )
        return loss

    def train(self, *args, **kwargs):
        result = super().train(*args, **kwargs)
        if self.fsdp2:
            # generate() calls the encoder and decoder, not the model's forward: FSDP2 must gather the root's
            # parameters (the shared embedding) around it too. Every process takes part in each step's all-gathers.
            register_fsdp_forward_method(self.model, "generate")
            inputs = self.processing_class([PROBE_SENTENCE], return_tensors="pt")
            with torch.no_grad():
                tokens = self.model.eval().generate(**inputs, num_beams=1, max_new_tokens=12)
            saved = os.path.join(self.args.output_dir, "fsdp2-save")
            self.save_model(saved)
            self.accelerator.wait_for_everyone()
            plain = type(self.model).from_pretrained(saved)
            # Loading the saved model sharded, as `from_pretrained(distributed_config=...)` does: the same weights?
            fsdp = DistributedConfig(fsdp_size=self.args.world_size)
            sharded = type(self.model).from_pretrained(saved, distributed_config=fsdp)
            reference = dict(plain.named_parameters())
            differences = {
                name: (p.full_tensor() - reference[name]).abs().max().item() for name, p in sharded.named_parameters()
            }
            self.record(generated=tokens[0].tolist(), saved=saved,
                        sharded_load_differences={name: d for name, d in differences.items() if d > 0})
            # The rest of train.py runs partly on process 0 alone: go on with the unsharded model.
            self.model = self.model_wrapped = plain
            self.is_distributed_loading_by_transformers = False
        return result


if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--probe_fsdp2" in argv:
        argv.remove("--probe_fsdp2")
        ProbeTrainer.fsdp2 = True
    train.main(argv, trainer_class=ProbeTrainer)
