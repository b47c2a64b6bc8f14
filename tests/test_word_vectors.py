"""Word vectors: reading the three formats, copying vectors into the token embeddings, training them with gensim."""

import argparse
import json
from collections import Counter

import numpy as np
import pytest
import torch

from gensim.models import KeyedVectors  # a dependency of the package (pyproject.toml), never skipped  # noqa: E402

from hf_seq2seq.vocabulary import train_tokenizer  # noqa: E402
from hf_seq2seq.word_vectors import (  # noqa: E402
    WordVectorsFormatError,
    add_train_vectors_command,
    init_token_embeddings,
    load_word_vectors,
    run_train_vectors,
    split_words,
    train_word_vectors,
)

from conftest import tiny_model  # noqa: E402

D_MODEL = 64  # the tiny preset

SENTENCES = [
    ("The cat sleeps on the mat.", "Le chat dort sur le tapis."),
    ("The dog sleeps in the house.", "Le chien dort dans la maison."),
    ("In the summer, the cat and the dog play.", "En été, le chat et le chien jouent."),
    ("The man sees the cat in the garden.", "L'homme voit le chat dans le jardin."),
    ("The summer was hot, the dog was tired.", "L'été était chaud, le chien était fatigué."),
    ("A cat is not a dog.", "Un chat n'est pas un chien."),
]
TEXTS = [text for pair in SENTENCES for text in pair]


@pytest.fixture(scope="module")
def tokenizer():
    tokenizer = train_tokenizer(TEXTS * 3, vocab_size=400)
    # The tests below rely on these words being single tokens.
    for word in ("cat", "The", "the", "été", "sleeps"):
        assert len(tokenizer.tokenize(word)) == 1, word
    return tokenizer


def token(tokenizer, word: str) -> str:
    """The word-initial token of a word: "cat" -> "Ġcat"."""
    (only,) = tokenizer.tokenize(word)
    return only


def make_vectors(keys: list[str], dim: int = D_MODEL, seed: int = 0) -> KeyedVectors:
    """Vectors whose values (multiples of 1/8) are written exactly in every format."""
    vectors = KeyedVectors(dim)
    values = np.random.default_rng(seed).integers(-16, 16, size=(len(keys), dim)) / 8
    vectors.add_vectors(keys, values.astype(np.float32))
    return vectors


def write_glove(vectors: KeyedVectors, path) -> None:
    """GloVe's own layout: no header, "word v1 ... vdim" a line."""
    with open(path, "w", encoding="utf-8") as file:
        for key in vectors.index_to_key:
            file.write(key + " " + " ".join(f"{value:g}" for value in vectors[key]) + "\n")


# --- init_token_embeddings --------------------------------------------------------------------------------------


def test_init_copies_exactly_the_covered_rows(tokenizer):
    model = tiny_model(vocab_size=len(tokenizer))
    # Lowercased words (as GloVe), special tokens (never written), and a word no token has.
    vectors = make_vectors(["cat", "été", "the", "sleeps", "<s>", "<pad>", "</s>", "<unk>", "zebra"])
    before = model.get_input_embeddings().weight.detach().clone()

    report = init_token_embeddings(model, tokenizer, vectors)

    after = model.get_input_embeddings().weight.detach()
    # The oracle, written out by hand from the documented rules (init_token_embeddings' docstring) for this
    # vocabulary: every token that gets a vector, and the key of that vector. Byte-level tokens: "Ġ" is the space
    # marker, "Ã©" the two bytes of "é".
    table = {
        "\u0120cat": "cat", "\u0120sleeps": "sleeps", "\u0120the": "the",  # word-initial, marker removed
        "\u0120Ã©tÃ©": "été",  # a non-ASCII word
        "Ã©tÃ©": "été",  # without the marker, after "L'": a whole word too
        "\u0120The": "the", "The": "the",  # capitalised (sentence-initial "The" has no marker), through lowercasing
    }  # and no other: not "Ġsleep" (the file has no "sleep"), not the special tokens, nothing for "zebra"
    vocabulary = tokenizer.get_vocab()
    expected = {vocabulary[tok]: key for tok, key in table.items()}  # token id -> the key of its vector
    for token_id, key in expected.items():
        assert torch.equal(after[token_id], torch.tensor(vectors[key])), key
    others = [i for i in range(len(tokenizer)) if i not in expected]
    assert torch.equal(after[others], before[others])
    assert torch.equal(after[tokenizer.all_special_ids], before[tokenizer.all_special_ids])
    assert not after[tokenizer.pad_token_id].any()  # the padding row stays zero
    # The output projection is tied to the embeddings: it predicts with the new rows.
    assert torch.equal(model.get_output_embeddings().weight[list(expected)], after[list(expected)])

    assert (report.covered, report.vocab_size, report.special) == (len(expected), len(tokenizer), 4)
    assert report.match == "word"
    assert report.by_lowercase == 2  # "ĠThe" and "The"
    assert f"cover {len(expected)} of {len(tokenizer)}" in str(report) and "\n" not in str(report)


