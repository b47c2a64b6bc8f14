"""BART's noising (hf_seq2seq/denoising.py): text infilling takes out about 30% of the tokens in Poisson(3) spans,
one <mask> each; sentence permutation keeps every sentence; the target is the passage itself; the noise is seeded
and new every time a passage is batched."""

import numpy as np
import pytest

from hf_seq2seq.denoising import DenoisingCollator
from hf_seq2seq.vocabulary import train_tokenizer

SENTENCES = ["The old mill stood by the river.", "Farmers brought their grain there every autumn.",
             "A fire destroyed it in 1887!", "Did the village build a school?", "The school still teaches children."]


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(SENTENCES * 20, vocab_size=400, min_frequency=1, mask_token=True)


def passages(tokenizer, count: int, seed: int = 0, sentences=(2, 6)) -> list[list[int]]:
    """`count` passages of a random number of sentences in `sentences` (a range), in random order."""
    rng = np.random.default_rng(seed)
    return [tokenizer(" ".join(rng.choice(SENTENCES, size=rng.integers(*sentences))))["input_ids"] for _ in range(count)]


def test_mask_is_a_special_token_after_the_four_others(tokenizer):
    assert tokenizer.mask_token == "<mask>" and tokenizer.mask_token_id == 4
    ids = tokenizer("The <mask> stood.")["input_ids"]
    assert ids.count(4) == 1 and tokenizer.decode(ids, skip_special_tokens=True) == "The  stood."
    assert train_tokenizer(SENTENCES, vocab_size=300).mask_token_id is None  # other vocabularies keep their ids


def test_infilling_masks_about_30_percent_in_poisson_spans(tokenizer):
    collator = DenoisingCollator(tokenizer, permute_sentences=False, seed=0)
    removed = masks = total = 0
    for ids in passages(tokenizer, 400, sentences=(8, 16)):  # about 100 tokens, as pretraining passages are longer
        noised = collator.noise(ids)
        kept = [t for t in noised if t != collator.mask_id]
        assert noised[-1] == tokenizer.eos_token_id and kept[-1] == tokenizer.eos_token_id
        # Without permutation, the kept tokens are the passage's, in order (a subsequence).
        rest = iter(ids)
        assert all(token in rest for token in kept)
        total += len(ids) - 1
        removed += len(ids) - len(kept)
        masks += noised.count(collator.mask_id)
    assert abs(removed / total - 0.3) < 0.02, removed / total
    # The mean span (0-length spans included) is λ = 3, up to the last span of a passage, cut to the budget.
    assert 2.7 < removed / masks < 3.3, removed / masks


def test_permutation_keeps_every_sentence(tokenizer):
    collator = DenoisingCollator(tokenizer, mask_ratio=0.0, seed=1)
    changed = 0
    for ids in passages(tokenizer, 100, seed=1):
        noised = collator.noise(ids)
        assert sorted(map(tuple, collator.sentences(noised[:-1]))) == sorted(map(tuple, collator.sentences(ids[:-1])))
        assert len(collator.sentences(ids[:-1])) >= 2
        changed += noised != ids
    assert changed > 30  # passages of 2 to 5 sentences: most orders change


def test_batches_hold_the_passage_as_target_and_new_seeded_noise_each_time(tokenizer):
    features = [{"input_ids": ids} for ids in passages(tokenizer, 8, seed=2)]
    collator = DenoisingCollator(tokenizer, seed=3)
    first, second = collator(features), collator(features)
    for batch in (first, second):
        for row, feature in zip(batch["labels"].tolist(), features):
            assert [t for t in row if t != -100] == feature["input_ids"]  # the target is the passage
        assert (batch["attention_mask"] == (batch["input_ids"] != tokenizer.pad_token_id)).all()
        assert (batch["input_ids"] == collator.mask_id).any()
    assert not first["input_ids"].equal(second["input_ids"])  # another epoch, other noise
    again = DenoisingCollator(tokenizer, seed=3)
    assert again(features)["input_ids"].equal(first["input_ids"])  # the same seed, the same noise


def test_a_vocabulary_without_mask_is_a_clear_error():
    with pytest.raises(ValueError, match=r"train_tokenizer\(\.\.\., mask_token=True\)"):
        DenoisingCollator(train_tokenizer(SENTENCES, vocab_size=300))
