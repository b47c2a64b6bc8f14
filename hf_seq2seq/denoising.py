"""BART's denoising objective (Lewis et al., 2020): the model reads a corrupted passage and writes the original.

Two kinds of noise, those BART found best together:

- **sentence permutation**: the passage's sentences are shuffled;
- **text infilling**: spans of tokens whose lengths follow Poisson(λ = 3) are taken out until about 30% of the tokens
  are gone, each span replaced by a single `<mask>` (a span of length 0 inserts one), so the model also learns how
  much is missing.

`DenoisingCollator` noises each passage when it is batched, with its own seeded generator: every epoch sees new noise,
and a run started again with the same seed sees the same. The passage itself is the target.
"""

import numpy as np
import torch


class DenoisingCollator:
    """Batches of `{"input_ids": passage ids ending in </s>}` -> noised `input_ids`, `attention_mask` and `labels` (the
    passage; padding -100). Examples that have `labels` already were noised before (an evaluation set, noised once
    so that every evaluation sees the same) and are only padded. The tokenizer must have a `<mask>` token
    (`train_tokenizer(..., mask_token=True)`)."""

    def __init__(self, tokenizer, mask_ratio: float = 0.3, poisson_lambda: float = 3.0, permute_sentences: bool = True,
                 seed: int = 0):
        if tokenizer.mask_token_id is None:
            raise ValueError("Denoising needs a <mask> token in the vocabulary: train the tokenizer with "
                             "train_tokenizer(..., mask_token=True), or add one as a special token.")
        self.mask_ratio, self.poisson_lambda, self.permute_sentences = mask_ratio, poisson_lambda, permute_sentences
        self.mask_id, self.pad_id, self.eos_id = tokenizer.mask_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id
        self.special_ids = set(tokenizer.all_special_ids)
        # A sentence ends at a token whose text ends with . ! or ? (BART splits at full stops).
        self.sentence_ends = {i for token, i in tokenizer.get_vocab().items() if i not in self.special_ids
                              and tokenizer.convert_tokens_to_string([token]).rstrip().endswith((".", "!", "?"))}
        self.rng = np.random.default_rng(seed)

    def sentences(self, ids: list[int]) -> list[list[int]]:
        """The passage's tokens (without </s>) cut after each sentence end."""
        sentences, current = [], []
        for token in ids:
            current.append(token)
            if token in self.sentence_ends:
                sentences.append(current)
                current = []
        return sentences + [current] if current else sentences

    def permutation(self, ids: list[int]) -> list[int]:
        """Sentence permutation, as the positions of `ids` in their new order."""
        starts = np.cumsum([0] + [len(sentence) for sentence in self.sentences(ids)])
        order = self.rng.permutation(len(starts) - 1)
        return [position for i in order for position in range(starts[i], starts[i + 1])]

    def infill(self, ids: list[int]) -> tuple[list[int], list[bool]]:
        """Text infilling: spans of Poisson(λ) lengths, about `mask_ratio` of the tokens in all, each become one
        <mask>; spans do not overlap, and a span of length 0 inserts a <mask>. Returns the noised ids and, for each
        token of `ids`, whether it was taken out."""
        budget = int(round(len(ids) * self.mask_ratio))
        lengths = []
        while sum(lengths) < budget:
            lengths.append(int(self.rng.poisson(self.poisson_lambda)))
        if lengths:  # the last span takes what is left of the budget
            lengths[-1] -= sum(lengths) - budget
        # Where the spans go: a random order of spans and kept tokens (stars and bars), so spans never overlap.
        kept = len(ids) - budget
        slots = np.sort(self.rng.choice(kept + len(lengths), size=len(lengths), replace=False))
        noised, removed, read, span = [], [False] * len(ids), 0, 0
        for position in range(kept + len(lengths)):
            if span < len(lengths) and position == slots[span]:
                noised.append(self.mask_id)
                removed[read : read + lengths[span]] = [True] * lengths[span]
                read += lengths[span]
                span += 1
            else:
                noised.append(ids[read])
                read += 1
        return noised, removed

    def noise_with_mask(self, ids: list[int]) -> tuple[list[int], list[bool]]:
        """The corrupted passage (sentences permuted, then spans infilled; it ends with </s> as the passage does) and,
        for each token of the passage `ids`, whether infilling took it out: the tokens the model must restore."""
        body = [token for token in ids if token != self.eos_id]
        order = self.permutation(body) if self.permute_sentences else list(range(len(body)))
        noised, removed = self.infill([body[position] for position in order])
        masked = [False] * len(ids)
        for position, taken in zip(order, removed):  # back to the passage's own order (</s> last, never masked)
            masked[position] = taken
        return noised + [self.eos_id], masked

    def noise(self, ids: list[int]) -> list[int]:
        return self.noise_with_mask(ids)[0]

    def __call__(self, features: list[dict]) -> dict:
        if "labels" in features[0]:  # noised once already (evaluation: the same noise at every evaluation)
            sources, targets = [list(f["input_ids"]) for f in features], [list(f["labels"]) for f in features]
        else:
            sources = [self.noise(list(feature["input_ids"])) for feature in features]
            targets = [list(feature["input_ids"]) for feature in features]

        def padded(rows, value):
            width = max(len(row) for row in rows)
            return torch.tensor([row + [value] * (width - len(row)) for row in rows])

        input_ids = padded(sources, self.pad_id)
        return {"input_ids": input_ids, "attention_mask": (input_ids != self.pad_id).long(),
                "labels": padded(targets, -100)}