def test_init_fills_both_tables_when_not_shared(tokenizer):
    model = tiny_model(vocab_size=len(tokenizer), share_encoder_decoder_embeddings=False)
    vectors = make_vectors(["cat"])
    init_token_embeddings(model, tokenizer, vectors)
    cat = tokenizer.convert_tokens_to_ids(token(tokenizer, "cat"))
    for weight in (model.get_encoder().get_input_embeddings().weight, model.get_decoder().get_input_embeddings().weight,
                   model.get_output_embeddings().weight):
        assert torch.equal(weight[cat], torch.tensor(vectors["cat"]))


def test_init_matches_token_files_exactly(tokenizer):
    """A file in the model's tokens is matched token for token: a space-marked token is found as it is, and its
    plain text ("sleeps", the piece inside a word in such a file) is not a fallback."""
    model = tiny_model(vocab_size=len(tokenizer))
    cat, sleeps = token(tokenizer, "cat"), token(tokenizer, "sleeps")
    assert cat.startswith("\u0120") and "sleeps" not in tokenizer.get_vocab()
    before = model.get_input_embeddings().weight.detach().clone()

    report = init_token_embeddings(model, tokenizer, make_vectors([cat, "sleeps"]))

    assert (report.covered, report.match) == (1, "token")
    after = model.get_input_embeddings().weight.detach()
    assert torch.equal(after[tokenizer.convert_tokens_to_ids(sleeps)], before[tokenizer.convert_tokens_to_ids(sleeps)])


def test_wrong_dimension_is_a_clear_error(tokenizer):
    model = tiny_model(vocab_size=len(tokenizer))
    before = model.get_input_embeddings().weight.detach().clone()
    with pytest.raises(ValueError, match=r"32 dimensions.*d_model=64.*train-vectors.*--size 64"):
        init_token_embeddings(model, tokenizer, make_vectors(["cat"], dim=32))
    assert torch.equal(model.get_input_embeddings().weight, before)


# --- load_word_vectors ------------------------------------------------------------------------------------------


def test_the_three_formats_give_the_same_vectors(tmp_path):
    vectors = make_vectors(["cat", "été", "\u0120chat", "l'homme", "7"], dim=8)
    # Names that do not tell the format: it is read from the file.
    text, binary, glove = tmp_path / "a.vec", tmp_path / "b.txt", tmp_path / "c.bin"
    vectors.save_word2vec_format(str(text))
    vectors.save_word2vec_format(str(binary), binary=True)
    write_glove(vectors, glove)
    assert not glove.read_text(encoding="utf-8")[0].isdigit()  # no header

    for path in (text, binary, glove):
        loaded = load_word_vectors(path)
        assert loaded.index_to_key == vectors.index_to_key, path
        assert np.array_equal(loaded.vectors, vectors.vectors), path


@pytest.mark.parametrize(
    "name, content",
    [
        ("random.bin", np.random.default_rng(0).bytes(3000)),
        ("vectors.json", json.dumps({"cat": [0.1, 0.2]}).encode()),
        ("vectors.csv", b"word,v1,v2\ncat,0.1,0.2\n"),
        ("vectors.txt", b"The cat sleeps.\nThe dog too.\n"),
        ("truncated.txt", b"3 2\ncat 0.1 0.2\n"),  # a header promising more lines than there are
    ],
)
def test_wrong_format_is_a_clear_error(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    message = rf"{name}.*is not a word vector file.*word2vec text.*GloVe.*hf-seq2seq train-vectors"
    with pytest.raises(WordVectorsFormatError, match=message):
        load_word_vectors(path)


# --- train_word_vectors -----------------------------------------------------------------------------------------


def test_train_in_tokens_covers_the_frequent_tokens(tokenizer, tmp_path):
    path = tmp_path / "tokens.txt"
    vectors = train_word_vectors(TEXTS, path, D_MODEL, tokenizer=tokenizer, min_count=2, epochs=2)

    loaded = load_word_vectors(path)
    assert loaded.vector_size == D_MODEL and loaded.index_to_key == vectors.index_to_key
    counts = Counter(tok for text in TEXTS for tok in tokenizer.tokenize(text))
    frequent = {tok for tok, count in counts.items() if count >= 2}
    assert set(loaded.index_to_key) == frequent and token(tokenizer, "cat") in frequent

    model = tiny_model(vocab_size=len(tokenizer))
    report = init_token_embeddings(model, tokenizer, loaded)
    assert (report.covered, report.match) == (len(frequent), "token")
    weight = model.get_input_embeddings().weight
    for tok in frequent:
        assert torch.equal(weight[tokenizer.convert_tokens_to_ids(tok)], torch.tensor(loaded[tok])), tok


def test_train_in_words_is_deterministic(tokenizer, tmp_path):
    first, second = tmp_path / "1.bin", tmp_path / "2.bin"
    for path in (first, second):
        train_word_vectors(TEXTS, path, D_MODEL, min_count=2, epochs=2, seed=3, binary=True)
    assert first.read_bytes() == second.read_bytes()

    loaded = load_word_vectors(first)
    counts = Counter(word for text in TEXTS for word in split_words(text))
    assert loaded.vector_size == D_MODEL
    assert set(loaded.index_to_key) == {word for word, count in counts.items() if count >= 2}
    assert {"cat", "été", "the", "l"} <= set(loaded.index_to_key)  # lowercased; "l'été" split at the apostrophe
    report = init_token_embeddings(tiny_model(vocab_size=len(tokenizer)), tokenizer, loaded)
    assert report.match == "word" and report.by_lowercase >= 1  # "ĠThe" -> "the"


def test_train_refuses_a_generator(tmp_path):
    with pytest.raises(TypeError, match="re-iterable"):
        train_word_vectors((text for text in TEXTS), tmp_path / "v.txt", D_MODEL)


def test_train_vectors_command(tmp_path):
    data = tmp_path / "train.tsv"
    data.write_text("".join(f"{en}\t{fr}\tCC-BY\n" for en, fr in SENTENCES), encoding="utf-8")
    parser = argparse.ArgumentParser(prog="hf-seq2seq")
    add_train_vectors_command(parser.add_subparsers(dest="command"))
    output = tmp_path / "fr.txt"
    args = parser.parse_args(["train-vectors", "--text", str(data), "--output", str(output), "--size", "16"]
                             + ["--column", "2", "--epochs", "1"])
    run_train_vectors(args)

    loaded = load_word_vectors(output)
    assert loaded.vector_size == 16
    assert {"chat", "chien", "le"} <= set(loaded.index_to_key)
    assert not {"cat", "the", "cc"} & set(loaded.index_to_key)  # only the French column

    missing, output = tmp_path / "missing.txt", tmp_path / "x.txt"
    args = parser.parse_args(["train-vectors", "--text", str(missing), "--output", str(output), "--size", "8"])
    with pytest.raises(SystemExit, match="missing.txt"):
        run_train_vectors(args)
    assert not output.exists()
