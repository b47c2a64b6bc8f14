"""The vocabulary: exact round trips of French text, saved and loaded with AutoTokenizer."""

import pytest
from transformers import AutoTokenizer

from hf_seq2seq.corpus import generate_corpus
from hf_seq2seq.vocabulary import train_tokenizer

HARD = [
    "L'œuf de l’oiseau coûte 3,50 € — « très cher » !",
    "Qu\u202fest-ce que c'est\u00a0? Où es-tu\u2009; à côté.",  # French typography's narrow / no-break spaces
    "Ça m'a coûté 1 234,56 $ le 14 juillet 1789.",
    "Emoji 😀🎉 and CJK 漢字 and Ångström, naïve, Noël, ÉTÉ, Œuvre.",
    "Tabs\tand  double  spaces",
]


@pytest.fixture(scope="module")
def tokenizer():
    corpus = generate_corpus(train_size=3000, test_size=10)
    texts = (text for row in corpus["train"] for text in row["translation"].values())  # a generator: streamed
    return train_tokenizer(texts, vocab_size=1200)


@pytest.mark.parametrize("text", HARD)
def test_encode_decode_is_exact(tokenizer, text):
    ids = tokenizer(text)["input_ids"]
    assert ids[-1] == tokenizer.eos_token_id
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_special_tokens_follow_the_model_layout(tokenizer):
    assert [tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id] == [0, 1, 2, 3]


def test_text_target_gives_labels(tokenizer):
    batch = tokenizer(["The cat."], text_target=["Le chat."])
    assert batch["labels"][0][-1] == tokenizer.eos_token_id
    assert tokenizer.decode(batch["labels"][0], skip_special_tokens=True) == "Le chat."


def test_saved_tokenizer_loads_with_auto_tokenizer(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    for text in HARD:
        assert loaded(text)["input_ids"] == tokenizer(text)["input_ids"]
        assert loaded.decode(loaded(text)["input_ids"], skip_special_tokens=True) == text
    assert loaded.pad_token == "<pad>" and loaded.eos_token == "</s>"


def test_learns_words_of_the_corpus(tokenizer):
    # Frequent French words are single tokens: the vocabulary was trained on both sides of the corpus.
    for word in ("voitures", "nous", "avons"):
        assert len(tokenizer(" " + word, add_special_tokens=False)["input_ids"]) == 1, word
