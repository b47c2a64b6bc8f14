"""The reference point of the quality runs: transformers' own `MarianMTModel`, of the `small` preset's size, trained
the usual way by the same train.py (`Seq2SeqTrainer`, the same data, tokenizer, evaluation and time budget), so
that a quality run of ours and this one differ in the model and recipe only.

    python bench/marian_baseline.py --train_file ../shared/data/tatoeba-en-fr/train.tsv \
        --validation_file ../shared/data/tatoeba-en-fr/dev.tsv --test_file ../shared/data/tatoeba-en-fr/dev.tsv \
        --max_eval_samples 1000 --max_train_minutes 60 --output_dir outputs/tatoeba-marian ...

The usual way: batch 64, peak learning rate 1e-3 after 1,000 warm-up steps, label smoothing 0.1 (the cross-entropy of
the labels, smoothed, as transformers computes it), Marian's architecture (post-norm, sinusoidal positions, shared
and tied embeddings) at d_model 256, 3+3 layers, 4 heads, d_ff 1024.
"""

import functools
import os
import sys

import torch
from torch.nn import functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import train  # noqa: E402
from common import marian_model  # noqa: E402
from hf_seq2seq import HFSeq2SeqConfig  # noqa: E402


def build_marian(task, model_args, tokenizer, task_config):
    config = HFSeq2SeqConfig.from_preset(
        model_args.preset, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.bos_token_id,
    )
    model = marian_model(config)
    forward = model.forward

    @functools.wraps(forward)  # Trainer reads the signature to keep the model's input columns
    def forward_with_smoothed_loss(*args, labels=None, **kwargs):
        # train.py hands label smoothing to the model (config.label_smoothing): for Marian, the usual smoothed
        # cross-entropy over every labelled position.
        kwargs.pop("num_items_in_batch", None)
        if labels is not None and kwargs.get("decoder_input_ids") is None:
            kwargs["decoder_input_ids"] = model.prepare_decoder_input_ids_from_labels(labels)
        outputs = forward(*args, **kwargs)
        if labels is not None:
            outputs.loss = F.cross_entropy(outputs.logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100,
                                           label_smoothing=getattr(model.config, "label_smoothing", 0.0))
        return outputs

    model.forward = forward_with_smoothed_loss
    return model


if __name__ == "__main__":
    torch.manual_seed(0)
    train.build_model = build_marian
    train.main(sys.argv[1:] + ["--learning_rate", "1e-3", "--warmup_steps", "1000", "--per_device_train_batch_size", "64"])
