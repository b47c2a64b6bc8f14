"""The model learns a task that needs attention, and its translations do not depend on how it is batched."""

import pytest
import torch

from hf_seq2seq import HFSeq2SeqConfig, HFSeq2SeqForConditionalGeneration

from conftest import EOS, PAD

SYMBOLS = 12
VOCAB = 4 + SYMBOLS  # <s> <pad> </s> <unk>, then the symbols
MAX_LEN = 10


def reversal_batch(n: int, generator: torch.Generator):
    """Source: random symbols + </s>; target: the same symbols reversed + </s>. Solving it needs attention to the
    mirrored source position, which no bag-of-words or copy shortcut gives."""
    lengths = torch.randint(3, MAX_LEN + 1, (n,), generator=generator)
    sources = torch.full((n, MAX_LEN + 1), PAD)
    labels = torch.full((n, MAX_LEN + 1), -100)
    for row, length in enumerate(lengths.tolist()):
        symbols = torch.randint(4, VOCAB, (length,), generator=generator)
        sources[row, :length], sources[row, length] = symbols, EOS
        labels[row, :length], labels[row, length] = symbols.flip(0), EOS
    return sources, (sources != PAD).long(), labels


def strip(sequence: list[int]) -> list[int]:
    """Generated ids after the start token, up to and including the first </s>."""
    sequence = sequence[1:]
    return sequence[: sequence.index(EOS) + 1] if EOS in sequence else sequence


@pytest.fixture(scope="module")
def reversal_model():
    torch.manual_seed(0)
    config = HFSeq2SeqConfig.from_preset("tiny", vocab_size=VOCAB, dropout=0.0, max_position_embeddings=32)
    model = HFSeq2SeqForConditionalGeneration(config).train()
    steps = 600
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3, betas=(0.9, 0.98))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 50) * (1 - s / steps))
    generator = torch.Generator().manual_seed(1)
    train_sources = set()
    for _ in range(steps):
        input_ids, attention_mask, labels = reversal_batch(64, generator)
        train_sources.update(map(tuple, input_ids.tolist()))
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
    return model.eval(), train_sources


def test_learns_to_reverse_with_beam_search(reversal_model):
    model, train_sources = reversal_model
    input_ids, attention_mask, labels = reversal_batch(300, torch.Generator().manual_seed(999))
    held_out = [i for i, row in enumerate(input_ids.tolist()) if tuple(row) not in train_sources]
    assert len(held_out) >= 250
    generated = model.generate(
        input_ids=input_ids[held_out], attention_mask=attention_mask[held_out], num_beams=4, max_new_tokens=MAX_LEN + 2
    )
    correct = sum(
        strip(hyp) == [t for t in labels[i].tolist() if t != -100] for i, hyp in zip(held_out, generated.tolist())
    )
    assert correct / len(held_out) >= 0.99, f"exact match {correct}/{len(held_out)}"


@pytest.mark.parametrize("num_beams", [1, 4])
@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_padding_invariance(reversal_model, num_beams, attn_implementation):
    """Sentences of different lengths translated together give exactly what each gives alone."""
    model, _ = reversal_model
    model.set_attn_implementation(attn_implementation)
    input_ids, attention_mask, _ = reversal_batch(12, torch.Generator().manual_seed(7))
    assert len(set(attention_mask.sum(1).tolist())) > 3, "the batch should mix many lengths"
    batched = model.generate(
        input_ids=input_ids, attention_mask=attention_mask, num_beams=num_beams, max_new_tokens=MAX_LEN + 2
    )
    for row in range(len(input_ids)):
        length = int(attention_mask[row].sum())
        alone = model.generate(input_ids=input_ids[row : row + 1, :length], num_beams=num_beams, max_new_tokens=MAX_LEN + 2)
        assert strip(batched[row].tolist()) == strip(alone[0].tolist())
    model.set_attn_implementation("sdpa")
