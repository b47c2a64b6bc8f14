"""Train the subword vocabulary with `tokenizers` and wrap it as a transformers tokenizer.

Byte-level BPE: every string, accents, ’ « » œ, narrow no-break spaces and emoji included, is a sequence of bytes
the vocabulary covers, so encode → decode gives the text back exactly and there is no unknown token in practice.
Normalisation is NFC only: it merges the two Unicode spellings of "é" but, unlike NFKC, keeps the no-break spaces
of French typography.
"""

from collections.abc import Iterable, Iterator

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

# The fairseq/BART layout, which HFSeq2SeqConfig's token ids follow.
BOS, PAD, EOS, UNK = "<s>", "<pad>", "</s>", "<unk>"
SPECIAL_TOKENS = [BOS, PAD, EOS, UNK]
MASK = "<mask>"  # BART's, for denoising pretraining: one <mask> stands for a span of text taken out (id 4)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 8000, min_frequency: int = 2,
                    mask_token: bool = False) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE vocabulary on an iterator of texts (source and target sentences for a joint
    vocabulary). The iterator is consumed once, in batches: the corpus never has to fit in memory. `mask_token`
    adds BART's `<mask>` as a special token after the four others (a vocabulary for denoising pretraining)."""
    special_tokens = SPECIAL_TOKENS + [MASK] if mask_token else SPECIAL_TOKENS
    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.normalizer = normalizers.NFC()
    # add_prefix_space: a word is the same token at the start of a sentence as inside it. Digits stay single
    # tokens, so a number is copied digit by digit instead of being one rare token the model never learned.
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.ByteLevel(add_prefix_space=True), pre_tokenizers.Digits(individual_digits=True)]
    )
    # ...and the decoder removes that space again, so decode(encode(text)) == text.
    tokenizer.decoder = decoders.Sequence([decoders.ByteLevel(), decoders.Strip(" ", 1, 0)])
    # Sources and targets end with </s>; the decoder starts from <s> (decoder_start_token_id).
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS}", pair=f"$A {EOS} $B {EOS}", special_tokens=[(EOS, SPECIAL_TOKENS.index(EOS))]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_batched(texts), trainer=trainer)
    return wrap_tokenizer(tokenizer, mask_token)


def wrap_tokenizer(tokenizer: Tokenizer, mask_token: bool = False) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        pad_token=PAD,
        eos_token=EOS,
        unk_token=UNK,
        **({"mask_token": MASK} if mask_token else {}),
        # transformers' "clean up" would turn French "Bonjour !" into "Bonjour!": decoding must be exact.
        clean_up_tokenization_spaces=False,
        model_input_names=["input_ids", "attention_mask"],
    )


def _batched(texts: Iterable[str], size: int = 1000) -> Iterator[list[str]]:
    batch = []
    for text in texts:
        batch.append(text)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch

