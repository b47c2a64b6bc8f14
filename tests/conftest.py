import pytest
import torch

import hf_seq2seq
from hf_seq2seq import HFSeq2SeqConfig, HFSeq2SeqForConditionalGeneration

BOS, PAD, EOS = 0, 1, 2


def tiny_config(**overrides) -> HFSeq2SeqConfig:
    """A tiny model with dropout off, so outputs are deterministic."""
    kwargs = dict(vocab_size=40, dropout=0.0, max_position_embeddings=64)
    kwargs.update(overrides)
    return HFSeq2SeqConfig.from_preset("tiny", **kwargs)


def tiny_model(seed: int = 0, **overrides) -> HFSeq2SeqForConditionalGeneration:
    torch.manual_seed(seed)
    return HFSeq2SeqForConditionalGeneration(tiny_config(**overrides)).eval()


def padded_batch(lengths, vocab_size=40, seed=0):
    """Right-padded source ids ending in EOS, with their attention mask."""
    generator = torch.Generator().manual_seed(seed)
    batch = torch.full((len(lengths), max(lengths)), PAD)
    for row, length in enumerate(lengths):
        batch[row, : length - 1] = torch.randint(3, vocab_size, (length - 1,), generator=generator)
        batch[row, length - 1] = EOS
    return batch, (batch != PAD).long()


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield
